package analyze

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
	"time"

	"github.com/vbench/vbench/metric"
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
	panic(fmt.Sprintf("analyze: no cell format for %T", v))
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

// kv is one key of an ordered JSON object.
type kv struct {
	k string
	v any
}

// obj is an ordered JSON object; NaN and Inf floats become null.
type obj []kv

// appendJSON appends v as JSON: obj keeps its key order, floats are
// shortest-exact with NaN/Inf as null, maps have sorted keys.
func appendJSON(b []byte, v any) []byte {
	switch x := v.(type) {
	case obj:
		b = append(b, '{')
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendQuote(b, e.k)
			b = append(b, ':')
			b = appendJSON(b, e.v)
		}
		return append(b, '}')
	case []obj:
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSON(b, e)
		}
		return append(b, ']')
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return append(b, "null"...)
		}
		return strconv.AppendFloat(b, x, 'g', 12, 64)
	case []float64:
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSON(b, e)
		}
		return append(b, ']')
	case map[string]int:
		o := obj{}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			o = append(o, kv{k, x[k]})
		}
		return appendJSON(b, o)
	case map[string]string:
		o := obj{}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			o = append(o, kv{k, x[k]})
		}
		return appendJSON(b, o)
	case nil:
		return append(b, "null"...)
	}
	// strings, ints, bools, []string: encoding/json is exact and stable.
	if s, ok := v.([]string); ok && s == nil {
		return append(b, "[]"...)
	}
	j, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("analyze: JSON of %T: %v", v, err))
	}
	return append(b, j...)
}

// indentJSON returns compact JSON indented by two spaces, with a final
// newline.
func indentJSON(compact []byte) []byte {
	var out bytes.Buffer
	if err := json.Indent(&out, compact, "", "  "); err != nil {
		panic(fmt.Sprintf("analyze: indent: %v", err))
	}
	out.WriteByte('\n')
	return out.Bytes()
}

func rowObj[T any](cols []column[T], r T) obj {
	o := make(obj, len(cols))
	for i, c := range cols {
		o[i] = kv{c.name, c.get(r)}
	}
	return o
}

// distCols returns the columns of a metric.Dist: name_mean_unit, _std, _p50,
// _p90, _p95, _p99.
func distCols(name, unit string, get func(*Group) metric.Dist) []column[*Group] {
	return []column[*Group]{
		{name + "_mean_" + unit, func(g *Group) any { return get(g).Mean }},
		{name + "_std_" + unit, func(g *Group) any { return get(g).Std }},
		{name + "_p50_" + unit, func(g *Group) any { return get(g).P50 }},
		{name + "_p90_" + unit, func(g *Group) any { return get(g).P90 }},
		{name + "_p95_" + unit, func(g *Group) any { return get(g).P95 }},
		{name + "_p99_" + unit, func(g *Group) any { return get(g).P99 }},
	}
}

// summaryColumns are the columns of summary.csv and of each group in
// summary.json. Their names are a stable interface (docs/vbanalyze.md).
func summaryColumns() []column[*Group] {
	cols := []column[*Group]{
		{"key", func(g *Group) any { return g.Key }},
		{"variant", func(g *Group) any { return g.Variant }},
		{"level", func(g *Group) any { return g.Level }},
		{"rate", func(g *Group) any { return g.Rate }},
		{"trial", func(g *Group) any { return g.Trial }},
		{"model", func(g *Group) any { return g.Model }},
		{"captures", func(g *Group) any { return g.Captures }},
		{"trace_hashes", func(g *Group) any { return g.TraceHashes }},
		{"count", func(g *Group) any { return g.Count }},
		{"warmup", func(g *Group) any { return g.Warmup }},
		{"completed", func(g *Group) any { return g.Completed }},
		{"failed", func(g *Group) any { return g.Failed }},
		{"cut", func(g *Group) any { return g.Cut }},
		{"failed_by", func(g *Group) any { return g.FailedBy }},
		{"estimated_tokens", func(g *Group) any { return g.EstimatedTokens }},
		{"empty_output", func(g *Group) any { return g.EmptyOutput }},
		{"window_start_ns", func(g *Group) any { return g.WindowStart }},
		{"window_end_ns", func(g *Group) any { return g.WindowEnd }},
		{"duration_s", func(g *Group) any { return g.Duration }},
		{"request_throughput", func(g *Group) any { return g.RequestThroughput }},
		{"output_throughput", func(g *Group) any { return g.OutputThroughput }},
		{"input_tokens", func(g *Group) any { return g.InputTokens }},
		{"output_tokens", func(g *Group) any { return g.OutputTokens }},
		{"goodput", func(g *Group) any { return g.Goodput }},
		{"good_count", func(g *Group) any { return g.GoodCount }},
		{"max_output_tokens_per_s", func(g *Group) any { return g.MaxOutputTokensPerS }},
	}
	cols = append(cols, distCols("norm_latency", "s_per_tok", func(g *Group) metric.Dist { return g.NormLatency })...)
	cols = append(cols, distCols("norm_latency_with_cut", "s_per_tok", func(g *Group) metric.Dist { return g.NormLatencyWithCut })...)
	cols = append(cols, distCols("ttft", "s", func(g *Group) metric.Dist { return g.TTFT })...)
	cols = append(cols, distCols("ttft_sched", "s", func(g *Group) metric.Dist { return g.TTFTSched })...)
	cols = append(cols, distCols("tpot", "s", func(g *Group) metric.Dist { return g.TPOT })...)
	cols = append(cols, distCols("itl", "s", func(g *Group) metric.Dist { return g.ITL })...)
	cols = append(cols, distCols("itl_token", "s", func(g *Group) metric.Dist { return g.ITLToken })...)
	cols = append(cols, distCols("e2e", "s", func(g *Group) metric.Dist { return g.E2E })...)
	cols = append(cols, distCols("lag", "s", func(g *Group) metric.Dist { return g.Lag })...)
	cols = append(cols, distCols("cut_elapsed", "s", func(g *Group) metric.Dist { return g.CutElapsed })...)
	cols = append(cols, []column[*Group]{
		{"inflight_mean", func(g *Group) any { return g.InFlightMean }},
		{"inflight_max", func(g *Group) any { return g.InFlightMax }},
		{"decoding_mean", func(g *Group) any { return g.DecodingMean }},
		{"decoding_max", func(g *Group) any { return g.DecodingMax }},
		{"queued_mean", func(g *Group) any { return g.QueuedMean }},
		{"queued_max", func(g *Group) any { return g.QueuedMax }},
		{"running_mean", func(g *Group) any { return g.Running }},
		{"running_max", func(g *Group) any { return g.RunningMax }},
		{"waiting_mean", func(g *Group) any { return g.Waiting }},
		{"kv_usage_mean", func(g *Group) any { return g.KVUsage }},
		{"preemptions", func(g *Group) any { return g.Preemptions }},
		{"samples", func(g *Group) any { return g.Samples }},
	}...)
	cols = append(cols, serverColumns()...)
	cols = append(cols, []column[*Group]{
		{"recorder_dropped", func(g *Group) any { return g.RecorderDropped }},
		{"recorder_lost", func(g *Group) any { return g.RecorderLost }},
		{"captures_unclean", func(g *Group) any { return g.CapturesUnclean }},
		{"warnings", func(g *Group) any { return g.Warnings }},
	}...)
	return cols
}

// aggregateColumns are the columns of aggregates.csv and of each
// aggregate in summary.json: the mean over trials and the 95% CI
// half-width of each metric.
func aggregateColumns() []column[*Aggregate] {
	cols := []column[*Aggregate]{
		{"key", func(a *Aggregate) any { return a.Key }},
		{"variant", func(a *Aggregate) any { return a.Variant }},
		{"level", func(a *Aggregate) any { return a.Level }},
		{"rate", func(a *Aggregate) any { return a.Rate }},
		{"trials", func(a *Aggregate) any { return a.Trials }},
		{"completed", func(a *Aggregate) any { return a.Completed }},
		{"failed", func(a *Aggregate) any { return a.Failed }},
		{"cut", func(a *Aggregate) any { return a.Cut }},
	}
	add := func(name string, get func(*Aggregate) metric.CI) {
		cols = append(cols,
			column[*Aggregate]{name, func(a *Aggregate) any { return get(a).Mean }},
			column[*Aggregate]{name + "_ci95", func(a *Aggregate) any { return get(a).Half }})
	}
	add("request_throughput", func(a *Aggregate) metric.CI { return a.RequestThroughput })
	add("output_throughput", func(a *Aggregate) metric.CI { return a.OutputThroughput })
	add("goodput", func(a *Aggregate) metric.CI { return a.Goodput })
	add("norm_latency_mean_s_per_tok", func(a *Aggregate) metric.CI { return a.NormLatency })
	add("norm_latency_with_cut_mean_s_per_tok", func(a *Aggregate) metric.CI { return a.NormLatencyWithCut })
	add("ttft_mean_s", func(a *Aggregate) metric.CI { return a.TTFTMean })
	add("ttft_p50_s", func(a *Aggregate) metric.CI { return a.TTFTP50 })
	add("ttft_p99_s", func(a *Aggregate) metric.CI { return a.TTFTP99 })
	add("tpot_mean_s", func(a *Aggregate) metric.CI { return a.TPOTMean })
	add("itl_mean_s", func(a *Aggregate) metric.CI { return a.ITLMean })
	add("e2e_mean_s", func(a *Aggregate) metric.CI { return a.E2EMean })
	add("e2e_p99_s", func(a *Aggregate) metric.CI { return a.E2EP99 })
	add("inflight_mean", func(a *Aggregate) metric.CI { return a.InFlightMean })
	add("decoding_mean", func(a *Aggregate) metric.CI { return a.DecodingMean })
	add("running_mean", func(a *Aggregate) metric.CI { return a.Running })
	add("preemptions", func(a *Aggregate) metric.CI { return a.Preemptions })
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
func (res *Result) WriteSummaryCSV(w io.Writer) error {
	return writeCSV(w, summaryColumns(), res.Groups)
}

// WriteAggregatesCSV writes aggregates.csv: one row per group of trials.
func (res *Result) WriteAggregatesCSV(w io.Writer) error {
	return writeCSV(w, aggregateColumns(), res.Aggregates)
}

// WriteRequestsCSV writes requests.csv: one row per request.
func (res *Result) WriteRequestsCSV(w io.Writer) error {
	rows := make([]*metric.Request, len(res.Requests))
	for i := range res.Requests {
		rows[i] = &res.Requests[i]
	}
	return writeCSV(w, requestColumns(), rows)
}

// WriteSummaryJSON writes summary.json: setup, groups, aggregates,
// saturation and warnings, with the same field names as the CSV columns.
func (res *Result) WriteSummaryJSON(w io.Writer) error {
	gcols, acols := summaryColumns(), aggregateColumns()
	groups := make([]obj, len(res.Groups))
	for i, g := range res.Groups {
		groups[i] = append(rowObj(gcols, g), kv{"server_metrics", serverMetricsJSON(g)})
	}
	aggs := make([]obj, len(res.Aggregates))
	for i, a := range res.Aggregates {
		aggs[i] = rowObj(acols, a)
	}
	sats := make([]obj, len(res.Saturation))
	for i, s := range res.Saturation {
		sats[i] = obj{{"variant", s.Variant}, {"rate", s.Rate}, {"level", s.Level}, {"norm_latency_s_per_tok", s.NormLatency}, {"over_at_lowest_rate", s.Over}, {"never_saturated", s.Never}, {"limit", s.Limit}}
	}
	st := res.Setup
	setup := obj{
		{"captures", st.Captures}, {"variants", st.Variants}, {"models", st.Models},
		{"trace_hashes", st.TraceHashes}, {"tools", st.Tools}, {"hosts", st.Hosts}, {"facts", st.Facts},
		{"records", st.Records}, {"skipped", st.Skipped}, {"samples", st.Samples}, {"by", st.By}, {"window", st.Window},
		{"slo", st.SLO}, {"saturation_threshold_s_per_tok", st.Saturation},
	}
	doc := obj{{"setup", setup}, {"groups", groups}, {"aggregates", aggs}, {"saturation", sats}, {"warnings", res.Warnings}}
	_, err := w.Write(indentJSON(appendJSON(nil, doc)))
	return err
}

// fmtDur formats seconds for people: 1.23s, 45.6ms, 789µs.
func fmtDur(s float64) string {
	if math.IsNaN(s) {
		return "-"
	}
	d := time.Duration(s * 1e9)
	switch {
	case d >= 10*time.Second:
		return fmt.Sprintf("%.1fs", s)
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", s)
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.1fms", s*1e3)
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2fms", s*1e3)
	}
	return fmt.Sprintf("%.0fµs", s*1e6)
}

func fmtNum(v float64, prec int) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', prec, 64)
}

// tableHeader and tableRow give the terminal table (and the report's
// summary table): the figures people look at first.
func tableHeader() []string {
	return []string{"variant", "rate", "trial", "n", "ok", "fail", "cut", "req/s", "tok/s", "norm s/tok", "TTFT p50", "TTFT p99", "TPOT mean", "ITL p99", "E2E p99", "in-flight", "decoding", "batched", "lag p99"}
}

func tableRow(g *Group) []string {
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
func (res *Result) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, strings.Join(tableHeader(), "\t")+"\t")
	for _, g := range res.Groups {
		fmt.Fprintln(tw, strings.Join(tableRow(g), "\t")+"\t")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, s := range res.SaturationLines() {
		fmt.Fprintln(w, s)
	}
	for _, s := range res.AllWarnings() {
		fmt.Fprintln(w, "warning: "+s)
	}
	return nil
}

// AllWarnings returns the analysis warnings followed by each group's,
// prefixed with the group key.
func (res *Result) AllWarnings() []string {
	out := slices.Clone(res.Warnings)
	for _, g := range res.Groups {
		for _, w := range g.Warnings {
			out = append(out, g.Key+": "+w)
		}
	}
	return out
}
