package chart

import (
	"bytes"
	"errors"
	"image/png"
	"math"
	"testing"
)

func TestNiceTicks(t *testing.T) {
	tests := []struct {
		lo, hi      float64
		n           int
		first, last float64
		count       int
		label1      string
	}{
		{0, 12.6, 10, 0, 14, 8, "2"},
		{0, 0.603, 8, 0, 0.7, 8, "0.1"},
		{0.02, 0.09, 8, 0.02, 0.09, 8, "0.03"},
		{0, 1, 8, 0, 1, 6, "0.2"},
		{0, 2.3, 10, 0, 2.5, 11, "0.25"},
		{0, 1700, 8, 0, 1750, 8, "250"},
	}
	for _, tt := range tests {
		ticks, first, last := niceTicks(tt.lo, tt.hi, tt.n)
		if math.Abs(first-tt.first) > 1e-9 || math.Abs(last-tt.last) > 1e-9 || len(ticks) != tt.count || ticks[1].Label != tt.label1 {
			t.Errorf("niceTicks(%v, %v, %d) = %d ticks [%v, %v], second %q; want %d [%v, %v] %q", tt.lo, tt.hi, tt.n, len(ticks), first, last, ticks[1].Label, tt.count, tt.first, tt.last, tt.label1)
		}
	}
}

func TestLogTicks(t *testing.T) {
	ticks, first, last := logTicks(math.Log10(0.003), math.Log10(2.5))
	if first != -3 || last != 1 || ticks[0].Label != "0.001" || ticks[1].Label != "0.002" || ticks[len(ticks)-1].Label != "10" {
		t.Errorf("logTicks = %v [%v, %v]", ticks, first, last)
	}
}

func TestRender(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name string
		line Line
		err  error
	}{
		{"no series", Line{Title: "x"}, ErrNoData},
		{"only NaN", Line{Series: []Series{{Name: "a", X: []float64{nan}, Y: []float64{1}}}}, ErrNoData},
		{"one point", Line{Title: "one", Series: []Series{{Name: "a", X: []float64{2}, Y: []float64{0.5}}}}, nil},
		{"flat", Line{Title: "flat", Series: []Series{{Name: "a", X: []float64{1, 2, 3}, Y: []float64{0, 0, 0}}}}, nil},
		{"log x", Line{Title: "cdf", LogX: true, Series: []Series{{Name: "a", X: []float64{-1, 0, 0.003, 0.02, 2.5}, Y: []float64{0, 0, 0.3, 0.6, 1}}}}, nil},
		{"log x, nothing positive", Line{LogX: true, Series: []Series{{Name: "a", X: []float64{0, -2}, Y: []float64{1, 2}}}}, ErrNoData},
		{"step and marks", Line{Title: "t", XLabel: "s", YLabel: "n", Series: []Series{{Name: "a", X: []float64{0, 1, 2}, Y: []float64{1, 3, 2}, Step: true}, {Name: "b", X: []float64{0, 2}, Y: []float64{2, 2}, Dashed: true}}, Marks: []Point{{X: 1, Y: 3, Label: "peak"}}}, nil},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		err := tt.line.Render(PNG, &b)
		if !errors.Is(err, tt.err) {
			t.Errorf("%s: err %v; want %v", tt.name, err, tt.err)
			continue
		}
		if err != nil {
			continue
		}
		img, err := png.Decode(&b)
		if err != nil || img.Bounds().Dx() != 1024 || img.Bounds().Dy() != 640 {
			t.Errorf("%s: %v %v", tt.name, err, img.Bounds())
		}
		var s bytes.Buffer
		if err := tt.line.Render(SVG, &s); err != nil || !bytes.Contains(s.Bytes(), []byte("<svg")) {
			t.Errorf("%s: svg %v", tt.name, err)
		}
	}
}

func TestRenderDeterministic(t *testing.T) {
	l := Line{Title: "d", XLabel: "x", YLabel: "y", Series: []Series{{Name: "a", X: []float64{1, 2, 3}, Y: []float64{3, 1, 2}}, {Name: "b", X: []float64{1, 3}, Y: []float64{1, 1}, Step: true}}, Marks: []Point{{X: 2, Y: 1, Label: "m"}}}
	for _, f := range []Format{PNG, SVG} {
		var a, b bytes.Buffer
		if err := l.Render(f, &a); err != nil {
			t.Fatal(err)
		}
		if err := l.Render(f, &b); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a.Bytes(), b.Bytes()) {
			t.Errorf("format %d: two renders differ", f)
		}
	}
}
