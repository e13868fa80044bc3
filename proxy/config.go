// Package proxy is vbench's recording reverse proxy: a fasthttp server in
// front of an OpenAI-compatible inference server that forwards every byte
// unchanged, flushes each upstream read to the client as it arrives, and
// records every exchange (with the arrival time of each response chunk) as
// one capture.Record handed to a Sink off the forwarding path.
//
// The proxy's own endpoints live on the main listener under /vb/
// (/vb/health, /vb/stats, /vb/metrics) and are never forwarded: inference
// servers have no /vb/ paths, and one port is simpler to orchestrate.
package proxy

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/vbench/vbench/internal/addr"
)

// Defaults for zero Config fields.
const (
	DefaultIdleTimeout         = 10 * time.Minute
	DefaultHeaderTimeout       = 10 * time.Minute
	DefaultMaxRequestBody      = 64 << 20
	DefaultMaxResponseBody     = 1 << 30
	DefaultRecordRequestBody   = 1 << 20
	DefaultRecordResponseBody  = 4 << 20
	DefaultMaxConns            = 16384
	DefaultClientHeaderTimeout = 10 * time.Second
	DefaultClientBodyTimeout   = 5 * time.Minute
	DefaultMaxMemory           = 768 << 20
	// DefaultDialTimeout covers three SYN retransmissions (at 1, 3 and
	// 7 s): a burst of connections that overflows the upstream's accept
	// queue still connects; fasthttp's 3 s failed 28 of 5,000 here.
	DefaultDialTimeout = 10 * time.Second
)

// minHeaderTimeout is the shortest header timeout accepted: below it no
// upstream could answer, so a smaller value is a mistake.
const minHeaderTimeout = time.Millisecond

// Config sets up a Proxy. Field names follow vbproxy's flags.
type Config struct {
	// Upstream is the server to forward to: "HOST:PORT", ":PORT" (loopback)
	// or an http:// or https:// URL without a path.
	Upstream string
	// Labels are added to every record (--label k=v).
	Labels map[string]string
	// IdleTimeout is the longest the proxy waits between two reads of an
	// upstream response body before it cuts the exchange (there is no
	// whole-response timeout). 0 means DefaultIdleTimeout; negative means
	// no idle timeout.
	IdleTimeout time.Duration
	// HeaderTimeout is the longest the proxy waits for the upstream's
	// response headers once it starts forwarding a request (getting a
	// connection, sending the request, the engine's queueing and prefill;
	// a non-streamed completion sends its headers only at the end). Past
	// it the upstream connection is closed, the client gets a 504 and the
	// record says upstream_header_timeout. It never bounds the response
	// body (IdleTimeout does). 0 means DefaultHeaderTimeout; negative
	// means no limit.
	HeaderTimeout time.Duration
	// ClientHeaderTimeout is how long a client connection may take to
	// send a request's headers, from its opening (or, kept alive, from
	// its next request's first byte): a slow-header (slowloris) connection
	// is closed then. 0 means DefaultClientHeaderTimeout.
	ClientHeaderTimeout time.Duration
	// ClientBodyTimeout is how long a client may take to send a request
	// body once its headers are in (408 past it). 0 means
	// DefaultClientBodyTimeout.
	ClientBodyTimeout time.Duration
	// MaxConnsPerClient caps the connections one client address may hold
	// open (refused with a 503 past it), so one address cannot take every
	// connection slot. 0 means half of the descriptor limit's slots.
	MaxConnsPerClient int
	// MaxMemory is the proxy's memory budget in bytes: request bodies
	// being read and forwarded, the body copies of the records of open
	// exchanges, and 32 KiB per open client connection. Past it a request
	// body waits for room up to 30 s, then gets a 503 (outcome
	// proxy_overloaded); a new connection gets a 503; a record stops
	// copying body bytes (its Error says so). 0 means DefaultMaxMemory;
	// negative means no budget. (The capture writer's queue has its own
	// bound.)
	MaxMemory int64
	// DialTimeout bounds connecting to the upstream (a failure is a 502,
	// outcome upstream_connect_error). 0 means DefaultDialTimeout.
	DialTimeout time.Duration
	// MaxRequestBody is the largest request body accepted (413 above it).
	// 0 means DefaultMaxRequestBody.
	MaxRequestBody int
	// MaxResponseBody is the largest response body forwarded; a longer one
	// is cut and recorded as too_large. 0 means DefaultMaxResponseBody;
	// negative means no limit.
	MaxResponseBody int64
	// RecordRequestBody and RecordResponseBody cap the body bytes stored in
	// a record (sizes are always recorded in full). 0 means the default;
	// negative means store none.
	RecordRequestBody  int
	RecordResponseBody int
	// RecordSecrets keeps credentials in records: the values of headers,
	// query parameters and JSON body keys whose names contain key, token,
	// secret, auth, password, cookie, signature or credential (any case)
	// are otherwise recorded as capture.Redacted (redact.go).
	RecordSecrets bool
	// KeepHeaders names request headers recorded as they are although
	// their names look like credentials' (--record-header).
	KeepHeaders []string
	// ScrapeInterval, when positive, polls the upstream's /metrics and
	// stores the server metrics the analysis needs as samples.
	ScrapeInterval time.Duration
	// ScrapeMetrics names further metrics to keep from each scrape
	// (--scrape-metric, repeatable): a NAME or a PREFIX* (see
	// ScrapeMetricMatches). Their samples are stored under their
	// Prometheus series names, values summed over label sets.
	ScrapeMetrics []string
	// MaxConns caps the connections to the upstream (each open stream pins
	// one). 0 means DefaultMaxConns.
	MaxConns int
	// Logger receives warnings (drops, scrape failures); nil discards.
	Logger *slog.Logger

	// idleConns is how long an idle upstream connection is kept (default
	// 10s); tests shorten it so fasthttp's cleaner goroutine ends quickly.
	idleConns time.Duration
	// bodyWait is how long a request body waits for room in the memory
	// budget (default 30 s); tests shorten it.
	bodyWait time.Duration
	// maxChunks caps a record's timeline (default capture.MaxChunks);
	// tests lower it.
	maxChunks int
	// fdCap is how many connections (client and upstream together) may be
	// open: the descriptor limit less fdReserve. Tests lower it.
	fdCap int
}

// upstream is the parsed Config.Upstream.
type upstream struct {
	addr  string // host:port to dial
	host  string // Host header value
	isTLS bool
	url   string // base URL, for messages
}

func parseUpstream(s string) (upstream, error) {
	srv, err := addr.ParseServer(s)
	if err != nil {
		return upstream{}, fmt.Errorf("upstream %w", err)
	}
	hp := srv.HostPort()
	return upstream{addr: hp, host: hp, isTLS: srv.Scheme == "https", url: srv.URL()}, nil
}

// Validate reports every problem with the config at once.
func (c Config) Validate() error {
	var errs []error
	if _, err := parseUpstream(c.Upstream); err != nil {
		errs = append(errs, err)
	}
	if c.HeaderTimeout > 0 && c.HeaderTimeout < minHeaderTimeout {
		errs = append(errs, fmt.Errorf("header timeout %v: must be at least %v (negative = none)", c.HeaderTimeout, minHeaderTimeout))
	}
	if c.ClientHeaderTimeout < 0 || c.ClientBodyTimeout < 0 {
		errs = append(errs, fmt.Errorf("client header/body timeouts %v/%v: must be >= 0", c.ClientHeaderTimeout, c.ClientBodyTimeout))
	}
	if c.MaxConnsPerClient < 0 {
		errs = append(errs, fmt.Errorf("max conns per client %d: must be >= 0", c.MaxConnsPerClient))
	}
	if c.MaxMemory > 0 && c.MaxMemory < 16<<20 {
		errs = append(errs, fmt.Errorf("max memory %d bytes: must be at least 16 MiB (negative = no budget)", c.MaxMemory))
	}
	if c.DialTimeout < 0 {
		errs = append(errs, fmt.Errorf("dial timeout %v: must be >= 0", c.DialTimeout))
	}
	if c.MaxRequestBody < 0 {
		errs = append(errs, fmt.Errorf("max request body %d: must be >= 0", c.MaxRequestBody))
	}
	if c.MaxConns < 0 {
		errs = append(errs, fmt.Errorf("max conns %d: must be >= 0", c.MaxConns))
	}
	if c.ScrapeInterval < 0 {
		errs = append(errs, fmt.Errorf("scrape interval %v: must be >= 0", c.ScrapeInterval))
	} else if c.ScrapeInterval > 0 && c.ScrapeInterval < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("scrape interval %v: must be at least 10ms", c.ScrapeInterval))
	}
	if err := ValidateScrapeMetrics(c.ScrapeMetrics); err != nil {
		errs = append(errs, err)
	}
	if len(c.ScrapeMetrics) > 0 && c.ScrapeInterval == 0 {
		errs = append(errs, fmt.Errorf("scrape metrics %s: need a scrape interval (none is set, so /metrics is never polled)", strings.Join(c.ScrapeMetrics, ", ")))
	}
	for k := range c.Labels {
		if k == "" {
			errs = append(errs, errors.New("label with an empty key"))
		}
	}
	return errors.Join(errs...)
}

// withDefaults fills zero fields.
func (c Config) withDefaults() Config {
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.HeaderTimeout == 0 {
		c.HeaderTimeout = DefaultHeaderTimeout
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.ClientHeaderTimeout == 0 {
		c.ClientHeaderTimeout = DefaultClientHeaderTimeout
	}
	if c.ClientBodyTimeout == 0 {
		c.ClientBodyTimeout = DefaultClientBodyTimeout
	}
	if c.MaxMemory == 0 {
		c.MaxMemory = DefaultMaxMemory
	}
	if c.bodyWait == 0 {
		c.bodyWait = 30 * time.Second
	}
	if c.fdCap == 0 {
		c.fdCap = fdCapacity()
	}
	if c.MaxConnsPerClient == 0 {
		c.MaxConnsPerClient = max(c.fdCap/2, 1)
	}
	if c.MaxRequestBody == 0 {
		c.MaxRequestBody = DefaultMaxRequestBody
	}
	if c.MaxResponseBody == 0 {
		c.MaxResponseBody = DefaultMaxResponseBody
	}
	if c.RecordRequestBody == 0 {
		c.RecordRequestBody = DefaultRecordRequestBody
	}
	if c.RecordResponseBody == 0 {
		c.RecordResponseBody = DefaultRecordResponseBody
	}
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}
