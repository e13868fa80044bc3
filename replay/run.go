package replay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vbench/vbench/metric"
	"github.com/vbench/vbench/trace"
)

// Tool names the replayer in results.
const Tool = "vbreplay"

// ErrTraceTooShort is returned before the load when a level would run out
// of trace before its duration ends.
var ErrTraceTooShort = errors.New("trace too short")

// ErrPreflight is returned when the request sent before the load fails.
var ErrPreflight = errors.New("preflight failed")

// Result is what a replay did and measured. It embeds the configuration
// that made it.
type Result struct {
	Tool      string    `json:"tool"`
	Config    Config    `json:"config"`
	TraceHash string    `json:"trace_hash"`
	TraceLen  int       `json:"trace_requests"`
	Model     string    `json:"model"`
	Started   time.Time `json:"started"`
	Ended     time.Time `json:"ended"`
	// Levels holds one result per measured rate level, in order.
	Levels []LevelResult `json:"levels"`
	// Warmups holds the warm-up phases (not measured).
	Warmups []LevelResult `json:"warmups,omitempty"`
	// Interrupted is set when the context was cancelled (Ctrl-C).
	Interrupted bool `json:"interrupted,omitempty"`
	// LagExceeded is set when any level's lag p99 exceeded the threshold:
	// the replayer could not keep its schedule and the results are suspect.
	LagExceeded bool `json:"lag_exceeded,omitempty"`
}

// LevelResult is what one rate level (or warm-up phase) did.
type LevelResult struct {
	// Label is the level's X-VB-Level tag; Rate its effective asked rate
	// (req/s); Scale the factor applied to trace offsets.
	Label  string  `json:"label"`
	Rate   float64 `json:"rate"`
	Scale  float64 `json:"scale"`
	Warmup bool    `json:"warmup,omitempty"`
	// Window is the sending window (the duration, or the last due time).
	Window time.Duration `json:"window_ns"`
	// Planned is the number of requests due inside the window; Sent the
	// number handed to the client; Dropped those skipped at the concurrency
	// cap; OK those that streamed to their end.
	Planned int `json:"planned"`
	Sent    int `json:"sent"`
	Dropped int `json:"dropped"`
	OK      int `json:"ok"`
	// Cut counts the requests still running at the drain deadline, which
	// the replayer cut (censored: see metric.Cut).
	Cut int `json:"cut"`
	// Late counts requests sent more than the lag threshold after their
	// scheduled time.
	Late int `json:"late"`
	// Errors counts failed requests by kind ("http_500", "reset", ...; cut
	// ones are in Cut).
	Errors map[string]int `json:"errors,omitempty"`
	// ScheduledRate is the rate the trace asked for over the requests sent
	// ((n−1)/(last due − first due)); AchievedRate the rate actually sent
	// ((n−1)/(last sent − first sent)).
	ScheduledRate float64 `json:"scheduled_rate"`
	AchievedRate  float64 `json:"achieved_rate"`
	// The figures of the level's requests as the replayer saw them (the
	// client side; an analysis of the capture measures at the proxy), in
	// seconds, computed by the metric package as every other consumer
	// does: Lag is the schedule lag (actual − scheduled send) of every
	// request sent; TTFT (first content − send), TTFTScheduled (first
	// content − scheduled send: counts the replayer's own delay), TPOT,
	// E2E (last byte − send) and NormLatency (E2E / output tokens: its Mean
	// is the normalized latency) are over OK requests; NormLatencyWithCut
	// adds the cut ones at their lower bound.
	Lag                metric.Dist `json:"lag"`
	TTFT               metric.Dist `json:"ttft"`
	TTFTScheduled      metric.Dist `json:"ttft_scheduled"`
	TPOT               metric.Dist `json:"tpot"`
	E2E                metric.Dist `json:"e2e"`
	NormLatency        metric.Dist `json:"norm_latency"`
	NormLatencyWithCut metric.Dist `json:"norm_latency_with_cut"`
	// OutputTokens sums the output tokens of OK requests.
	OutputTokens int64 `json:"output_tokens"`
	// Elapsed runs from the level's start to its last response.
	Elapsed time.Duration `json:"elapsed_ns"`
	// Concurrency is the number of requests a closed-loop level kept in
	// flight (0: an open-loop level); Exhausted is set when the trace ran
	// out before the closed-loop level's duration ended.
	Concurrency int  `json:"concurrency,omitempty"`
	Exhausted   bool `json:"exhausted,omitempty"`
	// Drain is how long the level's requests could still run after its
	// window before they were cut, and DrainReason how it was chosen (the
	// cut policy, drain.go).
	Drain       time.Duration `json:"drain_ns"`
	DrainReason string        `json:"drain_reason,omitempty"`
	// LagExceeded: lag p99 above the threshold.
	LagExceeded bool `json:"lag_exceeded,omitempty"`
	Interrupted bool `json:"interrupted,omitempty"`
	// Requests holds every request's measurements when KeepRequests is set.
	Requests []metric.Request `json:"requests,omitempty"`
}

// Run plays reqs (in trace order) against cfg's target once per rate level
// and returns what happened. It validates everything and sends a preflight
// request before the load; a cancelled ctx stops sending, lets in-flight
// requests drain for cfg.InterruptDrain, and returns the partial result
// with ctx's error.
func Run(ctx context.Context, cfg Config, hdr trace.Header, reqs []trace.Request) (*Result, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	plan, err := makePlan(&cfg, &hdr, reqs)
	if err != nil {
		return nil, err
	}
	res := &Result{Tool: Tool, Config: cfg, TraceHash: hdr.HashHex(), TraceLen: len(reqs), Started: time.Now().UTC()}
	r := newRunner(&cfg, &hdr, reqs)
	runErr := r.run(ctx, plan, res)
	res.Ended = time.Now().UTC()
	return res, runErr
}

// phase is one paced sequence of requests: a measured level or a warm-up.
type phase struct {
	label  string
	rate   float64
	scale  float64
	warmup bool
	conc   int           // closed loop: requests kept in flight (0: paced by due times)
	window time.Duration // sending window; warm-ups by duration hold it
	hold   bool          // wait for the window's end after the last send
	items  []item
	// parents[i] is the position of item i's previous conversation turn
	// (-1: none); nil when no item follows another (see conversation.go).
	parents []int
}

// item is one request of a phase: its trace position and its due time
// relative to the phase's start.
type item struct {
	req int
	at  time.Duration
}

type plan struct {
	levels  []phase
	warmups []phase // per level (WarmupLevel) or one (WarmupRun); may be empty
	used    []bool  // requests that some phase sends
}

// makePlan builds every phase before any I/O, so a trace that is too short
// or a bad request fails before the load.
func makePlan(cfg *Config, hdr *trace.Header, reqs []trace.Request) (*plan, error) {
	if len(reqs) == 0 {
		return nil, fmt.Errorf("replay: the trace holds no requests")
	}
	for i := range reqs {
		if err := reqs[i].Validate(); err != nil {
			return nil, fmt.Errorf("replay: trace request %d: %w", i, err)
		}
		if i > 0 && reqs[i].Offset < reqs[i-1].Offset {
			return nil, fmt.Errorf("replay: trace request %d: offset %v is before the previous one's %v (a trace is in arrival order)", i, reqs[i].Offset, reqs[i-1].Offset)
		}
	}
	if len(cfg.Concurrency) > 0 {
		return closedPhases(cfg, reqs), nil
	}
	off := func(i int) time.Duration { return reqs[i].Offset }
	last := reqs[len(reqs)-1].Offset
	p := &plan{used: make([]bool, len(reqs))}
	var short []error
	for li, rate := range cfg.Rates {
		scale, err := Scale(hdr.MeanRate, rate, cfg.Speed)
		if err != nil {
			return nil, err
		}
		eff := rate * cfg.Speed
		if rate == 0 {
			eff = hdr.MeanRate * cfg.Speed
		}
		label := strconv.FormatFloat(eff, 'g', 6, 64)
		if eff == 0 {
			label = "native" // own pace of a trace without a mean rate
		}
		n := CutIndex(off, len(reqs), scale, cfg.Duration)
		if cfg.Duration > 0 && n == len(reqs) && !cfg.AllowShort {
			need := ""
			if eff > 0 {
				need = fmt.Sprintf(" (needs about %.0f requests)", eff*cfg.Duration.Seconds())
			}
			short = append(short, fmt.Errorf("level %d (%s req/s): the trace's %d requests last %v at this rate, shorter than --duration %v%s",
				li+1, label, len(reqs), ScaleOffset(last, scale).Round(time.Millisecond), cfg.Duration, need))
		}
		lv := phase{label: label, rate: eff, scale: scale, window: cfg.Duration}
		for i := 0; i < n; i++ {
			lv.items = append(lv.items, item{req: i, at: ScaleOffset(reqs[i].Offset, scale)})
			p.used[i] = true
		}
		if cfg.Duration == 0 && n > 0 {
			lv.window = lv.items[n-1].at
		}
		lv.parents = linkTurns(reqs, lv.items)
		p.levels = append(p.levels, lv)
		if (cfg.WarmupDuration > 0 || cfg.WarmupRequests > 0) && (cfg.WarmupMode == WarmupLevel || li == 0) {
			p.warmups = append(p.warmups, warmupPhase(cfg, reqs, lv, p.used))
		}
	}
	if len(short) > 0 {
		return nil, fmt.Errorf("replay: %w: %w; synthesize a longer trace, lower the rate or duration, or pass --allow-short", ErrTraceTooShort, errors.Join(short...))
	}
	return p, nil
}

// warmupPhase takes the warm-up requests from the end of the trace (the
// part least likely to be measured, so prompts are not seen twice when the
// trace is longer than a level), played at the level's pace.
func warmupPhase(cfg *Config, reqs []trace.Request, lv phase, used []bool) phase {
	n := len(reqs)
	s := n - 1
	if cfg.WarmupRequests > 0 {
		s = max(n-cfg.WarmupRequests, 0)
	} else {
		last := reqs[n-1].Offset
		for s > 0 && ScaleOffset(last-reqs[s-1].Offset, lv.scale) < cfg.WarmupDuration {
			s--
		}
	}
	w := phase{label: lv.label, rate: lv.rate, scale: lv.scale, warmup: true}
	for i := s; i < n; i++ {
		w.items = append(w.items, item{req: i, at: ScaleOffset(reqs[i].Offset-reqs[s].Offset, lv.scale)})
		used[i] = true
	}
	w.window = w.items[len(w.items)-1].at
	w.parents = linkTurns(reqs, w.items)
	if cfg.WarmupDuration > 0 {
		w.window, w.hold = cfg.WarmupDuration, true
	}
	return w
}

// runner holds what every phase of one run shares.
type runner struct {
	cfg  *Config
	hdr  *trace.Header
	reqs []trace.Request
	// prepared holds, per trace request in use, what every send of it
	// carries: its body, URL and per-request tag values.
	prepared []prepared
	client   *http.Client
	base     http.Header // user headers and the run's constant tags
	sem      chan struct{}
	anchor   time.Time
	wall     int64
	pool     sync.Pool
	speed    speed // the server's measured TTFT and TPOT (the drain policy)
	// traceHash, variant and model are the tags every measurement carries.
	traceHash, variant, model string
}

func newRunner(cfg *Config, hdr *trace.Header, reqs []trace.Request) *runner {
	r := &runner{cfg: cfg, hdr: hdr, reqs: reqs, client: cfg.Client, anchor: time.Now()}
	r.wall = r.anchor.UnixNano()
	if r.client == nil {
		r.client = &http.Client{Transport: newTransport()}
	}
	if cfg.MaxConcurrency > 0 {
		r.sem = make(chan struct{}, cfg.MaxConcurrency)
	}
	r.pool.New = func() any { return new(streamer) }
	r.speed.add(cfg.Measured)
	r.traceHash, r.variant, r.model = hdr.HashHex(), cfg.Labels["variant"], cfg.Labels["model"]
	return r
}

// unix converts a monotonic reading to Unix ns (wall time anchored once).
func (r *runner) unix(t time.Time) int64 { return r.wall + int64(t.Sub(r.anchor)) }

func (r *runner) run(ctx context.Context, p *plan, res *Result) error {
	base := strings.TrimRight(r.cfg.Target, "/")
	explicit := r.cfg.Model
	if r.cfg.Model == "" {
		m, err := r.firstModel(ctx, base)
		if err != nil {
			return err
		}
		r.cfg.Model = m
		res.Config.Model = m
	}
	res.Model = r.cfg.Model
	opt := RenderOptions{Model: r.cfg.Model, VerbatimModel: explicit, ChatMaxTokens: r.cfg.ChatMaxTokens, ExactOutput: r.cfg.ExactOutput, NoEOSFields: r.cfg.NoEOSFields}
	for i := range r.reqs {
		if !p.used[i] {
			continue
		}
		b, err := Render(&r.reqs[i], opt)
		if err != nil {
			return fmt.Errorf("replay: trace request %d: %w", i, err)
		}
		r.prepare(i, b, base+r.reqs[i].Endpoint)
	}
	r.base = r.baseHeader()
	if !r.cfg.SkipPreflight {
		if err := r.preflight(ctx, base); err != nil {
			return err
		}
	}
	var pendingWarm *running
	wi := 0
	for li := range p.levels {
		if ctx.Err() != nil {
			res.Interrupted = true
			break
		}
		if wi < len(p.warmups) && (r.cfg.WarmupMode == WarmupLevel || li == 0) {
			w := r.start(ctx, &p.warmups[wi])
			wi++
			if r.cfg.WarmupMode == WarmupRun {
				pendingWarm = w
			} else {
				lr := r.measure(ctx, &p.levels[li], res)
				res.Warmups = append(res.Warmups, w.wait(ctx))
				res.Levels = append(res.Levels, lr)
				continue
			}
		}
		res.Levels = append(res.Levels, r.measure(ctx, &p.levels[li], res))
		if pendingWarm != nil {
			res.Warmups = append(res.Warmups, pendingWarm.wait(ctx))
			pendingWarm = nil
		}
	}
	if pendingWarm != nil {
		res.Warmups = append(res.Warmups, pendingWarm.wait(ctx))
	}
	for i := range res.Levels {
		if res.Levels[i].LagExceeded {
			res.LagExceeded = true
		}
		if res.Levels[i].Interrupted {
			res.Interrupted = true
		}
	}
	if ctx.Err() != nil {
		res.Interrupted = true
		return fmt.Errorf("replay: %w", ctx.Err())
	}
	return nil
}

// measure runs one measured level to its end.
func (r *runner) measure(ctx context.Context, ph *phase, res *Result) LevelResult {
	return r.start(ctx, ph).wait(ctx)
}

// baseHeader holds what every request carries.
func (r *runner) baseHeader() http.Header {
	h := make(http.Header, len(r.cfg.Headers)+8)
	for k, v := range r.cfg.Headers {
		h[k] = append([]string(nil), v...)
	}
	h["Content-Type"] = []string{"application/json"}
	h["Accept"] = []string{"text/event-stream"}
	h["X-Vb-Run"] = []string{r.cfg.Run}
	if r.cfg.Trial != "" {
		h["X-Vb-Trial"] = []string{r.cfg.Trial}
	}
	h["X-Vb-Trace"] = []string{r.traceHash}
	for k, v := range r.cfg.Labels {
		h.Set("X-VB-Label-"+k, v)
	}
	return h
}

// running is a phase whose sending is over and whose requests may still
// be in flight.
type running struct {
	r           *runner
	ph          *phase
	results     []metric.Request
	start       time.Time
	cutAt       time.Time
	cut         context.CancelCauseFunc
	cutTimer    *time.Timer
	done        chan struct{}
	interrupted atomic.Bool
	exhausted   bool
	sent        atomic.Int64
	finished    atomic.Int64
	failed      atomic.Int64
	lagMu       sync.Mutex
	lagWindow   []float64         // lags (s) since the last progress line
	finishedReq []*metric.Request // results that are final, for the progress line
	sendDone    chan struct{}     // closed when the pacing is over (start returned)
	stopProg    chan struct{}
	progDone    chan struct{}
	ctx         context.Context
	finalOnce   sync.Once
	final       LevelResult
	turns       *turnState // nil: no conversation turns in the phase
	drain       time.Duration
	drainWhy    string
}

// start paces the phase's requests (returning when the last one is sent,
// or the context is cancelled) and leaves them draining.
func (r *runner) start(ctx context.Context, ph *phase) *running {
	if ph.conc > 0 {
		return r.startClosed(ctx, ph)
	}
	rn := &running{r: r, ph: ph, results: make([]metric.Request, len(ph.items)), done: make(chan struct{}),
		sendDone: make(chan struct{}), stopProg: make(chan struct{}), progDone: make(chan struct{}), turns: newTurnState(ph.parents)}
	rn.start, rn.ctx = time.Now(), ctx
	rn.drain, rn.drainWhy = r.drainFor(ph)
	rn.cutAt = rn.start.Add(ph.window + rn.drain)
	cutCtx, cut := context.WithCancelCause(context.Background())
	rn.cut = cut
	rn.cutTimer = time.AfterFunc(time.Until(rn.cutAt), func() { cut(errCut) })
	deadline := []string{strconv.FormatInt(r.unix(rn.cutAt), 10)}
	go rn.progress()

	var wg sync.WaitGroup
	w := newWaiter(r.cfg.Pacer, r.cfg.Spin)
	defer w.stop()
	n := 0
loop:
	for i := range ph.items {
		it := &ph.items[i]
		due := rn.start.Add(it.at)
		if rn.turns.follows(ph, i) {
			// A later conversation turn waits for its previous one on its
			// own goroutine; the pacer keeps everyone else's schedule.
			n++
			wg.Add(1)
			go rn.sendTurn(ctx, cutCtx, i, &rn.results[i], due, deadline, &wg)
			continue
		}
		if err := w.until(ctx, due); err != nil {
			rn.interrupted.Store(true)
			break
		}
		res := &rn.results[i]
		if r.sem != nil {
			select {
			case r.sem <- struct{}{}:
			default:
				if r.cfg.OnFull == OnFullDrop {
					*res = r.dropped(it.req, due, ph, "")
					rn.turns.finish(i, time.Now())
					n++
					continue
				}
				select {
				case r.sem <- struct{}{}:
				case <-ctx.Done():
					rn.interrupted.Store(true)
					break loop
				}
			}
		}
		n++
		rn.sent.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.send(cutCtx, res, due, it.req, ph, deadline)
			rn.turns.finish(i, time.Now())
			if r.sem != nil {
				<-r.sem
			}
			rn.ended(res)
		}()
	}
	rn.results = rn.results[:n]
	if ph.hold && !rn.interrupted.Load() {
		if err := w.until(ctx, rn.start.Add(ph.window)); err != nil {
			rn.interrupted.Store(true)
		}
	}
	close(rn.sendDone)
	go func() { wg.Wait(); close(rn.done) }()
	return rn
}

// wait drains the phase: in-flight requests run until they end or the cut
// deadline (or, after ctx is cancelled, for InterruptDrain), then it
// summarizes the phase.
func (rn *running) wait(ctx context.Context) LevelResult {
	select {
	case <-rn.done:
	case <-ctx.Done():
		rn.interrupted.Store(true)
		t := time.AfterFunc(rn.r.cfg.InterruptDrain, func() { rn.cut(errCut) })
		<-rn.done
		t.Stop()
	}
	close(rn.stopProg)
	<-rn.progDone
	return rn.finalize()
}

// finalize summarizes the ended phase, once, and reports it (the progress
// goroutine does as soon as the phase's last request has ended, so a
// warm-up's account comes before its level's).
func (rn *running) finalize() LevelResult {
	rn.finalOnce.Do(func() {
		if rn.cutTimer != nil {
			rn.cutTimer.Stop()
		}
		rn.cut(nil)
		if rn.ctx != nil && rn.ctx.Err() != nil {
			rn.interrupted.Store(true)
		}
		rn.final = rn.summarize()
		if f := rn.r.cfg.OnProgress; f != nil {
			p := rn.snapshot(time.Now())
			p.Final, p.Line = &rn.final, LevelLine(&rn.final, rn.r.cfg.LagThreshold)
			f(p)
		}
	})
	return rn.final
}

// ended accounts a request of the phase whose result res is final.
func (rn *running) ended(res *metric.Request) {
	if !res.Completed() {
		rn.failed.Add(1)
	}
	rn.finished.Add(1)
	rn.lagMu.Lock()
	rn.lagWindow = append(rn.lagWindow, res.Lag())
	rn.finishedReq = append(rn.finishedReq, res)
	rn.lagMu.Unlock()
}

func (rn *running) summarize() LevelResult {
	ph, cfg := rn.ph, rn.r.cfg
	lr := LevelResult{Label: ph.label, Rate: ph.rate, Scale: ph.scale, Warmup: ph.warmup, Window: ph.window,
		Planned: len(ph.items), Interrupted: rn.interrupted.Load(), Concurrency: ph.conc, Exhausted: rn.exhausted, Drain: rn.drain, DrainReason: rn.drainWhy}
	s := metric.Summarize(rn.results)
	// What this phase measured sets the drain of the next ones; a paced
	// level's rate too (the server served up to it).
	m := MeasuredOf(s)
	if !ph.warmup && ph.conc == 0 {
		m.Rate = ph.rate
	}
	rn.r.speed.add(m)
	lr.Sent, lr.Dropped, lr.OK, lr.Cut, lr.Errors = s.Count, s.Dropped, s.Completed, s.Cut, s.FailedBy
	lr.OutputTokens = s.OutputTokens
	lr.Lag, lr.TTFT, lr.TTFTScheduled, lr.TPOT, lr.E2E = s.Lag, s.TTFT, s.TTFTScheduled, s.TPOT, s.E2E
	lr.NormLatency, lr.NormLatencyWithCut = s.NormLatency, s.NormLatencyWithCut
	var firstDue, lastDue, firstSent, lastSent int64
	var end time.Duration
	n := 0
	for i := range rn.results {
		q := &rn.results[i]
		if q.Outcome == metric.Dropped {
			continue
		}
		if n++; n == 1 {
			firstDue, firstSent = q.Scheduled, q.Sent
		}
		lastDue, lastSent = q.Scheduled, max(lastSent, q.Sent)
		if q.Lag() > cfg.LagThreshold.Seconds() {
			lr.Late++
		}
		if e := time.Duration(q.Sent-rn.r.unix(rn.start)) + q.End; e > end {
			end = e
		}
	}
	lr.Elapsed = end
	if lr.Sent > 1 {
		if d := lastDue - firstDue; d > 0 {
			lr.ScheduledRate = float64(lr.Sent-1) / (float64(d) / 1e9)
		}
		if d := lastSent - firstSent; d > 0 {
			lr.AchievedRate = float64(lr.Sent-1) / (float64(d) / 1e9)
		}
	}
	lr.LagExceeded = lr.Lag.P99 > cfg.LagThreshold.Seconds()
	if cfg.KeepRequests {
		lr.Requests = rn.results
	}
	return lr
}

// finishedSoFar returns a copy of the results that are final (for the
// progress line, while the phase runs).
func (rn *running) finishedSoFar() []metric.Request {
	rn.lagMu.Lock()
	defer rn.lagMu.Unlock()
	out := make([]metric.Request, len(rn.finishedReq))
	for j, res := range rn.finishedReq {
		out[j] = *res
	}
	return out
}

// NormLatencyText is the normalized latency figure of the replayer's
// progress lines: the metric package's, over the requests seen to end.
func NormLatencyText(s metric.Summary) string {
	if s.NormLatency.N == 0 {
		return "norm latency -"
	}
	t := fmt.Sprintf("norm latency %.4f s/token", s.NormLatency.Mean)
	if s.Cut > 0 {
		t += fmt.Sprintf(" (%.4f with %d cut)", s.NormLatencyWithCut.Mean, s.Cut)
	}
	return t
}

// request returns the measurement of trace request req as sent in phase
// ph, due at due: its tags, before anything happened.
func (r *runner) request(req int, due time.Time, ph *phase) metric.Request {
	q := &r.reqs[req]
	return metric.Request{Index: q.Index, Run: r.cfg.Run, Trial: r.cfg.Trial, Level: ph.label, Rate: ph.rate,
		Variant: r.variant, Model: r.model, TraceHash: r.traceHash, Warmup: ph.warmup,
		Scheduled: r.unix(due), PromptTokens: -1, ExpectedOutput: expectedOutput(q), TokenSource: metric.SourceNone}
}

// dropped is the measurement of a request that was not sent.
func (r *runner) dropped(req int, due time.Time, ph *phase, why string) metric.Request {
	m := r.request(req, due, ph)
	fail(&m, metric.KindDropped, why)
	return m
}

// expectedOutput is the output length a trace request asks for (0:
// unknown): its recorded output length, else its max_tokens.
func expectedOutput(q *trace.Request) int32 {
	if q.OutputTokens > 0 {
		return q.OutputTokens
	}
	return max(q.Sampling.MaxTokens, 0)
}

// prepared is a trace request ready to send: its rendered body, its URL
// and its X-VB-Index and X-VB-Output header values, built once so that a
// send allocates none of them.
type prepared struct {
	body          []byte
	url           string
	index, output []string
}

// prepare readies trace request i to be sent with body to url.
func (r *runner) prepare(i int, body []byte, url string) {
	if r.prepared == nil {
		r.prepared = make([]prepared, len(r.reqs))
	}
	p := prepared{body: body, url: url, index: []string{strconv.FormatInt(r.reqs[i].Index, 10)}}
	if n := expectedOutput(&r.reqs[i]); n > 0 {
		p.output = []string{strconv.Itoa(int(n))}
	}
	r.prepared[i] = p
}

// send sends one request and reads its response to the end.
func (r *runner) send(ctx context.Context, res *metric.Request, due time.Time, req int, ph *phase, deadline []string) {
	*res = r.request(req, due, ph)
	if len(deadline) > 0 {
		res.Deadline, _ = strconv.ParseInt(deadline[0], 10, 64)
	}
	if r.cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, r.cfg.Timeout, errTimeout)
		defer cancel()
	}
	h := make(http.Header, len(r.base)+10)
	for k, v := range r.base {
		h[k] = v
	}
	h["X-Vb-Level"] = []string{ph.label}
	h["X-Vb-Rate"] = []string{strconv.FormatFloat(ph.rate, 'g', -1, 64)}
	p := &r.prepared[req]
	h["X-Vb-Index"] = p.index
	h["X-Vb-Scheduled"] = []string{strconv.FormatInt(res.Scheduled, 10)}
	h["X-Vb-Deadline"] = deadline
	if p.output != nil {
		h["X-Vb-Output"] = p.output
	}
	if ph.warmup {
		h["X-Vb-Warmup"] = []string{"1"}
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(p.body))
	if err != nil {
		fail(res, metric.KindOther, err.Error())
		return
	}
	now := time.Now()
	res.Sent = r.unix(now)
	res.Start = res.Sent
	h["X-Vb-Sent"] = []string{strconv.FormatInt(res.Sent, 10)}
	hreq.Header = h
	resp, err := r.client.Do(hreq)
	if err != nil {
		res.End = time.Since(now)
		fail(res, classify(ctx, err), err.Error())
		return
	}
	res.Status = resp.StatusCode
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		res.End = time.Since(now)
		fail(res, metric.HTTPKind(resp.StatusCode), strings.TrimSpace(string(msg)))
		return
	}
	s := r.pool.Get().(*streamer)
	err = s.read(resp.Body, isSSE(resp), now, res)
	r.pool.Put(s)
	resp.Body.Close()
	if err != nil {
		res.End = time.Since(now)
		fail(res, classify(ctx, err), err.Error())
		return
	}
	res.Outcome = metric.OK
}

// isSSE reports whether a response is a stream of server-sent events: its
// Content-Type says so (a JSON body is one object).
func isSSE(resp *http.Response) bool {
	ct := resp.Header.Get("Content-Type")
	return ct == "" || strings.HasPrefix(ct, "text/event-stream")
}

// firstModel asks the target for its models and returns the first.
func (r *runner) firstModel(ctx context.Context, base string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/models", nil)
	if err != nil {
		return "", fmt.Errorf("replay: %w", err)
	}
	for k, v := range r.cfg.Headers {
		req.Header[k] = v
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("replay: %w: target %s unreachable (GET /v1/models): %w", ErrPreflight, base, netReason(err))
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		hint := ""
		switch resp.StatusCode {
		case http.StatusNotFound, http.StatusMethodNotAllowed:
			hint = " (a server without /v1/models: pass --model NAME)"
		case http.StatusUnauthorized, http.StatusForbidden:
			hint = " (pass its key with --header 'Authorization: Bearer KEY')"
		}
		return "", fmt.Errorf("replay: %w: GET %s/v1/models: HTTP %d: %s%s", ErrPreflight, base, resp.StatusCode, bytes.TrimSpace(body), hint)
	}
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &list); err != nil || len(list.Data) == 0 || list.Data[0].ID == "" {
		return "", fmt.Errorf("replay: %w: GET %s/v1/models lists no model (pass --model NAME)", ErrPreflight, base)
	}
	return list.Data[0].ID, nil
}

// preflight sends one short request (preflightTokens tokens) per endpoint
// of the trace, so an unreachable target or a rejected model fails before
// the load; its TTFT and TPOT are the first measurement of the server's
// speed (the drain policy).
func (r *runner) preflight(ctx context.Context, base string) error {
	seen := map[string]bool{}
	var eps []string
	for i := range r.reqs {
		if ep := r.reqs[i].Endpoint; r.prepared[i].body != nil && !seen[ep] {
			seen[ep] = true
			eps = append(eps, ep)
		}
	}
	sort.Strings(eps)
	for _, ep := range eps {
		q := trace.Request{Endpoint: ep, Prompt: "Hello", Sampling: trace.Sampling{MaxTokens: preflightTokens, MinTokens: preflightTokens, IgnoreEOS: true}}
		if ep == trace.EndpointChat {
			q.Messages = []trace.Message{{Role: "user", Content: "Hello"}}
		}
		body, err := Render(&q, RenderOptions{Model: r.cfg.Model, ChatMaxTokens: r.cfg.ChatMaxTokens, NoEOSFields: r.cfg.NoEOSFields})
		if err != nil {
			return fmt.Errorf("replay: preflight: %w", err)
		}
		pctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		req, err := http.NewRequestWithContext(pctx, http.MethodPost, base+ep, bytes.NewReader(body))
		if err != nil {
			cancel()
			return fmt.Errorf("replay: preflight: %w", err)
		}
		for k, v := range r.base {
			req.Header[k] = v
		}
		req.Header.Set("X-VB-Level", "preflight")
		req.Header.Set("X-VB-Index", "-1")
		req.Header.Set("X-VB-Warmup", "1")
		res := metric.Request{PromptTokens: -1}
		resp, err := r.client.Do(req)
		if err != nil {
			cancel()
			return fmt.Errorf("replay: %w: POST %s%s: target unreachable: %w", ErrPreflight, base, ep, netReason(err))
		}
		if resp.StatusCode != http.StatusOK {
			msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
			resp.Body.Close()
			cancel()
			hint := ""
			if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusBadRequest {
				hint = fmt.Sprintf(" (is model %q served there? --model overrides it)", r.cfg.Model)
			}
			return fmt.Errorf("replay: %w: POST %s%s with model %q: HTTP %d: %s%s", ErrPreflight, base, ep, r.cfg.Model, resp.StatusCode, bytes.TrimSpace(msg), hint)
		}
		err = new(streamer).read(resp.Body, isSSE(resp), time.Now(), &res)
		resp.Body.Close()
		cancel()
		if err != nil {
			return fmt.Errorf("replay: %w: POST %s%s: the stream failed: %w", ErrPreflight, base, ep, err)
		}
		res.Outcome = metric.OK
		r.speed.add(MeasuredOf(metric.Summarize([]metric.Request{res})))
	}
	return nil
}

// netReason strips the layers of a failed HTTP call that repeat the method,
// URL and address around it (*url.Error, *net.OpError), leaving the reason:
// "connect: connection refused".
func netReason(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		err = ue.Err
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		err = op.Err
	}
	return err
}
