package analyze

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/vbench/vbench/capture"
)

// TestServerFigures checks the derived server figures against the hand
// computation:
//
//	steps: 150−100 + 10 (after the reset) = 60 in 1 s → 60 steps/s
//	step time: (0.5 + 0.1) s / 60 = 10 ms; batch: (100 + 20) / 60 = 2
//	reserved: 0×0.5 + 1000×0.4 + 400×0.1 = 440; filled: 250×0.4 + 200×0.1 = 120
//	filled/reserved: idle first half left out: (0.25×0.4 + 0.5×0.1) / 0.5 = 0.3
//	largest hole: 4096×0.5 + 1000×0.5 = 2548; capacity 4096
//	prefix cache: 10 hits / 40 queries = 0.25
func TestServerFigures(t *testing.T) {
	dir := t.TempDir()
	recs, samples := serverFixture()
	p := filepath.Join(dir, "fx.jsonl")
	writeDump(t, p, recs, samples, nil)
	res, err := Analyze(context.Background(), Config{Captures: []string{p}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Groups) != 1 {
		t.Fatalf("%d groups", len(res.Groups))
	}
	g := res.Groups[0]
	if g.Duration != 1 {
		t.Fatalf("window %v s; the fixture assumes 1 s", g.Duration)
	}
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"steps_per_s", g.StepsPerS, 60},
		{"step_time_mean_s", g.StepTime, 0.01},
		{"batch_per_step_mean", g.BatchPerStep, 2},
		{"tokens_per_step_mean", g.TokensPerStep, math.NaN()},
		{"kv_capacity_tokens", g.KVCapacity, 4096},
		{"kv_reserved_mean_tokens", g.KVReserved, 440},
		{"kv_filled_mean_tokens", g.KVFilled, 120},
		{"kv_reserved_util_mean", g.KVReservedUtil, 0.3},
		{"kv_largest_hole_mean_tokens", g.KVLargestHole, 2548},
		{"prefix_cache_hit_rate", g.PrefixCacheHitRate, 0.25},
	} {
		if !(math.Abs(c.got-c.want) < 1e-9 || math.IsNaN(c.got) && math.IsNaN(c.want)) {
			t.Errorf("%s = %v; want %v", c.name, c.got, c.want)
		}
	}
	byName := map[string]ServerMetric{}
	for _, m := range g.ServerMetrics {
		byName[m.Name] = m
	}
	if len(g.ServerMetrics) != 10 {
		t.Errorf("%d server metrics; want the 10 non-core series: %+v", len(g.ServerMetrics), g.ServerMetrics)
	}
	if m := byName["vbtorch:max_batch_size"]; m.Kind != KindGauge || m.Mean != 7 || m.Max != 7 || m.Samples != 1 || !math.IsNaN(m.Delta) {
		t.Errorf("gauge vbtorch:max_batch_size = %+v; want mean 7, max 7, 1 sample, no delta", m)
	}
	if m := byName["vbtorch:steps_total"]; m.Kind != KindCounter || m.Delta != 60 || m.Rate != 60 || m.Samples != 2 || !math.IsNaN(m.Mean) {
		t.Errorf("counter vbtorch:steps_total = %+v; want delta 60 (reset counted), rate 60/s, 2 samples in the window", m)
	}
	if m := byName["vbtorch:kv_largest_hole_tokens"]; m.Max != 4096 || m.Mean != 2548 {
		t.Errorf("vbtorch:kv_largest_hole_tokens = %+v", m)
	}
}

// TestServerFiguresAbsent: without extra samples every figure is NaN (an
// empty cell) and the report has no server-internals table.
func TestServerFiguresAbsent(t *testing.T) {
	dir := t.TempDir()
	recs, samples, metas := smallFixture()
	p := filepath.Join(dir, "fx.jsonl")
	writeDump(t, p, recs, samples, metas)
	res, err := Analyze(context.Background(), Config{Captures: []string{p}})
	if err != nil {
		t.Fatal(err)
	}
	g := res.Groups[0]
	for _, v := range []float64{g.StepsPerS, g.StepTime, g.BatchPerStep, g.TokensPerStep, g.KVCapacity, g.KVReserved, g.KVFilled, g.KVReservedUtil, g.KVLargestHole, g.PrefixCacheHitRate} {
		if !math.IsNaN(v) {
			t.Errorf("figure %v without server extras; want NaN (group %+v)", v, g)
		}
	}
	if g.ServerMetrics != nil {
		t.Errorf("server metrics %v without extras", g.ServerMetrics)
	}
}

// TestVBSimFigures: the simulator's names (histogram totals, used/stored
// KV) give the same figures.
func TestVBSimFigures(t *testing.T) {
	series := newSampleSeries([]capture.Sample{
		{At: 0, Name: "vbsim:steps_total", Value: 10}, {At: 10, Name: "vbsim:steps_total", Value: 30},
		{At: 0, Name: "vbsim:step_seconds_count", Value: 10}, {At: 10, Name: "vbsim:step_seconds_count", Value: 30},
		{At: 0, Name: "vbsim:step_seconds_sum", Value: 1}, {At: 10, Name: "vbsim:step_seconds_sum", Value: 1.5},
		{At: 0, Name: "vbsim:batch_size_count", Value: 10}, {At: 10, Name: "vbsim:batch_size_count", Value: 30},
		{At: 0, Name: "vbsim:batch_size_sum", Value: 40}, {At: 10, Name: "vbsim:batch_size_sum", Value: 120},
		{At: 0, Name: "vbsim:kv_cache_used_tokens", Value: 100}, {At: 0, Name: "vbsim:kv_cache_stored_tokens", Value: 90},
		{At: 0, Name: "vbsim:kv_cache_capacity_tokens", Value: 1000},
		{At: 0, Name: "vllm:iteration_tokens_total_sum", Value: 0}, {At: 10, Name: "vllm:iteration_tokens_total_sum", Value: 500},
		{At: 0, Name: "vllm:iteration_tokens_total_count", Value: 0}, {At: 10, Name: "vllm:iteration_tokens_total_count", Value: 20},
	})
	g := &Group{WindowStart: 0, WindowEnd: 20, Duration: 2e-8}
	g.serverFigures(series)
	if g.StepsPerS != 20/2e-8 || g.StepTime != 0.5/20 || g.BatchPerStep != 4 || g.TokensPerStep != 25 ||
		g.KVReserved != 100 || g.KVFilled != 90 || g.KVReservedUtil != 0.9 || g.KVCapacity != 1000 || !math.IsNaN(g.KVLargestHole) {
		t.Errorf("vbsim figures: %+v", g)
	}
}

// TestVLLMKVFigures: vLLM's capacity comes from cache_config_info's
// kv_cache_size_tokens label, and the reserved tokens are the time-weighted
// KV usage times that capacity: usage 0.25 for 4 ns and 0.5 for 6 ns of a
// 10-ns window → 0.4 × 32768 = 13107.2.
func TestVLLMKVFigures(t *testing.T) {
	series := newSampleSeries([]capture.Sample{
		{At: 0, Name: vllmKVCapacity, Value: 32768}, {At: 0, Name: "vllm:cache_config_info:num_gpu_blocks", Value: 2048},
		{At: 0, Name: capture.MetricKVUsage, Value: 0.25}, {At: 4, Name: capture.MetricKVUsage, Value: 0.5},
	})
	g := &Group{WindowStart: 0, WindowEnd: 10, Duration: 1e-8}
	g.serverFigures(series)
	if g.KVCapacity != 32768 || math.Abs(g.KVReserved-13107.2) > 1e-6 || !math.IsNaN(g.KVFilled) {
		t.Errorf("vLLM KV figures: capacity %v reserved %v filled %v; want 32768, 13107.2, NaN", g.KVCapacity, g.KVReserved, g.KVFilled)
	}
}
