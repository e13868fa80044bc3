package proxy

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/vbench/vbench/capture"
)

var adminPrefix = []byte("/vb/")

// Stats are the proxy's live numbers (GET /vb/stats).
type Stats struct {
	// Upstream is the base URL forwarded to.
	Upstream string `json:"upstream"`
	// Uptime is the time since New, in seconds.
	Uptime float64 `json:"uptime_s"`
	// InFlight is the number of exchanges started and not yet finished.
	InFlight int64 `json:"in_flight"`
	// Requests counts exchanges started; Completed those finished.
	Requests  int64 `json:"requests"`
	Completed int64 `json:"completed"`
	// Chunks and Bytes count response body reads forwarded.
	Chunks int64 `json:"chunks"`
	Bytes  int64 `json:"bytes"`
	// Recorded counts records the sink accepted; Dropped those it refused
	// (queue full).
	Recorded int64 `json:"recorded"`
	Dropped  int64 `json:"dropped"`
	// QueueDepth is the sink's queued records, -1 when the sink does not
	// say.
	QueueDepth int64 `json:"queue_depth"`
	// Capture holds the capture writer's numbers when the sink is a
	// *capture.Writer.
	Capture *capture.WriterStats `json:"capture,omitempty"`
	// Samples counts scraped server-metric samples the sink accepted;
	// SamplesDropped those it refused.
	Samples        int64 `json:"samples"`
	SamplesDropped int64 `json:"samples_dropped"`
	// Scrapes and ScrapeErrors count polls of the upstream's /metrics.
	Scrapes      int64 `json:"scrapes"`
	ScrapeErrors int64 `json:"scrape_errors"`
	// UpstreamRetries counts requests sent again because the pooled
	// upstream connection had been closed by the upstream (see
	// retryStaleConn); the client never sees these.
	UpstreamRetries int64 `json:"upstream_retries"`
	// Outcomes counts finished exchanges by outcome.
	Outcomes map[capture.Outcome]int64 `json:"outcomes"`
	// Memory is the memory budget (Config.MaxMemory).
	Memory MemoryStats `json:"memory"`
	// Connections are the client connections (admission, listener.go).
	Connections ConnStats `json:"connections"`
}

// MemoryStats describe the memory budget.
type MemoryStats struct {
	// Budget is Config.MaxMemory (≤ 0: none); Used and Peak the bytes
	// reserved now and at most.
	Budget int64 `json:"budget"`
	Used   int64 `json:"used"`
	Peak   int64 `json:"peak"`
	// Refused counts reservations refused (a 503 or 413 for a body, a
	// refused connection); RecordBytesSkipped the body bytes records did
	// not copy for want of room.
	Refused            int64 `json:"refused"`
	RecordBytesSkipped int64 `json:"record_bytes_skipped"`
}

// ConnStats describe the client connections.
type ConnStats struct {
	// Open is the client connections open; Limit how many connections,
	// client and upstream together, the descriptor limit allows;
	// PerClient the most one client address may hold.
	Open      int64 `json:"open"`
	Limit     int   `json:"limit"`
	PerClient int   `json:"per_client"`
	// Refused counts connections refused with a 503 (per-client limit,
	// descriptors, memory).
	Refused int64 `json:"refused"`
	// Upstream is the upstream connections open.
	Upstream int `json:"upstream"`
}

// writerStater is implemented by *capture.Writer.
type writerStater interface {
	Stats() capture.WriterStats
}

// Stats returns the live numbers.
func (p *Proxy) Stats() Stats {
	st := Stats{
		Upstream:        p.up.url,
		Uptime:          time.Since(p.t0).Seconds(),
		InFlight:        p.c.inFlight.Load(),
		Requests:        p.c.requests.Load(),
		Completed:       p.c.completed.Load(),
		Chunks:          p.c.chunks.Load(),
		Bytes:           p.c.bytes.Load(),
		Recorded:        p.c.recorded.Load(),
		Dropped:         p.c.dropped.Load(),
		QueueDepth:      -1,
		Samples:         p.c.samples.Load(),
		SamplesDropped:  p.c.samplesDropped.Load(),
		Scrapes:         p.c.scrapes.Load(),
		ScrapeErrors:    p.c.scrapeErrors.Load(),
		UpstreamRetries: p.c.upstreamRetries.Load(),
		Outcomes:        make(map[capture.Outcome]int64, numOutcomes),
	}
	if w, ok := p.sink.(writerStater); ok {
		ws := w.Stats()
		st.Capture = &ws
		st.QueueDepth = int64(ws.Queued)
	}
	for i, o := range outcomeNames {
		st.Outcomes[o] = p.c.outcomes[i].Load()
	}
	st.Memory.Budget = p.mem.max
	st.Memory.Used, st.Memory.Peak = p.mem.state()
	st.Memory.Refused, st.Memory.RecordBytesSkipped = p.mem.refused.Load(), p.mem.skipped.Load()
	st.Connections = ConnStats{Open: p.adm.open.Load(), Limit: p.fdCap, PerClient: p.cfg.MaxConnsPerClient,
		Refused: p.adm.refused.Load(), Upstream: p.conns.len()}
	return st
}

// admin serves /vb/health, /vb/stats and /vb/metrics.
func (p *Proxy) admin(ctx *fasthttp.RequestCtx) {
	path := string(ctx.Request.Header.RequestURI())
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	switch path {
	case "/vb/health":
		ctx.SetContentType("application/json")
		fmt.Fprintf(ctx, `{"status":"ok","upstream":%q}`+"\n", p.up.url)
	case "/vb/stats":
		ctx.SetContentType("application/json")
		b, _ := json.MarshalIndent(p.Stats(), "", "  ")
		ctx.Write(append(b, '\n'))
	case "/vb/metrics":
		ctx.SetContentType("text/plain; version=0.0.4; charset=utf-8")
		p.writeMetrics(ctx)
	default:
		ctx.SetStatusCode(fasthttp.StatusNotFound)
		ctx.SetContentType("text/plain; charset=utf-8")
		fmt.Fprintf(ctx, "vbproxy: %s: not found; the proxy's own endpoints are /vb/health, /vb/stats, /vb/metrics\n", path)
	}
}

func (p *Proxy) writeMetrics(ctx *fasthttp.RequestCtx) {
	st := p.Stats()
	gauge := func(name, help string, v int64) {
		fmt.Fprintf(ctx, "# HELP %s %s\n# TYPE %s gauge\n%s %d\n", name, help, name, name, v)
	}
	counter := func(name, help string, v int64) {
		fmt.Fprintf(ctx, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", name, help, name, name, v)
	}
	gauge("vbproxy_in_flight", "Exchanges in flight.", st.InFlight)
	counter("vbproxy_requests_total", "Exchanges started.", st.Requests)
	counter("vbproxy_completed_total", "Exchanges finished.", st.Completed)
	counter("vbproxy_chunks_total", "Response chunks forwarded.", st.Chunks)
	counter("vbproxy_bytes_total", "Response bytes forwarded.", st.Bytes)
	// One name per fact: records_total is what the capture holds (what
	// the queue accepted when the sink is not a capture); an accepted
	// record can still be lost (a failed commit, the disk reserve).
	stored := st.Recorded
	if st.Capture != nil {
		stored = int64(st.Capture.Written)
	}
	counter("vbproxy_records_total", "Records stored in the capture (committed).", stored)
	counter("vbproxy_records_queued_total", "Records accepted by the capture queue.", st.Recorded)
	counter("vbproxy_records_dropped_total", "Records dropped because the capture queue was full.", st.Dropped)
	gauge("vbproxy_queue_depth", "Records waiting in the capture queue (-1 unknown).", st.QueueDepth)
	if c := st.Capture; c != nil {
		counter("vbproxy_records_lost_total", "Records accepted but not stored (failed commits, disk reserve reached).", int64(c.Lost-c.LostSamples))
		counter("vbproxy_samples_lost_total", "Server-metric samples accepted but not stored.", int64(c.LostSamples))
		counter("vbproxy_capture_write_errors_total", "Failed capture commits and syncs.", int64(c.Errors))
		gauge("vbproxy_capture_queue_bytes", "Estimated memory held by the capture queue.", c.QueuedBytes)
	}
	gauge("vbproxy_memory_budget_bytes", "The proxy's memory budget (--max-memory share; <= 0: none).", st.Memory.Budget)
	gauge("vbproxy_memory_used_bytes", "Memory reserved from the budget: bodies, record copies, connections.", st.Memory.Used)
	counter("vbproxy_memory_refused_total", "Reservations refused for want of budget (503/413 bodies, connections).", st.Memory.Refused)
	counter("vbproxy_record_bytes_skipped_total", "Body bytes not copied into records for want of budget.", st.Memory.RecordBytesSkipped)
	gauge("vbproxy_connections_open", "Client connections open.", st.Connections.Open)
	counter("vbproxy_connections_refused_total", "Client connections refused with a 503 (per-client limit, descriptors, memory).", st.Connections.Refused)
	counter("vbproxy_samples_total", "Server-metric samples recorded.", st.Samples)
	counter("vbproxy_samples_dropped_total", "Server-metric samples dropped.", st.SamplesDropped)
	counter("vbproxy_scrapes_total", "Polls of the upstream /metrics.", st.Scrapes)
	counter("vbproxy_scrape_errors_total", "Failed polls of the upstream /metrics.", st.ScrapeErrors)
	fmt.Fprintf(ctx, "# HELP vbproxy_outcomes_total Finished exchanges by outcome.\n# TYPE vbproxy_outcomes_total counter\n")
	for _, o := range outcomeNames {
		fmt.Fprintf(ctx, "vbproxy_outcomes_total{outcome=%q} %d\n", o, st.Outcomes[o])
	}
}
