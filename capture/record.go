// Package capture owns the Badger store of a trial: one record per HTTP
// exchange seen by the proxy (with the timeline of every response chunk),
// server-metric samples scraped from the upstream, and run metadata.
//
// Records are the value that flows from the proxy to the analysis. All
// timestamps are Unix nanoseconds from Go's clock (wall time anchored once
// per process, advanced by the monotonic reading); times inside a record are
// offsets in nanoseconds from Record.Received, taken on the monotonic clock,
// so a wall-clock step can never reorder a record's chunks.
package capture

import (
	"fmt"
	"strings"
)

// Outcome says how an exchange ended.
type Outcome string

// Outcomes of an exchange.
const (
	// OutcomeOK: the upstream response was forwarded to its end.
	OutcomeOK Outcome = "ok"
	// OutcomeClientAborted: the client went away before the end; the
	// upstream request was closed so the engine aborts it.
	OutcomeClientAborted Outcome = "client_aborted"
	// OutcomeUpstreamError: the upstream failed mid-response (reset,
	// truncated chunked encoding, process killed); Chunks holds the partial
	// timeline.
	OutcomeUpstreamError Outcome = "upstream_error"
	// OutcomeUpstreamUnreachable: no response on an established
	// connection (reset or closed before headers, not HTTP); the client
	// got a 502. A failed connect is OutcomeUpstreamConnect.
	OutcomeUpstreamUnreachable Outcome = "upstream_unreachable"
	// OutcomeIdleTimeout: no byte from the upstream for longer than the
	// idle timeout between chunks.
	OutcomeIdleTimeout Outcome = "idle_timeout"
	// OutcomeTooLarge: a request or response body exceeded the proxy's limit.
	OutcomeTooLarge Outcome = "too_large"
	// OutcomeShutdown: the proxy was shutting down and cut the exchange at
	// its drain deadline.
	OutcomeShutdown Outcome = "proxy_shutdown"
	// OutcomeUpstreamHeaderTimeout: the upstream took the request but sent
	// no response headers within the proxy's header timeout; the client
	// got a 504 and the upstream connection was closed.
	OutcomeUpstreamHeaderTimeout Outcome = "upstream_header_timeout"
	// OutcomeUpstreamConnect: no connection to the upstream could be made
	// (refused, unreachable, no answer within the dial timeout); the
	// client got a 502 and the request never reached the server.
	OutcomeUpstreamConnect Outcome = "upstream_connect_error"
	// OutcomeOverloaded: the proxy refused the request with a 503 before
	// forwarding it: no room in its memory budget for the body, or no
	// file descriptor for an upstream connection.
	OutcomeOverloaded Outcome = "proxy_overloaded"
)

// Outcomes lists every outcome, in the order above.
func Outcomes() []Outcome {
	return []Outcome{OutcomeOK, OutcomeClientAborted, OutcomeUpstreamError, OutcomeUpstreamUnreachable, OutcomeIdleTimeout, OutcomeTooLarge, OutcomeShutdown, OutcomeUpstreamHeaderTimeout, OutcomeUpstreamConnect, OutcomeOverloaded}
}

// ParseOutcome returns the outcome named s, or an error that lists the
// valid names (for flags such as --outcome).
func ParseOutcome(s string) (Outcome, error) {
	for _, o := range Outcomes() {
		if string(o) == s {
			return o, nil
		}
	}
	names := make([]string, 0, 8)
	for _, o := range Outcomes() {
		names = append(names, string(o))
	}
	return "", fmt.Errorf("capture: unknown outcome %q (want one of %s)", s, strings.Join(names, ", "))
}

// Header is one HTTP header as recorded (secrets redacted unless the proxy
// was told to keep them).
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Redacted is the value stored in place of a secret header.
const Redacted = "[REDACTED]"

// Tags are what the replayer says about a request through X-VB-* headers.
// The proxy records them and strips them before forwarding. Untagged traffic
// (a real application) has zero Tags with Index -1.
type Tags struct {
	// Run identifies one replayer invocation (X-VB-Run).
	Run string `json:"run,omitempty"`
	// Trial identifies the trial (X-VB-Trial).
	Trial string `json:"trial,omitempty"`
	// Level is the rate level label, e.g. "10" for 10 req/s (X-VB-Level).
	Level string `json:"level,omitempty"`
	// Rate is the asked request rate of the level in req/s (X-VB-Rate).
	Rate float64 `json:"rate,omitempty"`
	// Index is the trace index of the request, -1 if untagged (X-VB-Index).
	Index int64 `json:"index"`
	// Scheduled is the Unix ns at which the replayer was due to send the
	// request (X-VB-Scheduled).
	Scheduled int64 `json:"scheduled,omitempty"`
	// Sent is the Unix ns at which the replayer actually sent it (X-VB-Sent).
	Sent int64 `json:"sent,omitempty"`
	// Deadline is the Unix ns after which the replayer cuts the request at
	// the end of its level (X-VB-Deadline); a client abort after it is a cut.
	Deadline int64 `json:"deadline,omitempty"`
	// Warmup marks warm-up requests that are not measured (X-VB-Warmup: 1).
	Warmup bool `json:"warmup,omitempty"`
	// TraceHash is the content hash of the replayed trace (X-VB-Trace).
	TraceHash string `json:"trace_hash,omitempty"`
	// Extra holds any other X-VB-* header, keyed by the lower-case suffix
	// (X-VB-Label-Variant: a → "label-variant": "a").
	Extra map[string]string `json:"extra,omitempty"`
}

// Chunk is one read from the upstream response body, forwarded to the client
// as one write-and-flush.
type Chunk struct {
	// At is the time the bytes were read, in ns since Record.Received.
	At int64 `json:"at"`
	// Size is the number of bytes.
	Size int32 `json:"size"`
	// Events is the number of SSE events completed by this chunk.
	Events int16 `json:"events,omitempty"`
	// Content is the number of completed events that carry generated
	// content (a non-empty text or delta, or token ids).
	Content int16 `json:"content,omitempty"`
	// Tokens is the number of output tokens completed in this chunk when
	// the stream says so (per-chunk usage from continuous_usage_stats, or
	// token ids); -1 when unknown.
	Tokens int32 `json:"tokens"`
	// Usage is the cumulative completion_tokens of the last usage object in
	// this chunk; -1 when the chunk carries no usage.
	Usage int32 `json:"usage"`
}

// Record is one exchange seen by the proxy.
type Record struct {
	// ID is the store's sequence number: IDs increase in arrival order.
	ID uint64 `json:"id"`
	// Labels are the proxy's --label values (variant=..., rate=...).
	Labels map[string]string `json:"labels,omitempty"`
	// Tags are the replayer's X-VB-* values.
	Tags Tags `json:"tags"`

	Method string `json:"method"`
	// Path is the request URI (path and query).
	Path string `json:"path"`
	// RequestHeaders are the client's headers minus X-VB-* (secrets redacted).
	RequestHeaders []Header `json:"request_headers,omitempty"`
	// Status is the upstream's HTTP status; 0 when there was no response.
	Status int `json:"status"`
	// ContentType is the response's Content-Type.
	ContentType string `json:"content_type,omitempty"`

	// Received is the Unix ns at which the proxy had the whole request.
	Received int64 `json:"received"`
	// Forwarded is when the request was handed to the upstream (ns since
	// Received).
	Forwarded int64 `json:"forwarded"`
	// Headers is when the response headers arrived (ns since Received); 0
	// with no response.
	Headers int64 `json:"headers"`
	// End is when the exchange ended: last byte forwarded or failure (ns
	// since Received).
	End int64 `json:"end"`
	// Chunks is the timeline of the response body, one entry per read.
	Chunks []Chunk `json:"chunks,omitempty"`

	// Outcome says how the exchange ended; Error gives details.
	Outcome Outcome `json:"outcome"`
	Error   string  `json:"error,omitempty"`

	// PromptTokens and CompletionTokens are the last usage the response
	// reported (-1 when none).
	PromptTokens     int32 `json:"prompt_tokens"`
	CompletionTokens int32 `json:"completion_tokens"`

	// RequestBody is the request body, up to the proxy's record limit;
	// RequestSize is its full size.
	RequestBody []byte `json:"request_body,omitempty"`
	RequestSize int64  `json:"request_size"`
	// ResponseBody is the raw response bytes as received (SSE stays SSE), up
	// to the proxy's record limit; ResponseSize is the full size.
	ResponseBody []byte `json:"response_body,omitempty"`
	ResponseSize int64  `json:"response_size"`

	// bufs is set by UsePool: Chunks, the bodies and RequestHeaders go
	// back to the pool once the Writer has encoded the record (pool.go).
	bufs *recordBuffers
}

// Sample is one scraped value of an upstream Prometheus metric, summed over
// its label sets (e.g. over model_name).
type Sample struct {
	// At is the Unix ns at which the scrape's response arrived.
	At int64 `json:"at"`
	// Name is the metric name: one of the Metric* constants for the four
	// metrics the proxy always keeps, or the Prometheus series name of a
	// further metric the proxy was asked to keep (--scrape-metric), e.g.
	// "vbtorch:steps_total" or "vllm:iteration_tokens_total_sum". The codec
	// stores it as a free-form string.
	Name string `json:"name"`
	// Value is the sum of the metric's values.
	Value float64 `json:"value"`
}

// Server metrics the proxy keeps (vLLM's names; our own servers use them too).
const (
	MetricRunning     = "vllm:num_requests_running"
	MetricWaiting     = "vllm:num_requests_waiting"
	MetricKVUsage     = "vllm:kv_cache_usage_perc"
	MetricPreemptions = "vllm:num_preemptions"
)
