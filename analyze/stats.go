package analyze

import (
	"math"
	"slices"

	mstats "github.com/montanaflynn/stats"

	"github.com/vbench/vbench/internal/stats"
)

// Dist summarizes a sample of values (seconds, or s/token): the statistics
// that `vllm bench serve` reports, computed the same way. An empty sample
// gives N = 0 and every other field NaN (written as empty cells and JSON
// null), never a made-up zero.
type Dist struct {
	N    int     `json:"n"`
	Mean float64 `json:"mean"`
	// Std is the population standard deviation (numpy's np.std default,
	// which vLLM uses).
	Std float64 `json:"std"`
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// Summarize returns the Dist of xs, reordering xs in place (a partial
// sort: percentiles come from selection, not a full sort, so millions of
// ITL gaps summarize in linear time). NaN values are dropped first.
func Summarize(xs []float64) Dist {
	xs = slices.DeleteFunc(xs, math.IsNaN)
	nan := math.NaN()
	if len(xs) == 0 {
		return Dist{Mean: nan, Std: nan, P50: nan, P90: nan, P95: nan, P99: nan, Max: nan}
	}
	mean, std := meanStd(xs)
	ps := percentiles(xs, 50, 90, 95, 99)
	return Dist{N: len(xs), Mean: mean, Std: std, P50: ps[0], P90: ps[1], P95: ps[2], P99: ps[3], Max: slices.Max(xs)}
}

// percentiles returns the given ascending percentiles of xs with the same
// linear interpolation as PercentileSorted, by successive selection:
// selecting rank k leaves every larger value after k, so the next, higher
// rank is selected in xs[k+1:] only. xs is reordered.
func percentiles(xs []float64, ps ...float64) []float64 {
	out := make([]float64, len(ps))
	n := len(xs)
	from := 0 // xs[:from] holds values ≤ every value of xs[from:]
	for i, p := range ps {
		h := float64(n-1) * p / 100
		k := int(math.Floor(h))
		if k >= n-1 {
			out[i] = slices.Max(xs[from:])
			continue
		}
		if k >= from {
			selectNth(xs[from:], k-from)
			from = k
		}
		lo := xs[k]
		hi := slices.Min(xs[k+1:])
		out[i] = lo + (h-float64(k))*(hi-lo)
	}
	return out
}

// selectNth reorders xs so that xs[k] is the value a sort would put there,
// every value before it is ≤ and every value after it is ≥ (introselect:
// quickselect with a median-of-three pivot and a three-way partition, a
// full sort of the range when it degenerates).
func selectNth(xs []float64, k int) {
	lo, hi := 0, len(xs)-1
	budget := 2 * (bitsLen(len(xs)) + 1)
	for hi > lo {
		if hi-lo < 16 || budget == 0 {
			slices.Sort(xs[lo : hi+1])
			return
		}
		budget--
		mid := lo + (hi-lo)/2
		a, b, c := xs[lo], xs[mid], xs[hi]
		p := max(min(a, b), min(max(a, b), c)) // median of three
		// three-way partition: [lo,lt) < p, [lt,gt] == p, (gt,hi] > p
		lt, i, gt := lo, lo, hi
		for i <= gt {
			switch v := xs[i]; {
			case v < p:
				xs[lt], xs[i] = xs[i], xs[lt]
				lt++
				i++
			case v > p:
				xs[i], xs[gt] = xs[gt], xs[i]
				gt--
			default:
				i++
			}
		}
		switch {
		case k < lt:
			hi = lt - 1
		case k > gt:
			lo = gt + 1
		default:
			return
		}
	}
}

func bitsLen(n int) int {
	b := 0
	for ; n > 0; n >>= 1 {
		b++
	}
	return b
}

// meanStd returns the mean and population standard deviation of xs, with
// the two-pass algorithm (stable for the large, similar values of ns
// latencies). Not montanaflynn/stats' Mean and StandardDeviationPopulation:
// their overflow-safe scaling takes 3.5× as long on the million ITL gaps of
// a large capture (8 ms vs 2.2 ms; see docs/architecture.md).
func meanStd(xs []float64) (mean, std float64) {
	var sum float64
	for _, x := range xs {
		sum += x
	}
	mean = sum / float64(len(xs))
	var ss float64
	for _, x := range xs {
		d := x - mean
		ss += d * d
	}
	return mean, math.Sqrt(ss / float64(len(xs)))
}

// PercentileSorted returns the p-th percentile (0..100) of the sorted
// sample xs by linear interpolation between closest ranks: with
// h = (n−1)·p/100, the value is xs[⌊h⌋] + (h−⌊h⌋)·(xs[⌊h⌋+1] − xs[⌊h⌋]).
// This is numpy's default method ("linear"), the one `vllm bench serve`
// uses. It returns NaN for an empty sample.
func PercentileSorted(xs []float64, p float64) float64 { return stats.Percentile(xs, p) }

// CI is the mean of per-trial values with the half-width of its 95%
// confidence interval (Student's t with n−1 degrees of freedom; NaN with
// fewer than two trials).
type CI struct {
	N    int     `json:"n"`
	Mean float64 `json:"mean"`
	// Half is the half-width: the interval is Mean ± Half.
	Half float64 `json:"ci95"`
}

// MeanCI returns the mean of xs (NaN values dropped) and its 95% confidence
// interval half-width t(0.975, n−1)·s/√n with the sample standard deviation
// s: montanaflynn/stats' Mean and SEM (s/√n); the t quantile is ours (the
// library has the t distribution's tail, not its quantile).
func MeanCI(xs []float64) CI {
	v := slices.DeleteFunc(slices.Clone(xs), math.IsNaN)
	if len(v) == 0 {
		return CI{Mean: math.NaN(), Half: math.NaN()}
	}
	mean, _ := mstats.Mean(v)
	if len(v) < 2 {
		return CI{N: len(v), Mean: mean, Half: math.NaN()}
	}
	sem, _ := mstats.SEM(v)
	return CI{N: len(v), Mean: mean, Half: tQuantile975(len(v)-1) * sem}
}

// tQuantile975 returns t(0.975, df): the table up to 30 degrees of freedom,
// then the Cornish–Fisher expansion around the normal quantile (error below
// 0.001 for df > 30).
func tQuantile975(df int) float64 {
	if df < 1 {
		return math.NaN()
	}
	// The 0.975 quantile of Student's t for 1..30 degrees of freedom
	// (standard tables).
	t975 := [...]float64{
		12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
		2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
		2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
	}
	if df <= len(t975) {
		return t975[df-1]
	}
	const z = 1.959963984540054
	d := float64(df)
	z3, z5 := z*z*z, z*z*z*z*z
	return z + (z3+z)/(4*d) + (5*z5+16*z3+3*z)/(96*d*d)
}
