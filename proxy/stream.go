package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/vbench/vbench/capture"
	"github.com/vbench/vbench/internal/openai"
	"github.com/vbench/vbench/internal/sse"
)

// stream is the response body handed to fasthttp: each Read reads the
// upstream once, notes the chunk (time, size, SSE events and tokens), copies
// its bytes into the record up to the cap, and returns them to be written
// and flushed. fasthttp calls CloseWithError at the end with the client
// write error, if any; that finishes the record.
type stream struct {
	p     *Proxy
	rec   *capture.Record
	resp  *fasthttp.Response
	body  io.Reader
	start time.Time
	isSSE bool

	total    int64
	readErr  error
	tooLarge bool

	// dec decodes the response (the one OpenAI decoder the replayer and
	// the analysis use too): each read's SSE events, content and tokens.
	dec openai.Decoder

	// held is what the record's buffers hold in the memory budget, credit
	// the part of it not used yet (reserved in steps, so a chunk rarely
	// touches the budget's lock); bodyCut is set once the budget had no
	// room for more body bytes, merged counts reads folded into the last
	// timeline entry past capture.MaxChunks.
	held, credit int64
	bodyCut      bool
	merged       int

	// Shared with the idle watchdog and Shutdown.
	last   atomic.Int64 // monotonic ns since start of the last read
	mu     sync.Mutex
	closed bool
	cutErr error // why the upstream was cut (idle, shutdown)
	timer  *time.Timer
}

// errIdle is what a stream cut by the idle watchdog reads.
var errIdle = errors.New("idle timeout: no bytes from the upstream")

func (p *Proxy) newStream(rec *capture.Record, resp *fasthttp.Response, start time.Time) *stream {
	s := &stream{p: p, rec: rec, resp: resp, body: resp.BodyStream(), start: start}
	s.isSSE = bytes.HasPrefix(resp.Header.ContentType(), []byte("text/event-stream"))
	s.dec.Reset(nil, s.isSSE)
	// The timeline and body buffers come from the capture's pool and go
	// back once the writer has encoded the record: growing them per stream
	// was most of the proxy's garbage (docs/benchmarks/proxy.md). The
	// handler's readRequest has already done it; then this is a no-op.
	rec.UsePool()
	if s.body == nil {
		return s
	}
	s.last.Store(int64(time.Since(start)))
	if p.cfg.IdleTimeout > 0 {
		s.timer = time.AfterFunc(p.cfg.IdleTimeout, s.watch)
	}
	p.mu.Lock()
	p.streams[s] = struct{}{}
	p.mu.Unlock()
	return s
}

// Read is the hot path: one upstream read, forwarded as one chunk.
func (s *stream) Read(b []byte) (int, error) {
	n, err := s.body.Read(b)
	if n > 0 {
		if max := s.p.cfg.MaxResponseBody; max > 0 && s.total+int64(n) > max {
			s.tooLarge = true
			s.total += int64(n)
			s.readErr = fmt.Errorf("response body over the proxy's limit of %d bytes (--max-response-body); cut", max)
			return 0, s.readErr
		}
		at := time.Since(s.start)
		s.last.Store(int64(at))
		s.note(b[:n], int64(at))
		s.total += int64(n)
	}
	if err != nil && s.readErr == nil {
		s.readErr = err
	}
	return n, err
}

// creditStep is how much budget a stream reserves at a time.
const creditStep = 64 << 10

// reserve takes n bytes from the stream's credit, topping it up from the
// memory budget; false when the budget has no room.
func (s *stream) reserve(n int64) bool {
	if s.credit < n {
		step := max(n-s.credit, creditStep)
		if !s.p.mem.try(step) {
			return false
		}
		s.credit += step
		s.held += step
	}
	s.credit -= n
	return true
}

// note records one chunk. It allocates only when the record's timeline or
// body buffer grows.
func (s *stream) note(b []byte, at int64) {
	s.p.c.chunks.Add(1)
	s.p.c.bytes.Add(int64(len(b)))
	c := capture.Chunk{At: at, Size: int32(len(b)), Tokens: -1, Usage: -1}
	if s.isSSE {
		d := s.dec.Read(time.Duration(at), b)
		c.Events, c.Content, c.Tokens, c.Usage = d.Events, d.Content, d.Tokens, d.Usage
	}
	if len(s.rec.Chunks) < s.p.maxChunks {
		s.rec.Chunks = append(s.rec.Chunks, c)
	} else {
		// A record must read back (capture.MaxChunks): later reads join
		// the last entry, which keeps the sizes, events and tokens.
		l := &s.rec.Chunks[len(s.rec.Chunks)-1]
		l.At, l.Size = at, int32(min(int64(l.Size)+int64(len(b)), math.MaxInt32))
		l.Events = int16(min(int(l.Events)+int(c.Events), math.MaxInt16))
		l.Content = int16(min(int(l.Content)+int(c.Content), math.MaxInt16))
		if c.Tokens >= 0 {
			l.Tokens = max(l.Tokens, 0) + c.Tokens
		}
		if c.Usage >= 0 {
			l.Usage = c.Usage
		}
		s.merged++
	}
	if room := s.p.cfg.RecordResponseBody - len(s.rec.ResponseBody); room > 0 && !s.bodyCut {
		k := min(room, len(b))
		if s.reserve(int64(k)) {
			s.rec.ResponseBody = append(s.rec.ResponseBody, b[:k]...)
		} else {
			s.bodyCut = true
			s.p.mem.skipped.Add(int64(k))
		}
	}
}

// watch is the idle watchdog: it cuts the upstream when no byte came for
// the idle timeout, and re-arms itself for the time left otherwise.
func (s *stream) watch() {
	idle := s.p.cfg.IdleTimeout
	quiet := time.Since(s.start) - time.Duration(s.last.Load())
	if quiet < idle {
		s.mu.Lock()
		if !s.closed {
			s.timer.Reset(idle - quiet)
		}
		s.mu.Unlock()
		return
	}
	s.cut(errIdle)
}

// cut closes the upstream body from another goroutine; the blocked Read
// returns an error and fasthttp ends the response.
func (s *stream) cut(why error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.cutErr != nil {
		return
	}
	s.cutErr = why
	if c, ok := s.body.(fasthttp.ReadCloserWithError); ok {
		// Safe concurrently with Read: fasthttp interrupts the read by
		// closing the connection, and closes only once.
		c.CloseWithError(why)
	}
}

// CloseWithError is called by fasthttp once the body was written (err nil)
// or writing failed (err is the write error or the read error). It closes
// the upstream (closing its connection unless the body was fully read, so
// the engine sees the client leave) and finishes the record.
func (s *stream) CloseWithError(werr error) error {
	s.mu.Lock()
	s.closed = true
	cutErr := s.cutErr
	if s.timer != nil {
		s.timer.Stop()
	}
	s.mu.Unlock()
	if s.body != nil {
		s.p.mu.Lock()
		delete(s.p.streams, s)
		s.p.mu.Unlock()
	}

	rec := s.rec
	rec.End = int64(time.Since(s.start))
	rec.ResponseSize = s.total
	readErr := s.readErr
	switch {
	case cutErr == errIdle:
		rec.Outcome = capture.OutcomeIdleTimeout
		rec.Error = fmt.Sprintf("no bytes from the upstream for %v (--idle-timeout)", s.p.cfg.IdleTimeout)
	case cutErr == errShutdown:
		rec.Outcome = capture.OutcomeShutdown
		rec.Error = errShutdown.Error()
	case s.tooLarge:
		rec.Outcome = capture.OutcomeTooLarge
		rec.Error = readErr.Error()
	case readErr != nil && readErr != io.EOF && readErr != errNoBody:
		rec.Outcome = capture.OutcomeUpstreamError
		rec.Error = "upstream body: " + readErr.Error()
	case werr != nil:
		rec.Outcome = capture.OutcomeClientAborted
		rec.Error = "client: " + werr.Error()
	default:
		rec.Outcome = capture.OutcomeOK
	}
	// A non-streamed JSON body says its usage at the end: read it from the
	// recorded body when the proxy kept it whole.
	if !s.isSSE && len(rec.ResponseBody) > 0 && int64(len(rec.ResponseBody)) == s.total && rec.Status/100 == 2 {
		s.dec.Body(rec.ResponseBody)
	}
	s.dec.Finish()
	rec.PromptTokens, rec.CompletionTokens = s.dec.PromptTokens(), s.dec.CompletionTokens()
	if s.dec.StreamError() && rec.Error == "" {
		rec.Error = "the stream carried an error event"
	}
	if n := s.dec.BadEvents(); n > 0 && rec.Error == "" {
		rec.Error = fmt.Sprintf("%d SSE events were not valid JSON", n)
	}
	if s.bodyCut && rec.Error == "" {
		rec.Error = fmt.Sprintf("response body recorded up to %d bytes only: the proxy's memory budget (--max-memory %d bytes) was full", len(rec.ResponseBody), s.p.mem.max)
	}
	if s.merged > 0 && rec.Error == "" {
		rec.Error = fmt.Sprintf("%d reads past the timeline's %d entries were merged into the last entry", s.merged, s.p.maxChunks)
	}
	if n := s.dec.Oversize(); n > 0 && rec.Error == "" {
		rec.Error = fmt.Sprintf("%d SSE events exceeded %d bytes and were not parsed", n, sse.DefaultMaxEventSize)
	}

	// Closing with an error discards the connection; after a full read it
	// goes back to the pool.
	closeErr := werr
	if closeErr == nil && readErr != nil && readErr != io.EOF && readErr != errNoBody {
		closeErr = readErr
	}
	if c, ok := s.body.(fasthttp.ReadCloserWithError); ok {
		c.CloseWithError(closeErr)
	}
	fasthttp.ReleaseResponse(s.resp)
	s.resp, s.body = nil, nil
	s.p.finish(rec, s.held)
	return nil
}
