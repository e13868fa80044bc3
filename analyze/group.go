package analyze

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/vbench/vbench/capture"
	"github.com/vbench/vbench/metric"
)

// Group is the summary of one group of requests (by default one variant ×
// rate level × trial). Its JSON and CSV column names are stable and
// documented in docs/vbanalyze.md. Durations are in seconds,
// normalized latency in s/token.
type Group struct {
	// Key is the group key: the values of Config.By joined with "/".
	Key string `json:"key"`
	// Labels holds the value of every Config.By field.
	Labels  map[string]string `json:"labels"`
	Variant string            `json:"variant"`
	Level   string            `json:"level"`
	Rate    float64           `json:"rate"`
	Trial   string            `json:"trial"`
	Model   string            `json:"model,omitempty"`
	// Captures lists the inputs that contributed.
	Captures []string `json:"captures"`
	// TraceHashes lists the distinct trace hashes of its requests.
	TraceHashes []string `json:"trace_hashes,omitempty"`

	// Count is the number of measured requests (warm-up excluded unless
	// Config.Window is "all"); Warmup counts the excluded ones.
	Count     int `json:"count"`
	Warmup    int `json:"warmup"`
	Completed int `json:"completed"`
	Failed    int `json:"failed"`
	// Cut counts the requests the replayer cut at the level's drain
	// deadline: censored, not failed (Count = Completed + Cut + Failed).
	Cut int `json:"cut"`
	// FailedBy counts failed requests by error kind.
	FailedBy map[string]int `json:"failed_by,omitempty"`
	// EstimatedTokens counts completed requests whose output length is an
	// estimate (content chunks) or unknown.
	EstimatedTokens int `json:"estimated_tokens"`
	// EmptyOutput counts completed requests with no output token.
	EmptyOutput int `json:"empty_output"`

	// WindowStart and WindowEnd bound the measurement window (Unix ns):
	// from the first measured request's start to the last measured
	// request's end, cut at the replayer's deadline (the drain after it is
	// excluded). Duration is the window in seconds.
	WindowStart int64   `json:"window_start"`
	WindowEnd   int64   `json:"window_end"`
	Duration    float64 `json:"duration"`

	// RequestThroughput is completed requests ending in the window per
	// second; OutputThroughput their output tokens per second;
	// InputTokens and OutputTokens are their totals.
	RequestThroughput float64 `json:"request_throughput"`
	OutputThroughput  float64 `json:"output_throughput"`
	InputTokens       int64   `json:"input_tokens"`
	OutputTokens      int64   `json:"output_tokens"`
	// Goodput is completed requests meeting every SLO per second (NaN
	// without SLOs); GoodCount is their number.
	Goodput   float64 `json:"goodput"`
	GoodCount int     `json:"good_count"`

	// NormLatency is E2E/output tokens over completed requests: its Mean
	// is the vLLM paper's normalized latency. NormLatencyWithCut adds the
	// cut requests at their lower bound (metric.Request.NormLatencyBound):
	// saturation is decided on it. CutElapsed is the partial latency of
	// the cut requests.
	NormLatency        metric.Dist `json:"norm_latency"`
	NormLatencyWithCut metric.Dist `json:"norm_latency_with_cut"`
	CutElapsed         metric.Dist `json:"cut_elapsed"`
	TTFT               metric.Dist `json:"ttft"`
	TTFTSched          metric.Dist `json:"ttft_sched"`
	TPOT               metric.Dist `json:"tpot"`
	// ITL pools the gaps between consecutive content chunks of every
	// completed request; ITLToken is the same per token (a gap over a
	// chunk of k tokens counts k times as gap/k).
	ITL      metric.Dist `json:"itl"`
	ITLToken metric.Dist `json:"itl_token"`
	E2E      metric.Dist `json:"e2e"`
	// Lag is the replayer's send lateness (Sent − Scheduled).
	Lag metric.Dist `json:"lag"`

	// InFlightMean and InFlightMax are the requests open at the proxy
	// over the window (time-weighted mean, maximum), all traffic counted.
	InFlightMean float64 `json:"inflight_mean"`
	InFlightMax  int     `json:"inflight_max"`
	// DecodingMean/DecodingMax count the exchanges between their first
	// content chunk and their end, QueuedMean/QueuedMax those in flight
	// without one yet (time-weighted over the window, all traffic): the
	// client-side estimate of the server's batch and of its queue plus
	// prefill, for servers without metrics. Where the server reports
	// running requests the two agree to about one request (see docs/vbanalyze.md).
	DecodingMean float64 `json:"decoding_mean"`
	DecodingMax  int     `json:"decoding_max"`
	QueuedMean   float64 `json:"queued_mean"`
	QueuedMax    int     `json:"queued_max"`
	// Running, Waiting and KVUsage are time-weighted means over the window
	// of the server's gauges (vllm:num_requests_running — the paper's
	// batched requests —, num_requests_waiting, kv_cache_usage_perc); NaN
	// when the server exposed none. RunningMax is the largest sample.
	Running    float64 `json:"running_mean"`
	RunningMax float64 `json:"running_max"`
	Waiting    float64 `json:"waiting_mean"`
	KVUsage    float64 `json:"kv_usage_mean"`
	// MaxOutputTokensPerS is the most output tokens of completed
	// requests that arrived in one wall-clock second (vLLM's
	// max_output_tokens_per_s: the peak 1-s bucket).
	MaxOutputTokensPerS float64 `json:"max_output_tokens_per_s"`
	// Preemptions is the increase of vllm:num_preemptions over the window.
	Preemptions float64 `json:"preemptions"`
	// Samples is the number of server-metric samples in the window.
	Samples int `json:"samples"`

	// Server internals, from the server's own metrics when the proxy stored
	// them (see serverFigures; NaN when absent). StepsPerS is engine steps
	// per second; StepTime the mean step time in seconds; BatchPerStep the
	// mean requests per step; TokensPerStep the mean tokens per step
	// (vLLM's iteration_tokens_total); KVCapacity the KV capacity, and
	// KVReserved, KVFilled and KVLargestHole the time-weighted means of the
	// reserved, filled and largest free KV tokens; KVReservedUtil the
	// time-weighted mean of filled/reserved; PrefixCacheHitRate vLLM's
	// prefix-cache hits per query.
	StepsPerS          float64 `json:"steps_per_s"`
	StepTime           float64 `json:"step_time_mean_s"`
	BatchPerStep       float64 `json:"batch_per_step_mean"`
	TokensPerStep      float64 `json:"tokens_per_step_mean"`
	KVCapacity         float64 `json:"kv_capacity_tokens"`
	KVReserved         float64 `json:"kv_reserved_mean_tokens"`
	KVFilled           float64 `json:"kv_filled_mean_tokens"`
	KVReservedUtil     float64 `json:"kv_reserved_util_mean"`
	KVLargestHole      float64 `json:"kv_largest_hole_mean_tokens"`
	PrefixCacheHitRate float64 `json:"prefix_cache_hit_rate"`
	// ServerMetrics summarises every further server metric stored
	// (anything but the four above), sorted by name.
	ServerMetrics []ServerMetric `json:"server_metrics,omitempty"`

	// Warnings are plain sentences about this group.
	Warnings []string `json:"warnings,omitempty"`
	// RecorderDropped and RecorderLost sum what the writers of the group's
	// captures dropped (queue full) and lost (failed commits, full disk),
	// from the counts a clean close stores in the capture; NaN unless every
	// capture says (older captures do not) and every writer closed
	// cleanly. CapturesUnclean
	// counts writers that never closed their capture cleanly.
	RecorderDropped float64 `json:"recorder_dropped"`
	RecorderLost    float64 `json:"recorder_lost"`
	CapturesUnclean int     `json:"captures_unclean"`
}

// groupAcc accumulates one group while records stream by.
type groupAcc struct {
	g *Group
	// mixed lists the model labels of its requests other than g.Model.
	mixed    []string
	reqs     []int // indexes into the request list
	itl      []float64
	itlToken []float64
	captures map[string]bool
	hashes   map[string]bool
	// perSecond counts output tokens by wall-clock second.
	perSecond map[int64]int64
	// split: itlToken is kept apart from itl (some chunk had ≠ 1 token).
	split bool
}

// keyOf returns the value of a grouping field for a request.
func keyOf(r *metric.Request, rec *capture.Record, field string) string {
	switch field {
	case "variant":
		return r.Variant
	case "rate", "level":
		return r.Level
	case "trial":
		return r.Trial
	case "run":
		return rec.Tags.Run
	case "capture":
		return r.Capture
	case "model":
		return r.Model
	}
	return labelOf(rec, field)
}

// sortGroups orders groups by variant, level (compareLevels: rates rising,
// then closed-loop concurrencies), trial, then key, so outputs are stable
// and levels read in order.
func sortGroups(gs []*Group) {
	slices.SortStableFunc(gs, func(a, b *Group) int {
		return cmp.Or(
			cmp.Compare(a.Variant, b.Variant),
			CompareLevels(a.Level, a.Rate, b.Level, b.Rate),
			compareNatural(a.Trial, b.Trial),
			cmp.Compare(a.Key, b.Key),
		)
	})
}

// compareNatural compares numerically when both strings are numbers.
func compareNatural(a, b string) int {
	x, ex := strconv.ParseFloat(a, 64)
	y, ey := strconv.ParseFloat(b, 64)
	if ex == nil && ey == nil {
		return cmp.Compare(x, y)
	}
	return cmp.Compare(a, b)
}

// finish computes the group's statistics from its requests (through the
// metric package, as every other consumer).
func (a *groupAcc) finish(reqs []metric.Request, cfg *Config, series *sampleSeries, spans []span) {
	g := a.g
	g.Captures = sortedSet(a.captures)
	g.TraceHashes = sortedSet(a.hashes)
	rs := make([]metric.Request, len(a.reqs))
	for i, j := range a.reqs {
		rs[i] = reqs[j]
	}
	g.WindowStart, g.WindowEnd = metric.Window(rs, cfg.Window == WindowSteady)
	g.Duration = secs(g.WindowEnd - g.WindowStart)
	s := metric.Summarize(rs)
	g.Completed, g.Cut, g.Failed, g.FailedBy = s.Completed, s.Cut, s.Failed, s.FailedBy
	g.EstimatedTokens, g.EmptyOutput = s.EstimatedTokens, s.EmptyOutput
	var good func(*metric.Request) bool
	if !cfg.SLO.Empty() {
		good = cfg.SLO.Meets
	}
	tp := metric.ThroughputIn(rs, g.WindowStart, g.WindowEnd, good)
	g.OutputTokens, g.InputTokens, g.GoodCount = tp.OutputTokens, tp.InputTokens, tp.Good
	g.RequestThroughput, g.OutputThroughput, g.Goodput = tp.Requests, tp.Output, tp.Goodput
	g.TTFT, g.TTFTSched, g.TPOT, g.E2E, g.Lag = s.TTFT, s.TTFTScheduled, s.TPOT, s.E2E, s.Lag
	g.NormLatency, g.NormLatencyWithCut, g.CutElapsed = s.NormLatency, s.NormLatencyWithCut, s.CutElapsed
	g.ITL = metric.DistOf(a.itl)
	for _, n := range a.perSecond {
		g.MaxOutputTokensPerS = max(g.MaxOutputTokensPerS, float64(n))
	}
	a.perSecond = nil
	g.ITLToken = g.ITL
	if a.split {
		g.ITLToken = metric.DistOf(a.itlToken)
	}
	a.itl, a.itlToken = nil, nil

	g.InFlightMean, g.InFlightMax = inFlight(spans, g.WindowStart, g.WindowEnd)
	g.DecodingMean, g.DecodingMax = inFlight(decodingSpans(spans), g.WindowStart, g.WindowEnd)
	g.QueuedMean, g.QueuedMax = inFlight(queuedSpans(spans), g.WindowStart, g.WindowEnd)
	g.Running, g.RunningMax, g.Waiting, g.KVUsage, g.Preemptions, g.Samples = math.NaN(), math.NaN(), math.NaN(), math.NaN(), math.NaN(), 0
	if series != nil && g.Duration > 0 {
		g.Running, g.RunningMax, g.Samples = series.gauge(capture.MetricRunning, g.WindowStart, g.WindowEnd)
		g.Waiting, _, _ = series.gauge(capture.MetricWaiting, g.WindowStart, g.WindowEnd)
		g.KVUsage, _, _ = series.gauge(capture.MetricKVUsage, g.WindowStart, g.WindowEnd)
		g.Preemptions = series.delta(capture.MetricPreemptions, g.WindowStart, g.WindowEnd)
	}
	g.serverFigures(series)
	g.Warnings = groupWarnings(g, cfg)
}

func groupWarnings(g *Group, cfg *Config) []string {
	var w []string
	if g.Count == 0 {
		w = append(w, "no measured request (only warm-up traffic?)")
	} else if g.Completed == 0 {
		w = append(w, fmt.Sprintf("no request completed: %d failed (%s), %d cut", g.Failed, kindsText(g.FailedBy), g.Cut))
	} else if g.Failed > 0 {
		w = append(w, fmt.Sprintf("%d of %d requests failed (%s)", g.Failed, g.Count, kindsText(g.FailedBy)))
	}
	if g.Cut > 0 {
		w = append(w, fmt.Sprintf("%d of %d requests were still running at the drain deadline and were cut (censored, partial latency p50 %s): normalized latency %s s/token with them at their lower bound, %s over completed requests only",
			g.Cut, g.Count, fmtDur(g.CutElapsed.P50), fmtNum(g.NormLatencyWithCut.Mean, 4), fmtNum(g.NormLatency.Mean, 4)))
	}
	if g.Lag.N > 0 && g.Lag.P99 > cfg.LagWarn.Seconds() {
		w = append(w, fmt.Sprintf("schedule lag p99 %s exceeds %s: the replayer was the bottleneck, latencies from send understate the load", fmtDur(g.Lag.P99), cfg.LagWarn))
	}
	if g.EstimatedTokens > 0 {
		w = append(w, fmt.Sprintf("%d completed requests have no server token count; their output length is the content-chunk count (an estimate)", g.EstimatedTokens))
	}
	if g.EmptyOutput > 0 {
		w = append(w, fmt.Sprintf("%d completed requests produced no output token", g.EmptyOutput))
	}
	if len(g.TraceHashes) > 1 {
		w = append(w, fmt.Sprintf("requests from %d different traces: %s", len(g.TraceHashes), strings.Join(g.TraceHashes, ", ")))
	}
	return w
}

func kindsText(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

func sortedSet(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		if k != "" {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}
