package replay

import (
	"math"
	"slices"
	"time"

	"github.com/vbench/vbench/metric"
)

// Progress is the state of a running phase (a level or a warm-up), given
// to Config.OnProgress: every ProgressInterval while the phase runs, and
// once when it has ended, with Final and Line set.
type Progress struct {
	// Kind is "level" or "warm-up"; Label the level's label ("8", "c4").
	Kind  string
	Label string
	// Rate is the level's rate (req/s; 0 for the trace's own pace);
	// Concurrency the requests a closed-loop level keeps in flight (0:
	// open loop).
	Rate        float64
	Concurrency int
	// Planned is the number of requests the phase sends (open loop: the
	// trace's requests due in the window); Sent, Finished and Failed count
	// them so far.
	Planned, Sent, Finished, Failed int
	// LagP99 is the schedule lag's p99 (s) since the previous call (NaN
	// when nothing was sent).
	LagP99 float64
	// Norm is the normalized latency of the requests finished so far, as
	// NormLatencyText says it.
	Norm string
	// Window is the sending window; Elapsed the time since the phase
	// started.
	Window, Elapsed time.Duration
	// Draining is set once sending is over: the requests in flight are
	// finishing, and the drain deadline cuts the rest in CutIn.
	Draining bool
	CutIn    time.Duration
	// Left is the time the phase still needs: the rest of the window plus
	// the time the requests in flight at its end take to finish (the 90th
	// percentile of the latencies seen so far, within the drain), or while
	// draining that alone; 0 when unknown.
	Left time.Duration
	// Final, on the last call, is what the phase did; Line its one-line
	// account (LevelLine).
	Final *LevelResult
	Line  string
}

// snapshot is the phase's Progress at now.
func (rn *running) snapshot(now time.Time) Progress {
	ph := rn.ph
	p := Progress{Kind: "level", Label: ph.label, Rate: ph.rate, Concurrency: ph.conc, Window: ph.window,
		Sent: int(rn.sent.Load()), Finished: int(rn.finished.Load()), Failed: int(rn.failed.Load()),
		Elapsed: now.Sub(rn.start), LagP99: math.NaN()}
	if ph.warmup {
		p.Kind = "warm-up"
	}
	if ph.conc == 0 {
		p.Planned = len(ph.items)
	}
	rn.lagMu.Lock()
	win := rn.lagWindow
	rn.lagWindow = nil
	cutAt := rn.cutAt
	rn.lagMu.Unlock()
	if len(win) > 0 {
		p.LagP99 = metric.DistOf(win).P99
	}
	done := rn.finishedSoFar()
	p.Norm = NormLatencyText(metric.Summarize(done))

	// What the requests in flight at the window's end will take: the 90th
	// percentile of the latencies so far (at least a second of margin
	// before any ended), never past the drain.
	tail := rn.drain
	var e2e []float64
	for i := range done {
		if done[i].Completed() {
			e2e = append(e2e, done[i].E2E())
		}
	}
	if len(e2e) > 0 {
		slices.Sort(e2e)
		tail = min(time.Duration(e2e[len(e2e)*9/10]*float64(time.Second)), rn.drain)
	}
	sendingOver := ph.window > 0 && p.Elapsed >= ph.window || p.Planned > 0 && p.Sent >= p.Planned
	switch {
	case sendingOver:
		p.Draining = true
		if !cutAt.IsZero() {
			p.CutIn = max(cutAt.Sub(now), 0)
		}
		if p.Sent > p.Finished {
			p.Left = tail
			if !cutAt.IsZero() {
				p.Left = min(tail, p.CutIn)
			}
		}
	case ph.window > 0:
		p.Left = ph.window - p.Elapsed + tail
	}
	return p
}

// progress reports the phase every ProgressInterval, and finalizes it as
// soon as its last request has ended.
func (rn *running) progress() {
	defer close(rn.progDone)
	cfg := rn.r.cfg
	if cfg.OnProgress == nil {
		<-rn.stopProg
		return
	}
	t := time.NewTicker(cfg.ProgressInterval)
	defer t.Stop()
	for {
		select {
		case <-rn.stopProg:
			return
		case <-rn.done:
			// Everything ended: say so now (a warm-up ends during its
			// level, and its account must come first), not when the
			// caller gets to wait.
			select {
			case <-rn.sendDone:
				rn.finalize()
				<-rn.stopProg
				return
			case <-rn.stopProg:
				return
			}
		case now := <-t.C:
			cfg.OnProgress(rn.snapshot(now))
		}
	}
}
