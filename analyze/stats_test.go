package analyze

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func newTestRand() *rand.Rand { return rand.New(rand.NewPCG(3, 4)) }

// Percentiles checked against numpy: np.percentile(x, p) with the default
// method "linear".
func TestPercentileSorted(t *testing.T) {
	xs := []float64{1, 2, 3, 4, 10}
	tests := []struct{ p, want float64 }{
		{0, 1}, {50, 3}, {90, 7.6}, {95, 8.8}, {99, 9.76}, {100, 10}, {25, 2}, {12.5, 1.5},
	}
	for _, tt := range tests {
		if got := PercentileSorted(xs, tt.p); !near(got, tt.want) {
			t.Errorf("PercentileSorted(%v, %v) = %v; want %v", xs, tt.p, got, tt.want)
		}
	}
	if got := PercentileSorted([]float64{7}, 99); got != 7 {
		t.Errorf("one value: p99 = %v; want 7", got)
	}
	if got := PercentileSorted(nil, 50); !math.IsNaN(got) {
		t.Errorf("empty: p50 = %v; want NaN", got)
	}
}

func TestSummarize(t *testing.T) {
	d := Summarize([]float64{10, 1, math.NaN(), 4, 3, 2})
	// np.mean = 4, np.std (population) = sqrt(10) ≈ 3.1623
	if d.N != 5 || !near(d.Mean, 4) || !near(d.Std, math.Sqrt(10)) || !near(d.P50, 3) || !near(d.P99, 9.76) || d.Max != 10 {
		t.Errorf("Summarize = %+v", d)
	}
	e := Summarize(nil)
	if e.N != 0 || !math.IsNaN(e.Mean) || !math.IsNaN(e.P99) {
		t.Errorf("Summarize(nil) = %+v; want N 0 and NaNs", e)
	}
}

func TestMeanCI(t *testing.T) {
	// scipy: t.ppf(0.975, 4) = 2.7764; s = 1.5811 for 1..5 → half 1.9632
	c := MeanCI([]float64{1, 2, 3, 4, 5})
	if c.N != 5 || !near(c.Mean, 3) || math.Abs(c.Half-2.776*math.Sqrt(2.5)/math.Sqrt(5)) > 1e-9 {
		t.Errorf("MeanCI = %+v", c)
	}
	if c := MeanCI([]float64{2}); c.N != 1 || c.Mean != 2 || !math.IsNaN(c.Half) {
		t.Errorf("one trial: %+v; want mean 2, NaN half", c)
	}
	// df > 30: expansion vs the table value t(0.975, 40) = 2.0211, t(0.975, 120) = 1.9799
	for _, tt := range []struct {
		df   int
		want float64
	}{{40, 2.0211}, {120, 1.9799}, {1000, 1.9623}} {
		if got := tQuantile975(tt.df); math.Abs(got-tt.want) > 0.001 {
			t.Errorf("t(0.975, %d) = %v; want %v", tt.df, got, tt.want)
		}
	}
}

func TestGauge(t *testing.T) {
	s := newSampleSeries(nil)
	if m, _, n := s.gauge("x", 0, 10); !math.IsNaN(m) || n != 0 {
		t.Errorf("no samples: %v %d", m, n)
	}
	if d := s.delta("x", 0, 10); !math.IsNaN(d) {
		t.Errorf("no samples: delta %v", d)
	}
}

func TestInFlight(t *testing.T) {
	spans := []span{{start: 0, first: 0, end: 10}, {start: 5, first: 5, end: 15}, {start: 10, first: 10, end: 20}, {start: 30, first: 30, end: 40}}
	m, mx := inFlight(spans, 0, 20)
	// [0,5):1 [5,10):2 [10,15):2 [15,20):1 → (5+10+10+5)/20 = 1.5
	if !near(m, 1.5) || mx != 2 {
		t.Errorf("inFlight = %v, %d; want 1.5, 2", m, mx)
	}
}

// TestSelectionMatchesSort: the selection-based percentiles equal those of
// a full sort on random, duplicate-heavy and sorted data.
func TestSelectionMatchesSort(t *testing.T) {
	rng := newTestRand()
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
			got := percentiles(xs, 50, 90, 95, 99, 100)
			for i, p := range []float64{50, 90, 95, 99, 100} {
				if want := PercentileSorted(sorted, p); got[i] != want {
					t.Errorf("n=%d %s: p%v = %v; want %v", n, kind, p, got[i], want)
				}
			}
		}
	}
}
