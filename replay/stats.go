package replay

import (
	"math"
	"slices"
	"time"

	"github.com/vbench/vbench/internal/stats"
)

// Dist summarizes a distribution of durations. Percentiles interpolate
// linearly between closest ranks (numpy's default), so figures match
// `vllm bench serve` on the same data.
type Dist struct {
	Count int           `json:"count"`
	Mean  time.Duration `json:"mean_ns"`
	Min   time.Duration `json:"min_ns"`
	P50   time.Duration `json:"p50_ns"`
	P90   time.Duration `json:"p90_ns"`
	P99   time.Duration `json:"p99_ns"`
	Max   time.Duration `json:"max_ns"`
}

// Summarize returns the distribution of v; it sorts v in place.
func Summarize(v []time.Duration) Dist {
	if len(v) == 0 {
		return Dist{}
	}
	slices.Sort(v)
	var sum float64
	for _, x := range v {
		sum += float64(x)
	}
	return Dist{
		Count: len(v),
		Mean:  time.Duration(math.Round(sum / float64(len(v)))),
		Min:   v[0],
		P50:   Percentile(v, 50),
		P90:   Percentile(v, 90),
		P99:   Percentile(v, 99),
		Max:   v[len(v)-1],
	}
}

// Percentile returns the p-th percentile (0..100) of sorted by linear
// interpolation between the closest ranks: rank = p/100·(n−1).
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return time.Duration(math.Round(stats.Percentile(sorted, p)))
}
