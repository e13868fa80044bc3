package render

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/vbench/vbench/metric"

	"github.com/vbench/vbench/analyze"
)

// column is one stable output column: its name, what it holds, and how to
// read it from a row.
type column[T any] struct {
	name string
	get  func(T) any
}

// fmtFloat formats a float for CSV: 12 significant digits (enough for
// nanoseconds in seconds, free of binary noise such as 0.18000000000000002),
// "" for NaN/Inf.
func fmtFloat(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return ""
	}
	return strconv.FormatFloat(v, 'g', 12, 64)
}

func cell(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case uint64:
		return strconv.FormatUint(x, 10)
	case float64:
		return fmtFloat(x)
	case bool:
		return strconv.FormatBool(x)
	case []string:
		return strings.Join(x, ";")
	case map[string]int:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + ":" + strconv.Itoa(x[k])
		}
		return strings.Join(parts, ";")
	}
	return fmt.Sprint(v) // a type without a case above: printed, never a panic
}

// writeCSV writes a header and one line per row.
func writeCSV[T any](w io.Writer, cols []column[T], rows []T) error {
	cw := csv.NewWriter(w)
	line := make([]string, len(cols))
	for i, c := range cols {
		line[i] = c.name
	}
	if err := cw.Write(line); err != nil {
		return err
	}
	for _, r := range rows {
		for i, c := range cols {
			line[i] = cell(c.get(r))
		}
		if err := cw.Write(line); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// jsonValue prepares a column's value for encoding/json: a float is rounded
// to 12 significant digits, as in the CSV, and NaN or ±Inf becomes nil
// (null); a nil []string is an empty list.
func jsonValue(v any) any {
	switch x := v.(type) {
	case float64:
		if p := metric.Num(x); p != nil {
			r, _ := strconv.ParseFloat(strconv.FormatFloat(*p, 'g', 12, 64), 64)
			return r
		}
		return nil
	case []float64:
		out := make([]any, len(x))
		for i, f := range x {
			out[i] = jsonValue(f)
		}
		return out
	case []string:
		if x == nil {
			return []string{}
		}
	case map[string]int:
		if x == nil {
			return map[string]int{}
		}
	}
	return v
}

// field is one member of an ordered JSON object.
type field struct {
	name  string
	value any
}

// object is a JSON object whose members keep their order (the column
// order of the CSV files); encoding/json writes each key and value.
type object []field

// MarshalJSON writes the members in order; values go through jsonValue.
func (o object) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(f.name)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(jsonValue(f.value))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.name, err)
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// writeJSON writes v through encoding/json, indented by two spaces, with a
// final newline.
func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

func rowObj[T any](cols []column[T], r T) object {
	o := make(object, len(cols))
	for i, c := range cols {
		o[i] = field{c.name, c.get(r)}
	}
	return o
}

// distCols returns the columns of a metric.Dist: name_mean_unit, _std, _p50,
// _p90, _p95, _p99.
func distCols(name, unit string, get func(*analyze.Group) metric.Dist) []column[*analyze.Group] {
	return []column[*analyze.Group]{
		{name + "_mean_" + unit, func(g *analyze.Group) any { return get(g).Mean }},
		{name + "_std_" + unit, func(g *analyze.Group) any { return get(g).Std }},
		{name + "_p50_" + unit, func(g *analyze.Group) any { return get(g).P50 }},
		{name + "_p90_" + unit, func(g *analyze.Group) any { return get(g).P90 }},
		{name + "_p95_" + unit, func(g *analyze.Group) any { return get(g).P95 }},
		{name + "_p99_" + unit, func(g *analyze.Group) any { return get(g).P99 }},
	}
}

// summaryColumns are the columns of summary.csv and of each group in
// summary.json. Their names are a stable interface (docs/vbanalyze.md).
func summaryColumns() []column[*analyze.Group] {
	cols := []column[*analyze.Group]{
		{"key", func(g *analyze.Group) any { return g.Key }},
		{"variant", func(g *analyze.Group) any { return g.Variant }},
		{"level", func(g *analyze.Group) any { return g.Level }},
		{"rate", func(g *analyze.Group) any { return g.Rate }},
		{"trial", func(g *analyze.Group) any { return g.Trial }},
		{"model", func(g *analyze.Group) any { return g.Model }},
		{"captures", func(g *analyze.Group) any { return g.Captures }},
		{"trace_hashes", func(g *analyze.Group) any { return g.TraceHashes }},
		{"count", func(g *analyze.Group) any { return g.Count }},
		{"warmup", func(g *analyze.Group) any { return g.Warmup }},
		{"completed", func(g *analyze.Group) any { return g.Completed }},
		{"failed", func(g *analyze.Group) any { return g.Failed }},
		{"cut", func(g *analyze.Group) any { return g.Cut }},
		{"failed_by", func(g *analyze.Group) any { return g.FailedBy }},
		{"estimated_tokens", func(g *analyze.Group) any { return g.EstimatedTokens }},
		{"empty_output", func(g *analyze.Group) any { return g.EmptyOutput }},
		{"window_start_ns", func(g *analyze.Group) any { return g.WindowStart }},
		{"window_end_ns", func(g *analyze.Group) any { return g.WindowEnd }},
		{"duration_s", func(g *analyze.Group) any { return g.Duration }},
		{"request_throughput", func(g *analyze.Group) any { return g.RequestThroughput }},
		{"output_throughput", func(g *analyze.Group) any { return g.OutputThroughput }},
		{"input_tokens", func(g *analyze.Group) any { return g.InputTokens }},
		{"output_tokens", func(g *analyze.Group) any { return g.OutputTokens }},
		{"goodput", func(g *analyze.Group) any { return g.Goodput }},
		{"good_count", func(g *analyze.Group) any { return g.GoodCount }},
		{"max_output_tokens_per_s", func(g *analyze.Group) any { return g.MaxOutputTokensPerS }},
	}
	cols = append(cols, distCols("norm_latency", "s_per_tok", func(g *analyze.Group) metric.Dist { return g.NormLatency })...)
	cols = append(cols, distCols("norm_latency_with_cut", "s_per_tok", func(g *analyze.Group) metric.Dist { return g.NormLatencyWithCut })...)
	cols = append(cols, distCols("ttft", "s", func(g *analyze.Group) metric.Dist { return g.TTFT })...)
	cols = append(cols, distCols("ttft_sched", "s", func(g *analyze.Group) metric.Dist { return g.TTFTSched })...)
	cols = append(cols, distCols("tpot", "s", func(g *analyze.Group) metric.Dist { return g.TPOT })...)
	cols = append(cols, distCols("itl", "s", func(g *analyze.Group) metric.Dist { return g.ITL })...)
	cols = append(cols, distCols("itl_token", "s", func(g *analyze.Group) metric.Dist { return g.ITLToken })...)
	cols = append(cols, distCols("e2e", "s", func(g *analyze.Group) metric.Dist { return g.E2E })...)
	cols = append(cols, distCols("lag", "s", func(g *analyze.Group) metric.Dist { return g.Lag })...)
	cols = append(cols, distCols("cut_elapsed", "s", func(g *analyze.Group) metric.Dist { return g.CutElapsed })...)
	cols = append(cols, []column[*analyze.Group]{
		{"inflight_mean", func(g *analyze.Group) any { return g.InFlightMean }},
		{"inflight_max", func(g *analyze.Group) any { return g.InFlightMax }},
		{"decoding_mean", func(g *analyze.Group) any { return g.DecodingMean }},
		{"decoding_max", func(g *analyze.Group) any { return g.DecodingMax }},
		{"queued_mean", func(g *analyze.Group) any { return g.QueuedMean }},
		{"queued_max", func(g *analyze.Group) any { return g.QueuedMax }},
		{"running_mean", func(g *analyze.Group) any { return g.Running }},
		{"running_max", func(g *analyze.Group) any { return g.RunningMax }},
		{"waiting_mean", func(g *analyze.Group) any { return g.Waiting }},
		{"kv_usage_mean", func(g *analyze.Group) any { return g.KVUsage }},
		{"preemptions", func(g *analyze.Group) any { return g.Preemptions }},
		{"samples", func(g *analyze.Group) any { return g.Samples }},
	}...)
	cols = append(cols, serverColumns()...)
	cols = append(cols, []column[*analyze.Group]{
		{"recorder_dropped", func(g *analyze.Group) any { return g.RecorderDropped }},
		{"recorder_lost", func(g *analyze.Group) any { return g.RecorderLost }},
		{"captures_unclean", func(g *analyze.Group) any { return g.CapturesUnclean }},
		{"warnings", func(g *analyze.Group) any { return g.Warnings }},
	}...)
	return cols
}

// aggregateColumns are the columns of aggregates.csv and of each
// aggregate in summary.json: the mean over trials and the 95% CI
// half-width of each metric.
func aggregateColumns() []column[*analyze.Aggregate] {
	cols := []column[*analyze.Aggregate]{
		{"key", func(a *analyze.Aggregate) any { return a.Key }},
		{"variant", func(a *analyze.Aggregate) any { return a.Variant }},
		{"level", func(a *analyze.Aggregate) any { return a.Level }},
		{"rate", func(a *analyze.Aggregate) any { return a.Rate }},
		{"trials", func(a *analyze.Aggregate) any { return a.Trials }},
		{"completed", func(a *analyze.Aggregate) any { return a.Completed }},
		{"failed", func(a *analyze.Aggregate) any { return a.Failed }},
		{"cut", func(a *analyze.Aggregate) any { return a.Cut }},
	}
	add := func(name string, get func(*analyze.Aggregate) metric.CI) {
		cols = append(cols,
			column[*analyze.Aggregate]{name, func(a *analyze.Aggregate) any { return get(a).Mean }},
			column[*analyze.Aggregate]{name + "_ci95", func(a *analyze.Aggregate) any { return get(a).Half }})
	}
	add("request_throughput", func(a *analyze.Aggregate) metric.CI { return a.RequestThroughput })
	add("output_throughput", func(a *analyze.Aggregate) metric.CI { return a.OutputThroughput })
	add("goodput", func(a *analyze.Aggregate) metric.CI { return a.Goodput })
	add("norm_latency_mean_s_per_tok", func(a *analyze.Aggregate) metric.CI { return a.NormLatency })
	add("norm_latency_with_cut_mean_s_per_tok", func(a *analyze.Aggregate) metric.CI { return a.NormLatencyWithCut })
	add("ttft_mean_s", func(a *analyze.Aggregate) metric.CI { return a.TTFTMean })
	add("ttft_p50_s", func(a *analyze.Aggregate) metric.CI { return a.TTFTP50 })
	add("ttft_p99_s", func(a *analyze.Aggregate) metric.CI { return a.TTFTP99 })
	add("tpot_mean_s", func(a *analyze.Aggregate) metric.CI { return a.TPOTMean })
	add("itl_mean_s", func(a *analyze.Aggregate) metric.CI { return a.ITLMean })
	add("e2e_mean_s", func(a *analyze.Aggregate) metric.CI { return a.E2EMean })
	add("e2e_p99_s", func(a *analyze.Aggregate) metric.CI { return a.E2EP99 })
	add("inflight_mean", func(a *analyze.Aggregate) metric.CI { return a.InFlightMean })
	add("decoding_mean", func(a *analyze.Aggregate) metric.CI { return a.DecodingMean })
	add("running_mean", func(a *analyze.Aggregate) metric.CI { return a.Running })
	add("preemptions", func(a *analyze.Aggregate) metric.CI { return a.Preemptions })
	add("waiting_mean", func(a *analyze.Aggregate) metric.CI { return a.Waiting })
	add("kv_usage_mean", func(a *analyze.Aggregate) metric.CI { return a.KVUsage })
	add("steps_per_s", func(a *analyze.Aggregate) metric.CI { return a.StepsPerS })
	add("step_time_mean_s", func(a *analyze.Aggregate) metric.CI { return a.StepTime })
	add("kv_reserved_mean_tokens", func(a *analyze.Aggregate) metric.CI { return a.KVReserved })
	add("kv_filled_mean_tokens", func(a *analyze.Aggregate) metric.CI { return a.KVFilled })
	add("kv_largest_hole_mean_tokens", func(a *analyze.Aggregate) metric.CI { return a.KVLargestHole })
	return cols
}

// requestColumns are the columns of requests.csv. outcome is the one the
// summary counts by (ok, cut, failed); proxy_outcome the capture record's
// transport outcome ("ok" there means forwarded to the end, whatever the
// HTTP status).
func requestColumns() []column[*metric.Request] {
	return []column[*metric.Request]{
		{"capture", func(r *metric.Request) any { return r.Capture }},
		{"id", func(r *metric.Request) any { return r.ID }},
		{"index", func(r *metric.Request) any { return r.Index }},
		{"key", func(r *metric.Request) any { return r.Key }},
		{"variant", func(r *metric.Request) any { return r.Variant }},
		{"level", func(r *metric.Request) any { return r.Level }},
		{"rate", func(r *metric.Request) any { return r.Rate }},
		{"trial", func(r *metric.Request) any { return r.Trial }},
		{"warmup", func(r *metric.Request) any { return r.Warmup }},
		{"completed", func(r *metric.Request) any { return r.Completed() }},
		{"status", func(r *metric.Request) any { return r.Status }},
		{"outcome", func(r *metric.Request) any { return string(r.Outcome) }},
		{"error_kind", func(r *metric.Request) any { return r.ErrorKind }},
		{"proxy_outcome", func(r *metric.Request) any { return r.ProxyOutcome }},
		{"output_tokens", func(r *metric.Request) any { return int(r.OutputTokens) }},
		{"token_source", func(r *metric.Request) any { return string(r.TokenSource) }},
		{"prompt_tokens", func(r *metric.Request) any { return int(r.PromptTokens) }},
		{"expected_output", func(r *metric.Request) any { return int(r.ExpectedOutput) }},
		{"content_chunks", func(r *metric.Request) any { return int(r.ContentChunks) }},
		{"start_ns", func(r *metric.Request) any { return r.Start }},
		{"end_ns", func(r *metric.Request) any { return r.EndUnix() }},
		{"scheduled_ns", func(r *metric.Request) any { return r.Scheduled }},
		{"sent_ns", func(r *metric.Request) any { return r.Sent }},
		{"ttft_s", func(r *metric.Request) any { return r.TTFT() }},
		{"ttft_sched_s", func(r *metric.Request) any { return r.TTFTScheduled() }},
		{"tpot_s", func(r *metric.Request) any { return r.TPOT() }},
		{"itl_mean_s", func(r *metric.Request) any { return r.ITLMean() }},
		{"e2e_s", func(r *metric.Request) any { return r.E2E() }},
		{"elapsed_s", func(r *metric.Request) any { return r.Elapsed() }},
		{"norm_latency_s_per_tok", func(r *metric.Request) any { return r.NormLatency() }},
		{"norm_latency_bound_s_per_tok", func(r *metric.Request) any { return r.NormLatencyBound() }},
		{"lag_s", func(r *metric.Request) any { return r.Lag() }},
	}
}

// WriteSummaryCSV writes summary.csv: one row per group.
func WriteSummaryCSV(res *analyze.Result, w io.Writer) error {
	return writeCSV(w, summaryColumns(), res.Groups)
}

// WriteAggregatesCSV writes aggregates.csv: one row per group of trials.
func WriteAggregatesCSV(res *analyze.Result, w io.Writer) error {
	return writeCSV(w, aggregateColumns(), res.Aggregates)
}

// WriteRequestsCSV writes requests.csv: one row per request.
func WriteRequestsCSV(res *analyze.Result, w io.Writer) error {
	rows := make([]*metric.Request, len(res.Requests))
	for i := range res.Requests {
		rows[i] = &res.Requests[i]
	}
	return writeCSV(w, requestColumns(), rows)
}

// WriteSummaryJSON writes summary.json: setup, groups, aggregates,
// saturation and warnings, with the same field names as the CSV columns,
// through encoding/json (NaN is null).
func WriteSummaryJSON(res *analyze.Result, w io.Writer) error {
	gcols, acols := summaryColumns(), aggregateColumns()
	groups := make([]object, len(res.Groups))
	for i, g := range res.Groups {
		groups[i] = append(rowObj(gcols, g), field{"server_metrics", serverMetricsJSON(g)})
	}
	aggs := make([]object, len(res.Aggregates))
	for i, a := range res.Aggregates {
		aggs[i] = rowObj(acols, a)
	}
	sats := make([]object, len(res.Saturation))
	for i, s := range res.Saturation {
		sats[i] = object{{"variant", s.Variant}, {"rate", s.Rate}, {"level", s.Level}, {"norm_latency_s_per_tok", s.NormLatency}, {"over_at_lowest_rate", s.Over}, {"never_saturated", s.Never}, {"limit", s.Limit}}
	}
	st := res.Setup
	setup := object{
		{"captures", st.Captures}, {"variants", st.Variants}, {"models", st.Models},
		{"trace_hashes", st.TraceHashes}, {"tools", st.Tools}, {"hosts", st.Hosts}, {"facts", st.Facts},
		{"records", st.Records}, {"skipped", st.Skipped}, {"samples", st.Samples}, {"by", st.By}, {"window", st.Window},
		{"slo", st.SLO}, {"saturation_threshold_s_per_tok", st.Saturation},
	}
	return writeJSON(w, object{{"setup", setup}, {"groups", groups}, {"aggregates", aggs}, {"saturation", sats}, {"warnings", res.Warnings}})
}

func fmtDur(s float64) string           { return analyze.FormatSeconds(s) }
func fmtNum(v float64, prec int) string { return analyze.FormatNumber(v, prec) }

// tableHeader and tableRow give the terminal table (and the report's
// summary table): the figures people look at first.
func tableHeader() []string {
	return []string{"variant", "rate", "trial", "n", "ok", "fail", "cut", "req/s", "tok/s", "norm s/tok", "TTFT p50", "TTFT p99", "TPOT mean", "ITL p99", "E2E p99", "in-flight", "decoding", "batched", "lag p99"}
}

func tableRow(g *analyze.Group) []string {
	return []string{
		g.Variant, orDash(g.Level), orDash(g.Trial), strconv.Itoa(g.Count), strconv.Itoa(g.Completed), strconv.Itoa(g.Failed), strconv.Itoa(g.Cut),
		fmtNum(g.RequestThroughput, 2), fmtNum(g.OutputThroughput, 1), fmtNum(g.NormLatency.Mean, 4),
		fmtDur(g.TTFT.P50), fmtDur(g.TTFT.P99), fmtDur(g.TPOT.Mean), fmtDur(g.ITL.P99), fmtDur(g.E2E.P99),
		fmtNum(g.InFlightMean, 1), fmtNum(g.DecodingMean, 1), fmtNum(g.Running, 1), fmtDur(g.Lag.P99),
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// WriteTable writes the terminal summary table and the warnings.
func WriteTable(res *analyze.Result, w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	var rows [][]string
	for _, g := range res.Groups {
		rows = append(rows, tableRow(g))
	}
	hdr, rows := dropEmptyColumns(tableHeader(), rows)
	fmt.Fprintln(tw, strings.Join(hdr, "\t")+"\t")
	for _, row := range rows {
		fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, s := range SaturationLines(res) {
		fmt.Fprintln(w, s)
	}
	for _, s := range res.AllWarnings() {
		fmt.Fprintln(w, "warning: "+s)
	}
	return nil
}
