package replay

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/vbench/vbench/metric"
	"github.com/vbench/vbench/trace"
)

// Closed loop (Config.Concurrency): a level keeps N requests in flight. N
// workers pull the next request of the trace (in trace order, arrival
// times ignored) and send it as soon as their previous one ended, until
// the level's duration is over or the trace runs out. Throughput is then
// whatever the server sustains at that concurrency, which is how a probe
// finds a server's capacity before an open-loop study chooses its rates.
// Conversation turns are sent as independent requests (no think time), and
// a request's scheduled time is its send time (lag 0): there is no
// schedule to keep.

// ClosedLabel is the X-VB-Level label of a closed-loop level with n
// requests in flight ("c8").
func ClosedLabel(n int) string { return "c" + strconv.Itoa(n) }

// closedPhases builds the closed-loop levels (and warm-ups) of cfg: every
// level may send every request of the trace, from the first.
func closedPhases(cfg *Config, reqs []trace.Request) *plan {
	p := &plan{used: make([]bool, len(reqs))}
	all := make([]item, len(reqs))
	for i := range reqs {
		all[i] = item{req: i}
		p.used[i] = true
	}
	for li, n := range cfg.Concurrency {
		lv := phase{label: ClosedLabel(n), conc: n, window: cfg.Duration, items: all}
		p.levels = append(p.levels, lv)
		if (cfg.WarmupDuration > 0 || cfg.WarmupRequests > 0) && (cfg.WarmupMode == WarmupLevel || li == 0) {
			p.warmups = append(p.warmups, closedWarmup(cfg, lv))
		}
	}
	return p
}

// closedWarmup sends requests from the end of the trace backwards (the
// part least likely to be measured) at the level's concurrency: the last
// WarmupRequests of them, or as many as fit in WarmupDuration.
func closedWarmup(cfg *Config, lv phase) phase {
	n := len(lv.items)
	if cfg.WarmupRequests > 0 {
		n = min(n, cfg.WarmupRequests)
	}
	items := make([]item, n)
	for i := range items {
		items[i] = lv.items[len(lv.items)-1-i]
	}
	return phase{label: lv.label, conc: lv.conc, warmup: true, window: cfg.WarmupDuration, items: items}
}

// startClosed runs the workers of a closed-loop phase and returns when
// sending is over (the window ended, the trace ran out or ctx was
// cancelled), leaving the last requests draining until Drain after that.
func (r *runner) startClosed(ctx context.Context, ph *phase) *running {
	rn := &running{r: r, ph: ph, results: make([]metric.Request, len(ph.items)), done: make(chan struct{}),
		sendDone: make(chan struct{}), stopProg: make(chan struct{}), progDone: make(chan struct{})}
	rn.start, rn.ctx = time.Now(), ctx
	var deadline []string
	rn.drain, rn.drainWhy = r.drainFor(ph)
	if ph.window > 0 {
		rn.cutAt = rn.start.Add(ph.window + rn.drain)
		deadline = []string{strconv.FormatInt(r.unix(rn.cutAt), 10)}
	}
	cutCtx, cut := context.WithCancelCause(context.Background())
	rn.cut = cut
	go rn.progress()

	var (
		mu      sync.Mutex
		next    int
		stopped bool
	)
	exhausted := make(chan struct{})
	pick := func() (int, bool) {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return 0, false
		}
		if next >= len(ph.items) {
			stopped = true
			close(exhausted)
			return 0, false
		}
		next++
		return next - 1, true
	}
	results := rn.results
	var wg sync.WaitGroup
	for range ph.conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i, ok := pick()
				if !ok {
					return
				}
				rn.sent.Add(1)
				res := &results[i]
				r.send(cutCtx, res, time.Now(), ph.items[i].req, ph, deadline)
				rn.ended(res)
			}
		}()
	}
	var window <-chan time.Time
	if ph.window > 0 {
		t := time.NewTimer(ph.window)
		defer t.Stop()
		window = t.C
	}
	select {
	case <-window:
	case <-exhausted:
		rn.exhausted = ph.window > 0
	case <-ctx.Done():
		rn.interrupted.Store(true)
	}
	mu.Lock()
	stopped = true
	n := next
	mu.Unlock()
	rn.results = results[:n]
	cutAt := time.Now().Add(rn.drain)
	if ph.window > 0 {
		cutAt = rn.start.Add(ph.window + rn.drain)
	}
	rn.lagMu.Lock()
	rn.cutAt = cutAt
	rn.lagMu.Unlock()
	rn.cutTimer = time.AfterFunc(time.Until(cutAt), func() { cut(errCut) })
	close(rn.sendDone)
	go func() { wg.Wait(); close(rn.done) }()
	return rn
}
