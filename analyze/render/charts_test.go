package render

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	imgpng "image/png"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vbench/vbench/analyze"
	"github.com/vbench/vbench/analyze/chart"
	"github.com/vbench/vbench/metric"
)

// demoResult holds the aggregates and saturation of a `make demo` run
// (2026-12-03, paged vs contiguous KV on the simulated OPT-13B, 8×).
func demoResult() (*analyze.Result, *analyze.Config) {
	res := &analyze.Result{}
	add := func(v string, rates, norm, p50, p99, inflight, tput []float64) {
		for i, r := range rates {
			ci := func(x float64) metric.CI { return metric.CI{N: 1, Mean: x} }
			res.Aggregates = append(res.Aggregates, &analyze.Aggregate{Key: fmt.Sprintf("%s/%g", v, r), Variant: v, Level: fmt.Sprint(r), Rate: r, Trials: 1,
				NormLatency: ci(norm[i]), NormLatencyWithCut: ci(norm[i]), TTFTP50: ci(p50[i]), TTFTP99: ci(p99[i]), InFlightMean: ci(inflight[i]), OutputThroughput: ci(tput[i])})
		}
	}
	add("sim-contiguous", []float64{4, 6, 8, 12}, []float64{0.0036, 0.0048, 0.0104, 0.0274},
		[]float64{0.00759, 0.0248, 0.7687, 3.00}, []float64{0.117, 0.7285, 1.97, 7.83},
		[]float64{4.2, 5.1, 10.7, 25.4}, []float64{1072.8, 1207.8, 1699.9, 1752.9})
	add("sim-paged", []float64{4, 6, 8, 12, 16, 20, 24}, []float64{0.0036, 0.0038, 0.0041, 0.0046, 0.0053, 0.0068, 0.0109},
		[]float64{0.00853, 0.00714, 0.00918, 0.00994, 0.0144, 0.0223, 0.0604}, []float64{0.0206, 0.0978, 0.0354, 0.0367, 0.1358, 0.7539, 2.04},
		[]float64{4.1, 4.5, 7.8, 12.3, 18.9, 27.3, 41.6}, []float64{1073, 1206, 1910, 2733, 3623, 4228, 4707})
	res.Saturation = []analyze.Saturation{
		{Variant: "sim-contiguous", Rate: 8, Level: "8", NormLatency: 0.0104},
		{Variant: "sim-paged", Rate: 24, Level: "24", NormLatency: 0.0109, Never: true},
	}
	return res, &analyze.Config{Saturation: 12500 * time.Microsecond}
}

// TestChartLabelsStayClear: on the demo's charts every mark label lies in
// the plot area (so never across an axis, its numbers or the title) and no
// two labels overlap; the y axis is on the left.
func TestChartLabelsStayClear(t *testing.T) {
	res, cfg := demoResult()
	charts := Charts(res, cfg)
	if len(charts["norm_latency_vs_rate"].Marks) != 2 {
		t.Fatalf("norm chart marks %v; want both variants' labels", charts["norm_latency_vs_rate"].Marks)
	}
	for name, l := range charts {
		if len(l.Series) == 0 || allEmpty(l) {
			continue
		}
		lay, err := l.LabelLayout()
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		checkLayout(t, name, lay)
		var png bytes.Buffer
		if err := l.Render(chart.PNG, &png); err != nil {
			t.Fatal(err)
		}
		img, err := imgpng.Decode(&png)
		if err != nil {
			t.Fatal(err)
		}
		// The y axis's numbers and name are ink left of the plot; right of
		// it there is none.
		left, right := ink(img, 0, lay.Plot.Left-1, lay.Plot.Top, lay.Plot.Bottom), ink(img, lay.Plot.Right+2, img.Bounds().Dx(), lay.Plot.Top, lay.Plot.Bottom)
		if left < 200 || right > 20 {
			t.Errorf("%s: %d dark pixels left of the plot, %d right of it; want the y axis on the left", name, left, right)
		}
	}
}

// ink counts the dark pixels of img in [x0, x1) × [y0, y1).
func ink(img image.Image, x0, x1, y0, y1 int) int {
	n := 0
	for y := y0; y < y1; y++ {
		for x := x0; x < x1; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			if r>>8 < 160 && g>>8 < 160 && b>>8 < 160 {
				n++
			}
		}
	}
	return n
}

func allEmpty(l chart.Line) bool {
	for _, s := range l.Series {
		if len(s.X) > 0 {
			return false
		}
	}
	return true
}

func checkLayout(t *testing.T, name string, lay chart.Layout) {
	t.Helper()
	if lay.Title.Bottom > lay.Plot.Top {
		t.Errorf("%s: title %+v reaches into the plot %+v", name, lay.Title, lay.Plot)
	}
	for i, b := range lay.Labels {
		if !b.Inside(lay.Plot) {
			t.Errorf("%s: label %d at %+v leaves the plot area %+v (it would cross an axis or the title)", name, i, b, lay.Plot)
		}
		if b.Overlaps(lay.Title) {
			t.Errorf("%s: label %d overlaps the title", name, i)
		}
		for j, o := range lay.Labels[:i] {
			if b.Overlaps(o) {
				t.Errorf("%s: labels %d and %d overlap: %+v %+v", name, j, i, o, b)
			}
		}
	}
}

// TestChartColorsFollowVariants: a variant has one colour in every chart
// (its p50 and p99 lines included); the threshold is grey.
func TestChartColorsFollowVariants(t *testing.T) {
	res, cfg := demoResult()
	seen := map[string]color.RGBA{}
	for name, l := range Charts(res, cfg) {
		if name == "timeline" {
			continue // its lines are measures of one group, not variants
		}
		for i, c := range l.Colors() {
			s := l.Series[i]
			if s.Reference {
				continue
			}
			v := strings.TrimSuffix(strings.TrimSuffix(s.Name, " p50"), " p99")
			if prev, ok := seen[v]; ok && prev != c {
				t.Errorf("%s: %s drawn in %v, elsewhere in %v", name, s.Name, c, prev)
			}
			seen[v] = c
		}
	}
	if len(seen) != 2 || seen["sim-paged"] == seen["sim-contiguous"] {
		t.Errorf("colours %v; want two variants in two colours", seen)
	}
}

func TestNaturalCompare(t *testing.T) {
	in := []string{"a/rate-12", "a/rate-4", "a/rate-100", "a/rate-4.5", "b/rate-1", "a/rate-04"}
	slices.SortFunc(in, naturalCompare)
	want := []string{"a/rate-4", "a/rate-04", "a/rate-4.5", "a/rate-12", "a/rate-100", "b/rate-1"}
	if !slices.Equal(in, want) {
		t.Errorf("natural order %q; want %q", in, want)
	}
}

func TestDropEmptyColumns(t *testing.T) {
	hdr, rows := dropEmptyColumns([]string{"v", "holes", "n"}, [][]string{{"a", "-", "1"}, {"b", "-", ""}})
	if !slices.Equal(hdr, []string{"v", "n"}) || !slices.Equal(rows[0], []string{"a", "1"}) || !slices.Equal(rows[1], []string{"b", ""}) {
		t.Errorf("dropEmptyColumns = %q %q", hdr, rows)
	}
}

// TestSaturationNoRatioWithoutKnee: when even the slowest variant never
// crossed the threshold, no "at least 1.0×" ratio is claimed.
func TestSaturationNoRatioWithoutKnee(t *testing.T) {
	res := &analyze.Result{Setup: analyze.Setup{Saturation: 0.2}, Saturation: []analyze.Saturation{
		{Variant: "a", Rate: 12, NormLatency: 0.01, Never: true}, {Variant: "b", Rate: 12, NormLatency: 0.004, Never: true}}}
	lines := strings.Join(SaturationLines(res), "\n")
	if strings.Contains(lines, "×") || !strings.Contains(lines, "no variant crossed 0.2 s/token") {
		t.Errorf("saturation lines:\n%s", lines)
	}
}
