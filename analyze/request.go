package analyze

import (
	"bytes"
	"math"
	"strconv"
	"strings"

	"github.com/vbench/vbench/capture"
	"github.com/vbench/vbench/internal/openai"
	"github.com/vbench/vbench/internal/sse"
)

// Token count sources, best first (see Request.TokenSource).
const (
	// SourceUsageChunks: the server's per-chunk usage
	// (stream_options.continuous_usage_stats).
	SourceUsageChunks = "usage_per_chunk"
	// SourceUsage: the final usage object of the response.
	SourceUsage = "usage"
	// SourceTokenIDs: token ids carried in the stream.
	SourceTokenIDs = "token_ids"
	// SourceChunks: the number of content chunks (events) — an estimate:
	// a chunk may carry several tokens.
	SourceChunks = "chunks_estimate"
	// SourceNone: the response said nothing about its output.
	SourceNone = "none"
)

// Error kinds of failed requests (Request.ErrorKind) besides the capture
// outcomes (capture.Outcome values other than "ok") and "http_NNN" for a
// non-2xx status.
const (
	// KindCut: the client aborted after the replayer's deadline for the
	// level (Tags.Deadline): the replayer cut a request still running when
	// its level ended.
	KindCut = "cut"
	// KindStreamError: a 2xx stream carried an error event (recorded
	// response body needed).
	KindStreamError = "stream_error"
	// KindTruncated: a complete recorded SSE body ended without
	// "data: [DONE]".
	KindTruncated = "truncated"
	// KindIncomplete: the record has no outcome (a proxy that crashed
	// mid-write, or a hand-made capture).
	KindIncomplete = "incomplete"
)

// Request holds the metrics of one recorded exchange. Durations are in
// seconds; undefined values are NaN (a failed request has no TPOT, a
// response without content has no TTFT).
type Request struct {
	// Capture is the input (capture directory or dump file) it came from.
	Capture string `json:"capture"`
	// ID is the record's ID in its capture; Index is the trace index (-1
	// for untagged traffic).
	ID    uint64 `json:"id"`
	Index int64  `json:"index"`

	// Variant, Level, Rate and Trial are the grouping labels (see
	// Config.By); Key is the group key built from Config.By.
	Variant string  `json:"variant"`
	Level   string  `json:"level"`
	Rate    float64 `json:"rate"`
	Trial   string  `json:"trial"`
	Key     string  `json:"key"`
	// Model is the "model" label, when the proxy or replayer set one.
	Model string `json:"model,omitempty"`
	// TraceHash is the content hash of the replayed trace.
	TraceHash string `json:"trace_hash,omitempty"`
	// Warmup marks a warm-up request (excluded from the measurement).
	Warmup bool `json:"warmup"`

	// Start is the Unix ns at which the proxy had the request (the send
	// time); End is the Unix ns at which the last byte was read from the
	// upstream (the exchange's end when no byte came).
	Start int64 `json:"start"`
	End   int64 `json:"end"`
	// Scheduled and Sent are the replayer's due and actual send times
	// (Unix ns; 0 when untagged).
	Scheduled int64 `json:"scheduled"`
	Sent      int64 `json:"sent"`

	Status  int    `json:"status"`
	Outcome string `json:"outcome"`
	// Completed: outcome ok with a 2xx status. ErrorKind is empty then.
	Completed bool   `json:"completed"`
	ErrorKind string `json:"error_kind,omitempty"`

	// OutputTokens is the output length and TokenSource says where it came
	// from (SourceUsageChunks … SourceNone).
	OutputTokens int    `json:"output_tokens"`
	TokenSource  string `json:"token_source"`
	// PromptTokens is the server's usage.prompt_tokens (-1 when unknown).
	PromptTokens int `json:"prompt_tokens"`
	// ContentChunks is the number of reads that carried content.
	ContentChunks int `json:"content_chunks"`

	// TTFT is first content chunk − Start; TTFTSched is the same from
	// the scheduled time (includes the replayer's lateness).
	TTFT      float64 `json:"ttft"`
	TTFTSched float64 `json:"ttft_sched"`
	// E2E is End − Start for a completed request.
	E2E float64 `json:"e2e"`
	// TPOT is (E2E − TTFT) / (OutputTokens − 1), for OutputTokens > 1.
	TPOT float64 `json:"tpot"`
	// NormLatency is E2E / OutputTokens (s/token), for OutputTokens > 0.
	NormLatency float64 `json:"norm_latency"`
	// ITLMean is the mean gap between consecutive content chunks.
	ITLMean float64 `json:"itl_mean"`
	// Lag is Sent − Scheduled: how late the replayer sent it.
	Lag float64 `json:"lag"`
}

const nsPerSec = 1e9

func secs(ns int64) float64 { return float64(ns) / nsPerSec }

// labelOf returns the value of a grouping label: the proxy's labels first,
// then the replayer's X-VB-Label-* and other X-VB-* tags.
func labelOf(rec *capture.Record, name string) string {
	if v, ok := rec.Labels[name]; ok {
		return v
	}
	if v, ok := rec.Tags.Extra["label-"+name]; ok {
		return v
	}
	return rec.Tags.Extra[name]
}

// Measure computes the metrics of one record read from the capture named
// capName. If itl is not nil it receives every inter-chunk gap of a
// completed request.
func Measure(rec *capture.Record, capName string, itl func(gap float64, tokens int)) Request {
	nan := math.NaN()
	r := Request{
		Capture:      capName,
		ID:           rec.ID,
		Index:        rec.Tags.Index,
		Variant:      labelOf(rec, "variant"),
		Trial:        rec.Tags.Trial,
		Model:        labelOf(rec, "model"),
		TraceHash:    rec.Tags.TraceHash,
		Warmup:       rec.Tags.Warmup,
		Start:        rec.Received,
		Scheduled:    rec.Tags.Scheduled,
		Sent:         rec.Tags.Sent,
		Status:       rec.Status,
		Outcome:      string(rec.Outcome),
		PromptTokens: int(rec.PromptTokens),
		TTFT:         nan,
		TTFTSched:    nan,
		E2E:          nan,
		TPOT:         nan,
		NormLatency:  nan,
		ITLMean:      nan,
		Lag:          nan,
	}
	if r.Variant == "" {
		r.Variant = "default"
	}
	if r.Trial == "" {
		r.Trial = labelOf(rec, "trial")
	}
	r.Level, r.Rate = rateOf(rec)
	if rec.Tags.Scheduled > 0 && rec.Tags.Sent > 0 {
		r.Lag = secs(rec.Tags.Sent - rec.Tags.Scheduled)
	}

	// The end: the last byte read from the upstream (the last chunk), or
	// the exchange's end when no byte came.
	end := rec.End
	if n := len(rec.Chunks); n > 0 {
		end = rec.Chunks[n-1].At
	}
	r.End = rec.Received + end

	switch {
	case rec.Outcome == "":
		r.ErrorKind = KindIncomplete
	case rec.Outcome == capture.OutcomeClientAborted && rec.Tags.Deadline > 0 && rec.Received+rec.End >= rec.Tags.Deadline:
		r.ErrorKind = KindCut
	case rec.Outcome != capture.OutcomeOK:
		r.ErrorKind = string(rec.Outcome)
	case rec.Status < 200 || rec.Status > 299:
		r.ErrorKind = "http_" + strconv.Itoa(rec.Status)
	default:
		if kind := streamProblem(rec); kind != "" {
			r.ErrorKind = kind
		} else {
			r.Completed = true
		}
	}

	r.OutputTokens, r.TokenSource = outputTokens(rec)

	// TTFT and the chunk gaps: a content chunk is a read that completed at
	// least one event with generated content (or carried tokens).
	var first, prev int64 = -1, -1
	var prevUsage int32 = -1
	var gapSum float64
	var gaps int
	for i := range rec.Chunks {
		c := &rec.Chunks[i]
		tokens := int(c.Tokens)
		if tokens < 0 && c.Usage >= 0 && r.TokenSource == SourceUsageChunks {
			tokens = int(c.Usage - max(prevUsage, 0))
		}
		if c.Usage >= 0 {
			prevUsage = c.Usage
		}
		if c.Content <= 0 && c.Tokens <= 0 {
			continue
		}
		r.ContentChunks++
		if tokens < 0 {
			tokens = int(c.Content)
		}
		if first < 0 {
			first = c.At
		} else {
			gap := secs(c.At - prev)
			gapSum += gap
			gaps++
			if itl != nil && r.Completed {
				itl(gap, tokens)
			}
		}
		prev = c.At
	}
	if first >= 0 {
		r.TTFT = secs(first)
		if rec.Tags.Scheduled > 0 {
			r.TTFTSched = secs(rec.Received + first - rec.Tags.Scheduled)
		}
	}
	if gaps > 0 {
		r.ITLMean = gapSum / float64(gaps)
	}
	if r.Completed {
		r.E2E = secs(r.End - r.Start)
		if r.OutputTokens > 0 {
			r.NormLatency = r.E2E / float64(r.OutputTokens)
		}
		if r.OutputTokens > 1 && !math.IsNaN(r.TTFT) {
			r.TPOT = (r.E2E - r.TTFT) / float64(r.OutputTokens-1)
		}
	}
	return r
}

// streamProblem re-reads a recorded SSE response body (when the proxy kept
// it whole) and returns KindStreamError for an error event, KindTruncated
// for a stream without "data: [DONE]", or "".
func streamProblem(rec *capture.Record) string {
	body := rec.ResponseBody
	if len(body) == 0 || int64(len(body)) < rec.ResponseSize {
		return "" // not recorded, or cut at the proxy's record limit
	}
	if !strings.HasPrefix(rec.ContentType, "text/event-stream") && !bytes.HasPrefix(body, []byte("data:")) {
		return ""
	}
	var sp sse.Splitter
	var events int
	var done, failed bool
	sp.Feed(body, func(ev sse.Event) {
		events++
		info := openai.Scan(ev.Data)
		// A finish_reason ends a stream too: transformers serve sends no [DONE].
		done = done || info.Done || openai.Finished(ev.Data)
		failed = failed || info.Error
	})
	switch {
	case failed:
		return KindStreamError
	case events > 0 && !done:
		return KindTruncated
	}
	return ""
}

// outputTokens returns the output length of rec and its source, in the
// order of docs/architecture.md: per-chunk usage, final usage, token ids,
// content-chunk count (an estimate).
func outputTokens(rec *capture.Record) (int, string) {
	var perChunk bool
	var maxUsage int32 = -1
	var ids, content int
	var haveIDs bool
	for i := range rec.Chunks {
		c := &rec.Chunks[i]
		if c.Usage >= 0 {
			maxUsage = max(maxUsage, c.Usage)
			if c.Content > 0 {
				perChunk = true
			}
		}
		if c.Tokens >= 0 {
			haveIDs = true
			ids += int(c.Tokens)
		}
		content += int(c.Content)
	}
	switch {
	case perChunk:
		return int(max(maxUsage, rec.CompletionTokens)), SourceUsageChunks
	case rec.CompletionTokens >= 0:
		return int(rec.CompletionTokens), SourceUsage
	case maxUsage >= 0:
		return int(maxUsage), SourceUsage
	case haveIDs:
		return ids, SourceTokenIDs
	case content > 0:
		return content, SourceChunks
	}
	return 0, SourceNone
}

// rateOf returns the rate level label and the asked rate in req/s: the
// replayer's tags first, then the "rate" label.
func rateOf(rec *capture.Record) (string, float64) {
	level, rate := rec.Tags.Level, rec.Tags.Rate
	if level == "" {
		level = labelOf(rec, "rate")
	}
	if rate <= 0 && level != "" {
		if v, err := strconv.ParseFloat(strings.TrimSuffix(level, "rps"), 64); err == nil {
			rate = v
		}
	}
	if level == "" && rate > 0 {
		level = strconv.FormatFloat(rate, 'g', -1, 64)
	}
	return level, rate
}
