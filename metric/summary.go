package metric

import (
	"math"
)

// Summary is the figures of a set of requests: a replayer's level, a
// vbbench level's status, an analysis group. Summarize computes it.
type Summary struct {
	// Count is the requests summarized (every one given that was sent);
	// Completed + Cut + Failed = Count. Dropped counts those never sent.
	Count     int `json:"count"`
	Completed int `json:"completed"`
	Cut       int `json:"cut"`
	Failed    int `json:"failed"`
	Dropped   int `json:"dropped,omitempty"`
	// FailedBy counts the failed requests by error kind (cut ones are not
	// failures: see Cut).
	FailedBy map[string]int `json:"failed_by,omitempty"`
	// EstimatedTokens counts completed requests whose output length is an
	// estimate or unknown; EmptyOutput those with no output token.
	EstimatedTokens int `json:"estimated_tokens"`
	EmptyOutput     int `json:"empty_output"`
	// OutputTokens sums the output of completed requests.
	OutputTokens int64 `json:"output_tokens"`

	// NormLatency is E2E / output tokens over completed requests; its Mean
	// is the vLLM paper's normalized latency.
	NormLatency Dist `json:"norm_latency"`
	// NormLatencyWithCut adds the cut requests with their lower bound
	// (Request.NormLatencyBound): slow requests cut at the drain push it
	// up instead of vanishing, so saturation is decided on it.
	NormLatencyWithCut Dist `json:"norm_latency_with_cut"`
	// TTFT, TTFTScheduled, TPOT and E2E are over completed requests; Lag
	// over every request sent; CutElapsed is the partial latency of the
	// cut ones.
	TTFT          Dist `json:"ttft"`
	TTFTScheduled Dist `json:"ttft_scheduled"`
	TPOT          Dist `json:"tpot"`
	E2E           Dist `json:"e2e"`
	Lag           Dist `json:"lag"`
	CutElapsed    Dist `json:"cut_elapsed"`
}

// Summarize computes the Summary of reqs (the caller leaves warm-up
// traffic out when it should not count).
func Summarize(reqs []Request) Summary {
	var s Summary
	var norm, normCut, ttft, ttftS, tpot, e2e, lag, cutE []float64
	for i := range reqs {
		r := &reqs[i]
		if r.Outcome == Dropped {
			s.Dropped++
			continue
		}
		s.Count++
		lag = append(lag, r.Lag())
		switch r.Outcome {
		case OK:
			s.Completed++
			if r.TokenSource.Estimated() {
				s.EstimatedTokens++
			}
			if r.OutputTokens <= 0 {
				s.EmptyOutput++
			}
			s.OutputTokens += int64(max(r.OutputTokens, 0))
			norm = append(norm, r.NormLatency())
			normCut = append(normCut, r.NormLatency())
			ttft = append(ttft, r.TTFT())
			ttftS = append(ttftS, r.TTFTScheduled())
			tpot = append(tpot, r.TPOT())
			e2e = append(e2e, r.E2E())
		case Cut:
			s.Cut++
			normCut = append(normCut, r.NormLatencyBound())
			cutE = append(cutE, r.Elapsed())
		default:
			s.Failed++
			if s.FailedBy == nil {
				s.FailedBy = map[string]int{}
			}
			kind := r.ErrorKind
			if kind == "" {
				kind = KindOther
			}
			s.FailedBy[kind]++
		}
	}
	s.NormLatency = DistOf(norm)
	s.NormLatencyWithCut = DistOf(normCut)
	s.TTFT = DistOf(ttft)
	s.TTFTScheduled = DistOf(ttftS)
	s.TPOT = DistOf(tpot)
	s.E2E = DistOf(e2e)
	s.Lag = DistOf(lag)
	s.CutElapsed = DistOf(cutE)
	return s
}

// Window is the measurement window of a set of requests (Unix ns): from
// the first one's start to the last one's end (steady: the last one's
// start, leaving the drain out), cut at the level's deadline, after which
// only cut requests remain. 0, 0 for no request.
func Window(reqs []Request, steady bool) (from, to int64) {
	from, to = math.MaxInt64, math.MinInt64
	var deadline int64
	for i := range reqs {
		r := &reqs[i]
		if r.Outcome == Dropped {
			continue
		}
		from = min(from, r.Start)
		if steady {
			to = max(to, r.Start)
		} else {
			to = max(to, r.EndUnix())
		}
		deadline = max(deadline, r.Deadline)
	}
	if from == math.MaxInt64 {
		return 0, 0
	}
	if deadline > from && deadline < to {
		to = deadline
	}
	return from, to
}

// Throughput is the work completed inside a window.
type Throughput struct {
	// Seconds is the window's length.
	Seconds float64 `json:"seconds"`
	// Completed counts completed requests ending in the window; Good those
	// of them the good function accepted (SLOs); InputTokens and
	// OutputTokens are their prompt (where known) and output tokens.
	Completed    int   `json:"completed"`
	Good         int   `json:"good"`
	InputTokens  int64 `json:"input_tokens"`
	OutputTokens int64 `json:"output_tokens"`
	// Requests, Output and Goodput are per second of window (NaN for an
	// empty window; Goodput NaN without a good function).
	Requests float64 `json:"requests_per_s"`
	Output   float64 `json:"output_tokens_per_s"`
	Goodput  float64 `json:"goodput_per_s"`
}

// ThroughputIn counts the completed requests of reqs that end inside
// [from, to] (the window of Window), as `vllm bench serve` does over its
// benchmark duration; good, if not nil, selects the requests meeting the
// SLOs.
func ThroughputIn(reqs []Request, from, to int64, good func(*Request) bool) Throughput {
	t := Throughput{Seconds: float64(to-from) / 1e9, Goodput: math.NaN()}
	for i := range reqs {
		r := &reqs[i]
		if !r.Completed() || r.EndUnix() > to {
			continue
		}
		t.Completed++
		t.OutputTokens += int64(max(r.OutputTokens, 0))
		if r.PromptTokens > 0 {
			t.InputTokens += int64(r.PromptTokens)
		}
		if good != nil && good(r) {
			t.Good++
		}
	}
	if t.Seconds <= 0 {
		t.Requests, t.Output = math.NaN(), math.NaN()
		return t
	}
	t.Requests = float64(t.Completed) / t.Seconds
	t.Output = float64(t.OutputTokens) / t.Seconds
	if good != nil {
		t.Goodput = float64(t.Good) / t.Seconds
	}
	return t
}

// WorkIn is the work done inside [from, to) (Unix ns) per second of it,
// for short windows that cut requests in the middle (a probe's closed-loop
// step): each completed request counts by the fraction of its lifetime
// that fell inside, its output tokens by the fraction of its decode time
// (first content to end) inside — in a closed loop N requests in flight
// then give N/E2E per slot, and requests running at either edge are
// neither lost nor counted whole.
func WorkIn(reqs []Request, from, to int64) (reqPerS, tokPerS float64) {
	if to <= from {
		return 0, 0
	}
	var n, toks float64
	for i := range reqs {
		r := &reqs[i]
		if !r.Completed() || r.End <= 0 {
			continue
		}
		end := r.EndUnix()
		n += overlap(r.Start, end, from, to)
		if r.OutputTokens > 0 {
			first := r.Start + int64(r.FirstContent)
			if r.ContentChunks <= 0 || !r.Streamed {
				first = r.Start
			}
			if end > first {
				toks += float64(r.OutputTokens) * overlap(first, end, from, to)
			} else if end <= to {
				toks += float64(r.OutputTokens)
			}
		}
	}
	w := float64(to-from) / 1e9
	return n / w, toks / w
}

// overlap returns the fraction of [a, b) that lies inside [from, to).
func overlap(a, b, from, to int64) float64 {
	if b <= a {
		return 0
	}
	lo, hi := max(a, from), min(b, to)
	if hi <= lo {
		return 0
	}
	return float64(hi-lo) / float64(b-a)
}
