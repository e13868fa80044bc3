// Package chart draws the analysis charts. It is the only package that
// imports go-chart: go-chart/v2 is archived upstream and a maintained fork
// keeps the same API, so switching is a change of the import path below.
package chart

import (
	"bytes"
	"errors"
	"fmt"
	"image/color"
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
	// Group picks the colour: series of one group share it (a variant's
	// p50 and p99 lines); empty means the Name. Colours go to groups in
	// the order they first appear in Line.Series, empty series included,
	// so charts that list the same variants in the same order give each
	// variant the same colour.
	Group string
	// Reference draws a reference line (a threshold) in grey; it takes
	// no colour from the groups.
	Reference bool
	X, Y      []float64
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

// palette is a fixed, color-blind-friendly order (Okabe–Ito); Line.colors
// hands it out by group, so the same variant keeps its colour across charts.
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

// grey draws reference lines.
var grey = drawing.Color{R: 110, G: 110, B: 110, A: 255}

// colors returns each series' colour: one per group, in order of first
// appearance (see Series.Group), grey for references.
func (l Line) colors() []drawing.Color {
	idx := map[string]int{}
	out := make([]drawing.Color, len(l.Series))
	for i, s := range l.Series {
		if s.Reference {
			out[i] = grey
			continue
		}
		g := s.Group
		if g == "" {
			g = s.Name
		}
		n, ok := idx[g]
		if !ok {
			n = len(idx)
			idx[g] = n
		}
		out[i] = palette(n)
	}
	return out
}

// Colors returns the colour each series is drawn in (see Series.Group).
func (l Line) Colors() []color.RGBA {
	out := make([]color.RGBA, len(l.Series))
	for i, c := range l.colors() {
		out[i] = color.RGBA{R: c.R, G: c.G, B: c.B, A: c.A}
	}
	return out
}

// Box is a rectangle in pixels: Left and Top inclusive, Right and Bottom
// exclusive, y growing downwards.
type Box struct{ Left, Top, Right, Bottom int }

// Overlaps reports whether b and o share a pixel.
func (b Box) Overlaps(o Box) bool {
	return b.Left < o.Right && o.Left < b.Right && b.Top < o.Bottom && o.Top < b.Bottom
}

// Inside reports whether b lies within o.
func (b Box) Inside(o Box) bool {
	return b.Left >= o.Left && b.Right <= o.Right && b.Top >= o.Top && b.Bottom <= o.Bottom
}

// Layout is where a rendered chart put things, for tests.
type Layout struct {
	// Plot is the plotting area (inside the axes).
	Plot Box
	// Title is the title's box.
	Title Box
	// Labels are the boxes of the marks' labels, in Marks order (marks
	// with NaN coordinates are left out).
	Labels []Box
	// Points are the marks' positions.
	Points [][2]int
}

// markLabels draws the marks (a dot and a boxed label each) inside the
// plot area, placing each label beside its point where it fits: right,
// left, above or below, never across the axes, the title or another label.
func markLabels(marks []Point, lines [][][2]float64, toPx, markPx func(x, y float64) (int, int), out *Layout) gochart.Renderable {
	return func(r gochart.Renderer, cb gochart.Box, defaults gochart.Style) {
		if f := defaults.GetFont(); f != nil {
			r.SetFont(f)
		}
		r.SetFontSize(10)
		plot := Box{cb.Left, cb.Top, cb.Right, cb.Bottom}
		out.Plot = plot
		inner := Box{plot.Left + 2, plot.Top + 2, plot.Right - 2, plot.Bottom - 2}
		// The series as pixel polylines, so labels can keep off them.
		var segs [][4]int
		for _, ln := range lines {
			for i := 1; i < len(ln); i++ {
				x0, y0 := toPx(ln[i-1][0], ln[i-1][1])
				x1, y1 := toPx(ln[i][0], ln[i][1])
				segs = append(segs, [4]int{x0, y0, x1, y1})
			}
		}
		var placed []Box
		for _, m := range marks {
			px, py := markPx(m.X, m.Y)
			tb := r.MeasureText(m.Label)
			w, h := tb.Width()+12, tb.Height()+10
			var cands []Box
			// Beside the point first, then farther out (with a leader).
			for _, d := range []int{6, 24, 48} {
				for _, c := range [][2]int{{10, -h - d}, {10, d}, {-10 - w, -h - d}, {-10 - w, d}, {-w / 2, -h - d - 6}, {-w / 2, d + 6}} {
					cands = append(cands, Box{px + c[0], py + c[1], px + c[0] + w, py + c[1] + h})
				}
			}
			// The first candidate inside the plot, clear of the labels
			// placed before, that crosses the fewest lines.
			pick, found, best := cands[0], false, 0
			for _, c := range cands {
				if !c.Inside(inner) {
					continue
				}
				clear := true
				for _, p := range placed {
					if c.Overlaps(p) {
						clear = false
						break
					}
				}
				if !clear {
					continue
				}
				crossed := 0
				margin := Box{c.Left - 4, c.Top - 4, c.Right + 4, c.Bottom + 4}
				for _, sg := range segs {
					if segmentHitsBox(sg, margin) {
						crossed++
					}
				}
				if !found || crossed < best {
					pick, found, best = c, true, crossed
				}
			}
			if !found {
				// Nothing fits beside it: keep it inside the plot at least.
				dx := max(0, inner.Left-pick.Left) - max(0, pick.Right-inner.Right)
				dy := max(0, inner.Top-pick.Top) - max(0, pick.Bottom-inner.Bottom)
				pick = Box{pick.Left + dx, pick.Top + dy, pick.Right + dx, pick.Bottom + dy}
			}
			placed = append(placed, pick)
			out.Labels = append(out.Labels, pick)
			out.Points = append(out.Points, [2]int{px, py})

			// A leader from the point to the nearest edge of the label.
			ex := min(max(px, pick.Left), pick.Right)
			ey := min(max(py, pick.Top), pick.Bottom)
			r.SetStrokeColor(grey)
			r.SetStrokeWidth(1)
			r.SetStrokeDashArray(nil)
			r.MoveTo(px, py)
			r.LineTo(ex, ey)
			r.Stroke()
			r.SetFillColor(drawing.Color{R: 255, G: 255, B: 255, A: 235})
			r.SetStrokeColor(grey)
			r.MoveTo(pick.Left, pick.Top)
			r.LineTo(pick.Right, pick.Top)
			r.LineTo(pick.Right, pick.Bottom)
			r.LineTo(pick.Left, pick.Bottom)
			r.LineTo(pick.Left, pick.Top)
			r.Close()
			r.FillStroke()
			r.SetFontColor(drawing.Color{R: 51, G: 51, B: 51, A: 255})
			r.Text(m.Label, pick.Left+6, pick.Bottom-6)
			r.SetFillColor(grey)
			r.Circle(3, px, py)
			r.Fill()
		}
	}
}

// segmentHitsBox reports whether the segment sg (x0, y0, x1, y1) passes
// through box b (Liang–Barsky clipping).
func segmentHitsBox(sg [4]int, b Box) bool {
	x0, y0 := float64(sg[0]), float64(sg[1])
	dx, dy := float64(sg[2]-sg[0]), float64(sg[3]-sg[1])
	t0, t1 := 0.0, 1.0
	for _, e := range [][2]float64{
		{-dx, x0 - float64(b.Left)}, {dx, float64(b.Right) - x0},
		{-dy, y0 - float64(b.Top)}, {dy, float64(b.Bottom) - y0},
	} {
		p, q := e[0], e[1]
		if p == 0 {
			if q < 0 {
				return false
			}
			continue
		}
		r := q / p
		if p < 0 {
			t0 = max(t0, r)
		} else {
			t1 = min(t1, r)
		}
		if t0 > t1 {
			return false
		}
	}
	return true
}

// build converts l to a go-chart chart; lay, when not nil, receives where
// the rendering put things.
func (l Line) build(lay *Layout) (*gochart.Chart, error) {
	w, h := l.Width, l.Height
	if w <= 0 {
		w = 1024
	}
	if h <= 0 {
		h = 640
	}
	xlo, xhi, ylo, yhi := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	var series []gochart.Series
	var lines [][][2]float64 // data coordinates (log10 x on a log axis), for label placement
	palette := l.colors()
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
		ln := make([][2]float64, len(xs))
		for j := range xs {
			ln[j] = [2]float64{xs[j], ys[j]}
		}
		lines = append(lines, ln)
		st := gochart.Style{StrokeColor: palette[i], StrokeWidth: 2.5, DotColor: palette[i], DotWidth: 3.5}
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
		if s.Reference {
			st.StrokeWidth = 1.5
		}
		// The secondary y axis is go-chart's left one.
		series = append(series, gochart.ContinuousSeries{Name: s.Name, XValues: xs, YValues: ys, Style: st, YAxis: gochart.YAxisSecondary})
	}
	if len(series) == 0 {
		return nil, ErrNoData
	}
	var marks []Point
	for _, m := range l.Marks {
		if math.IsNaN(m.X) || math.IsNaN(m.Y) || math.IsInf(m.X, 0) || math.IsInf(m.Y, 0) {
			continue
		}
		marks = append(marks, m)
		ylo, yhi = min(ylo, m.Y), max(yhi, m.Y)
	}
	xmin, xmax := bounds(xlo, xhi)
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
			colors = append(colors, palette[i])
		}
	}
	rows := legendLines(drawn, w)
	bottom := 30 + rows*legendRowHeight
	c := &gochart.Chart{
		Title:      l.Title,
		TitleStyle: gochart.Style{FontSize: 14},
		Width:      w,
		Height:     h,
		Background: gochart.Style{Padding: gochart.Box{Top: 50, Left: 28, Right: 30, Bottom: bottom}},
		XAxis: gochart.XAxis{
			Name:           l.XLabel,
			ValueFormatter: numFormatter,
			Range:          &gochart.ContinuousRange{Min: xmin, Max: xmax},
			Ticks:          xticks,
			GridMajorStyle: gochart.Style{StrokeColor: drawing.Color{R: 220, G: 220, B: 220, A: 255}, StrokeWidth: 1},
		},
		// The y axis is on the left: go-chart's secondary axis. Its
		// primary (right) one is hidden.
		YAxisSecondary: gochart.YAxis{
			Name:           l.YLabel,
			ValueFormatter: numFormatter,
			Range:          &gochart.ContinuousRange{Min: ymin, Max: ymax},
			Ticks:          yticks,
			GridMajorStyle: gochart.Style{StrokeColor: drawing.Color{R: 220, G: 220, B: 220, A: 255}, StrokeWidth: 1},
		},
		// Hidden, but with the same ticks: go-chart 2.1.2 reads the
		// secondary axis's range from the primary's ticks (chart.go,
		// getRanges), and would find none.
		YAxis:  gochart.YAxis{Style: gochart.Style{Hidden: true}, Range: &gochart.ContinuousRange{Min: ymin, Max: ymax}, Ticks: yticks},
		Series: series,
	}
	if lay == nil {
		lay = &Layout{}
	}
	toPx := func(x, y float64) (int, int) {
		pl := lay.Plot
		px := pl.Left + int(math.Round((x-xmin)/(xmax-xmin)*float64(pl.Right-pl.Left)))
		py := pl.Bottom - int(math.Round((y-ymin)/(ymax-ymin)*float64(pl.Bottom-pl.Top)))
		return px, py
	}
	markPx := toPx
	if l.LogX {
		markPx = func(x, y float64) (int, int) { return toPx(math.Log10(x), y) }
	}
	c.Elements = []gochart.Renderable{
		func(r gochart.Renderer, cb gochart.Box, defaults gochart.Style) {
			lay.Plot = Box{cb.Left, cb.Top, cb.Right, cb.Bottom}
			if l.Title != "" {
				if f := defaults.GetFont(); f != nil {
					r.SetFont(f)
				}
				r.SetFontSize(14)
				tb := r.MeasureText(l.Title)
				// Where go-chart's drawTitle puts it: centred, its
				// baseline at DefaultTitleTop + the text's height.
				left := w/2 - tb.Width()/2
				base := gochart.DefaultTitleTop + tb.Height()
				lay.Title = Box{left, base - tb.Height(), left + tb.Width(), base + 2}
			}
		},
		markLabels(marks, lines, toPx, markPx, lay),
		legendBelow(drawn, colors, w, h-bottom+45),
	}
	return c, nil
}

// LabelLayout renders l and returns where its title, plot area and mark
// labels went.
func (l Line) LabelLayout() (Layout, error) {
	var lay Layout
	c, err := l.build(&lay)
	if err != nil {
		return lay, err
	}
	if err := c.Render(gochart.PNG, io.Discard); err != nil {
		return lay, err
	}
	return lay, nil
}

// Render draws l in the given format to w.
func (l Line) Render(f Format, w io.Writer) error {
	c, err := l.build(nil)
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
