package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/vbench/vbench/capture"
)

// Sink receives finished records and scraped samples. Both methods must
// never block; false means the value was dropped. *capture.Writer is one.
// A sink that also has NextID() uint64 gets each record's ID reserved when
// the request arrives (IDs then follow arrival order); one with
// Stats() capture.WriterStats shows them in Stats().Capture.
type Sink interface {
	Put(*capture.Record) bool
	PutSample(capture.Sample) bool
}

// idReserver is implemented by *capture.Writer: IDs reserved on arrival
// increase in arrival order.
type idReserver interface {
	NextID() uint64
}

// Proxy is a recording reverse proxy. Create it with New, run it with
// Serve, stop it with Shutdown.
type Proxy struct {
	cfg  Config
	up   upstream
	sink Sink
	log  *slog.Logger
	srv  *fasthttp.Server
	hc   *fasthttp.HostClient

	conns           connTable   // open upstream connections (see upconn.go)
	adm             admission   // open client connections (listener.go)
	mem             *budget     // memory budget (memory.go)
	fdCap           int         // client + upstream connections allowed
	maxChunks       int         // timeline entries per record
	deadlineMissing atomic.Bool // a header deadline could not be cleared

	t0     time.Time // process clock anchor: Unix ns = t0Unix + monotonic since t0
	t0Unix int64

	mu      sync.Mutex
	streams map[*stream]struct{}
	closing bool
	lns     []*onceCloseListener // listeners Serve was given, closed by Shutdown

	scrapeStop chan struct{}
	scrapeDone chan struct{}

	c counters
}

// counters are the live numbers behind Stats.
type counters struct {
	inFlight        atomic.Int64
	requests        atomic.Int64
	completed       atomic.Int64
	chunks          atomic.Int64
	bytes           atomic.Int64
	recorded        atomic.Int64
	dropped         atomic.Int64
	samples         atomic.Int64
	samplesDropped  atomic.Int64
	scrapes         atomic.Int64
	scrapeErrors    atomic.Int64
	upstreamRetries atomic.Int64
	outcomes        [numOutcomes]atomic.Int64
}

var outcomeNames = [...]capture.Outcome{
	capture.OutcomeOK, capture.OutcomeClientAborted, capture.OutcomeUpstreamError,
	capture.OutcomeUpstreamUnreachable, capture.OutcomeIdleTimeout, capture.OutcomeTooLarge,
	capture.OutcomeShutdown, capture.OutcomeUpstreamHeaderTimeout, capture.OutcomeUpstreamConnect,
	capture.OutcomeOverloaded,
}

const numOutcomes = len(outcomeNames)

func outcomeIndex(o capture.Outcome) int {
	for i, n := range outcomeNames {
		if n == o {
			return i
		}
	}
	return 0
}

// New builds a proxy. sink may be nil: the proxy then forwards only.
func New(cfg Config, sink Sink) (*Proxy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	cfg = cfg.withDefaults()
	up, _ := parseUpstream(cfg.Upstream)
	now := time.Now()
	p := &Proxy{
		cfg:       cfg,
		up:        up,
		sink:      sink,
		log:       cfg.Logger,
		t0:        now,
		t0Unix:    now.UnixNano(),
		streams:   make(map[*stream]struct{}),
		mem:       newBudget(cfg.MaxMemory),
		fdCap:     cfg.fdCap,
		maxChunks: capture.MaxChunks,
	}
	if cfg.maxChunks > 0 {
		p.maxChunks = cfg.maxChunks
	}
	// 4 s: below the 5-s keep-alive timeout of uvicorn (vLLM's and
	// transformers serve's HTTP server), so a pooled connection is rarely
	// one the upstream has already closed; retryStaleConn covers the rest.
	idleConns := 4 * time.Second
	if cfg.idleConns > 0 {
		idleConns = cfg.idleConns
	}
	p.hc = &fasthttp.HostClient{
		Addr:                          up.addr,
		IsTLS:                         up.isTLS,
		Name:                          "vbproxy",
		DialTimeout:                   p.dial,
		NoDefaultUserAgentHeader:      true,
		StreamResponseBody:            true,
		MaxConns:                      cfg.MaxConns,
		MaxConnWaitTimeout:            30 * time.Second,
		MaxIdleConnDuration:           idleConns,
		ReadBufferSize:                8 << 10, // response headers
		WriteBufferSize:               4 << 10, // bigger writes bypass it
		DisablePathNormalizing:        true,
		DisableHeaderNamesNormalizing: false,
		// ReadTimeout stays 0: it would be a deadline on the whole streamed
		// body. The header timeout (DoTimeout, its deadline cleared once the
		// headers are in) and the per-stream idle watchdog replace it.
		// LIFO hands out the connection used last, the one least likely
		// to have hit the upstream's keep-alive timeout.
		ConnPoolStrategy: fasthttp.LIFO,
		RetryIfErr:       p.retryStaleConn,
		// The attempt cap applies to every method here; retryStaleConn
		// decides which errors are retried.
		MaxIdemponentCallAttempts: maxStaleRetries + 1,
	}
	p.srv = &fasthttp.Server{
		Handler:      p.handle,
		ErrorHandler: p.handleError,
		// No Name: with one, fasthttp adds "Server: NAME" to every
		// response without a Server header, NoDefaultServerHeader or not.
		NoDefaultServerHeader:        true,
		NoDefaultDate:                true,
		NoDefaultContentType:         true,
		DisablePreParseMultipartForm: true,
		MaxRequestBodySize:           cfg.MaxRequestBody,
		// The handler reads request bodies itself, into memory reserved
		// from the budget (readBody); fasthttp would buffer each whole
		// body first, whatever the memory in use.
		StreamRequestBody: true,
		HeaderReceived:    p.headerReceived,
		ReadBufferSize:    8 << 10, // request headers
		WriteBufferSize:   4 << 10, // flushed per chunk; bigger writes bypass it
		// ReadTimeout is the header deadline: a connection gets this long
		// from its opening (or, kept alive, from its next request's first
		// byte) to send its request headers, however slowly it trickles
		// them (slowloris). headerReceived then allows the body its own.
		ReadTimeout: cfg.ClientHeaderTimeout,
		IdleTimeout: 2 * time.Minute,
		// WriteTimeout stays 0: it would cover the whole streamed body.
		// The listener admits connections (listener.go); Concurrency only
		// sizes fasthttp's worker pool.
		Concurrency:           p.fdCap,
		MaxIdleWorkerDuration: time.Second,
		CloseOnShutdown:       true,
		ReduceMemoryUsage:     false,
		Logger:                slogPrinter{p.log},
	}
	return p, nil
}

// slogPrinter adapts fasthttp's Printf logger to slog.
type slogPrinter struct{ l *slog.Logger }

func (s slogPrinter) Printf(format string, args ...any) {
	s.l.Debug(fmt.Sprintf(format, args...), "source", "fasthttp")
}

// Upstream returns the base URL of the upstream.
func (p *Proxy) Upstream() string { return p.up.url }

// Serve accepts connections on ln until Shutdown; it returns nil after a
// clean shutdown.
func (p *Proxy) Serve(ln net.Listener) error {
	// Shutdown may come before this goroutine runs (a signal right after
	// start): then serve nothing. Otherwise Shutdown closes the listener
	// itself, because fasthttp's Shutdown closes only the listeners its
	// Serve has registered, and would leave this one serving forever.
	oln := &onceCloseListener{Listener: ln}
	p.mu.Lock()
	if p.closing {
		p.mu.Unlock()
		oln.Close()
		return nil
	}
	p.lns = append(p.lns, oln)
	if p.cfg.ScrapeInterval > 0 && p.scrapeStop == nil {
		p.scrapeStop = make(chan struct{})
		p.scrapeDone = make(chan struct{})
		go p.scrapeLoop(p.scrapeStop, p.scrapeDone)
	}
	p.mu.Unlock()
	err := p.srv.Serve(&limitListener{Listener: oln, p: p})
	p.mu.Lock()
	closing := p.closing
	p.mu.Unlock()
	if closing {
		return nil
	}
	if err != nil {
		return fmt.Errorf("proxy: serve %s: %w", ln.Addr(), err)
	}
	return nil
}

// onceCloseListener closes its listener once; later calls (fasthttp's own
// Shutdown after ours) return nil.
type onceCloseListener struct {
	net.Listener
	once sync.Once
	err  error
}

func (l *onceCloseListener) Close() error {
	l.once.Do(func() { l.err = l.Listener.Close() })
	return l.err
}

// errShutdown is what a stream cut at the drain deadline reads.
var errShutdown = errors.New("proxy shutting down: stream cut at the drain deadline")

// Shutdown stops accepting connections, lets in-flight exchanges finish
// until ctx is done, then cuts the rest (recorded as proxy_shutdown) and
// waits briefly for their records. It stops the metrics scraper. The Sink
// is the caller's to flush and close afterwards.
func (p *Proxy) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	p.closing = true
	stop := p.scrapeStop
	p.scrapeStop = nil
	lns := p.lns
	p.mu.Unlock()
	for _, ln := range lns {
		ln.Close()
	}
	if stop != nil {
		close(stop)
		<-p.scrapeDone
	}
	err := p.srv.ShutdownWithContext(ctx)
	if err == nil {
		p.waitIdle(ctx.Done(), 0)
		p.hc.CloseIdleConnections()
		return nil
	}
	// Drain deadline passed: cut every open stream so its record is kept.
	p.mu.Lock()
	open := make([]*stream, 0, len(p.streams))
	for s := range p.streams {
		open = append(open, s)
	}
	p.mu.Unlock()
	for _, s := range open {
		s.cut(errShutdown)
	}
	// fasthttp's second shutdown call returns at once, so wait for the cut
	// streams' records ourselves. Exchanges still waiting for response
	// headers cannot be cut; they are given up after 2 s.
	if !p.waitIdle(nil, 2*time.Second) {
		p.log.Warn("proxy: exchanges still waiting for upstream headers at shutdown; their records are lost", "in_flight", p.c.inFlight.Load())
	}
	p.hc.CloseIdleConnections()
	return fmt.Errorf("proxy: shutdown: drain deadline passed, cut %d streams: %w", len(open), err)
}

// waitIdle waits until no exchange is in flight (every record was handed
// to the sink), until done is closed or, if max > 0, for at most max.
func (p *Proxy) waitIdle(done <-chan struct{}, max time.Duration) bool {
	var timeout <-chan time.Time
	if max > 0 {
		t := time.NewTimer(max)
		defer t.Stop()
		timeout = t.C
	}
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for p.c.inFlight.Load() > 0 {
		select {
		case <-done:
			return false
		case <-timeout:
			return false
		case <-tick.C:
		}
	}
	return true
}

// now returns the Unix ns of t on the process clock.
func (p *Proxy) unix(t time.Time) int64 { return p.t0Unix + int64(t.Sub(p.t0)) }

// handle serves one request.
func (p *Proxy) handle(ctx *fasthttp.RequestCtx) {
	// The raw request URI, not ctx.Path(): parsing the URI would normalize
	// the path that is forwarded.
	if bytes.HasPrefix(ctx.Request.Header.RequestURI(), adminPrefix) {
		p.admin(ctx)
		return
	}
	p.c.inFlight.Add(1)
	p.c.requests.Add(1)
	rec := &capture.Record{
		Labels:           p.cfg.Labels,
		PromptTokens:     -1,
		CompletionTokens: -1,
	}
	if id, ok := p.sink.(idReserver); ok {
		rec.ID = id.NextID()
	}
	req := &ctx.Request
	p.readRequest(req, rec)
	held, ok := p.readBody(ctx, rec)
	start := time.Now()
	rec.Received = p.unix(start)
	if !ok {
		p.finish(rec, 0)
		return
	}
	recHeld := p.recordBody(req, rec)
	p.prepareUpstreamRequest(req)

	resp := fasthttp.AcquireResponse()
	rec.Forwarded = int64(time.Since(start))
	var err error
	if p.cfg.HeaderTimeout > 0 {
		err = p.hc.DoTimeout(req, resp, p.cfg.HeaderTimeout)
	} else {
		err = p.hc.Do(req, resp)
	}
	// The request is sent (or failed): its body's memory goes back.
	req.ResetBody()
	p.mem.release(held)
	if errors.Is(err, errNoDescriptor) {
		fasthttp.ReleaseResponse(resp)
		p.overloaded(ctx, rec, "no file descriptor left for an upstream connection")
		rec.End = int64(time.Since(start))
		p.finish(rec, recHeld)
		return
	}
	var ce *connectError
	if err != nil && errors.As(err, &ce) {
		fasthttp.ReleaseResponse(resp)
		rec.Outcome = capture.OutcomeUpstreamConnect
		rec.Error = fmt.Sprintf("connect to the upstream %s: %v", p.up.url, ce.err)
		ctx.Response.Header.SetContentType("text/plain; charset=utf-8")
		ctx.Response.SetStatusCode(fasthttp.StatusBadGateway)
		ctx.Response.SetBodyString("vbproxy: cannot connect to the upstream " + p.up.url + ": " + ce.err.Error() + " (--dial-timeout " + p.cfg.DialTimeout.String() + ")\n")
		rec.End = int64(time.Since(start))
		p.finish(rec, recHeld)
		return
	}
	if err != nil && p.cfg.HeaderTimeout > 0 && isTimeout(err) {
		fasthttp.ReleaseResponse(resp)
		p.headerTimeout(ctx, rec, err)
		rec.End = int64(time.Since(start))
		p.finish(rec, recHeld)
		return
	}
	if err != nil {
		fasthttp.ReleaseResponse(resp)
		rec.Outcome = capture.OutcomeUpstreamUnreachable
		rec.Error = fmt.Sprintf("upstream %s: %v", p.up.url, err)
		ctx.Response.Header.SetContentType("text/plain; charset=utf-8")
		ctx.Response.SetStatusCode(fasthttp.StatusBadGateway)
		ctx.Response.SetBodyString("vbproxy: upstream " + p.up.url + " unreachable: " + err.Error() + "\n")
		rec.End = int64(time.Since(start))
		p.finish(rec, recHeld)
		return
	}
	rec.Headers = int64(time.Since(start))
	rec.Status = resp.StatusCode()
	rec.ContentType = string(resp.Header.ContentType())

	if err := copyResponseHeader(&ctx.Response.Header, &resp.Header); err != nil {
		// Cannot happen with headers fasthttp parsed; say so if it does.
		p.log.Warn("proxy: cannot copy the upstream's response headers", "err", err)
		ctx.Response.SetStatusCode(resp.StatusCode())
	}
	ctx.Response.ImmediateHeaderFlush = true

	s := p.newStream(rec, resp, start)
	s.held = recHeld
	body := resp.BodyStream()
	if body != nil && p.cfg.HeaderTimeout > 0 && !p.conns.clearReadDeadline(resp.LocalAddr(), resp.RemoteAddr()) {
		// Cannot happen with the proxy's own dialer; if it does, the header
		// deadline stays on the connection and cuts this body.
		if p.deadlineMissing.CompareAndSwap(false, true) {
			p.log.Warn("proxy: cannot find the upstream connection to clear the header deadline; a body longer than --header-timeout will be cut",
				"local", resp.LocalAddr(), "remote", resp.RemoteAddr())
		}
	}
	if body == nil {
		// No body stream (HEAD, 204, 304): forward what is there.
		ctx.Response.SetBodyRaw(resp.Body())
		s.readErr = errNoBody
		s.CloseWithError(nil)
		return
	}
	cl := resp.Header.ContentLength()
	if cl < 0 {
		cl = -1
		if !ctx.Request.Header.IsHTTP11() {
			p.streamHTTP10(ctx, s)
			return
		}
	}
	ctx.SetBodyStream(s, cl)
}

// streamHTTP10 answers an HTTP/1.0 client a body of unknown length the
// HTTP/1.0 way (RFC 9112 6.1 and 6.3: no Transfer-Encoding for a request
// that does not say HTTP/1.1; the body ends when the connection closes).
// fasthttp's server would chunk it, so the connection is taken over: the
// head, then each upstream read written as it comes, then close.
func (p *Proxy) streamHTTP10(ctx *fasthttp.RequestCtx, s *stream) {
	h := &ctx.Response.Header
	h.SetContentLength(-2) // no length framing
	h.Del("Transfer-Encoding")
	h.SetConnectionClose()
	head := append([]byte(nil), h.Header()...)
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) {
		var werr error
		if _, err := c.Write(head); err != nil {
			werr = err
		}
		buf := make([]byte, 32<<10)
		for werr == nil {
			n, err := s.Read(buf)
			if n > 0 {
				if _, err := c.Write(buf[:n]); err != nil {
					werr = err
					break
				}
			}
			if err != nil {
				if err != io.EOF {
					werr = err
				}
				break
			}
		}
		s.CloseWithError(werr)
	})
}

var errNoBody = errors.New("no body")

// isTimeout reports whether a failed upstream exchange ran out of time
// (fasthttp's ErrTimeout, or a read deadline passing while it read the
// response headers). A connect that timed out is fasthttp.ErrDialTimeout,
// which is not one: that upstream is unreachable.
func isTimeout(err error) bool {
	if errors.Is(err, fasthttp.ErrTimeout) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// headerTimeout answers a request whose response headers did not come in
// time: a 504 with an OpenAI-style JSON error, and the record's outcome.
func (p *Proxy) headerTimeout(ctx *fasthttp.RequestCtx, rec *capture.Record, err error) {
	msg := fmt.Sprintf("vbproxy: no response headers from the upstream %s within %v (--header-timeout)", p.up.url, p.cfg.HeaderTimeout)
	rec.Outcome = capture.OutcomeUpstreamHeaderTimeout
	rec.Error = fmt.Sprintf("no response headers from the upstream %s within %v (--header-timeout): %v", p.up.url, p.cfg.HeaderTimeout, err)
	body, _ := json.Marshal(apiError{Error: apiErrorBody{Message: msg, Type: "upstream_timeout", Code: fasthttp.StatusGatewayTimeout}})
	ctx.Response.Header.SetContentType("application/json")
	ctx.Response.SetStatusCode(fasthttp.StatusGatewayTimeout)
	ctx.Response.SetBodyRaw(append(body, '\n'))
}

// apiError is an OpenAI-style error body.
type apiError struct {
	Error apiErrorBody `json:"error"`
}

type apiErrorBody struct {
	Message string `json:"message"`
	Type    string `json:"type"`
	Code    int    `json:"code"`
}

// errNoDescriptor: a new upstream connection would pass the descriptor
// limit (dial refuses it; a pooled connection needs none).
var errNoDescriptor = errors.New("no file descriptor left")

// bodyStep is how much budget a body of unknown length (chunked) reserves
// at a time.
const bodyStep = 64 << 10

// readBody reads the request body (fasthttp streams it to the handler,
// Server.StreamRequestBody) into memory reserved from the budget, and sets
// it as the request's body. held is the reservation, to release once the
// request is sent. When ok is false the client has its answer (413 for a
// body over --max-body, 503 when the memory budget has no room, 400/408
// for a body that does not arrive) and rec says why.
func (p *Proxy) readBody(ctx *fasthttp.RequestCtx, rec *capture.Record) (held int64, ok bool) {
	req := &ctx.Request
	stream := req.BodyStream()
	cl := req.Header.ContentLength()
	limit := int64(p.cfg.MaxRequestBody)
	if stream == nil || cl == 0 || cl == -2 {
		req.SetBodyRaw(nil)
		return 0, true
	}
	fail := func(status int, outcome capture.Outcome, msg string) (int64, bool) {
		p.mem.release(held)
		held = 0
		rec.Status, rec.Outcome, rec.Error = status, outcome, msg
		ctx.Response.Header.SetContentType("text/plain; charset=utf-8")
		ctx.Response.SetStatusCode(status)
		ctx.Response.SetBodyString("vbproxy: " + msg + "\n")
		// Read what is left of a body within --max-body (without keeping
		// it), so the client, still sending, gets this answer rather than
		// a reset; a longer body, or one that stalls, closes the
		// connection.
		if outcome == capture.OutcomeTooLarge && rec.RequestSize > limit || !drain(ctx, stream, limit) {
			ctx.SetConnectionClose()
		}
		req.ResetBody()
		return 0, false
	}
	tooLarge := func(size int64) (int64, bool) {
		rec.RequestSize = size
		return fail(fasthttp.StatusRequestEntityTooLarge, capture.OutcomeTooLarge, fmt.Sprintf("request body over the proxy's limit of %d bytes (--max-body)", limit))
	}
	if cl > 0 && int64(cl) > limit {
		return tooLarge(int64(cl))
	}
	want := int64(bodyStep)
	if cl > 0 {
		want = int64(cl)
	}
	if p.mem.max > 0 && want > p.mem.max {
		rec.RequestSize = want
		return fail(fasthttp.StatusRequestEntityTooLarge, capture.OutcomeTooLarge, fmt.Sprintf("a %d-byte request body is larger than the proxy's whole memory budget (--max-memory %d bytes)", want, p.mem.max))
	}
	if !p.mem.wait(want, p.cfg.bodyWait) {
		p.mem.refused.Add(1)
		rec.RequestSize = max(int64(cl), 0)
		ctx.Response.Header.Set("Retry-After", "1")
		return fail(fasthttp.StatusServiceUnavailable, capture.OutcomeOverloaded, fmt.Sprintf("no room for a %d-byte request body in the proxy's memory budget (--max-memory %d bytes) within %v", want, p.mem.max, p.cfg.bodyWait))
	}
	held = want
	buf := make([]byte, 0, want)
	for {
		if int64(len(buf)) == held && cl < 0 { // chunked: reserve the next step
			if !p.mem.wait(bodyStep, p.cfg.bodyWait) {
				p.mem.refused.Add(1)
				rec.RequestSize = int64(len(buf))
				ctx.Response.Header.Set("Retry-After", "1")
				return fail(fasthttp.StatusServiceUnavailable, capture.OutcomeOverloaded, fmt.Sprintf("no room for more of a chunked request body (%d bytes so far) in the proxy's memory budget (--max-memory %d bytes) within %v", len(buf), p.mem.max, p.cfg.bodyWait))
			}
			held += bodyStep
			buf = slices.Grow(buf, bodyStep)
		}
		n, err := stream.Read(buf[len(buf):min(int64(cap(buf)), held)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > limit {
			return tooLarge(int64(len(buf)))
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				rec.RequestSize = int64(len(buf))
				return fail(fasthttp.StatusRequestTimeout, capture.OutcomeClientAborted, fmt.Sprintf("request body not received within %v (--client-body-timeout): %d bytes read", p.cfg.ClientBodyTimeout, len(buf)))
			}
			rec.RequestSize = int64(len(buf))
			return fail(fasthttp.StatusBadRequest, capture.OutcomeClientAborted, fmt.Sprintf("reading the request body: %v (%d bytes read)", err, len(buf)))
		}
		if cl > 0 && len(buf) == cl {
			// Read to the end, so the connection is ready for the next
			// request.
			if _, err := stream.Read(make([]byte, 1)); err != nil && err != io.EOF {
				break
			}
			break
		}
	}
	req.SetBodyRaw(buf)
	return held, true
}

// drainWait bounds how long a refused request's body is read and dropped.
const drainWait = 2 * time.Second

// drain reads and drops the rest of a request body, up to limit bytes and
// drainWait; it reports whether the body ended.
func drain(ctx *fasthttp.RequestCtx, stream io.Reader, limit int64) bool {
	if ctx.SetReadDeadline(time.Now().Add(drainWait)) != nil {
		return false
	}
	_, err := io.CopyN(io.Discard, stream, limit+1)
	return err == io.EOF
}

// overloaded answers a request the proxy has no room for with a 503.
func (p *Proxy) overloaded(ctx *fasthttp.RequestCtx, rec *capture.Record, why string) {
	rec.Status, rec.Outcome, rec.Error = fasthttp.StatusServiceUnavailable, capture.OutcomeOverloaded, why
	ctx.Response.Header.SetContentType("text/plain; charset=utf-8")
	ctx.Response.Header.Set("Retry-After", "1")
	ctx.Response.SetStatusCode(fasthttp.StatusServiceUnavailable)
	ctx.Response.SetBodyString("vbproxy: " + why + "\n")
}

// headerReceived is fasthttp's hook once a request's headers are read:
// from then on the client has Config.ClientBodyTimeout to send the body
// (Server.ReadTimeout, the header deadline, covered the headers).
func (p *Proxy) headerReceived(*fasthttp.RequestHeader) fasthttp.RequestConfig {
	return fasthttp.RequestConfig{ReadTimeout: p.cfg.ClientBodyTimeout, MaxRequestBodySize: p.cfg.MaxRequestBody}
}

// handleError answers requests fasthttp could not read.
func (p *Proxy) handleError(ctx *fasthttp.RequestCtx, err error) {
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		ctx.Response.SetStatusCode(fasthttp.StatusRequestTimeout)
		ctx.Response.SetBodyString("vbproxy: request read timeout\n")
		return
	}
	ctx.Response.SetStatusCode(fasthttp.StatusBadRequest)
	ctx.Response.SetBodyString("vbproxy: cannot parse the request: " + err.Error() + "\n")
}

// finish hands a finished record to the sink and gives back the memory
// its buffers held in the budget.
func (p *Proxy) finish(rec *capture.Record, held int64) {
	p.mem.release(held)
	p.c.outcomes[outcomeIndex(rec.Outcome)].Add(1)
	p.c.completed.Add(1)
	p.c.inFlight.Add(-1)
	if p.sink == nil {
		rec.Release() // its pooled buffers serve the next exchange
		return
	}
	if p.sink.Put(rec) {
		p.c.recorded.Add(1)
		return
	}
	n := p.c.dropped.Add(1)
	if n == 1 || n%1000 == 0 {
		p.log.Warn("proxy: capture queue full, records dropped", "dropped", n)
	}
}
