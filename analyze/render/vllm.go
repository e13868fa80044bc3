package render

import (
	"io"
	"math"
	"regexp"
	"time"

	"github.com/vbench/vbench/metric"

	"github.com/vbench/vbench/analyze"
)

// vllmFileName returns the file name of a group's vLLM-format result.
func vllmFileName(key string) string {
	re := regexp.MustCompile(`[^A-Za-z0-9._-]+`)
	name := re.ReplaceAllString(key, "_")
	if name == "" {
		name = "all"
	}
	return name + ".json"
}

// msStats returns mean, median, std, p90, p95, p99 in ms under vLLM's key
// names for metric m (ttft, tpot, itl, e2el). vLLM writes 0 for an empty
// list (np.mean of [] or 0); so do we.
func msStats(o object, m string, d metric.Dist) object {
	z := func(v float64) float64 {
		if math.IsNaN(v) {
			return 0
		}
		return v * 1000
	}
	return append(o,
		field{"mean_" + m + "_ms", z(d.Mean)},
		field{"median_" + m + "_ms", z(d.P50)},
		field{"std_" + m + "_ms", z(d.Std)},
		field{"p90_" + m + "_ms", z(d.P90)},
		field{"p95_" + m + "_ms", z(d.P95)},
		field{"p99_" + m + "_ms", z(d.P99)},
	)
}

// writeVLLM writes one group in the result format of `vllm bench serve`
// (vllm/benchmarks/serve.py: the header of main_async and the result of
// benchmark(), generation tasks): same keys, same units (seconds for
// duration and the latencies list, ms for the statistics), as if run with
// --percentile-metrics ttft,tpot,itl,e2el --metric-percentiles 90,95,99.
// Keys we cannot know are null (tokenizer_id, burstiness,
// max_concurrency); max_output_tokens_per_s is the peak wall-clock second
// of output tokens. queue_times holds the replayer's schedule lag.
func writeVLLM(res *analyze.Result, w io.Writer, g *analyze.Group) error {
	var lat, queue []float64
	for i := range res.Requests {
		r := &res.Requests[i]
		if r.Key != g.Key || (r.Warmup && res.Setup.Window != analyze.WindowAll) {
			continue
		}
		if r.Completed() {
			lat = append(lat, r.E2E())
		} else {
			lat = append(lat, 0)
		}
		q := r.Lag()
		if math.IsNaN(q) {
			q = 0
		}
		queue = append(queue, q)
	}
	date := ""
	if g.WindowStart > 0 {
		date = time.Unix(0, g.WindowStart).UTC().Format("20060102-150405")
	}
	var rate any = g.Rate
	if g.Rate <= 0 {
		rate = "inf"
	}
	var goodput any
	if !math.IsNaN(g.Goodput) {
		goodput = g.Goodput
	}
	zero := func(v float64) float64 {
		if math.IsNaN(v) {
			return 0
		}
		return v
	}
	o := object{
		{"date", date},
		{"endpoint_type", "vbench"},
		{"backend", "vbench"},
		{"label", g.Variant},
		{"model_id", g.Model},
		{"tokenizer_id", nil},
		{"num_prompts", g.Count},
		{"request_rate", rate},
		{"burstiness", nil},
		{"max_concurrency", nil},
		{"duration", g.Duration},
		{"completed", g.Completed},
		{"failed", g.Failed + g.Cut},
		{"total_input_tokens", g.InputTokens},
		{"total_output_tokens", g.OutputTokens},
		{"request_throughput", zero(g.RequestThroughput)},
		{"request_goodput", goodput},
		{"output_throughput", zero(g.OutputThroughput)},
		{"total_token_throughput", zero(float64(g.InputTokens+g.OutputTokens) / g.Duration)},
		{"latencies", lat},
		{"queue_times", queue},
		{"max_output_tokens_per_s", g.MaxOutputTokensPerS},
		{"max_concurrent_requests", g.InFlightMax},
		{"rtfx", 0.0},
	}
	o = msStats(o, "ttft", g.TTFT)
	o = msStats(o, "tpot", g.TPOT)
	o = msStats(o, "itl", g.ITL)
	o = msStats(o, "e2el", g.E2E)
	return writeJSON(w, o)
}
