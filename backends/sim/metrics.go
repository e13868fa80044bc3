package sim

import (
	"fmt"
	"io"
	"strconv"
)

// Histogram buckets of the extra metrics.
var (
	stepBuckets  = []float64{0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5}
	batchBuckets = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}
)

// histogram is a cumulative Prometheus-style histogram.
type histogram struct {
	bounds []float64
	counts []uint64 // per bucket, not cumulative; last is +Inf
	sum    float64
	count  uint64
}

func newHistogram(bounds []float64) histogram {
	return histogram{bounds: bounds, counts: make([]uint64, len(bounds)+1)}
}

func (h *histogram) observe(v float64) {
	i := 0
	for i < len(h.bounds) && v > h.bounds[i] {
		i++
	}
	h.counts[i]++
	h.sum += v
	h.count++
}

func (h histogram) clone() histogram {
	h.counts = append([]uint64(nil), h.counts...)
	return h
}

// Count returns the number of observations.
func (h histogram) Count() uint64 { return h.count }

// Sum returns the sum of the observations.
func (h histogram) Sum() float64 { return h.sum }

func fmtFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// WriteMetrics writes the Prometheus text exposition of st: vLLM's gauge
// and counter names (counters with the _total suffix prometheus_client
// adds), labelled model_name and engine="0", plus vbsim extras.
func WriteMetrics(w io.Writer, cfg Config, st Stats) error {
	l := fmt.Sprintf(`model_name=%q,engine="0"`, cfg.Model)
	ew := &errWriter{w: w}
	gauge := func(name, help string, v float64) {
		ew.printf("# HELP %s %s\n# TYPE %s gauge\n%s{%s} %s\n", name, help, name, name, l, fmtFloat(v))
	}
	counter := func(name, help string, v uint64) {
		ew.printf("# HELP %s %s\n# TYPE %s counter\n%s_total{%s} %d\n", name, help, name, name, l, v)
	}
	gauge("vllm:num_requests_running", "Number of requests in model execution batches.", float64(st.Running))
	gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", float64(st.Waiting))
	gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", st.KVUsage)
	ew.printf("# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig\n# TYPE vllm:cache_config_info gauge\n")
	ew.printf("vllm:cache_config_info{block_size=\"%d\",num_gpu_blocks=\"%d\",policy=%q,reservation=%q,kv_tokens=\"%d\",%s} 1\n",
		cfg.BlockSize, cfg.KVTokens/cfg.BlockSize, cfg.Policy, cfg.Reservation, cfg.KVTokens, l)
	counter("vllm:num_preemptions", "Cumulative number of preemptions from the engine.", st.Preemptions)
	counter("vllm:prompt_tokens", "Number of prefill tokens processed (recomputed ones included).", st.PromptTokens)
	counter("vllm:generation_tokens", "Number of generation tokens processed.", st.OutputTokens)
	ew.printf("# HELP vllm:request_success Count of finished requests by finish reason.\n# TYPE vllm:request_success counter\n")
	for _, r := range []string{FinishStop, FinishLength, FinishAbort} {
		ew.printf("vllm:request_success_total{finished_reason=%q,%s} %d\n", r, l, st.Finished[r])
	}
	gauge("vbsim:kv_cache_used_tokens", "KV tokens allocated (paged: blocks x block size; contiguous: reserved).", float64(st.KVUsed))
	gauge("vbsim:kv_cache_stored_tokens", "KV tokens actually holding sequence state.", float64(st.KVStored))
	gauge("vbsim:kv_cache_capacity_tokens", "KV-cache capacity in tokens.", float64(st.KVTotal))
	counter("vbsim:steps", "Engine iterations run.", st.Steps)
	ew.printf("# HELP vbsim:busy_seconds Simulated time spent in steps.\n# TYPE vbsim:busy_seconds counter\nvbsim:busy_seconds_total{%s} %s\n", l, fmtFloat(st.BusySim.Seconds()))
	writeHist(ew, "vbsim:step_seconds", "Simulated duration of an engine step.", l, st.StepSeconds)
	writeHist(ew, "vbsim:batch_size", "Sequences per engine step.", l, st.BatchSize)
	return ew.err
}

func writeHist(ew *errWriter, name, help, labels string, h histogram) {
	ew.printf("# HELP %s %s\n# TYPE %s histogram\n", name, help, name)
	var cum uint64
	for i, b := range h.bounds {
		cum += h.counts[i]
		ew.printf("%s_bucket{le=%q,%s} %d\n", name, fmtFloat(b), labels, cum)
	}
	cum += h.counts[len(h.bounds)]
	ew.printf("%s_bucket{le=\"+Inf\",%s} %d\n%s_sum{%s} %s\n%s_count{%s} %d\n", name, labels, cum, name, labels, fmtFloat(h.sum), name, labels, h.count)
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}
