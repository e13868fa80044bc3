package render

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"

	"github.com/vbench/vbench/analyze/chart"

	"github.com/vbench/vbench/analyze"
)

// ChartFile is one chart written by WriteCharts.
type ChartFile struct {
	// Name is the file base name without extension (norm_latency_vs_rate…).
	Name string
	// Title is the chart's title.
	Title string
	// Paths are the PNG and SVG files.
	Paths []string
}

// variantOrder returns the variants of the aggregates in order.
func variantOrder(res *analyze.Result) []string {
	var vs []string
	for _, a := range res.Aggregates {
		if !slices.Contains(vs, a.Variant) {
			vs = append(vs, a.Variant)
		}
	}
	slices.Sort(vs)
	return vs
}

// cdfLevel picks the rate level of the CDF charts: the asked one, else
// the highest level that every variant has and sustains, else the lowest
// level every variant has, else the lowest level.
func cdfLevel(res *analyze.Result, cfg *analyze.Config) string {
	if cfg.CDFRate != "" {
		return cfg.CDFRate
	}
	vs := variantOrder(res)
	type lv struct {
		level string
		rate  float64
		n     int
		ok    bool
	}
	levels := map[string]*lv{}
	for _, a := range res.Aggregates {
		l := levels[a.Level]
		if l == nil {
			l = &lv{level: a.Level, rate: a.Rate, ok: true}
			levels[a.Level] = l
		}
		l.n++
		if ok, _ := analyze.Sustains(a, cfg.Saturation.Seconds()); !ok {
			l.ok = false
		}
	}
	var all []*lv
	for _, l := range levels {
		all = append(all, l)
	}
	if len(all) == 0 {
		return ""
	}
	slices.SortFunc(all, func(a, b *lv) int {
		return cmp.Or(analyze.CompareLevels(a.level, a.rate, b.level, b.rate), cmp.Compare(a.level, b.level))
	})
	best := ""
	for _, l := range all {
		if l.n == len(vs) && l.ok {
			best = l.level
		}
	}
	if best != "" {
		return best
	}
	for _, l := range all {
		if l.n == len(vs) {
			return l.level
		}
	}
	return all[0].level
}

// timelineGroup picks the group of the timeline chart: the asked key, else
// the first variant's first group at the CDF level (a rate every variant
// sustains, where batching shows), else the first group.
func timelineGroup(res *analyze.Result, cfg *analyze.Config) *analyze.Group {
	level := cdfLevel(res, cfg)
	var pick *analyze.Group
	for _, g := range res.Groups {
		if cfg.Timeline != "" {
			if g.Key == cfg.Timeline {
				return g
			}
			continue
		}
		if g.Duration <= 0 {
			continue
		}
		if pick == nil || (pick.Level != level && g.Level == level && g.Variant == pick.Variant) {
			pick = g
		}
	}
	return pick
}

// cdfPoints returns the empirical CDF of xs (sorted in place), thinned to
// at most maxPoints points.
func cdfPoints(xs []float64, maxPoints int) ([]float64, []float64) {
	xs = slices.DeleteFunc(xs, math.IsNaN)
	slices.Sort(xs)
	n := len(xs)
	step := max(1, n/maxPoints)
	var ox, oy []float64
	for i := 0; i < n; i += step {
		ox = append(ox, xs[i])
		oy = append(oy, float64(i+1)/float64(n))
	}
	if n > 0 && ox[len(ox)-1] != xs[n-1] || n > 0 && oy[len(oy)-1] != 1 {
		ox = append(ox, xs[n-1])
		oy = append(oy, 1)
	}
	return ox, oy
}

// Charts returns the chart definitions for the result.
func Charts(res *analyze.Result, cfg *analyze.Config) map[string]chart.Line {
	out := map[string]chart.Line{}
	vs := variantOrder(res)
	thr := cfg.Saturation.Seconds()

	norm := chart.Line{Title: "Normalized latency vs request rate", XLabel: "request rate (req/s)", YLabel: "normalized latency (s/token)", YMin: math.NaN()}
	tput := chart.Line{Title: "Output throughput vs concurrency", XLabel: "requests in flight at the proxy (time-weighted mean)", YLabel: "output throughput (tokens/s)", YMin: math.NaN()}
	ttft := chart.Line{Title: "TTFT p50 and p99 vs request rate", XLabel: "request rate (req/s)", YLabel: "time to first token (s)", YMin: math.NaN()}
	var maxRate float64
	for _, v := range vs {
		var rx, ny, cx, ty, p50, p99 []float64
		type pt struct{ x, y float64 }
		var tp []pt
		for _, a := range res.Aggregates {
			if a.Variant != v || a.Rate <= 0 {
				continue
			}
			maxRate = max(maxRate, a.Rate)
			rx = append(rx, a.Rate)
			ny = append(ny, a.NormLatency.Mean)
			p50 = append(p50, a.TTFTP50.Mean)
			p99 = append(p99, a.TTFTP99.Mean)
			tp = append(tp, pt{a.InFlightMean.Mean, a.OutputThroughput.Mean})
		}
		slices.SortFunc(tp, func(a, b pt) int { return cmp.Compare(a.x, b.x) })
		for _, p := range tp {
			cx = append(cx, p.x)
			ty = append(ty, p.y)
		}
		norm.Series = append(norm.Series, chart.Series{Name: v, X: rx, Y: ny})
		tput.Series = append(tput.Series, chart.Series{Name: v, X: cx, Y: ty})
		ttft.Series = append(ttft.Series, chart.Series{Name: v + " p50", Group: v, X: rx, Y: p50}, chart.Series{Name: v + " p99", Group: v, X: rx, Y: p99, Dashed: true})
	}
	for _, s := range res.Saturation {
		switch {
		case s.Never:
			norm.Marks = append(norm.Marks, chart.Point{X: s.Rate, Y: s.NormLatency, Label: fmt.Sprintf("%s: no knee up to %s req/s", s.Variant, fmtNum(s.Rate, -1))})
		case !s.Over:
			norm.Marks = append(norm.Marks, chart.Point{X: s.Rate, Y: s.NormLatency, Label: fmt.Sprintf("%s knee %s req/s", s.Variant, fmtNum(s.Rate, -1))})
		}
	}
	if maxRate > 0 {
		norm.Series = append(norm.Series, chart.Series{Name: fmt.Sprintf("threshold %s s/token", fmtNum(thr, -1)), X: []float64{0, maxRate}, Y: []float64{thr, thr}, Dashed: true, Reference: true})
	}
	out["norm_latency_vs_rate"] = norm
	out["throughput_vs_concurrency"] = tput
	out["ttft_vs_rate"] = ttft

	level := cdfLevel(res, cfg)
	cdfT := chart.Line{Title: fmt.Sprintf("CDF of TTFT at rate %s", level), XLabel: "time to first token (s, log scale)", YLabel: "fraction of completed requests", YMin: math.NaN(), YMax: 1, LogX: true}
	cdfN := chart.Line{Title: fmt.Sprintf("CDF of normalized latency at rate %s", level), XLabel: "normalized latency (s/token, log scale)", YLabel: "fraction of completed requests", YMin: math.NaN(), YMax: 1, LogX: true}
	for _, v := range vs {
		var tv, nv []float64
		for i := range res.Requests {
			r := &res.Requests[i]
			if r.Variant != v || r.Level != level || !r.Completed() || (r.Warmup && cfg.Window != analyze.WindowAll) {
				continue
			}
			tv = append(tv, r.TTFT())
			nv = append(nv, r.NormLatency())
		}
		x, y := cdfPoints(tv, 400)
		cdfT.Series = append(cdfT.Series, chart.Series{Name: v, X: x, Y: y})
		x, y = cdfPoints(nv, 400)
		cdfN.Series = append(cdfN.Series, chart.Series{Name: v, X: x, Y: y})
	}
	out["cdf_ttft"] = cdfT
	out["cdf_norm_latency"] = cdfN

	if g := timelineGroup(res, cfg); g != nil {
		out["timeline"] = timeline(res, g)
	}
	return out
}

// timeline draws the requests in flight at the proxy, split into decoding
// and queued (the client-side batch estimate, so a server without metrics
// still gets a batch chart), and the server's running (batched) and
// waiting requests when scraped, over one group's window.
func timeline(res *analyze.Result, g *analyze.Group) chart.Line {
	l := chart.Line{
		Title:  fmt.Sprintf("In flight vs batched requests: %s", g.Key),
		XLabel: "time since window start (s)", YLabel: "requests", YMin: math.NaN(),
	}
	for _, s := range res.Timeline(g, 600) {
		l.Series = append(l.Series, chart.Series{Name: s.Name, X: s.X, Y: s.Y, Step: true})
	}
	return l
}

// chartOrder is the order charts appear in the report.
func chartOrder() []string {
	return []string{"norm_latency_vs_rate", "throughput_vs_concurrency", "ttft_vs_rate", "cdf_ttft", "cdf_norm_latency", "timeline"}
}

// WriteCharts writes every chart as PNG and SVG under dir. A chart without
// data is skipped with a warning returned in the error list, never a
// failure.
func WriteCharts(res *analyze.Result, cfg *analyze.Config, dir string) ([]ChartFile, []string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("analyze: charts: %w", err)
	}
	lines := Charts(res, cfg)
	var files []ChartFile
	var skipped []string
	for _, name := range chartOrder() {
		l, ok := lines[name]
		if !ok {
			continue
		}
		paths, err := l.WriteFiles(filepath.Join(dir, name))
		if errors.Is(err, chart.ErrNoData) {
			skipped = append(skipped, fmt.Sprintf("chart %s: no data to draw", name))
			continue
		}
		if err != nil {
			return files, skipped, fmt.Errorf("analyze: chart %s: %w", name, err)
		}
		files = append(files, ChartFile{Name: name, Title: l.Title, Paths: paths})
	}
	return files, skipped, nil
}
