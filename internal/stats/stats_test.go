package stats

import (
	"math"
	"math/rand/v2"
	"slices"
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

// TestPercentilesMatchSort: the selection-based percentiles equal those of
// a full sort on random, duplicate-heavy and sorted data.
func TestPercentilesMatchSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	ps := []float64{0, 50, 90, 95, 99, 100}
	for _, n := range []int{1, 2, 3, 17, 100, 1001, 50_000} {
		for _, kind := range []string{"random", "dups", "sorted", "reversed"} {
			xs := make([]float64, n)
			for i := range xs {
				switch kind {
				case "random":
					xs[i] = rng.NormFloat64()
				case "dups":
					xs[i] = float64(rng.IntN(5))
				case "sorted":
					xs[i] = float64(i)
				case "reversed":
					xs[i] = float64(n - i)
				}
			}
			sorted := slices.Clone(xs)
			slices.Sort(sorted)
			got := Percentiles(xs, ps...)
			for i, p := range ps {
				if want := Percentile(sorted, p); got[i] != want {
					t.Errorf("n=%d %s: p%v = %v; want %v", n, kind, p, got[i], want)
				}
			}
		}
	}
	if got := Percentiles(nil, 50); !math.IsNaN(got[0]) {
		t.Errorf("empty: %v; want NaN", got)
	}
}

func TestMeanStd(t *testing.T) {
	// np.mean([10, 1, 4, 3, 2]) = 4, np.std = sqrt(10)
	m, s := MeanStd([]float64{10, 1, 4, 3, 2})
	if m != 4 || math.Abs(s-math.Sqrt(10)) > 1e-12 {
		t.Errorf("MeanStd = %v, %v; want 4, sqrt(10)", m, s)
	}
	if m, s := MeanStd(nil); !math.IsNaN(m) || !math.IsNaN(s) {
		t.Errorf("empty: %v %v; want NaN", m, s)
	}
}
