// Package metric defines vbench's measurements once. Request is the one
// per-request value: the replayer builds it from its own observations and
// the analysis from a capture record, both through the one decoder of
// OpenAI responses (internal/openai). Every figure — TTFT, TPOT, ITL, E2E,
// normalized latency, throughput, the censored view of cut requests — is a
// function of Requests defined here, and every consumer (the replayer's
// progress, vbbench's early stop, probe and status.json, the analysis,
// the report) calls these functions, so one capture gives one set of
// numbers wherever it is shown.
//
// The definitions follow `vllm bench serve` (TTFT, TPOT = (E2E − TTFT) /
// (output tokens − 1), ITL between content chunks, numpy-linear
// percentiles) and the vLLM paper (normalized latency = the mean over
// requests of E2E / output tokens). Seconds are float64; an undefined
// value is NaN, never a made-up zero.
package metric

import (
	"math"
	"strconv"
	"time"
)

// Outcome is how a request counts in every figure.
type Outcome string

// Outcomes.
const (
	// OK: the response arrived whole (2xx, the stream ended with [DONE] or
	// a finish_reason, no error event). Only OK requests have latencies.
	OK Outcome = "ok"
	// Cut: the replayer cut the request at its level's drain deadline
	// while it still ran. It is censored, not failed: its latency is at
	// least what it had waited (Elapsed), and it is counted that way in
	// the censored figures (NormLatencyBound).
	Cut Outcome = "cut"
	// Failed: anything else that was sent (ErrorKind says what).
	Failed Outcome = "failed"
	// Dropped: never sent (the replayer's concurrency cap with --on-full
	// drop, or a conversation turn whose previous turn failed).
	Dropped Outcome = "dropped"
)

// Error kinds (Request.ErrorKind). A capture record adds the proxy's
// outcomes (client_aborted, upstream_error, idle_timeout, …) as kinds of
// their own; HTTP statuses are KindHTTP + the code ("http_500").
const (
	KindHTTP        = "http_"        // prefix: http_404, http_500, ...
	KindCut         = "cut"          // cut at the level's drain deadline (Outcome Cut)
	KindTimeout     = "timeout"      // the replayer's per-request --timeout expired
	KindReset       = "reset"        // connection reset or truncated mid-response
	KindConnect     = "connect"      // no connection (refused, unreachable)
	KindTruncated   = "truncated"    // the body ended before [DONE] or a finish_reason (or is not JSON)
	KindStreamError = "stream_error" // the response carried an error event or object
	KindDropped     = "dropped"      // not sent (Outcome Dropped)
	KindIncomplete  = "incomplete"   // a capture record without an outcome (a crashed writer)
	KindOther       = "other"
)

// HTTPKind is the error kind of a non-2xx HTTP status.
func HTTPKind(status int) string { return KindHTTP + strconv.Itoa(status) }

// OutcomeOf returns the outcome of a request with error kind kind ("" for
// one that completed).
func OutcomeOf(kind string) Outcome {
	switch kind {
	case "":
		return OK
	case KindCut:
		return Cut
	case KindDropped:
		return Dropped
	}
	return Failed
}

// TokenSource says where a request's output length came from, best first.
type TokenSource string

// Token sources.
const (
	// SourceUsageChunks: the server's per-chunk usage
	// (stream_options.continuous_usage_stats).
	SourceUsageChunks TokenSource = "usage_per_chunk"
	// SourceUsage: the final usage object of the stream, or the usage of
	// a non-streamed JSON body.
	SourceUsage TokenSource = "usage"
	// SourceTokenIDs: token ids carried in the stream.
	SourceTokenIDs TokenSource = "token_ids"
	// SourceChunks: the number of content events — an estimate: an event
	// may carry several tokens.
	SourceChunks TokenSource = "chunks_estimate"
	// SourceNone: the response said nothing about its output.
	SourceNone TokenSource = "none"
)

// Estimated reports whether the output length is an estimate or unknown.
func (s TokenSource) Estimated() bool { return s == SourceChunks || s == SourceNone || s == "" }

// Request is one request as measured. Times are Unix ns; FirstByte,
// FirstContent and End are offsets from Start on one monotonic clock.
type Request struct {
	// Capture is the input it was read from (the analysis); ID its record
	// ID there. Index is its trace index (-1: untagged traffic).
	Capture string `json:"capture,omitempty"`
	ID      uint64 `json:"id,omitempty"`
	Index   int64  `json:"index"`
	// Key is the analysis group it belongs to.
	Key string `json:"key,omitempty"`

	// The replayer's tags (X-VB-*) and labels.
	Run       string  `json:"run,omitempty"`
	Trial     string  `json:"trial,omitempty"`
	Level     string  `json:"level,omitempty"`
	Rate      float64 `json:"rate,omitempty"`
	Variant   string  `json:"variant,omitempty"`
	Model     string  `json:"model,omitempty"`
	TraceHash string  `json:"trace_hash,omitempty"`
	Warmup    bool    `json:"warmup,omitempty"`

	// Scheduled is when the replayer was due to send it and Sent when it
	// did (0: untagged); Start is where every latency starts: the send (the
	// replayer's own view) or the proxy's receive time (a capture).
	// Deadline is the level's cut time (0: none).
	Scheduled int64 `json:"scheduled,omitempty"`
	Sent      int64 `json:"sent,omitempty"`
	Start     int64 `json:"start"`
	Deadline  int64 `json:"deadline,omitempty"`
	// FirstByte is the first response byte (Bytes > 0), FirstContent the
	// first read that carried generated content (ContentChunks > 0), End
	// the last byte of a complete response, or when it failed or was cut.
	FirstByte    time.Duration `json:"first_byte_ns,omitempty"`
	FirstContent time.Duration `json:"first_content_ns,omitempty"`
	End          time.Duration `json:"end_ns"`

	// Status is the HTTP status (0: no response). Outcome and ErrorKind
	// say how it ended; Error is a message. ProxyOutcome is the capture
	// record's transport outcome (a capture only): "ok" there means the
	// proxy forwarded the response to its end, whatever its status.
	Status       int     `json:"status"`
	Outcome      Outcome `json:"outcome"`
	ErrorKind    string  `json:"error_kind,omitempty"`
	Error        string  `json:"error,omitempty"`
	ProxyOutcome string  `json:"proxy_outcome,omitempty"`

	// Streamed says the response was SSE; a non-streamed response has no
	// TTFT, TPOT or ITL (the client sees its content only at the end).
	Streamed bool `json:"streamed"`
	// OutputTokens is the output length and TokenSource where it came
	// from; PromptTokens the server's prompt length (-1: unknown);
	// ExpectedOutput the output length the trace asked for (0: unknown),
	// which bounds a cut request's normalized latency.
	OutputTokens   int32       `json:"output_tokens"`
	TokenSource    TokenSource `json:"token_source"`
	PromptTokens   int32       `json:"prompt_tokens"`
	ExpectedOutput int32       `json:"expected_output,omitempty"`
	// ContentEvents counts the events that carried content, ContentChunks
	// the reads (chunks) that did; Bytes is the size of the response body.
	ContentEvents int32 `json:"content_events"`
	ContentChunks int32 `json:"content_chunks"`
	Bytes         int64 `json:"bytes"`
	// ITLSum and ITLGaps sum the gaps between consecutive content chunks.
	ITLSum  time.Duration `json:"itl_sum_ns,omitempty"`
	ITLGaps int32         `json:"itl_gaps,omitempty"`
}

func secs(d time.Duration) float64 { return d.Seconds() }

// Completed reports whether the request counts as completed (Outcome OK).
func (r *Request) Completed() bool { return r.Outcome == OK }

// Censored reports whether the request was cut while it ran.
func (r *Request) Censored() bool { return r.Outcome == Cut }

// Measured reports whether the request belongs in a level's figures: it
// was sent and is not warm-up traffic.
func (r *Request) Measured() bool { return !r.Warmup && r.Outcome != Dropped }

// EndUnix is the Unix ns of the request's end.
func (r *Request) EndUnix() int64 { return r.Start + int64(r.End) }

// Lag is Sent − Scheduled in seconds: how late the replayer sent it (NaN
// untagged).
func (r *Request) Lag() float64 {
	if r.Scheduled <= 0 || r.Sent <= 0 {
		return math.NaN()
	}
	return float64(r.Sent-r.Scheduled) / 1e9
}

// TTFT is the time to the first content chunk in seconds (NaN: no content
// seen, or a non-streamed response), whatever the outcome.
func (r *Request) TTFT() float64 {
	if !r.Streamed || r.ContentChunks <= 0 {
		return math.NaN()
	}
	return secs(r.FirstContent)
}

// TTFTScheduled is TTFT counted from the scheduled send: it includes the
// replayer's (and a queue's) delay.
func (r *Request) TTFTScheduled() float64 {
	if r.Scheduled <= 0 || !r.Streamed || r.ContentChunks <= 0 {
		return math.NaN()
	}
	return float64(r.Start+int64(r.FirstContent)-r.Scheduled) / 1e9
}

// Elapsed is End in seconds, for any outcome: a cut request's partial
// latency.
func (r *Request) Elapsed() float64 { return secs(r.End) }

// E2E is the end-to-end latency in seconds of a completed request (NaN
// otherwise).
func (r *Request) E2E() float64 {
	if !r.Completed() {
		return math.NaN()
	}
	return secs(r.End)
}

// TPOT is (E2E − TTFT) / (output tokens − 1) of a completed streamed
// request with more than one output token (NaN otherwise), as `vllm bench
// serve` defines it.
func (r *Request) TPOT() float64 {
	if !r.Completed() || r.OutputTokens <= 1 {
		return math.NaN()
	}
	ttft := r.TTFT()
	if math.IsNaN(ttft) {
		return math.NaN()
	}
	return (r.E2E() - ttft) / float64(r.OutputTokens-1)
}

// ITLMean is the mean gap between consecutive content chunks (NaN with
// fewer than two).
func (r *Request) ITLMean() float64 {
	if r.ITLGaps <= 0 {
		return math.NaN()
	}
	return secs(r.ITLSum) / float64(r.ITLGaps)
}

// NormLatency is E2E / output tokens in s/token of a completed request
// with output (NaN otherwise): the vLLM paper's per-request figure.
func (r *Request) NormLatency() float64 {
	if !r.Completed() || r.OutputTokens <= 0 {
		return math.NaN()
	}
	return r.E2E() / float64(r.OutputTokens)
}

// NormLatencyBound is NormLatency for a completed request and, for a cut
// one, a lower bound of the normalized latency it would have had: its
// partial latency over the larger of the output it was asked for and the
// output it had produced (the request would have taken at least that long
// for at most that many tokens). NaN when neither is known, or for other
// outcomes.
func (r *Request) NormLatencyBound() float64 {
	switch r.Outcome {
	case OK:
		return r.NormLatency()
	case Cut:
		n := max(r.ExpectedOutput, r.OutputTokens)
		if n <= 0 {
			return math.NaN()
		}
		return r.Elapsed() / float64(n)
	}
	return math.NaN()
}
