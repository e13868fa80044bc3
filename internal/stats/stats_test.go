package stats

import (
	"math"
	"testing"
	"time"
)

func TestPercentileMatchesNumpyLinear(t *testing.T) {
	xs := []float64{1, 2, 3, 4, 10} // numpy.percentile(xs, p) with method="linear"
	for _, tc := range []struct{ p, want float64 }{
		{0, 1}, {25, 2}, {50, 3}, {90, 7.6}, {99, 9.76}, {100, 10}, {-5, 1}, {150, 10},
	} {
		if got := Percentile(xs, tc.p); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("Percentile(%v, %v) = %v; want %v", xs, tc.p, got, tc.want)
		}
	}
	if !math.IsNaN(Percentile([]float64(nil), 50)) {
		t.Error("empty sample: want NaN")
	}
	ds := []time.Duration{10, 20}
	if got := Percentile(ds, 50); got != 15 {
		t.Errorf("durations: got %v, want 15", got)
	}
}
