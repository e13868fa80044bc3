package synth

import (
	"math"
	"sort"
	"testing"
	"time"

	"github.com/vbench/vbench/metric"
	"github.com/vbench/vbench/trace"
)

// ksStatistic returns the Kolmogorov–Smirnov D of sample xs against cdf.
func ksStatistic(xs []float64, cdf func(float64) float64) float64 {
	sort.Float64s(xs)
	n := float64(len(xs))
	d := 0.0
	for i, x := range xs {
		f := cdf(x)
		d = math.Max(d, math.Max(f-float64(i)/n, float64(i+1)/n-f))
	}
	return d
}

// ksCritical is the asymptotic critical value of D at significance alpha
// = 0.001 (c(α) = sqrt(-ln(α/2)/2) ≈ 1.949).
func ksCritical(n int) float64 { return 1.949 / math.Sqrt(float64(n)) }

// gammaP is the regularized lower incomplete gamma function P(a, x)
// (series for x < a+1, continued fraction otherwise; Numerical Recipes).
func gammaP(a, x float64) float64 {
	if x <= 0 {
		return 0
	}
	lg, _ := math.Lgamma(a)
	if x < a+1 {
		sum, del, ap := 1/a, 1/a, a
		for range 1000 {
			ap++
			del *= x / ap
			sum += del
			if math.Abs(del) < math.Abs(sum)*1e-15 {
				break
			}
		}
		return sum * math.Exp(-x+a*math.Log(x)-lg)
	}
	b := x + 1 - a
	c := 1 / 1e-300
	d := 1 / b
	h := d
	for i := 1; i < 1000; i++ {
		an := -float64(i) * (float64(i) - a)
		b += 2
		d = an*d + b
		if math.Abs(d) < 1e-300 {
			d = 1e-300
		}
		c = b + an/c
		if math.Abs(c) < 1e-300 {
			c = 1e-300
		}
		d = 1 / d
		del := d * c
		h *= del
		if math.Abs(del-1) < 1e-15 {
			break
		}
	}
	return 1 - math.Exp(-x+a*math.Log(x)-lg)*h
}

func gaps(a Arrival, seed int64, n int) []float64 {
	g := NewGaps(a, seed)
	out := make([]float64, n)
	for i := range out {
		out[i] = g.Next()
	}
	return out
}

func TestGapsKolmogorovSmirnov(t *testing.T) {
	const n = 20000
	for _, tc := range []struct {
		name string
		a    Arrival
	}{
		{"poisson", Arrival{Process: trace.ArrivalPoisson, Burstiness: 1, Rate: 1}},
		{"gamma k=0.25", Arrival{Process: trace.ArrivalGamma, Burstiness: 0.25, Rate: 1}},
		{"gamma k=0.5", Arrival{Process: trace.ArrivalGamma, Burstiness: 0.5, Rate: 1}},
		{"gamma k=1", Arrival{Process: trace.ArrivalGamma, Burstiness: 1, Rate: 1}},
		{"gamma k=4", Arrival{Process: trace.ArrivalGamma, Burstiness: 4, Rate: 1}},
		{"gamma k=2 rate 10", Arrival{Process: trace.ArrivalGamma, Burstiness: 2, Rate: 10}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			xs := gaps(tc.a, 7, n)
			k, rate := tc.a.Burstiness, tc.a.Rate
			cdf := func(x float64) float64 { return gammaP(k, x*rate*k) } // scale 1/(rate·k)
			if tc.a.Process == trace.ArrivalPoisson {
				cdf = func(x float64) float64 { return 1 - math.Exp(-rate*x) }
			}
			d := ksStatistic(xs, cdf)
			if crit := ksCritical(n); d > crit {
				t.Errorf("KS D = %.4f > critical %.4f (alpha 0.001): gaps do not follow the intended distribution", d, crit)
			}
			// The wrong distribution must be rejected, or the test cannot fail.
			if tc.a.Burstiness != 1 {
				wrong := func(x float64) float64 { return 1 - math.Exp(-rate*x) }
				if d := ksStatistic(xs, wrong); d <= ksCritical(n) {
					t.Errorf("KS against the exponential accepted gamma k=%v gaps (D=%.4f)", k, d)
				}
			}
			s := metric.DistOf(xs)
			if got, want := 1/s.Mean, rate; math.Abs(got-want)/want > 0.03 {
				t.Errorf("mean rate %.4f, want %.4f ±3%%", got, want)
			}
			if want := 1 / math.Sqrt(k); math.Abs(s.CV()-want)/want > 0.05 {
				t.Errorf("CV %.4f, want 1/sqrt(k) = %.4f ±5%%", s.CV(), want)
			}
		})
	}
}

func TestConstantGaps(t *testing.T) {
	o := NewOffsets(Arrival{Process: trace.ArrivalConstant, Rate: 1}, 1)
	for i := range 5 {
		if got, want := o.Next(), time.Duration(i)*time.Second; got != want {
			t.Fatalf("offset %d = %v, want %v", i, got, want)
		}
	}
}

func TestOffsetsDeterministic(t *testing.T) {
	a := Arrival{Process: trace.ArrivalGamma, Burstiness: 0.5, Rate: 1}
	o1, o2, o3 := NewOffsets(a, 42), NewOffsets(a, 42), NewOffsets(a, 43)
	differ := false
	var prev time.Duration
	for i := range 1000 {
		x, y, z := o1.Next(), o2.Next(), o3.Next()
		if x != y {
			t.Fatalf("offset %d: %v != %v with the same seed", i, x, y)
		}
		if x < prev {
			t.Fatalf("offset %d: %v before %v", i, x, prev)
		}
		prev = x
		differ = differ || x != z
	}
	if !differ {
		t.Error("seeds 42 and 43 gave the same offsets")
	}
}

func TestParseArrival(t *testing.T) {
	for _, tc := range []struct {
		name    string
		k       float64
		want    string
		wantErr bool
	}{
		{"", 1, trace.ArrivalPoisson, false},
		{"", 0.5, trace.ArrivalGamma, false},
		{"poisson", 1, trace.ArrivalPoisson, false},
		{"poisson", 2, "", true},
		{"gamma", 1, trace.ArrivalGamma, false},
		{"constant", 1, trace.ArrivalConstant, false},
		{"uniform", 1, "", true},
		{"gamma", 0, "", true},
		{"gamma", -1, "", true},
		{"gamma", math.NaN(), "", true},
	} {
		a, err := ParseArrival(tc.name, tc.k)
		if (err != nil) != tc.wantErr || (err == nil && a.Process != tc.want) {
			t.Errorf("ParseArrival(%q, %v) = %+v, %v; want %q (error %v)", tc.name, tc.k, a, err, tc.want, tc.wantErr)
		}
	}
}
