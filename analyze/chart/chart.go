// Package chart draws the analysis charts. It is the only package that
// imports go-chart: go-chart/v2 is archived upstream and a maintained fork
// keeps the same API, so switching is a change of the import path below.
package chart

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"

	gochart "github.com/wcharczuk/go-chart/v2"
	"github.com/wcharczuk/go-chart/v2/drawing"
)

// Format is an output image format.
type Format int

// Image formats.
const (
	PNG Format = iota
	SVG
)

// Point is one marked point, drawn as a labelled annotation.
type Point struct {
	X, Y  float64
	Label string
}

// Series is one line of a chart.
type Series struct {
	// Name is the legend entry.
	Name string
	X, Y []float64
	// Dashed draws a dashed line (thresholds, secondary measures).
	Dashed bool
	// Step draws a step function: each value holds until the next X.
	Step bool
}

// Line is a line chart: one or more series against a shared x axis.
type Line struct {
	Title  string
	XLabel string
	YLabel string
	Series []Series
	// Marks are annotated points (e.g. each variant's knee).
	Marks []Point
	// LogX draws the x axis on a log scale (non-positive x are left out):
	// for latency CDFs, whose tails span decades.
	LogX bool
	// Width and Height in pixels (default 1024 × 640).
	Width, Height int
	// YMin forces the lower y bound (NaN or 0: from the data, 0 for
	// non-negative data); YMax forces the upper bound (0: from the data).
	YMin, YMax float64
}

// ErrNoData is returned when no series has a finite point.
var ErrNoData = errors.New("chart: no data to draw")

// palette is a fixed, color-blind-friendly order (Okabe–Ito), so the same
// variant keeps its color across charts.
func palette(i int) drawing.Color {
	cs := [...]drawing.Color{
		{R: 0, G: 114, B: 178, A: 255},   // blue
		{R: 213, G: 94, B: 0, A: 255},    // vermillion
		{R: 0, G: 158, B: 115, A: 255},   // bluish green
		{R: 204, G: 121, B: 167, A: 255}, // reddish purple
		{R: 230, G: 159, B: 0, A: 255},   // orange
		{R: 86, G: 180, B: 233, A: 255},  // sky blue
		{R: 240, G: 228, B: 66, A: 255},  // yellow
		{R: 0, G: 0, B: 0, A: 255},       // black
	}
	return cs[i%len(cs)]
}

// finite returns the points of s whose coordinates are finite.
func finite(s Series) (xs, ys []float64) {
	for i := range min(len(s.X), len(s.Y)) {
		x, y := s.X[i], s.Y[i]
		if math.IsNaN(x) || math.IsInf(x, 0) || math.IsNaN(y) || math.IsInf(y, 0) {
			continue
		}
		xs = append(xs, x)
		ys = append(ys, y)
	}
	return xs, ys
}

// stepped turns a series into the corner points of its step function.
func stepped(xs, ys []float64) ([]float64, []float64) {
	if len(xs) < 2 {
		return xs, ys
	}
	ox := make([]float64, 0, 2*len(xs))
	oy := make([]float64, 0, 2*len(ys))
	for i := range xs {
		if i > 0 {
			ox = append(ox, xs[i])
			oy = append(oy, ys[i-1])
		}
		ox = append(ox, xs[i])
		oy = append(oy, ys[i])
	}
	return ox, oy
}

// bounds pads a [lo, hi] range so go-chart never sees an empty one.
func bounds(lo, hi float64) (float64, float64) {
	if hi > lo {
		pad := (hi - lo) * 0.05
		return lo - pad, hi + pad
	}
	d := math.Abs(lo) * 0.1
	if d == 0 {
		d = 1
	}
	return lo - d, hi + d
}

func numFormatter(v any) string {
	f, ok := v.(float64)
	if !ok {
		return fmt.Sprint(v)
	}
	a := math.Abs(f)
	switch {
	case a == 0:
		return "0"
	case a >= 1000:
		return strconv.FormatFloat(f, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(f, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(f, 'f', 2, 64)
	case a >= 0.01:
		return strconv.FormatFloat(f, 'f', 3, 64)
	}
	return strconv.FormatFloat(f, 'g', 2, 64)
}

// niceStep returns a round step (1, 2 or 5 × 10^k) giving about n
// intervals over span.
func niceStep(span float64, n int) float64 {
	raw := span / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if raw <= m*mag {
			return m * mag
		}
	}
	return 10 * mag
}

// niceTicks returns round ticks covering [lo, hi] and the widened bounds.
func niceTicks(lo, hi float64, n int) ([]gochart.Tick, float64, float64) {
	step := niceStep(hi-lo, n)
	decimals := max(0, int(-math.Floor(math.Log10(step)+1e-9)))
	if k := math.Floor(math.Log10(step) + 1e-9); k <= 0 && math.Abs(step/math.Pow(10, k)-2.5) < 1e-9 {
		decimals++ // 0.25, 2.5: one more digit; 25, 250: none
	}
	first := math.Floor(lo/step) * step
	last := math.Ceil(hi/step) * step
	var ticks []gochart.Tick
	for i := 0; ; i++ {
		v := first + float64(i)*step
		if v > last+step/2 || i > 100 {
			break
		}
		v = math.Round(v/step) * step // no 0.30000000000000004
		ticks = append(ticks, gochart.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', decimals, 64)})
	}
	return ticks, first, last
}

// logX maps x to log10(x), leaving out non-positive x.
func logX(xs, ys []float64) ([]float64, []float64) {
	var ox, oy []float64
	for i, x := range xs {
		if x > 0 {
			ox = append(ox, math.Log10(x))
			oy = append(oy, ys[i])
		}
	}
	return ox, oy
}

// logTicks returns ticks at 1, 2 and 5 × 10^k (only powers of ten when the
// range spans more than four decades) for log10 bounds lo..hi, labelled
// with the real values.
func logTicks(lo, hi float64) ([]gochart.Tick, float64, float64) {
	first, last := math.Floor(lo), math.Ceil(hi)
	if last <= first {
		last = first + 1
	}
	mults := []float64{1, 2, 5}
	if last-first > 4 {
		mults = []float64{1}
	}
	var ticks []gochart.Tick
	for k := first; k <= last; k++ {
		for _, m := range mults {
			v := k + math.Log10(m)
			if v > last+1e-9 {
				break
			}
			real := m * math.Pow(10, k)
			ticks = append(ticks, gochart.Tick{Value: v, Label: strconv.FormatFloat(real, 'g', 4, 64)})
		}
	}
	return ticks, first, last
}

// legendRowHeight is the height of one legend row in pixels.
const legendRowHeight = 20

// legendBelow draws the legend under the plot, left to right, wrapping at
// the chart width (go-chart's own legends cover the plot).
func legendBelow(series []Series, colors []drawing.Color, width, top int) gochart.Renderable {
	return func(r gochart.Renderer, cb gochart.Box, defaults gochart.Style) {
		if f := defaults.GetFont(); f != nil {
			r.SetFont(f)
		}
		r.SetFontSize(10)
		r.SetFontColor(drawing.Color{R: 51, G: 51, B: 51, A: 255})
		x, y := 60, top
		for i, s := range series {
			tw := r.MeasureText(s.Name).Width()
			if x+35+tw > width-20 && x > 60 {
				x, y = 60, y+legendRowHeight
			}
			r.SetStrokeColor(colors[i])
			r.SetStrokeWidth(3)
			if s.Dashed {
				r.SetStrokeDashArray([]float64{6, 4})
			} else {
				r.SetStrokeDashArray(nil)
			}
			r.MoveTo(x, y-4)
			r.LineTo(x+25, y-4)
			r.Stroke()
			r.SetStrokeDashArray(nil)
			r.Text(s.Name, x+30, y)
			x += 30 + tw + 25
		}
	}
}

// legendLines estimates the legend's rows for the bottom padding.
func legendLines(series []Series, width int) int {
	rows, x := 1, 60
	for _, s := range series {
		tw := 6 * len(s.Name) // ~6 px per character at 10 pt
		if x+35+tw > width-20 && x > 60 {
			rows++
			x = 60
		}
		x += 30 + tw + 25
	}
	return rows
}

// build converts l to a go-chart chart.
func (l Line) build() (*gochart.Chart, error) {
	w, h := l.Width, l.Height
	if w <= 0 {
		w = 1024
	}
	if h <= 0 {
		h = 640
	}
	xlo, xhi, ylo, yhi := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	var series []gochart.Series
	for i, s := range l.Series {
		xs, ys := finite(s)
		if l.LogX {
			xs, ys = logX(xs, ys)
		}
		if len(xs) == 0 {
			continue
		}
		for j := range xs {
			xlo, xhi = min(xlo, xs[j]), max(xhi, xs[j])
			ylo, yhi = min(ylo, ys[j]), max(yhi, ys[j])
		}
		if s.Step {
			xs, ys = stepped(xs, ys)
		}
		st := gochart.Style{StrokeColor: palette(i), StrokeWidth: 2.5, DotColor: palette(i), DotWidth: 3.5}
		if s.Step || len(xs) > 60 {
			st.DotWidth = 0
		}
		if len(xs) == 1 {
			st.DotWidth = 6
		}
		if s.Dashed {
			st.StrokeDashArray = []float64{6, 4}
			st.DotWidth = 0
		}
		series = append(series, gochart.ContinuousSeries{Name: s.Name, XValues: xs, YValues: ys, Style: st})
	}
	if len(series) == 0 {
		return nil, ErrNoData
	}
	var ann []gochart.Value2
	for _, m := range l.Marks {
		if math.IsNaN(m.X) || math.IsNaN(m.Y) {
			continue
		}
		ann = append(ann, gochart.Value2{XValue: m.X, YValue: m.Y, Label: m.Label})
		ylo, yhi = min(ylo, m.Y), max(yhi, m.Y)
	}
	if len(ann) > 0 {
		series = append(series, gochart.AnnotationSeries{Annotations: ann})
	}
	xmin, xmax := bounds(xlo, xhi)
	if len(ann) > 0 {
		xmax += (xhi - xlo) * 0.15 // room for the labels of marks at the right edge
	}
	ymin, ymax := bounds(ylo, yhi)
	if ylo >= 0 {
		ymin = 0
	}
	if !math.IsNaN(l.YMin) && l.YMin != 0 {
		ymin = l.YMin
	}
	if xlo >= 0 && xmin < 0 {
		xmin = 0
	}
	if l.YMax > 0 {
		ymax = l.YMax
	}
	xticks, xmin, xmax := niceTicks(xmin, xmax, 10)
	if l.LogX {
		xticks, xmin, xmax = logTicks(xlo, xhi)
	}
	yticks, ymin, ymax := niceTicks(ymin, ymax, 8)
	var drawn []Series // the series that made it, in legend order
	var colors []drawing.Color
	for i, s := range l.Series {
		xs, ys := finite(s)
		if l.LogX {
			xs, _ = logX(xs, ys)
		}
		if len(xs) > 0 {
			drawn = append(drawn, s)
			colors = append(colors, palette(i))
		}
	}
	rows := legendLines(drawn, w)
	bottom := 30 + rows*legendRowHeight
	c := &gochart.Chart{
		Title:      l.Title,
		TitleStyle: gochart.Style{FontSize: 14},
		Width:      w,
		Height:     h,
		Background: gochart.Style{Padding: gochart.Box{Top: 50, Left: 20, Right: 30, Bottom: bottom}},
		XAxis: gochart.XAxis{
			Name:           l.XLabel,
			ValueFormatter: numFormatter,
			Range:          &gochart.ContinuousRange{Min: xmin, Max: xmax},
			Ticks:          xticks,
			GridMajorStyle: gochart.Style{StrokeColor: drawing.Color{R: 220, G: 220, B: 220, A: 255}, StrokeWidth: 1},
		},
		YAxis: gochart.YAxis{
			Name:           l.YLabel,
			ValueFormatter: numFormatter,
			Range:          &gochart.ContinuousRange{Min: ymin, Max: ymax},
			Ticks:          yticks,
			GridMajorStyle: gochart.Style{StrokeColor: drawing.Color{R: 220, G: 220, B: 220, A: 255}, StrokeWidth: 1},
		},
		Series: series,
	}
	c.Elements = []gochart.Renderable{legendBelow(drawn, colors, w, h-bottom+45)}
	return c, nil
}

// Render draws l in the given format to w.
func (l Line) Render(f Format, w io.Writer) error {
	c, err := l.build()
	if err != nil {
		return err
	}
	rp := gochart.PNG
	if f == SVG {
		rp = gochart.SVG
	}
	var buf bytes.Buffer
	if err := c.Render(rp, &buf); err != nil {
		return fmt.Errorf("chart %q: %w", l.Title, err)
	}
	_, err = w.Write(buf.Bytes())
	return err
}

// WriteFiles writes base+".png" and base+".svg" and returns their paths.
func (l Line) WriteFiles(base string) ([]string, error) {
	var paths []string
	for _, f := range []struct {
		ext string
		f   Format
	}{{".png", PNG}, {".svg", SVG}} {
		var buf bytes.Buffer
		if err := l.Render(f.f, &buf); err != nil {
			return paths, err
		}
		p := base + f.ext
		if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
			return paths, fmt.Errorf("chart: %w", err)
		}
		paths = append(paths, p)
	}
	return paths, nil
}
