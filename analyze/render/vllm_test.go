package render

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/vbench/vbench/analyze"
	"github.com/vbench/vbench/capture"
)

// vllmOutput is RequestFuncOutput of vllm/benchmarks/lib/endpoint_request_func.py
// as the test derives it from a raw record, the way vLLM's client would
// see it: ttft at the first chunk with content, itl the gaps between
// content chunks, latency at the stream's last chunk, output_tokens from
// usage.
type vllmOutput struct {
	success      bool
	ttft         float64
	latency      float64
	itl          []float64
	outputTokens int
	promptLen    int
	start, end   int64
}

func vllmView(r *capture.Record) vllmOutput {
	o := vllmOutput{success: r.Outcome == capture.OutcomeOK && r.Status == 200, outputTokens: int(r.CompletionTokens), promptLen: int(r.PromptTokens), start: r.Received}
	last := int64(-1)
	for _, c := range r.Chunks {
		if c.Content > 0 {
			if last < 0 {
				o.ttft = float64(c.At) / 1e9
			} else {
				o.itl = append(o.itl, float64(c.At-last)/1e9)
			}
			last = c.At
		}
	}
	o.end = r.Received + r.Chunks[len(r.Chunks)-1].At
	o.latency = float64(o.end-r.Received) / 1e9
	return o
}

// npPercentile is numpy.percentile(a, q) with the default "linear" method
// as numpy documents it: virtual index (n−1)·q/100 between the two
// nearest ranks; np.percentile of an empty list (vLLM passes `x or 0`) is 0.
func npPercentile(a []float64, q float64) float64 {
	if len(a) == 0 {
		return 0
	}
	s := slices.Clone(a)
	slices.Sort(s)
	v := float64(len(s)-1) * q / 100
	i := int(v)
	if i+1 >= len(s) {
		return s[len(s)-1]
	}
	return s[i] + (v-float64(i))*(s[i+1]-s[i])
}

func npMean(a []float64) float64 {
	if len(a) == 0 {
		return 0
	}
	var s float64
	for _, x := range a {
		s += x
	}
	return s / float64(len(a))
}

func npStd(a []float64) float64 {
	if len(a) == 0 {
		return 0
	}
	m := npMean(a)
	var s float64
	for _, x := range a {
		s += (x - m) * (x - m)
	}
	return math.Sqrt(s / float64(len(a)))
}

// TestVLLMCrossCheck feeds per-request values through calculate_metrics of
// vllm/benchmarks/serve.py, written out here, and checks our vLLM-format
// result carries the same figures.
func TestVLLMCrossCheck(t *testing.T) {
	recs, samples := synthCapture(engine{Name: "v", Capacity: 10, Decode: 20 * time.Millisecond}, 8, 1, 200, 7)
	// two failures, which vLLM leaves out of every statistic
	recs[10].Status = 500
	recs[20].Outcome = capture.OutcomeUpstreamError
	for _, r := range recs {
		r.Tags.Deadline = 0
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "x.jsonl")
	writeDump(t, path, recs, samples, nil)
	out := filepath.Join(dir, "out")
	if err := Run(context.Background(), analyze.Config{Captures: []string{path}, Out: out, VLLMJSON: true}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(out, "vllm", "v_8_1.json"))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}

	// calculate_metrics (generation tasks)
	var ttfts, tpots, itls, e2els []float64
	var completed, totalIn, totalOut int
	first, last := int64(math.MaxInt64), int64(0)
	for _, r := range recs {
		o := vllmView(r)
		first, last = min(first, o.start), max(last, o.end)
		if !o.success {
			continue
		}
		outputLen := o.outputTokens
		totalIn += o.promptLen
		totalOut += outputLen
		if outputLen > 1 {
			tpots = append(tpots, (o.latency-o.ttft)/float64(outputLen-1))
		}
		itls = append(itls, o.itl...)
		ttfts = append(ttfts, o.ttft)
		e2els = append(e2els, o.latency)
		completed++
	}
	dur := float64(last-first) / 1e9
	want := map[string]float64{
		"completed":           float64(completed),
		"failed":              2,
		"total_input_tokens":  float64(totalIn),
		"total_output_tokens": float64(totalOut),
		"duration":            dur,
		"request_throughput":  float64(completed) / dur,
		"output_throughput":   float64(totalOut) / dur,
	}
	for name, xs := range map[string][]float64{"ttft": ttfts, "tpot": tpots, "itl": itls, "e2el": e2els} {
		want["mean_"+name+"_ms"] = npMean(xs) * 1000
		want["std_"+name+"_ms"] = npStd(xs) * 1000
		want["median_"+name+"_ms"] = npPercentile(xs, 50) * 1000
		for _, p := range []float64{90, 95, 99} {
			want["p"+formatP(p)+"_"+name+"_ms"] = npPercentile(xs, p) * 1000
		}
	}
	for k, w := range want {
		g, ok := got[k].(float64)
		if !ok {
			t.Errorf("%s: missing or not a number: %v", k, got[k])
			continue
		}
		if math.Abs(g-w) > 1e-9*math.Max(1, math.Abs(w)) {
			t.Errorf("%s = %v; vLLM's formula gives %v", k, g, w)
		}
	}
	if n := len(got["latencies"].([]any)); n != len(recs) {
		t.Errorf("latencies has %d entries; want %d", n, len(recs))
	}
}

func formatP(p float64) string { return fmtNum(p, -1) }
