// Package recorder runs the recording proxy in-process for a tool that owns
// a trial's capture (vbbench, and tests): it opens the capture store, serves
// the proxy package on a loopback port in front of the upstream, writing
// into that store, and records the run's metadata. The replayer is pointed
// at URL and knows nothing of it: replay knows only a target URL, so the
// vbreplay binary links neither Badger nor fasthttp (vbreplay --capture runs
// a vbproxy process instead).
package recorder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/vbench/vbench/capture"
	"github.com/vbench/vbench/proxy"
)

// Config says where to record and what to forward to.
type Config struct {
	// Capture is the capture directory (created if missing).
	Capture string
	// Upstream is the server the proxy forwards to (a URL or HOST:PORT).
	Upstream string
	// Labels are added to every record (proxy.Config.Labels).
	Labels map[string]string
	// ScrapeInterval is how often the upstream's /metrics is scraped (0:
	// never); ScrapeMetrics are further series to keep (NAME or PREFIX*).
	ScrapeInterval time.Duration
	ScrapeMetrics  []string
	// Meta is the run's metadata; Version, Started, Upstream, Labels,
	// Host and PID are filled in.
	Meta capture.Meta
	// Log receives the proxy's and the store's warnings (nil: none).
	Log io.Writer
}

// Recorder is a running in-process recording proxy.
type Recorder struct {
	store    *capture.Store
	px       *proxy.Proxy
	ln       net.Listener
	served   chan error
	url      string
	dir      string
	upstream string
}

// Stats is what a recorder wrote.
type Stats struct {
	Dir      string `json:"dir"`
	Upstream string `json:"upstream"`
	// Written counts the records committed; Dropped those the proxy or the
	// writer could not keep (queue full, failed or refused writes).
	Written int64 `json:"written"`
	Dropped int64 `json:"dropped"`
}

// Start opens the capture, starts the proxy on 127.0.0.1 and writes the
// metadata. The listener is bound before Start returns, so URL takes
// connections at once (they wait in the accept queue until Serve runs).
func Start(cfg Config) (*Recorder, error) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if cfg.Log != nil {
		logger = slog.New(slog.NewTextHandler(cfg.Log, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	st, err := capture.Open(cfg.Capture, capture.Options{Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("recorder: capture %s: %w", cfg.Capture, err)
	}
	px, err := proxy.New(proxy.Config{Upstream: cfg.Upstream, Labels: cfg.Labels, ScrapeInterval: cfg.ScrapeInterval,
		ScrapeMetrics: cfg.ScrapeMetrics, Logger: logger}, st.Writer())
	if err != nil {
		return nil, errors.Join(fmt.Errorf("recorder: proxy: %w", err), st.Close())
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, errors.Join(fmt.Errorf("recorder: proxy: %w", err), st.Close())
	}
	r := &Recorder{store: st, px: px, ln: ln, served: make(chan error, 1), url: "http://" + ln.Addr().String(),
		dir: cfg.Capture, upstream: px.Upstream()}
	go func() { r.served <- px.Serve(ln) }()
	meta := cfg.Meta
	host, _ := os.Hostname()
	meta.Version, meta.Started, meta.Upstream, meta.Labels, meta.Host, meta.PID = capture.MetaVersion, time.Now().UnixNano(), r.upstream, cfg.Labels, host, os.Getpid()
	if err := st.PutMeta(meta); err != nil {
		_, serr := r.Stop()
		return nil, errors.Join(fmt.Errorf("recorder: capture %s: write metadata: %w", cfg.Capture, err), serr)
	}
	return r, nil
}

// URL is the proxy's base URL: the replayer's target.
func (r *Recorder) URL() string { return r.url }

// CloseTimeout bounds Stop's close of the capture (the writer's last
// commits, Badger's last flush and compaction: seconds). Past it Stop
// returns an error saying the capture is left as a killed writer leaves it
// (what was committed is kept and read back): a tool stopped by a signal
// must not wait forever on Badger.
const CloseTimeout = 2 * time.Minute

// Stop shuts the proxy down (in-flight exchanges were drained or cut by
// the replayer; any left are cut after 10 s), then closes the store, which
// commits every queued record, waiting at most CloseTimeout. A capture
// directory removed while recording makes Stop return at once with an
// error wrapping capture.ErrDirRemoved; its records count as dropped.
func (r *Recorder) Stop() (Stats, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errShut := r.px.Shutdown(ctx)
	// A Stop right after Start may shut down before Serve took the
	// listener; closing it ends Serve either way.
	r.ln.Close()
	if errServe := <-r.served; errServe != nil && !errors.Is(errServe, net.ErrClosed) {
		errShut = errors.Join(errShut, errServe)
	}
	ps := r.px.Stats()
	cctx, ccancel := context.WithTimeoutCause(context.Background(), CloseTimeout, fmt.Errorf("not closed within %v", CloseTimeout))
	defer ccancel()
	errClose := r.store.CloseContext(cctx)
	ws := r.store.Writer().Stats()
	stats := Stats{Dir: r.dir, Upstream: r.upstream, Written: int64(ws.Written), Dropped: ps.Dropped + int64(ws.Lost)}
	if errors.Is(errClose, capture.ErrDirRemoved) {
		// What was committed went with the directory.
		stats.Dropped += stats.Written
		stats.Written = 0
	}
	if err := errors.Join(errShut, errClose); err != nil {
		return stats, fmt.Errorf("recorder: closing the capture %s: %w", r.dir, err)
	}
	return stats, nil
}
