// Command vbproxy is vbench's recording reverse proxy: put it in front of an
// OpenAI-compatible server and it forwards every byte unchanged while
// recording each exchange, with the arrival time of every response chunk,
// into a capture directory. See docs/vbproxy.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vbench/vbench/capture"
	"github.com/vbench/vbench/internal/addr"
	"github.com/vbench/vbench/internal/cli"
	"github.com/vbench/vbench/proxy"
)

func main() { os.Exit(cli.Main("vbproxy", run)) }

const usage = `vbproxy --upstream HOST:PORT|URL [--listen 127.0.0.1:8001] [--capture DIR] [flags]
       vbproxy dump CAPTURE_DIR [--no-bodies] [--no-samples]`

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "dump" {
		return cli.Exit(stderr, "vbproxy dump", runDump(args[1:], stdout, stderr))
	}
	return cli.Exit(stderr, "vbproxy", runProxy(ctx, args, stdout, stderr))
}

// config is what vbproxy runs with; it is stored in the capture's Meta.
type config struct {
	Listen        string            `json:"listen"`
	Capture       string            `json:"capture"`
	Upstream      string            `json:"upstream"`
	Labels        map[string]string `json:"labels,omitempty"`
	IdleTimeout   time.Duration     `json:"idle_timeout_ns"`
	HeaderTimeout time.Duration     `json:"header_timeout_ns"`
	MaxBody       int64             `json:"max_body"`
	MaxResponse   int64             `json:"max_response_body"`
	RecordReq     int64             `json:"record_request_body"`
	RecordResp    int64             `json:"record_response_body"`
	RecordSecrets bool              `json:"record_secrets"`
	Scrape        time.Duration     `json:"scrape_metrics_ns"`
	ScrapeMetrics []string          `json:"scrape_metric,omitempty"`
	MaxConns      int               `json:"max_conns"`
	Drain         time.Duration     `json:"drain_ns"`
	FlushInterval time.Duration     `json:"flush_interval_ns"`
	SyncInterval  time.Duration     `json:"sync_interval_ns"`
	QueueSize     int               `json:"queue_size"`
	DialTimeout   time.Duration     `json:"dial_timeout_ns"`
	ClientHeader  time.Duration     `json:"client_header_timeout_ns"`
	ClientBody    time.Duration     `json:"client_body_timeout_ns"`
	PerClient     int               `json:"max_conns_per_client"`
	MaxMemory     int64             `json:"max_memory"`
	DiskReserve   int64             `json:"disk_reserve"`
	KeepHeaders   []string          `json:"record_header,omitempty"`
}

func runProxy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("vbproxy", usage, stderr)
	var c config
	fs.StringVar(&c.Upstream, "upstream", "", "server to forward to: HOST:PORT, :PORT (127.0.0.1) or http(s)://HOST[:PORT] (required)")
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:8001", "address to listen on: HOST:PORT or http://HOST:PORT (loopback by default; other addresses expose the capture's traffic)")
	fs.StringVar(&c.Capture, "capture", "./capture", "capture directory (a Badger store; created if missing; '' = forward without recording)")
	labels := fs.StringArray("label", nil, "label k=v added to every record (repeatable, or k=v,k2=v2)")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", proxy.DefaultIdleTimeout, "cut a response when the upstream sends nothing for this long (no whole-response timeout; 0 = never)")
	fs.DurationVar(&c.HeaderTimeout, "header-timeout", proxy.DefaultHeaderTimeout, "answer 504 (record upstream_header_timeout) when the upstream's response headers take longer than this; a non-streamed completion sends them at its end (never bounds a body; 0 = never)")
	maxBody := fs.String("max-body", "64MiB", "largest request body accepted (413 and a too_large record above it)")
	maxResp := fs.String("max-response-body", "1GiB", "largest response body forwarded; longer ones are cut (0 = no limit)")
	recReq := fs.String("record-request-body", "1MiB", "request body bytes stored per record (0 = none)")
	recResp := fs.String("record-response-body", "4MiB", "raw response bytes stored per record (0 = none)")
	fs.BoolVar(&c.RecordSecrets, "record-secrets", false, "store credentials instead of [REDACTED]: values of headers, query parameters and JSON body keys whose names contain key, token, secret, auth, password, cookie, signature or credential (any case)")
	fs.StringSliceVar(&c.KeepHeaders, "record-header", nil, "record this request header as it is although its name looks like a credential's (repeatable or comma-separated)")
	fs.DurationVar(&c.DialTimeout, "dial-timeout", proxy.DefaultDialTimeout, "longest wait to connect to the upstream; past it (or refused) the client gets a 502 and the record says upstream_connect_error")
	fs.DurationVar(&c.ClientHeader, "client-header-timeout", proxy.DefaultClientHeaderTimeout, "a client connection must send its request headers within this (slow-header clients are closed)")
	fs.DurationVar(&c.ClientBody, "client-body-timeout", proxy.DefaultClientBodyTimeout, "a client must send its request body within this once its headers are in (408 past it)")
	fs.IntVar(&c.PerClient, "max-conns-per-client", 0, "most connections one client address may hold open; 503 past it (0 = half of what the descriptor limit allows)")
	maxMem := fs.String("max-memory", "1GiB", "memory budget of the whole process (at least 256MiB): 112 MiB for the capture store, then 3/4 of the rest for request bodies, record copies and connection buffers of open exchanges and 1/4 for the capture queue; past it bodies wait then get a 503, connections get a 503, records stop copying body bytes, the queue drops (counted); also the Go runtime's memory limit (0 = no budget)")
	diskReserve := fs.String("disk-reserve", "64MiB", "free space the capture keeps on its file system; below it records are counted as lost, not written (Badger writes through memory maps: a full disk would crash the proxy)")
	fs.DurationVar(&c.Scrape, "scrape-interval", time.Second, "poll the upstream's /metrics this often and store running/waiting/KV-cache/preemption samples (at least 10ms; 0 = never, e.g. in front of a remote API)")
	fs.DurationVar(&c.Scrape, "scrape-metrics", time.Second, "old name of --scrape-interval")
	_ = fs.MarkDeprecated("scrape-metrics", "use --scrape-interval")
	fs.StringSliceVar(&c.ScrapeMetrics, "scrape-metric", nil, "also store this server metric under its own name: NAME keeps NAME, NAME_total, NAME_sum and NAME_count; PREFIX* every series but _bucket/_created; e.g. 'vbtorch:*' (repeatable or comma-separated)")
	fs.IntVar(&c.MaxConns, "max-conns", proxy.DefaultMaxConns, "most connections to the upstream (each open stream holds one)")
	fs.DurationVar(&c.Drain, "drain", 30*time.Second, "on SIGINT/SIGTERM, how long in-flight streams may finish before they are cut (a second signal cuts them now)")
	fs.DurationVar(&c.FlushInterval, "flush-interval", 20*time.Millisecond, "longest a finished record waits before it is committed to the capture")
	fs.DurationVar(&c.SyncInterval, "sync-interval", time.Second, "how often the capture is fsynced (negative = never; a process crash still loses nothing committed)")
	fs.IntVar(&c.QueueSize, "queue-size", 1<<16, "capture queue capacity; a full queue drops records (counted, never blocks a stream)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	quiet := fs.BoolP("quiet", "q", false, "no shutdown summary on stderr (warnings and errors still; vbreplay --capture runs its vbproxy so and reports the capture itself)")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return cli.Usagef("unexpected arguments %q (did you mean 'vbproxy dump DIR'?)", fs.Args())
	}
	if c.Upstream == "" {
		return cli.Usagef("--upstream is required, e.g. --upstream 127.0.0.1:8000")
	}
	var errs []error
	var err error
	if c.Listen, err = addr.ParseListen(c.Listen); err != nil {
		errs = append(errs, cli.Usagef("--listen %w", err))
	}
	if c.Scrape < 0 {
		errs = append(errs, cli.Usagef("--scrape-interval %v: want 0 (never) or a positive duration", c.Scrape))
	}
	if len(c.ScrapeMetrics) > 0 && c.Scrape == 0 {
		errs = append(errs, cli.Usagef("--scrape-metric needs --scrape-interval above 0"))
	}
	if c.IdleTimeout < 0 {
		errs = append(errs, cli.Usagef("--idle-timeout %v: must be >= 0 (0 = never)", c.IdleTimeout))
	}
	if c.Drain < 0 {
		errs = append(errs, cli.Usagef("--drain %v: must be >= 0", c.Drain))
	}
	if c.FlushInterval <= 0 {
		errs = append(errs, cli.Usagef("--flush-interval %v: want a positive duration", c.FlushInterval))
	}
	if c.QueueSize < 1 {
		errs = append(errs, cli.Usagef("--queue-size %d: want at least 1", c.QueueSize))
	}
	if c.MaxConns < 1 {
		errs = append(errs, cli.Usagef("--max-conns %d: want at least 1", c.MaxConns))
	}
	if c.Labels, err = cli.ParseKV("label", *labels); err != nil {
		errs = append(errs, err)
	}
	for _, s := range []struct {
		flag string
		v    string
		dst  *int64
	}{{"max-body", *maxBody, &c.MaxBody}, {"max-response-body", *maxResp, &c.MaxResponse},
		{"record-request-body", *recReq, &c.RecordReq}, {"record-response-body", *recResp, &c.RecordResp},
		{"max-memory", *maxMem, &c.MaxMemory}, {"disk-reserve", *diskReserve, &c.DiskReserve}} {
		n, err := parseSize(s.v)
		if err != nil {
			errs = append(errs, cli.Usagef("--%s %q: %v", s.flag, s.v, err))
		}
		*s.dst = n
	}
	if c.MaxBody <= 0 || c.MaxBody > 1<<31-1 {
		errs = append(errs, cli.Usagef("--max-body must be between 1 byte and 2GiB"))
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		errs = append(errs, cli.Usagef("--log-level %q: want debug, info, warn or error", *logLevel))
	}
	pcfg := proxy.Config{
		Upstream:            c.Upstream,
		Labels:              c.Labels,
		IdleTimeout:         c.IdleTimeout,
		HeaderTimeout:       c.HeaderTimeout,
		MaxRequestBody:      int(c.MaxBody),
		MaxResponseBody:     orNegative(c.MaxResponse),
		RecordRequestBody:   int(orNegative(c.RecordReq)),
		RecordResponseBody:  int(orNegative(c.RecordResp)),
		RecordSecrets:       c.RecordSecrets,
		ScrapeInterval:      c.Scrape,
		ScrapeMetrics:       c.ScrapeMetrics,
		MaxConns:            c.MaxConns,
		KeepHeaders:         c.KeepHeaders,
		DialTimeout:         c.DialTimeout,
		ClientHeaderTimeout: c.ClientHeader,
		ClientBodyTimeout:   c.ClientBody,
		MaxConnsPerClient:   c.PerClient,
		MaxMemory:           -1,
	}
	queueBytes := int64(0) // the capture's default
	if c.MaxMemory > 0 {
		// What Badger holds whatever the traffic (memtables, block and
		// index caches) comes first; of the rest, 3/4 for the exchanges in
		// flight, 1/4 for the capture queue.
		if c.MaxMemory < 256<<20 {
			errs = append(errs, cli.Usagef("--max-memory %s: must be at least 256MiB (0 = no budget)", *maxMem))
		}
		rest := c.MaxMemory - badgerMemory
		pcfg.MaxMemory = rest / 4 * 3
		queueBytes = rest / 4
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"dial-timeout", c.DialTimeout}, {"client-header-timeout", c.ClientHeader}, {"client-body-timeout", c.ClientBody}} {
		if d.v <= 0 {
			errs = append(errs, cli.Usagef("--%s %v: must be positive", d.flag, d.v))
		}
	}
	if c.IdleTimeout == 0 {
		pcfg.IdleTimeout = -1
	}
	if c.HeaderTimeout < 0 {
		errs = append(errs, cli.Usagef("--header-timeout %v: must be >= 0 (0 = never)", c.HeaderTimeout))
	}
	if c.HeaderTimeout == 0 {
		pcfg.HeaderTimeout = -1
	}
	if c.PerClient < 0 {
		errs = append(errs, cli.Usagef("--max-conns-per-client %d: must be >= 0 (0 = half the descriptor limit)", c.PerClient))
	}
	for _, h := range c.KeepHeaders {
		if !headerToken(h) {
			errs = append(errs, cli.Usagef("--record-header %q: not a header name (letters, digits and !#$%%&'*+-.^_`|~)", h))
		}
	}
	if _, err := addr.ParseServer(c.Upstream); err != nil {
		errs = append(errs, cli.Usagef("--upstream %w", err))
	} else if len(errs) == 0 {
		// The library checks again what the flags did not (in its own
		// words); only when the flags are clean, so nothing is said twice.
		if err := pcfg.Validate(); err != nil {
			errs = append(errs, cli.Usagef("%w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	pcfg.Logger = log
	if c.MaxMemory > 0 && os.Getenv("GOMEMLIMIT") == "" {
		// The budget bounds what the proxy holds; the limit makes the
		// collector keep the heap near it instead of at twice the live
		// data (GOGC), and gives freed memory back to the system.
		debug.SetMemoryLimit(c.MaxMemory)
	}

	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Err != nil {
			err = op.Err // "listen tcp ADDR:" repeats the message
		}
		return fmt.Errorf("listen on %s: %w", c.Listen, err)
	}
	defer ln.Close()
	if !isLoopback(ln.Addr()) {
		fmt.Fprintf(stderr, "vbproxy: WARNING: listening on %s, which is reachable from other hosts.\n"+
			"vbproxy: WARNING: anyone who can reach it can use the upstream through it, and their traffic is recorded.\n", ln.Addr())
	}

	var st *capture.Store
	var sink proxy.Sink
	if c.Capture != "" {
		st, err = capture.Open(c.Capture, capture.Options{Logger: log, FlushInterval: c.FlushInterval, SyncInterval: c.SyncInterval,
			QueueSize: c.QueueSize, QueueBytes: queueBytes, DiskReserve: orNegative(c.DiskReserve)})
		if err != nil {
			return fmt.Errorf("--capture %s: %w", c.Capture, err)
		}
		sink = st.Writer()
	}
	p, err := proxy.New(pcfg, sink)
	if err != nil {
		closeStore(context.Background(), st, stderr)
		return err
	}
	if st != nil {
		conf, _ := json.Marshal(c)
		host, _ := os.Hostname()
		meta := capture.Meta{Version: capture.MetaVersion, Tool: "vbproxy", ToolVersion: cli.ShortVersion(), Started: time.Now().UnixNano(),
			Upstream: p.Upstream(), Labels: c.Labels, Host: host, PID: os.Getpid(), Config: conf,
			Extra: map[string]string{"listen": ln.Addr().String()}}
		if err := st.PutMeta(meta); err != nil {
			closeStore(context.Background(), st, stderr)
			return fmt.Errorf("--capture %s: write metadata: %w", c.Capture, err)
		}
	}

	served := make(chan error, 1)
	go func() { served <- p.Serve(ln) }()
	rec := "not recording"
	if st != nil {
		rec = "recording into " + c.Capture
	}
	fmt.Fprintf(stdout, "vbproxy: listening on http://%s -> %s, %s (stats at /vb/stats)\n", ln.Addr(), p.Upstream(), rec)

	var serveErr error
	select {
	case serveErr = <-served:
	case <-ctx.Done():
	}
	// Shutdown: stop accepting, drain until --drain or a second signal,
	// then close the capture, for at most closeTimeout or until one more
	// signal (never waiting forever on Badger: no signal would end the
	// process meanwhile, since this one catches them).
	second := make(chan os.Signal, 1)
	signal.Notify(second, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(second)
	drainCtx, cancel := context.WithTimeout(context.Background(), c.Drain)
	defer cancel()
	closeBase, closeCancel := context.WithCancelCause(context.Background())
	defer closeCancel(nil)
	info := stderr // the shutdown summary
	if *quiet {
		info = io.Discard
	}
	if serveErr == nil {
		fmt.Fprintf(info, "vbproxy: shutting down: %d in flight, waiting up to %v (signal again to cut them now)\n", p.Stats().InFlight, c.Drain)
	}
	go func() {
		for {
			select {
			case <-second:
				if drainCtx.Err() == nil {
					fmt.Fprintln(stderr, "vbproxy: second signal: cutting in-flight streams")
					cancel()
					continue
				}
				fmt.Fprintln(stderr, "vbproxy: signal while closing the capture: not waiting for it any longer")
				closeCancel(errors.New("a signal while closing"))
				return
			case <-closeBase.Done():
				return
			}
		}
	}()
	shutErr := p.Shutdown(drainCtx)
	cancel() // drained: a signal from now on is about the capture's close
	if serveErr == nil {
		serveErr = <-served
	}
	closeCtx, closeDone := context.WithTimeoutCause(closeBase, closeTimeout, fmt.Errorf("not closed within %v", closeTimeout))
	defer closeDone()
	slow := time.AfterFunc(closeHint, func() {
		fmt.Fprintf(stderr, "vbproxy: the capture is still closing after %v (it is given %v); signal again to stop waiting (it is then left as a killed proxy leaves it, its committed records kept)\n", closeHint, closeTimeout)
	})
	ws, closeErr := closeStore(closeCtx, st, info)
	slow.Stop()
	s := p.Stats()
	if st == nil {
		fmt.Fprintf(info, "vbproxy: %d requests, not recorded; outcomes %v\n", s.Requests, outcomes(s))
	} else {
		// What the capture holds, not what its queue accepted: a record
		// accepted and then lost (a failed commit, a full disk, the
		// directory removed) is lost.
		recorded, lostRecords := ws.Written, ws.Lost-ws.LostSamples
		where := "in the capture"
		if errors.Is(closeErr, capture.ErrDirRemoved) {
			// What was committed went with the directory.
			recorded, lostRecords, where = 0, lostRecords+ws.Written, "in the capture (its directory was removed)"
		}
		lost, w := "", info
		if lostRecords > 0 || ws.Lost > 0 {
			w = stderr // a loss is always said
			gone := errors.Is(closeErr, capture.ErrDirRemoved) || errors.Is(closeErr, capture.ErrDirMoved)
			if ws.LastError != "" && !gone { // (the error below says why)
				lost = fmt.Sprintf(" (WARNING: last write error: %s)", ws.LastError)
			}
		}
		fmt.Fprintf(w, "vbproxy: %d requests, %d recorded %s, %d dropped (queue full), %d lost (failed writes)%s; outcomes %v\n",
			s.Requests, recorded, where, s.Dropped, lostRecords, lost, outcomes(s))
	}
	if shutErr != nil {
		fmt.Fprintf(stderr, "vbproxy: %v\n", shutErr)
	}
	return errors.Join(serveErr, closeErr)
}

// badgerMemory is what the capture's Badger store holds in memory whatever
// the traffic, with capture.Options' defaults: three 16-MiB memtables
// (their skiplist arenas), a 32-MiB block cache and a 16-MiB index cache,
// and room for one memtable being flushed.
const badgerMemory = 112 << 20

// closeTimeout bounds the capture's close at shutdown (draining the
// writer's queue, Badger's last flush and compaction: seconds). Past it,
// or at one more signal, vbproxy stops waiting and exits with an error:
// the capture is then left as a killed proxy leaves it (what was committed
// is kept and read back).
const closeTimeout = 2 * time.Minute

// closeHint is how long the capture's close runs before vbproxy says it
// still waits and how to stop it.
const closeHint = 5 * time.Second

// closeStore closes the capture, waiting no longer than ctx, and returns
// the writer's final numbers.
func closeStore(ctx context.Context, st *capture.Store, stderr io.Writer) (capture.WriterStats, error) {
	if st == nil {
		return capture.WriterStats{}, nil
	}
	ws := st.Writer().Stats()
	err := st.CloseContext(ctx)
	ws2 := st.Writer().Stats()
	ws2.Dropped = max(ws.Dropped, ws2.Dropped)
	closed := "closed"
	if errors.Is(err, capture.ErrDirRemoved) || errors.Is(err, capture.ErrDirMoved) || errors.Is(err, capture.ErrCloseAbandoned) {
		closed = "not closed (below)"
	}
	fmt.Fprintf(stderr, "vbproxy: capture %s %s: %d records, %d samples written, %d dropped, %d lost\n", st.Dir(), closed, ws2.Written, ws2.Samples, ws2.Dropped, ws2.Lost)
	if err != nil {
		return ws2, fmt.Errorf("closing the capture: %w", err)
	}
	return ws2, nil
}

func outcomes(s proxy.Stats) string {
	var b strings.Builder
	for k, v := range s.Outcomes {
		if v > 0 {
			fmt.Fprintf(&b, "%s=%d ", k, v)
		}
	}
	return strings.TrimSpace(b.String())
}

// orNegative maps 0 ("none"/"no limit" on the command line) to -1 for
// proxy.Config, where 0 means the default.
func orNegative(n int64) int64 {
	if n == 0 {
		return -1
	}
	return n
}

func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// parseSize reads a byte count: 1048576, 64KiB, 1MiB, 2GiB, 10MB, 1GB.
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, errors.New("want a byte count such as 1048576, 64KiB, 1MiB or 2GiB")
	}
	if n > (1<<62)/mult {
		return 0, errors.New("too large")
	}
	return n * mult, nil
}

func runDump(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("vbproxy dump", "vbproxy dump CAPTURE_DIR [--no-bodies] [--no-samples]", stderr)
	var opt capture.DumpOptions
	fs.BoolVar(&opt.NoBodies, "no-bodies", false, "leave request and response bodies out")
	fs.BoolVar(&opt.NoSamples, "no-samples", false, "leave server-metric samples out")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return cli.Usagef("want one CAPTURE_DIR, got %d arguments", fs.NArg())
	}
	return dumpCapture(fs.Arg(0), stdout, stderr, opt)
}

// dumpCapture dumps a capture directory and says on stderr how it was
// read; a damaged capture (dumped as far as it reads) is an ErrDamaged
// error, exit status 3.
func dumpCapture(dir string, stdout, stderr io.Writer, opt capture.DumpOptions) error {
	h, err := capture.DumpDir(dir, stdout, opt)
	for _, n := range h.Notes {
		fmt.Fprintf(stderr, "vbproxy dump: note: %s: %s\n", dir, n)
	}
	if errors.Is(err, capture.ErrDamaged) {
		return cli.Damaged(err)
	}
	return err
}

// headerToken reports whether s is an HTTP header name (RFC 9110 token).
func headerToken(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", r)) {
			return false
		}
	}
	return true
}
