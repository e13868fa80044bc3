package synth

import (
	"fmt"
	"io"
	"math"
	"sort"
	"time"

	"github.com/vbench/vbench/internal/stats"
	"github.com/vbench/vbench/trace"
)

// Dist summarises a sample: count, mean, standard deviation, min, max and
// percentiles by linear interpolation between closest ranks (numpy's
// default).
type Dist struct {
	N             int
	Mean, Std     float64
	Min, Max      float64
	P50, P90, P99 float64
	CV            float64 // Std/Mean; 0 when the mean is 0
}

// Summarize returns the Dist of xs (which it sorts in place).
func Summarize(xs []float64) Dist {
	d := Dist{N: len(xs)}
	if len(xs) == 0 {
		return d
	}
	sort.Float64s(xs)
	var sum float64
	for _, x := range xs {
		sum += x
	}
	d.Mean = sum / float64(len(xs))
	var ss float64
	for _, x := range xs {
		ss += (x - d.Mean) * (x - d.Mean)
	}
	d.Std = math.Sqrt(ss / float64(len(xs)))
	if d.Mean != 0 {
		d.CV = d.Std / d.Mean
	}
	d.Min, d.Max = xs[0], xs[len(xs)-1]
	d.P50, d.P90, d.P99 = Percentile(xs, 50), Percentile(xs, 90), Percentile(xs, 99)
	return d
}

// Percentile returns the p-th percentile of sorted xs by linear
// interpolation: rank p/100·(n−1).
func Percentile(sorted []float64, p float64) float64 { return stats.Percentile(sorted, p) }

func (d Dist) String() string {
	return fmt.Sprintf("mean %.2f  std %.2f  p50 %.1f  p90 %.1f  p99 %.1f  min %.0f  max %.0f", d.Mean, d.Std, d.P50, d.P90, d.P99, d.Min, d.Max)
}

// TraceSummary holds the statistics `vbsynth inspect` prints.
type TraceSummary struct {
	Header        trace.Header
	Count         int64
	Input, Output Dist
	Gaps          Dist // inter-arrival gaps in seconds
	MeasuredRate  float64
	PromptKinds   map[string]int64
	Endpoints     map[string]int64
}

// SummarizeTrace reads every record of rr.
func SummarizeTrace(rr trace.RecordReader) (*TraceSummary, error) {
	s := &TraceSummary{Header: rr.Header(), PromptKinds: map[string]int64{}, Endpoints: map[string]int64{}}
	var in, out, gaps []float64
	var req trace.Request
	var last time.Duration
	for {
		err := rr.Read(&req)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if s.Count > 0 {
			gaps = append(gaps, (req.Offset - last).Seconds())
		}
		last = req.Offset
		s.Count++
		in = append(in, float64(req.InputTokens))
		out = append(out, float64(req.OutputTokens))
		s.Endpoints[req.Endpoint]++
		switch {
		case len(req.Body) > 0:
			s.PromptKinds["body"]++
		case req.Kind() == trace.PromptTokens:
			s.PromptKinds["token ids"]++
		case req.Kind() == trace.PromptMessages:
			s.PromptKinds["messages"]++
		default:
			s.PromptKinds["text"]++
		}
	}
	s.Input, s.Output, s.Gaps = Summarize(in), Summarize(out), Summarize(gaps)
	if s.Count > 1 && last > 0 {
		s.MeasuredRate = float64(s.Count-1) / last.Seconds()
	}
	return s, nil
}
