package analyze

import (
	"cmp"
	"math"
	"slices"
	"strings"

	"github.com/vbench/vbench/capture"
)

// Kinds of ServerMetric.
const (
	KindGauge   = "gauge"
	KindCounter = "counter"
)

// ServerMetric summarises, over a group's window, one server metric the
// proxy stored besides the four vLLM ones (vbproxy --scrape-metric, a
// variant's scrape_metrics). Samples hold each scrape's value summed over
// label sets under the Prometheus series name.
type ServerMetric struct {
	// Name is the Prometheus series name, e.g. vbtorch:steps_total.
	Name string `json:"name"`
	// Kind is KindCounter for a name ending in _total, _sum or _count (a
	// counter, or a histogram's totals), else KindGauge.
	Kind string `json:"kind"`
	// Samples counts the samples inside the window.
	Samples int `json:"samples"`
	// Mean and Max are a gauge's time-weighted mean and largest value over
	// the window (as for running_mean); NaN for counters.
	Mean float64 `json:"mean"`
	Max  float64 `json:"max"`
	// Delta is a counter's increase over the window (a reset, i.e. a
	// restarted server, counts the value after it as new) and Rate is
	// Delta per second of window; NaN for gauges.
	Delta float64 `json:"delta"`
	Rate  float64 `json:"rate_per_s"`
}

// metricKind classifies a series by the Prometheus naming conventions:
// counters end in _total, histogram and summary totals in _sum and _count;
// everything else is read as a gauge.
func metricKind(name string) string {
	for _, s := range []string{"_total", "_sum", "_count"} {
		if strings.HasSuffix(name, s) {
			return KindCounter
		}
	}
	return KindGauge
}

// coreMetric reports whether name is one of the four metrics with their
// own columns.
func coreMetric(name string) bool {
	switch name {
	case capture.MetricRunning, capture.MetricWaiting, capture.MetricKVUsage, capture.MetricPreemptions:
		return true
	}
	return false
}

// serverSources lists, for each derived figure, the series it is computed
// from on each server that exports it: vbtorch (the PyTorch baseline),
// vbsim (the simulator; its step times are simulated seconds) and vLLM.
// The first server whose series are present wins.
var (
	// steps: engine iterations (a counter).
	stepsSources = []string{"vbtorch:steps_total", "vbsim:steps_total", "vllm:iteration_tokens_total_count"}
	// step time: seconds spent in steps / steps.
	stepTimeSources = [][2]string{{"vbtorch:step_seconds_total", "vbtorch:steps_total"}, {"vbsim:step_seconds_sum", "vbsim:step_seconds_count"}}
	// batch per step: sum over steps of the requests in the step / steps.
	batchSources = [][2]string{{"vbtorch:batch_size_total", "vbtorch:steps_total"}, {"vbsim:batch_size_sum", "vbsim:batch_size_count"}}
	// tokens per step (vLLM: prefill and decode tokens of an iteration).
	tokensPerStepSources = [][2]string{{"vllm:iteration_tokens_total_sum", "vllm:iteration_tokens_total_count"}}
	// prefix-cache hits / queries.
	prefixSources = [][2]string{{"vllm:prefix_cache_hits_total", "vllm:prefix_cache_queries_total"}}
	// KV gauges in tokens: capacity, reserved (allocated to running
	// requests), filled (holding context), largest free hole.
	kvCapacitySources = []string{"vbtorch:kv_capacity_tokens", "vbsim:kv_cache_capacity_tokens", vllmKVCapacity}
	kvReservedSources = []string{"vbtorch:kv_reserved_tokens", "vbsim:kv_cache_used_tokens"}
	kvFilledSources   = []string{"vbtorch:kv_filled_tokens", "vbsim:kv_cache_stored_tokens"}
	kvHoleSources     = []string{"vbtorch:kv_largest_hole_tokens"}
)

// vllmKVCapacity is the KV capacity vLLM allocated at start-up, in tokens
// (num_gpu_blocks × block_size), which the proxy reads from the labels of
// vllm:cache_config_info (proxy.CacheConfigInfo).
const vllmKVCapacity = "vllm:cache_config_info:kv_cache_size_tokens"

// serverFigures fills the group's server-internals columns and its
// ServerMetrics from the samples of its window. Every figure is NaN when
// the series it needs are absent.
//
// Counter figures are ratios of increases over the window (Δ/Δ, resets
// counted as in delta), so each is the mean over the steps the window saw:
// mean step time = Δstep_seconds / Δsteps, mean batch per step =
// Δbatch_size / Δsteps. The reserved-KV utilisation is the time-weighted
// mean of filled/reserved over the scrapes where some KV was reserved (an
// idle server is left out rather than counted as 0 or 1).
func (g *Group) serverFigures(series *sampleSeries) {
	nan := math.NaN()
	g.StepsPerS, g.StepTime, g.BatchPerStep, g.TokensPerStep, g.PrefixCacheHitRate = nan, nan, nan, nan, nan
	g.KVCapacity, g.KVReserved, g.KVFilled, g.KVReservedUtil, g.KVLargestHole = nan, nan, nan, nan, nan
	g.ServerMetrics = nil
	if series == nil || g.Duration <= 0 {
		return
	}
	from, to := g.WindowStart, g.WindowEnd
	names := make([]string, 0, len(series.byName))
	for name := range series.byName {
		if !coreMetric(name) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		m := ServerMetric{Name: name, Kind: metricKind(name), Mean: nan, Max: nan, Delta: nan, Rate: nan}
		if m.Kind == KindGauge {
			m.Mean, m.Max, m.Samples = series.gauge(name, from, to)
		} else {
			m.Samples = series.count(name, from, to)
			m.Delta = series.delta(name, from, to)
			m.Rate = m.Delta / g.Duration
		}
		g.ServerMetrics = append(g.ServerMetrics, m)
	}
	if len(names) == 0 {
		return
	}
	ratio := func(sources [][2]string) float64 {
		for _, s := range sources {
			if series.has(s[0]) && series.has(s[1]) {
				if den := series.delta(s[1], from, to); den > 0 {
					return series.delta(s[0], from, to) / den
				}
				return nan
			}
		}
		return nan
	}
	first := func(sources []string) string {
		for _, s := range sources {
			if series.has(s) {
				return s
			}
		}
		return ""
	}
	if s := first(stepsSources); s != "" {
		g.StepsPerS = series.delta(s, from, to) / g.Duration
	}
	g.StepTime = ratio(stepTimeSources)
	g.BatchPerStep = ratio(batchSources)
	g.TokensPerStep = ratio(tokensPerStepSources)
	g.PrefixCacheHitRate = ratio(prefixSources)
	if s := first(kvCapacitySources); s != "" {
		_, g.KVCapacity, _ = series.gauge(s, from, to)
	}
	reserved, filled := first(kvReservedSources), first(kvFilledSources)
	if reserved != "" {
		g.KVReserved, _, _ = series.gauge(reserved, from, to)
	} else if series.has(vllmKVCapacity) && series.has(capture.MetricKVUsage) {
		// vLLM: the share of blocks allocated to requests times the
		// capacity (its blocks are reserved as tokens arrive, so this is
		// also close to the filled tokens, rounded up to blocks).
		usage, _, _ := series.gauge(capture.MetricKVUsage, from, to)
		g.KVReserved = usage * g.KVCapacity
	}
	if filled != "" {
		g.KVFilled, _, _ = series.gauge(filled, from, to)
	}
	if reserved != "" && filled != "" {
		r := &sampleSeries{byName: map[string][]capture.Sample{"util": utilisation(series.byName[filled], series.byName[reserved])}}
		g.KVReservedUtil, _, _ = r.gauge("util", from, to)
	}
	if s := first(kvHoleSources); s != "" {
		g.KVLargestHole, _, _ = series.gauge(s, from, to)
	}
}

// utilisation pairs the filled and reserved samples of the same scrapes
// (equal At) into filled/reserved, NaN where nothing was reserved; both
// inputs are in time order.
func utilisation(filled, reserved []capture.Sample) []capture.Sample {
	out := make([]capture.Sample, 0, min(len(filled), len(reserved)))
	i, j := 0, 0
	for i < len(filled) && j < len(reserved) {
		switch c := cmp.Compare(filled[i].At, reserved[j].At); {
		case c < 0:
			i++
		case c > 0:
			j++
		default:
			v := math.NaN()
			if reserved[j].Value > 0 {
				v = filled[i].Value / reserved[j].Value
			}
			out = append(out, capture.Sample{At: filled[i].At, Name: "util", Value: v})
			i++
			j++
		}
	}
	return out
}

// has reports whether the series has any sample.
func (s *sampleSeries) has(name string) bool { return len(s.byName[name]) > 0 }

// count returns the number of samples of name in [from, to).
func (s *sampleSeries) count(name string, from, to int64) int {
	xs := s.byName[name]
	at := func(x capture.Sample, t int64) int { return cmp.Compare(x.At, t) }
	i, _ := slices.BinarySearchFunc(xs, from, at)
	j, _ := slices.BinarySearchFunc(xs, to, at)
	return j - i
}
