package analyze

import (
	"math"
	"testing"

	"github.com/vbench/vbench/metric"
)

// TestRateRatio: the one rule for a ratio of sustained rates and the bound
// it is, as the report and studyreport print it.
func TestRateRatio(t *testing.T) {
	nan := math.NaN()
	exact := func(r float64) Saturation { return Saturation{Rate: r, Next: 2 * r} }
	never := func(r float64) Saturation { return Saturation{Rate: r, Never: true} }
	over := Saturation{Rate: nan, Over: true, Next: 2}
	for _, tt := range []struct {
		name  string
		x, y  Saturation
		ratio float64
		bound string
		ok    bool
	}{
		{"both crossed", exact(12), exact(4), 3, "", true},
		{"numerator never crossed", never(28), exact(4), 7, "≥", true},
		{"denominator never crossed", exact(8), never(16), 0.5, "≤", true},
		{"neither crossed", never(8), never(4), 0, "", false},
		{"numerator sustained none", over, exact(4), 0, "", false},
		{"denominator sustained none", exact(4), over, 0, "", false},
	} {
		r, b, ok := RateRatio(tt.x, tt.y)
		if r != tt.ratio || b != tt.bound || ok != tt.ok {
			t.Errorf("%s: RateRatio = %v %q %v; want %v %q %v", tt.name, r, b, ok, tt.ratio, tt.bound, tt.ok)
		}
	}
}

// TestSaturationNext: the first rate not sustained is kept as Next (the
// lowest rate when none was), the knee's other end.
func TestSaturationNext(t *testing.T) {
	agg := func(v string, rate, lat float64) *Aggregate {
		return &Aggregate{Variant: v, Rate: rate, Completed: 10, NormLatencyWithCut: metric.CI{Mean: lat, N: 1}}
	}
	got := SaturationAt([]*Aggregate{agg("a", 4, 0.01), agg("a", 8, 0.5), agg("a", 12, 0.9), agg("b", 2, 0.5), agg("c", 2, 0.01)}, 0.2)
	want := map[string][2]float64{"a": {4, 8}, "b": {math.NaN(), 2}, "c": {2, 0}}
	for _, s := range got {
		w := want[s.Variant]
		if !(s.Rate == w[0] || math.IsNaN(s.Rate) && math.IsNaN(w[0])) || s.Next != w[1] {
			t.Errorf("%s: rate %v next %v; want %v next %v", s.Variant, s.Rate, s.Next, w[0], w[1])
		}
	}
}
