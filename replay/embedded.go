package replay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/vbench/vbench/capture"
	"github.com/vbench/vbench/proxy"
	"github.com/vbench/vbench/trace"
)

// embedded is the in-process recording proxy of --capture mode: the same
// proxy package vbproxy runs, on 127.0.0.1:0, writing into a capture store
// that this process owns.
type embedded struct {
	store    *capture.Store
	px       *proxy.Proxy
	served   chan error
	dir      string
	upstream string
}

// startEmbedded opens the capture, starts the proxy in front of
// cfg.Upstream and points cfg.Target at it.
func startEmbedded(cfg *Config, hdr *trace.Header) (*embedded, error) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if cfg.Progress != nil {
		logger = slog.New(slog.NewTextHandler(cfg.Progress, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	st, err := capture.Open(cfg.Capture, capture.Options{Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("replay: --capture %s: %w", cfg.Capture, err)
	}
	px, err := proxy.New(proxy.Config{Upstream: cfg.Upstream, Labels: cfg.Labels, ScrapeInterval: cfg.ScrapeInterval, ScrapeMetrics: cfg.ScrapeMetrics, Logger: logger}, st.Writer())
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("replay: embedded proxy: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("replay: embedded proxy: %w", err)
	}
	e := &embedded{store: st, px: px, served: make(chan error, 1), dir: cfg.Capture, upstream: px.Upstream()}
	go func() { e.served <- px.Serve(ln) }()
	cfg.Target = "http://" + ln.Addr().String()

	conf, _ := json.Marshal(cfg)
	host, _ := os.Hostname()
	meta := capture.Meta{Version: capture.MetaVersion, Tool: Tool, Started: time.Now().UnixNano(), Upstream: e.upstream,
		Labels: cfg.Labels, Host: host, PID: os.Getpid(), Config: conf,
		Extra: map[string]string{"trace_hash": hdr.HashHex(), "run": cfg.Run, "trial": cfg.Trial, "target": cfg.Target}}
	if err := st.PutMeta(meta); err != nil {
		e.stop()
		return nil, fmt.Errorf("replay: --capture %s: write metadata: %w", cfg.Capture, err)
	}
	// Wait until the proxy answers, so the preflight does not race Serve.
	for i := 0; ; i++ {
		resp, err := http.Get(cfg.Target + "/vb/health")
		if err == nil {
			resp.Body.Close()
			break
		}
		if i == 100 {
			e.stop()
			return nil, fmt.Errorf("replay: embedded proxy did not start: %w", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return e, nil
}

// stop shuts the proxy down (in-flight exchanges were already drained or
// cut by the replayer), then closes the store, which flushes every queued
// record.
func (e *embedded) stop() (*CaptureStats, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errShut := e.px.Shutdown(ctx)
	if errServe := <-e.served; errServe != nil && !errors.Is(errServe, net.ErrClosed) {
		errShut = errors.Join(errShut, errServe)
	}
	ps := e.px.Stats()
	errClose := e.store.Close()
	ws := e.store.Writer().Stats()
	stats := &CaptureStats{Dir: e.dir, Upstream: e.upstream, Written: int64(ws.Written), Dropped: ps.Dropped + int64(ws.Lost)}
	if err := errors.Join(errShut, errClose); err != nil {
		return stats, fmt.Errorf("replay: closing the capture %s: %w", e.dir, err)
	}
	return stats, nil
}
