package openai

import (
	"time"

	"github.com/vbench/vbench/internal/sse"
	"github.com/vbench/vbench/metric"
)

// Chunk is what one read of a response body carried, in the terms every
// figure uses; capture.Chunk stores the same fields for each read the
// proxy forwarded.
type Chunk struct {
	// Events is the number of SSE events the read completed.
	Events int16
	// Content is the number of those events that carry generated content
	// (Info.Content).
	Content int16
	// Tokens is the output tokens completed in this read when the stream
	// says so (the growth of per-chunk usage, or token ids); -1 unknown.
	Tokens int32
	// Usage is the cumulative completion_tokens of the last usage object
	// in this read; -1 when it carried none.
	Usage int32
}

// MaxBody is the most of a non-streamed (JSON) body the Decoder keeps to
// read its usage at the end; a longer body's usage is not read.
const MaxBody = 4 << 20

// Decoder reads one response into the response fields of a metric.Request:
// when its first byte and first content came, how many content events and
// chunks it had, its output length and where that came from, its prompt
// length, the gaps between its content chunks, and whether it ended
// properly. Feed it the raw reads (Read: the replayer and the proxy) or
// the chunk timeline a capture stored (Add: the analysis); both paths
// accumulate the same way. The zero value is ready after Reset; a Decoder
// is reused across responses and allocates nothing per read once its
// buffers have grown.
type Decoder struct {
	r        *metric.Request
	own      metric.Request
	streamed bool
	split    sse.Splitter
	onEvent  func(sse.Event)
	cur      Chunk // the read being decoded
	body     []byte
	bodyLong bool
	// OnContent, when set, is called for every content chunk with its
	// offset, the gap since the previous content chunk (0 for the first)
	// and the tokens it carried (the analysis: ITL and tokens per second).
	OnContent func(at, gap time.Duration, tokens int)

	// Per-event state (Read).
	lastUsage int32 // usage before the current event, for its growth
	// Per-response state.
	final, prompt int32 // the last usage reported (-1: none)
	maxUsage      int32
	prevUsage     int32
	ids           int32
	haveIDs       bool
	perChunk      bool
	prevContent   time.Duration
	lastByte      time.Duration
	events        int
	done          bool
	finished      bool
	errEvent      bool
	badEvents     int
	invalidBody   bool
}

// Reset starts decoding a response into r (nil: the decoder's own
// scratch value; the proxy needs only the chunks and the status).
// streamed says the body is SSE (text/event-stream); otherwise it is one
// JSON object.
func (d *Decoder) Reset(r *metric.Request, streamed bool) {
	if r == nil {
		r = &d.own
	}
	d.r = r
	d.streamed = streamed
	d.split.Reset()
	if d.onEvent == nil {
		d.onEvent = d.event
	}
	d.body, d.bodyLong = d.body[:0], false
	d.lastUsage, d.final, d.prompt, d.maxUsage, d.prevUsage = 0, -1, -1, -1, -1
	d.ids, d.haveIDs, d.perChunk = 0, false, false
	d.prevContent, d.lastByte = 0, 0
	d.events, d.done, d.finished, d.errEvent, d.badEvents, d.invalidBody = 0, false, false, false, 0, false
	r.Streamed = streamed
	r.FirstByte, r.FirstContent, r.Bytes = 0, 0, 0
	r.ContentEvents, r.ContentChunks, r.ITLSum, r.ITLGaps = 0, 0, 0, 0
	r.OutputTokens, r.TokenSource, r.PromptTokens = 0, metric.SourceNone, -1
}

// Read decodes one read of the body, b, that arrived at offset at, and
// returns what it carried.
func (d *Decoder) Read(at time.Duration, b []byte) Chunk {
	d.cur = Chunk{Tokens: -1, Usage: -1}
	if len(b) == 0 {
		return d.cur
	}
	if d.streamed {
		d.split.Feed(b, d.onEvent)
	} else if !d.bodyLong {
		if len(d.body)+len(b) > MaxBody {
			d.bodyLong, d.body = true, d.body[:0]
		} else {
			d.body = append(d.body, b...)
		}
	}
	d.Add(at, len(b), d.cur)
	return d.cur
}

// event accounts one SSE event completed by the current read.
func (d *Decoder) event(ev sse.Event) {
	c := &d.cur
	c.Events++
	d.events++
	info := Scan(ev.Data)
	if !info.Valid {
		d.badEvents++
	}
	if info.Error || string(ev.Type) == "error" {
		d.errEvent = true
	}
	d.done = d.done || info.Done
	d.finished = d.finished || info.Finished
	if info.PromptTokens >= 0 {
		d.prompt = info.PromptTokens
	}
	tokens := int32(-1)
	if info.CompletionTokens >= 0 {
		c.Usage = info.CompletionTokens
		d.final = info.CompletionTokens
		tokens = info.CompletionTokens - d.lastUsage
		d.lastUsage = info.CompletionTokens
	} else if info.TokenIDs > 0 {
		tokens = info.TokenIDs
	}
	if info.Content {
		c.Content++
		if tokens >= 0 {
			c.Tokens = max(c.Tokens, 0) + tokens
		}
	}
}

// Add accounts one read of size bytes at offset at that carried c: a read
// just decoded, or a chunk of a capture's timeline.
func (d *Decoder) Add(at time.Duration, size int, c Chunk) {
	r := d.r
	if size > 0 {
		if r.Bytes == 0 {
			r.FirstByte = at
		}
		r.Bytes += int64(size)
		d.lastByte = at
	}
	if c.Usage >= 0 {
		d.maxUsage = max(d.maxUsage, c.Usage)
		if c.Content > 0 {
			d.perChunk = true
		}
	}
	if c.Tokens >= 0 {
		d.haveIDs = true
		d.ids += c.Tokens
	}
	r.ContentEvents += int32(c.Content)
	// The tokens of a content chunk: its own count, else the growth of the
	// usage it carried, else one per content event.
	tokens := int(c.Tokens)
	if tokens < 0 && c.Usage >= 0 {
		tokens = int(c.Usage - max(d.prevUsage, 0))
	}
	if c.Usage >= 0 {
		d.prevUsage = c.Usage
	}
	if c.Content <= 0 && c.Tokens <= 0 {
		return
	}
	if tokens < 0 {
		tokens = int(c.Content)
	}
	var gap time.Duration
	if r.ContentChunks == 0 {
		r.FirstContent = at
	} else {
		gap = at - d.prevContent
		r.ITLSum += gap
		r.ITLGaps++
	}
	r.ContentChunks++
	d.prevContent = at
	if d.OnContent != nil {
		d.OnContent(at, gap, tokens)
	}
}

// Usage gives the usage a capture record stored (the last the response
// reported, streamed or in a JSON body; -1: none).
func (d *Decoder) Usage(prompt, completion int32) {
	if prompt >= 0 {
		d.prompt = prompt
	}
	if completion >= 0 {
		d.final = completion
	}
}

// Body reads a whole recorded body (the analysis, when the proxy kept it
// whole) for what the chunk timeline does not say: whether a stream ended
// properly or carried an error, and a JSON body's usage. It adds no
// chunk.
func (d *Decoder) Body(b []byte) {
	if !d.streamed {
		d.scanBody(b)
		d.body, d.bodyLong = d.body[:0], false
		return
	}
	var status Decoder
	status.Reset(nil, true)
	status.split.Feed(b, status.onEvent)
	d.events += status.events
	d.done = d.done || status.done
	d.finished = d.finished || status.finished
	d.errEvent = d.errEvent || status.errEvent
}

// scanBody reads a whole JSON body: its usage, an error object, and
// whether it is one JSON object.
func (d *Decoder) scanBody(b []byte) {
	info := Scan(b)
	d.invalidBody = !info.Valid
	d.errEvent = d.errEvent || info.Error
	if info.Valid {
		d.Usage(info.PromptTokens, info.CompletionTokens)
	}
}

// Finish completes the request's response fields: the output length and
// its source, best first (per-chunk usage, the final usage, token ids,
// content events as an estimate), and the prompt length. For a JSON body
// they come from its usage object.
func (d *Decoder) Finish() {
	r := d.r
	if !d.streamed && len(d.body) > 0 {
		d.scanBody(d.body)
		d.body = d.body[:0]
	}
	r.PromptTokens = d.prompt
	switch {
	case d.perChunk:
		r.OutputTokens, r.TokenSource = max(d.maxUsage, d.final), metric.SourceUsageChunks
	case d.final >= 0:
		r.OutputTokens, r.TokenSource = d.final, metric.SourceUsage
	case d.maxUsage >= 0:
		r.OutputTokens, r.TokenSource = d.maxUsage, metric.SourceUsage
	case d.haveIDs:
		r.OutputTokens, r.TokenSource = d.ids, metric.SourceTokenIDs
	case r.ContentEvents > 0:
		r.OutputTokens, r.TokenSource = r.ContentEvents, metric.SourceChunks
	default:
		r.OutputTokens, r.TokenSource = 0, metric.SourceNone
	}
}

// LastByte is the offset of the last read that carried bytes.
func (d *Decoder) LastByte() time.Duration { return d.lastByte }

// Problem says what is wrong with a response read to its end (after
// Finish): metric.KindStreamError for an error event or error object,
// metric.KindTruncated for a stream that had events but ended without
// [DONE] or a finish_reason, or a JSON body that is not one JSON object;
// "" when it ended properly. A JSON body longer than MaxBody is not
// checked.
func (d *Decoder) Problem() string {
	switch {
	case d.errEvent:
		return metric.KindStreamError
	case d.streamed && !d.done && !d.finished:
		return metric.KindTruncated
	case !d.streamed && d.invalidBody:
		return metric.KindTruncated
	}
	return ""
}

// Events is the number of SSE events decoded.
func (d *Decoder) Events() int { return d.events }

// StreamError reports an error event (or error object) in the response.
func (d *Decoder) StreamError() bool { return d.errEvent }

// BadEvents is the number of events that were not valid JSON.
func (d *Decoder) BadEvents() int { return d.badEvents }

// Oversize is the number of events skipped for exceeding the splitter's
// event size limit.
func (d *Decoder) Oversize() int { return d.split.Oversize }

// PromptTokens and CompletionTokens are the last usage the response
// reported so far (-1: none).
func (d *Decoder) PromptTokens() int32 { return d.prompt }

// CompletionTokens: see PromptTokens.
func (d *Decoder) CompletionTokens() int32 { return d.final }
