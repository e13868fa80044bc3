// Package stats holds the one percentile definition every vbench tool
// uses: linear interpolation between closest ranks, numpy's default method
// and the one `vllm bench serve` reports, so the replayer's own lag, the
// synthesizer's summaries and the analysis agree on what "p99" means.
package stats

import "math"

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
