package render

import (
	"io"
	"math"
	"strings"

	"github.com/vbench/vbench/analyze"
)

// hasServerInternals reports whether some group has a derived
// server-internals figure.
func hasServerInternals(res *analyze.Result) bool {
	for _, g := range res.Groups {
		for _, v := range []float64{g.StepsPerS, g.StepTime, g.BatchPerStep, g.TokensPerStep, g.KVReserved, g.KVFilled, g.KVReservedUtil, g.KVLargestHole, g.PrefixCacheHitRate} {
			if !math.IsNaN(v) {
				return true
			}
		}
	}
	return false
}

// serverColumns are the derived server-internals columns of summary.csv
// and summary.json (empty when the server exported none of their series).
func serverColumns() []column[*analyze.Group] {
	return []column[*analyze.Group]{
		{"steps_per_s", func(g *analyze.Group) any { return g.StepsPerS }},
		{"step_time_mean_s", func(g *analyze.Group) any { return g.StepTime }},
		{"batch_per_step_mean", func(g *analyze.Group) any { return g.BatchPerStep }},
		{"tokens_per_step_mean", func(g *analyze.Group) any { return g.TokensPerStep }},
		{"kv_capacity_tokens", func(g *analyze.Group) any { return g.KVCapacity }},
		{"kv_reserved_mean_tokens", func(g *analyze.Group) any { return g.KVReserved }},
		{"kv_filled_mean_tokens", func(g *analyze.Group) any { return g.KVFilled }},
		{"kv_reserved_util_mean", func(g *analyze.Group) any { return g.KVReservedUtil }},
		{"kv_largest_hole_mean_tokens", func(g *analyze.Group) any { return g.KVLargestHole }},
		{"prefix_cache_hit_rate", func(g *analyze.Group) any { return g.PrefixCacheHitRate }},
	}
}

// serverMetricRow is one row of server_metrics.csv.
type serverMetricRow struct {
	g *analyze.Group
	m *analyze.ServerMetric
}

func serverMetricColumns() []column[serverMetricRow] {
	return []column[serverMetricRow]{
		{"key", func(r serverMetricRow) any { return r.g.Key }},
		{"variant", func(r serverMetricRow) any { return r.g.Variant }},
		{"level", func(r serverMetricRow) any { return r.g.Level }},
		{"rate", func(r serverMetricRow) any { return r.g.Rate }},
		{"trial", func(r serverMetricRow) any { return r.g.Trial }},
		{"name", func(r serverMetricRow) any { return r.m.Name }},
		{"kind", func(r serverMetricRow) any { return r.m.Kind }},
		{"samples", func(r serverMetricRow) any { return r.m.Samples }},
		{"mean", func(r serverMetricRow) any { return r.m.Mean }},
		{"max", func(r serverMetricRow) any { return r.m.Max }},
		{"delta", func(r serverMetricRow) any { return r.m.Delta }},
		{"rate_per_s", func(r serverMetricRow) any { return r.m.Rate }},
	}
}

// WriteServerMetricsCSV writes server_metrics.csv: one row per group and
// further server metric (long format; a header only when there are none).
func WriteServerMetricsCSV(res *analyze.Result, w io.Writer) error {
	var rows []serverMetricRow
	for _, g := range res.Groups {
		for i := range g.ServerMetrics {
			rows = append(rows, serverMetricRow{g, &g.ServerMetrics[i]})
		}
	}
	return writeCSV(w, serverMetricColumns(), rows)
}

// serverMetricsJSON is a group's ServerMetrics as ordered JSON objects.
func serverMetricsJSON(g *analyze.Group) []object {
	cols := serverMetricColumns()[5:]
	out := make([]object, len(g.ServerMetrics))
	for i := range g.ServerMetrics {
		out[i] = rowObj(cols, serverMetricRow{g, &g.ServerMetrics[i]})
	}
	return out
}

// writeServerInternals writes the report's "Server internals" table, only
// when some group has a derived figure.
func writeServerInternals(res *analyze.Result, b *strings.Builder) {
	if !hasServerInternals(res) {
		return
	}
	b.WriteString("## Server internals\n\n")
	b.WriteString("From the server's own metrics over each group's window (vbtorch, vbsim or vLLM; `-` where the server does not export them, and a column none of them exports is left out): engine steps per second, mean step time, mean requests per step, mean tokens per step (vLLM), KV tokens reserved for running requests and those actually filled (time-weighted means), filled/reserved (the vLLM paper's Figure 2 measure: 20–38% for contiguous reservation), the largest free KV hole (fragmentation) and the capacity.\n\n")
	hdr := []string{"variant", "rate", "trial", "steps/s", "step time", "batch/step", "tokens/step", "KV reserved", "KV filled", "filled/reserved", "largest hole", "KV capacity"}
	pct := func(v float64) string {
		if math.IsNaN(v) {
			return "-"
		}
		return fmtNum(100*v, 1) + "%"
	}
	var rows [][]string
	for _, g := range res.Groups {
		rows = append(rows, []string{g.Variant, orDash(g.Level), orDash(g.Trial), fmtNum(g.StepsPerS, 1), fmtDur(g.StepTime), fmtNum(g.BatchPerStep, 2),
			fmtNum(g.TokensPerStep, 1), fmtNum(g.KVReserved, 0), fmtNum(g.KVFilled, 0), pct(g.KVReservedUtil), fmtNum(g.KVLargestHole, 0), fmtNum(g.KVCapacity, 0)})
	}
	writeMarkdownTable(b, hdr, rows)
}
