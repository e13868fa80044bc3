package analyze

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/vbench/vbench/capture"
	"github.com/vbench/vbench/internal/openai"
	"github.com/vbench/vbench/metric"
)

// Measurer turns capture records into metric.Requests through the one
// OpenAI decoder (internal/openai), the same one the proxy filled the
// record's chunk timeline with and the replayer reads its own responses
// with. The zero value is ready; a Measurer reuses its buffers between
// records and is not safe for concurrent use.
type Measurer struct {
	dec openai.Decoder
	req metric.Request // built here: a local would escape to the decoder
	// OnContent, when set, receives every content chunk of each record
	// measured: its offset from the request's start, the gap since the
	// previous content chunk (0 for the first) and the tokens it carried.
	OnContent func(at, gap time.Duration, tokens int)
}

// PhaseEngineWarmup is the phase label (X-VB-Label-phase) of vbbench's
// engine warm-up requests: they are warm-up requests, never a measured
// group, wherever their capture is read.
const PhaseEngineWarmup = "engine-warmup"

// Measure decodes one record read from the capture named capName.
func Measure(rec *capture.Record, capName string) metric.Request {
	var m Measurer
	return m.Measure(rec, capName)
}

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

// streamed reports whether the record's response was SSE: its content
// type, else its recorded body (a JSON object is not), else events in its
// timeline.
func streamed(rec *capture.Record) bool {
	if rec.ContentType != "" {
		return strings.HasPrefix(rec.ContentType, "text/event-stream")
	}
	if b := bytes.TrimSpace(rec.ResponseBody); len(b) > 0 {
		return b[0] != '{'
	}
	for i := range rec.Chunks {
		if rec.Chunks[i].Events > 0 {
			return true
		}
	}
	return false
}

// Measure decodes one record read from the capture named capName.
func (m *Measurer) Measure(rec *capture.Record, capName string) metric.Request {
	m.req = metric.Request{
		Capture:      capName,
		ID:           rec.ID,
		Index:        rec.Tags.Index,
		Run:          rec.Tags.Run,
		Trial:        rec.Tags.Trial,
		Variant:      labelOf(rec, "variant"),
		Model:        labelOf(rec, "model"),
		TraceHash:    rec.Tags.TraceHash,
		Warmup:       rec.Tags.Warmup || labelOf(rec, "phase") == PhaseEngineWarmup,
		Scheduled:    rec.Tags.Scheduled,
		Sent:         rec.Tags.Sent,
		Start:        rec.Received,
		Deadline:     rec.Tags.Deadline,
		Status:       rec.Status,
		ProxyOutcome: string(rec.Outcome),
		Error:        rec.Error,
	}
	r := &m.req
	if r.Variant == "" {
		r.Variant = "default"
	}
	if r.Trial == "" {
		r.Trial = labelOf(rec, "trial")
	}
	r.Level, r.Rate = rateOf(rec)

	d := &m.dec
	d.OnContent = m.OnContent
	d.Reset(r, streamed(rec))
	for i := range rec.Chunks {
		c := &rec.Chunks[i]
		d.Add(time.Duration(c.At), int(c.Size), openai.Chunk{Events: c.Events, Content: c.Content, Tokens: c.Tokens, Usage: c.Usage})
	}
	d.Usage(rec.PromptTokens, rec.CompletionTokens)
	// A body the proxy kept whole says what the timeline does not: whether
	// the stream ended properly, and a JSON body's usage.
	whole := len(rec.ResponseBody) > 0 && int64(len(rec.ResponseBody)) >= rec.ResponseSize && rec.Status/100 == 2
	if whole {
		d.Body(rec.ResponseBody)
	}
	d.Finish()

	switch {
	case rec.Outcome == "":
		r.ErrorKind = metric.KindIncomplete
	case rec.Outcome == capture.OutcomeClientAborted && rec.Tags.Deadline > 0 && rec.Received+rec.End >= rec.Tags.Deadline:
		r.ErrorKind = metric.KindCut
	case rec.Outcome != capture.OutcomeOK:
		r.ErrorKind = string(rec.Outcome)
	case rec.Status < 200 || rec.Status > 299:
		r.ErrorKind = metric.HTTPKind(rec.Status)
	case whole:
		r.ErrorKind = d.Problem()
	}
	r.Outcome = metric.OutcomeOf(r.ErrorKind)
	// A complete response ends at its last byte read from the upstream;
	// any other at the exchange's end (the failure, or the replayer's cut).
	r.End = time.Duration(rec.End)
	if r.Completed() && len(rec.Chunks) > 0 {
		r.End = time.Duration(rec.Chunks[len(rec.Chunks)-1].At)
	}
	if r.Outcome == metric.Cut {
		r.ExpectedOutput = expectedOutput(rec)
	}
	return *r
}

// expectedOutput is the output length the request asked for: the
// replayer's X-VB-Output tag (the trace's length), else the max_tokens (or
// max_completion_tokens) of the recorded request body; 0 when unknown.
func expectedOutput(rec *capture.Record) int32 {
	if v, err := strconv.ParseInt(rec.Tags.Extra["output"], 10, 32); err == nil && v > 0 {
		return int32(v)
	}
	if len(rec.RequestBody) == 0 || int64(len(rec.RequestBody)) < rec.RequestSize {
		return 0
	}
	var b struct {
		MaxTokens           int32 `json:"max_tokens"`
		MaxCompletionTokens int32 `json:"max_completion_tokens"`
	}
	if json.Unmarshal(rec.RequestBody, &b) != nil {
		return 0
	}
	return max(b.MaxTokens, b.MaxCompletionTokens, 0)
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
