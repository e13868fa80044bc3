package replay

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"github.com/vbench/vbench/internal/sse"
)

// Error kinds counted per level (RequestResult.Kind). An empty kind is a
// request that streamed to its end.
const (
	KindHTTP        = "http_"        // prefix: http_404, http_500, ...
	KindTimeout     = "timeout"      // the per-request --timeout expired
	KindReset       = "reset"        // connection reset or truncated mid-response
	KindConnect     = "connect"      // no connection (refused, unreachable)
	KindCut         = "cut"          // cancelled by the replayer at the drain deadline
	KindTruncated   = "truncated"    // the stream ended without data: [DONE] or a finish_reason
	KindStreamError = "stream_error" // the stream carried an error event
	KindDropped     = "dropped"      // not sent: --max-concurrency reached with --on-full drop
	KindOther       = "other"
)

var (
	errCut     = errors.New("cut at the level's drain deadline")
	errTimeout = errors.New("request timeout")
)

// RequestResult is what the replayer measured for one request. Times after
// Sent are offsets from Sent on the monotonic clock.
type RequestResult struct {
	// Index is the request's trace index.
	Index int64 `json:"index"`
	// Scheduled and Sent are Unix ns: when the request was due and when it
	// was handed to the HTTP client.
	Scheduled int64 `json:"scheduled"`
	Sent      int64 `json:"sent"`
	// Status is the HTTP status (0 when there was no response).
	Status int `json:"status"`
	// FirstByte is when the first body byte arrived; FirstContent when the
	// first event with generated content arrived (client-side TTFT); End
	// when the response ended. 0 when it did not happen.
	FirstByte    time.Duration `json:"first_byte_ns,omitempty"`
	FirstContent time.Duration `json:"first_content_ns,omitempty"`
	End          time.Duration `json:"end_ns"`
	// Content is the number of events that carried generated content.
	Content int `json:"content_events"`
	// Tokens is the last usage.completion_tokens seen; -1 when none.
	Tokens int32 `json:"tokens"`
	// Bytes is the size of the response body.
	Bytes int64 `json:"bytes"`
	// Kind is the error kind ("" when the request streamed to its end).
	Kind  string `json:"kind,omitempty"`
	Error string `json:"error,omitempty"`
}

// Lag is the schedule lag of the request: actual minus scheduled send.
func (r *RequestResult) Lag() time.Duration { return time.Duration(r.Sent - r.Scheduled) }

// OK reports whether the request streamed to its end.
func (r *RequestResult) OK() bool { return r.Kind == "" }

// newTransport returns an HTTP/1.1 transport tuned for thousands of
// concurrent streams against one host: every connection is kept for reuse,
// no compression (the stream must arrive as the server flushed it), no
// HTTP/2 (one TCP stream per request, as the engines' clients do).
func newTransport() *http.Transport {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		MaxIdleConns:          0,
		MaxIdleConnsPerHost:   1 << 16,
		MaxConnsPerHost:       0,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
		ResponseHeaderTimeout: 0,
		ReadBufferSize:        32 << 10,
		WriteBufferSize:       32 << 10,
	}
}

// streamer reads one streamed response. It is reused per goroutine-free
// call through a sync.Pool-free design: each send owns one (they are small).
type streamer struct {
	buf   [16 << 10]byte
	split sse.Splitter
}

// read consumes the body to its end, stamping the first byte and the first
// content event on the monotonic clock relative to sent.
func (s *streamer) read(body io.Reader, sent time.Time, res *RequestResult) error {
	s.split.Reset()
	done, streamErr, finished := false, false, false
	var now time.Time
	onEvent := func(ev sse.Event) {
		kind, tokens, fin := scanEvent(ev.Data)
		finished = finished || fin
		switch kind {
		case eventDone:
			done = true
		case eventError:
			streamErr = true
		case eventContent, eventOther:
			if kind == eventContent {
				if res.Content == 0 {
					res.FirstContent = now.Sub(sent)
				}
				res.Content++
			}
			if tokens >= 0 {
				res.Tokens = tokens
			}
		}
	}
	for {
		n, err := body.Read(s.buf[:])
		if n > 0 {
			now = time.Now()
			if res.Bytes == 0 {
				res.FirstByte = now.Sub(sent)
			}
			res.Bytes += int64(n)
			s.split.Feed(s.buf[:n], onEvent)
		}
		if err == io.EOF {
			switch {
			case streamErr:
				return errStreamError
			case !done && !finished:
				// Servers that end a finished stream without [DONE]
				// (transformers serve) are complete, not truncated.
				return errTruncated
			}
			return nil
		}
		if err != nil {
			return err
		}
	}
}

var (
	errStreamError = errors.New("the stream carried an error event")
	errTruncated   = errors.New("the stream ended without data: [DONE] or a finish_reason")
)

type eventKind uint8

const (
	eventOther eventKind = iota
	eventContent
	eventDone
	eventError
)

var (
	keyText      = []byte(`"text":"`)
	keyContent   = []byte(`"content":"`)
	keyReasoning = []byte(`"reasoning_content":"`)
	keyTokenIDs  = []byte(`"token_ids":[`)
	keyToolCalls = []byte(`"tool_calls":[`)
	keyError     = []byte(`"error":{`)
	keyObjError  = []byte(`"object":"error"`)
	keyUsage     = []byte(`"completion_tokens":`)
	keyFinish    = []byte(`"finish_reason"`)
)

// scanEvent classifies one SSE data payload of an OpenAI/vLLM stream
// without decoding it: [DONE], an error object (an "error" object or
// "object":"error"), a chunk with generated content (a non-empty "text",
// "content" or "reasoning_content" string, or a non-empty "token_ids" or
// "tool_calls" list), or another chunk (role-only delta, usage-only). It
// also returns the last usage.completion_tokens in the payload (-1 when
// absent) and whether a choice finished (a "finish_reason" with a string
// value, as openai.Finished).
//
// One pass over the payload: every key starts with a quote, so checking
// each key at each quote finds every place a substring search for it would
// (the client runs this on every event of every stream).
func scanEvent(data []byte) (kind eventKind, tokens int32, finished bool) {
	if len(data) == 6 && string(data) == "[DONE]" {
		return eventDone, -1, false
	}
	tokens = -1
	isErr, content := false, false
	for p := 0; p+1 < len(data); p++ {
		if data[p] != '"' {
			continue
		}
		rest := data[p:]
		switch rest[1] {
		case 't':
			content = content || nonEmptyAt(rest, keyText, '"') || nonEmptyAt(rest, keyTokenIDs, ']') || nonEmptyAt(rest, keyToolCalls, ']')
		case 'c':
			if bytes.HasPrefix(rest, keyUsage) {
				tokens = parseInt(rest[len(keyUsage):])
			} else {
				content = content || nonEmptyAt(rest, keyContent, '"')
			}
		case 'r':
			content = content || nonEmptyAt(rest, keyReasoning, '"')
		case 'e':
			isErr = isErr || bytes.HasPrefix(rest, keyError)
		case 'o':
			isErr = isErr || bytes.HasPrefix(rest, keyObjError)
		case 'f':
			finished = finished || finishAt(rest)
		}
	}
	switch {
	case isErr:
		return eventError, tokens, finished
	case content:
		return eventContent, tokens, finished
	}
	return eventOther, tokens, finished
}

// nonEmptyAt reports whether rest starts with key followed by something
// other than the closing byte (a non-empty string or list).
func nonEmptyAt(rest, key []byte, closing byte) bool {
	return len(rest) > len(key) && bytes.HasPrefix(rest, key) && rest[len(key)] != closing
}

// finishAt reports whether rest starts with "finish_reason" followed by a
// colon and a string (white space allowed around the colon).
func finishAt(rest []byte) bool {
	if !bytes.HasPrefix(rest, keyFinish) {
		return false
	}
	j := len(keyFinish)
	for j < len(rest) && isSpace(rest[j]) {
		j++
	}
	if j >= len(rest) || rest[j] != ':' {
		return false
	}
	j++
	for j < len(rest) && isSpace(rest[j]) {
		j++
	}
	return j < len(rest) && rest[j] == '"'
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// parseInt reads a non-negative decimal integer after optional spaces; -1
// when there is none or it overflows int32.
func parseInt(b []byte) int32 {
	for len(b) > 0 && b[0] == ' ' {
		b = b[1:]
	}
	var v int64
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		v = v*10 + int64(b[i]-'0')
		if v > 1<<31-1 {
			return -1
		}
	}
	if i == 0 {
		return -1
	}
	return int32(v)
}

// classify maps a transport or stream error to an error kind.
func classify(ctx context.Context, err error) string {
	if cause := context.Cause(ctx); cause != nil {
		switch {
		case errors.Is(cause, errCut):
			return KindCut
		case errors.Is(cause, errTimeout):
			return KindTimeout
		}
	}
	var ne net.Error
	var oe *net.OpError
	switch {
	case errors.Is(err, errStreamError):
		return KindStreamError
	case errors.Is(err, errTruncated):
		return KindTruncated
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return KindConnect
	case errors.As(err, &oe) && oe.Op == "dial":
		return KindConnect
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return KindReset
	case errors.As(err, &ne) && ne.Timeout():
		return KindTimeout
	}
	return KindOther
}

// httpKind returns the error kind of an HTTP status.
func httpKind(status int) string { return KindHTTP + strconv.Itoa(status) }
