package synth

import (
	"context"
	"fmt"
	"math"
	"strings"

	"github.com/vbench/vbench/metric"
)

// DatasetStatistics is what `vbsynth stats` prints: the length
// distribution of a dataset after filtering.
type DatasetStatistics struct {
	Details       string
	Input, Output metric.Dist
	// Correlation is Pearson's r between input and output lengths.
	Correlation float64
	// Histogram is a text histogram of both lengths.
	Histogram string
}

// DatasetStats loads spec (anything --dataset accepts) with l and
// summarises its request lengths.
func DatasetStats(ctx context.Context, spec string, l *Loader) (*DatasetStatistics, error) {
	p, err := l.load(ctx, spec)
	if err != nil {
		return nil, err
	}
	in := make([]float64, len(p.items))
	out := make([]float64, len(p.items))
	for i, it := range p.items {
		in[i], out[i] = float64(it.in), float64(it.out)
	}
	st := &DatasetStatistics{Details: p.details, Correlation: pearson(in, out)}
	st.Histogram = histogram(in, out)
	st.Input, st.Output = metric.DistOf(in), metric.DistOf(out)
	return st, nil
}

func pearson(x, y []float64) float64 {
	n := float64(len(x))
	var mx, my float64
	for i := range x {
		mx += x[i]
		my += y[i]
	}
	mx /= n
	my /= n
	var sxy, sxx, syy float64
	for i := range x {
		sxy += (x[i] - mx) * (y[i] - my)
		sxx += (x[i] - mx) * (x[i] - mx)
		syy += (y[i] - my) * (y[i] - my)
	}
	if sxx == 0 || syy == 0 {
		return 0
	}
	return sxy / math.Sqrt(sxx*syy)
}

// histogram prints the share of requests per power-of-two length bucket.
func histogram(in, out []float64) string {
	bucket := func(v float64) int {
		if v < 1 {
			return 0
		}
		return int(math.Floor(math.Log2(v)))
	}
	var hi, ho [32]int
	top := 0
	for i := range in {
		a, b := bucket(in[i]), bucket(out[i])
		hi[a]++
		ho[b]++
		top = max(top, a, b)
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "%-13s %-28s %s\n", "tokens", "input", "output")
	n := float64(len(in))
	for b := 0; b <= top; b++ {
		lo, up := 1<<b, 1<<(b+1)-1
		fi, fo := float64(hi[b])/n, float64(ho[b])/n
		fmt.Fprintf(&sb, "%5d-%-7d %5.1f%% %-21s %5.1f%% %s\n", lo, up, 100*fi, strings.Repeat("#", int(math.Round(fi*40))), 100*fo, strings.Repeat("#", int(math.Round(fo*40))))
	}
	return sb.String()
}
