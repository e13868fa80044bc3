package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/vbench/vbench/capture"
)

// Sink receives finished records and scraped samples. Both methods must
// never block; false means the value was dropped. *capture.Writer is one.
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
	capture.OutcomeShutdown, capture.OutcomeUpstreamHeaderTimeout,
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
		cfg:     cfg,
		up:      up,
		sink:    sink,
		log:     cfg.Logger,
		t0:      now,
		t0Unix:  now.UnixNano(),
		streams: make(map[*stream]struct{}),
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
		Handler:                      p.handle,
		ErrorHandler:                 p.handleError,
		Name:                         "vbproxy",
		NoDefaultServerHeader:        true,
		NoDefaultDate:                true,
		NoDefaultContentType:         true,
		DisablePreParseMultipartForm: true,
		MaxRequestBodySize:           cfg.MaxRequestBody,
		ReadBufferSize:               8 << 10, // request headers
		WriteBufferSize:              4 << 10, // flushed per chunk; bigger writes bypass it
		ReadTimeout:                  5 * time.Minute,
		IdleTimeout:                  2 * time.Minute,
		// WriteTimeout stays 0: it would cover the whole streamed body.
		Concurrency:           maxStreams(), // 503 past it, instead of running out of descriptors
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
	err := p.srv.Serve(oln)
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
	start := time.Now()
	p.c.inFlight.Add(1)
	p.c.requests.Add(1)
	rec := &capture.Record{
		Labels:           p.cfg.Labels,
		Received:         p.unix(start),
		PromptTokens:     -1,
		CompletionTokens: -1,
	}
	if id, ok := p.sink.(idReserver); ok {
		rec.ID = id.NextID()
	}
	req := &ctx.Request
	p.readRequest(req, rec)
	p.prepareUpstreamRequest(req)

	resp := fasthttp.AcquireResponse()
	rec.Forwarded = int64(time.Since(start))
	var err error
	if p.cfg.HeaderTimeout > 0 {
		err = p.hc.DoTimeout(req, resp, p.cfg.HeaderTimeout)
	} else {
		err = p.hc.Do(req, resp)
	}
	if err != nil && p.cfg.HeaderTimeout > 0 && isTimeout(err) {
		fasthttp.ReleaseResponse(resp)
		p.headerTimeout(ctx, rec, err)
		rec.End = int64(time.Since(start))
		p.finish(rec)
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
		p.finish(rec)
		return
	}
	rec.Headers = int64(time.Since(start))
	rec.Status = resp.StatusCode()
	rec.ContentType = string(resp.Header.ContentType())

	resp.Header.CopyTo(&ctx.Response.Header)
	stripResponseHopHeaders(&ctx.Response.Header)
	ctx.Response.ImmediateHeaderFlush = true

	s := p.newStream(rec, resp, start)
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
	}
	ctx.SetBodyStream(s, cl)
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

// handleError answers requests fasthttp could not read; an oversize body
// is recorded as too_large.
func (p *Proxy) handleError(ctx *fasthttp.RequestCtx, err error) {
	if errors.Is(err, fasthttp.ErrBodyTooLarge) {
		now := time.Now()
		p.c.inFlight.Add(1)
		p.c.requests.Add(1)
		rec := &capture.Record{
			Labels:           p.cfg.Labels,
			Received:         p.unix(now),
			Status:           fasthttp.StatusRequestEntityTooLarge,
			Outcome:          capture.OutcomeTooLarge,
			Error:            fmt.Sprintf("request body over the proxy's limit of %d bytes (--max-body)", p.cfg.MaxRequestBody),
			PromptTokens:     -1,
			CompletionTokens: -1,
		}
		p.readRequest(&ctx.Request, rec)
		rec.RequestSize = int64(ctx.Request.Header.ContentLength())
		p.finish(rec)
		ctx.Response.SetStatusCode(fasthttp.StatusRequestEntityTooLarge)
		ctx.Response.SetBodyString("vbproxy: " + rec.Error + "\n")
		return
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		ctx.Response.SetStatusCode(fasthttp.StatusRequestTimeout)
		ctx.Response.SetBodyString("vbproxy: request read timeout\n")
		return
	}
	ctx.Response.SetStatusCode(fasthttp.StatusBadRequest)
	ctx.Response.SetBodyString("vbproxy: cannot parse the request: " + err.Error() + "\n")
}

// finish hands a finished record to the sink.
func (p *Proxy) finish(rec *capture.Record) {
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
