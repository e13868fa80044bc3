// Package stats holds the one percentile definition every vbench tool
// uses: linear interpolation between closest ranks, numpy's default method
// and the one `vllm bench serve` reports, so the replayer's own lag, the
// synthesizer's summaries and the analysis agree on what "p99" means.
package stats

import (
	"math"
	"slices"
)

// Number is a sample type Percentile accepts.
type Number interface {
	~float64 | ~float32 | ~int64 | ~int32 | ~int
}

// Percentile returns the p-th percentile (0..100) of the ascending sample
// sorted: with h = (n−1)·p/100, sorted[⌊h⌋] + (h−⌊h⌋)·(sorted[⌊h⌋+1] −
// sorted[⌊h⌋]). p is clamped to [0, 100]; an empty sample gives NaN.
func Percentile[T Number](sorted []T, p float64) float64 {
	n := len(sorted)
	if n == 0 {
		return math.NaN()
	}
	if p <= 0 {
		return float64(sorted[0])
	}
	if p >= 100 {
		return float64(sorted[n-1])
	}
	h := float64(n-1) * p / 100
	lo := int(math.Floor(h))
	if lo >= n-1 {
		return float64(sorted[n-1])
	}
	return float64(sorted[lo]) + (h-float64(lo))*float64(sorted[lo+1]-sorted[lo])
}

// Percentiles returns the percentiles ps (ascending, 0..100) of the
// unsorted sample xs, each as Percentile defines it, by successive
// selection instead of a full sort: selecting rank k leaves every larger
// value after k, so the next, higher rank is selected in xs[k+1:] only.
// Millions of values summarize in linear time. xs is reordered; it must
// hold no NaN. An empty sample gives NaNs.
func Percentiles(xs []float64, ps ...float64) []float64 {
	out := make([]float64, len(ps))
	n := len(xs)
	if n == 0 {
		for i := range out {
			out[i] = math.NaN()
		}
		return out
	}
	from := 0 // xs[:from] holds values ≤ every value of xs[from:]
	for i, p := range ps {
		p = min(max(p, 0), 100)
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

// MeanStd returns the mean and population standard deviation of xs (numpy's
// np.mean and np.std, which `vllm bench serve` reports), with the two-pass
// algorithm (stable for the large, similar values of ns latencies); NaNs
// for an empty sample. Not montanaflynn/stats' Mean and
// StandardDeviationPopulation: their overflow-safe scaling takes 3.5× as
// long on the million ITL gaps of a large capture (8 ms vs 2.2 ms; see
// docs/architecture.md).
func MeanStd(xs []float64) (mean, std float64) {
	if len(xs) == 0 {
		return math.NaN(), math.NaN()
	}
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
