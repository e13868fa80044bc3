package synth

import (
	"io"
	"time"

	"github.com/vbench/vbench/metric"
	"github.com/vbench/vbench/trace"
)

// TraceSummary holds the statistics `vbsynth inspect` prints.
type TraceSummary struct {
	Header        trace.Header
	Count         int64
	Input, Output metric.Dist
	Gaps          metric.Dist // inter-arrival gaps in seconds
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
	s.Input, s.Output, s.Gaps = metric.DistOf(in), metric.DistOf(out), metric.DistOf(gaps)
	if s.Count > 1 && last > 0 {
		s.MeasuredRate = float64(s.Count-1) / last.Seconds()
	}
	return s, nil
}
