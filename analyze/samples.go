package analyze

import (
	"cmp"
	"math"
	"slices"

	"github.com/vbench/vbench/capture"
)

// sampleSeries holds server-metric samples by name, each in time order.
type sampleSeries struct {
	byName map[string][]capture.Sample
}

func newSampleSeries(samples []capture.Sample) *sampleSeries {
	s := &sampleSeries{byName: map[string][]capture.Sample{}}
	for _, x := range samples {
		s.byName[x.Name] = append(s.byName[x.Name], x)
	}
	for _, v := range s.byName {
		slices.SortStableFunc(v, func(a, b capture.Sample) int { return cmp.Compare(a.At, b.At) })
	}
	return s
}

// gauge returns the time-weighted mean of a gauge over [from, to), its
// largest value there and the number of samples inside. A sample's value
// holds until the next sample; the sample before from (if any) gives the
// value at from. Time before the first known value, and time while the
// value is NaN (unknown), is not counted. NaN when no value is known inside
// the window.
func (s *sampleSeries) gauge(name string, from, to int64) (mean, maxV float64, n int) {
	xs := s.byName[name]
	mean, maxV = math.NaN(), math.NaN()
	if len(xs) == 0 || to <= from {
		return mean, maxV, 0
	}
	// i: first sample at or after from.
	i, _ := slices.BinarySearchFunc(xs, from, func(x capture.Sample, t int64) int { return cmp.Compare(x.At, t) })
	var area float64
	var covered int64
	t := from
	v, have := 0.0, false
	if i > 0 {
		v, have = xs[i-1].Value, !math.IsNaN(xs[i-1].Value)
		maxV = v
	}
	for ; i < len(xs) && xs[i].At < to; i++ {
		if have {
			area += v * float64(xs[i].At-t)
			covered += xs[i].At - t
		}
		t, v = xs[i].At, xs[i].Value
		have = !math.IsNaN(v)
		n++
		if math.IsNaN(maxV) || v > maxV {
			maxV = v
		}
	}
	if have {
		area += v * float64(to-t)
		covered += to - t
	}
	if covered > 0 {
		mean = area / float64(covered)
	}
	return mean, maxV, n
}

// delta returns the increase of a counter over [from, to]: the last value
// at or before to minus the last value at or before from (or the first
// value inside the window). A counter reset (a restarted server) counts
// the value after the reset as new. NaN without samples.
func (s *sampleSeries) delta(name string, from, to int64) float64 {
	xs := s.byName[name]
	i, _ := slices.BinarySearchFunc(xs, from, func(x capture.Sample, t int64) int { return cmp.Compare(x.At, t) })
	var prev float64
	switch {
	case i > 0:
		prev = xs[i-1].Value
	case i < len(xs) && xs[i].At <= to:
		prev = xs[i].Value
	default:
		return math.NaN()
	}
	var d float64
	for ; i < len(xs) && xs[i].At <= to; i++ {
		if xs[i].Value >= prev {
			d += xs[i].Value - prev
		} else {
			d += xs[i].Value
		}
		prev = xs[i].Value
	}
	return d
}

// span is one exchange open at the proxy from Start to End (Unix ns).
// span is one exchange's life at the proxy: start (request received), first
// (first content chunk; end when none came) and end.
type span struct{ start, first, end int64 }

// decodingSpans and queuedSpans split spans at the first content chunk: a
// request that has streamed a token and not yet its last is being decoded
// (continuous batching advances every such request one token per step); one
// in flight without a token yet is queued or in prefill. Together they are
// the client-side estimate of the server's batch and queue, for servers that
// publish no metrics.
func decodingSpans(spans []span) []span {
	out := make([]span, 0, len(spans))
	for _, s := range spans {
		if s.first < s.end {
			out = append(out, span{start: s.first, first: s.first, end: s.end})
		}
	}
	return out
}

func queuedSpans(spans []span) []span {
	out := make([]span, 0, len(spans))
	for _, s := range spans {
		if s.start < s.first {
			out = append(out, span{start: s.start, first: s.first, end: s.first})
		}
	}
	return out
}

// inFlight returns the time-weighted mean and the maximum number of open
// exchanges over [from, to). Exchanges that end at the instant another
// starts are not counted together.
func inFlight(spans []span, from, to int64) (mean float64, maxN int) {
	if to <= from {
		return math.NaN(), 0
	}
	type ev struct {
		t int64
		d int
	}
	evs := make([]ev, 0, 2*len(spans))
	open := 0
	for _, s := range spans {
		if s.end <= from || s.start >= to {
			continue
		}
		if s.start <= from {
			open++
		} else {
			evs = append(evs, ev{s.start, +1})
		}
		if s.end < to {
			evs = append(evs, ev{s.end, -1})
		}
	}
	slices.SortFunc(evs, func(a, b ev) int { return cmp.Or(cmp.Compare(a.t, b.t), cmp.Compare(a.d, b.d)) })
	maxN = open
	var area float64
	t := from
	for _, e := range evs {
		area += float64(open) * float64(e.t-t)
		t = e.t
		open += e.d
		maxN = max(maxN, open)
	}
	area += float64(open) * float64(to-t)
	return area / float64(to-from), maxN
}

// Series is one step line of a group's timeline: Y at the instants X
// (seconds since the window start).
type Series struct {
	Name string
	X, Y []float64
}

// Timeline is the in-flight view of group g's window: the exchanges open at
// the proxy at points+1 evenly spaced instants — all of them, and split at
// the first content chunk into decoding and queued (the client-side batch
// and queue estimate) — then the server's running and waiting gauges as
// scraped (when stored). Empty for a group without a window.
func (res *Result) Timeline(g *Group, points int) []Series {
	acc := &groupAcc{captures: map[string]bool{}}
	for _, c := range g.Captures {
		acc.captures[c] = true
	}
	spans, series := res.groupInputs(acc)
	from, to := g.WindowStart, g.WindowEnd
	if to <= from || points < 1 {
		return nil
	}
	var out []Series
	for _, c := range []struct {
		name  string
		spans []span
	}{
		{"in flight at the proxy", spans},
		{"decoding (client-side estimate)", decodingSpans(spans)},
		{"queued or in prefill (client-side)", queuedSpans(spans)},
	} {
		var starts, ends []int64
		for _, s := range c.spans {
			if s.end > from && s.start < to {
				starts = append(starts, s.start)
				ends = append(ends, s.end)
			}
		}
		slices.Sort(starts)
		slices.Sort(ends)
		xs := make([]float64, points+1)
		ys := make([]float64, points+1)
		for i := range xs {
			t := from + int64(float64(to-from)*float64(i)/float64(points))
			n, _ := slices.BinarySearch(starts, t+1) // started at or before t
			m, _ := slices.BinarySearch(ends, t+1)   // ended at or before t
			xs[i] = secs(t - from)
			ys[i] = float64(n - m)
		}
		out = append(out, Series{Name: c.name, X: xs, Y: ys})
	}
	if series == nil {
		return out
	}
	for _, m := range []struct{ name, label string }{{capture.MetricRunning, "batched by the server (running)"}, {capture.MetricWaiting, "waiting at the server"}} {
		var sx, sy []float64
		for _, s := range series.byName[m.name] {
			if s.At >= from && s.At <= to {
				sx = append(sx, secs(s.At-from))
				sy = append(sy, s.Value)
			}
		}
		if len(sx) > 0 {
			out = append(out, Series{Name: m.label, X: sx, Y: sy})
		}
	}
	return out
}
