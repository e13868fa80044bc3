package sim

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClosed is returned by Submit after the engine stopped.
var ErrClosed = errors.New("sim: engine stopped")

// Finish reasons, as vLLM reports them.
const (
	FinishLength = "length"
	FinishStop   = "stop"
	FinishAbort  = "abort"
)

// Seq is the handle of one submitted request. The engine publishes progress
// with atomics and a one-slot wake-up channel, so it never waits on a slow
// reader: a reader that falls behind sees several new tokens at once (as
// vLLM merges outputs when the API server lags behind the engine).
type Seq struct {
	// Prompt and Target are the request's prompt tokens and the number of
	// tokens it will generate.
	Prompt, Target int
	// Reason is the finish reason it will end with (FinishLength or
	// FinishStop).
	Reason string

	generated atomic.Int32
	done      atomic.Bool
	aborted   atomic.Bool
	notify    chan struct{}
	eng       *Engine
}

// Notify returns a channel that receives a value after progress (new tokens,
// the end). Read Progress after each wake-up.
func (s *Seq) Notify() <-chan struct{} { return s.notify }

// Progress returns the tokens generated so far and whether the sequence is
// finished.
func (s *Seq) Progress() (generated int, done bool) {
	d := s.done.Load() // read done first: generated is final once done is set
	return int(s.generated.Load()), d
}

// Abort stops the sequence (client went away); the engine frees its memory
// at the next step.
func (s *Seq) Abort() {
	if s.done.Load() || s.aborted.Swap(true) {
		return
	}
	s.eng.wake()
}

// Stats is a snapshot of the engine's state for /metrics.
type Stats struct {
	Running, Waiting           int
	KVUsed, KVStored, KVTotal  int     // tokens: allocated/reserved, holding state, capacity
	KVUsage                    float64 // KVUsed / KVTotal
	Preemptions                uint64
	PromptTokens, OutputTokens uint64 // computed prompt tokens (incl. recompute), generated tokens
	Finished                   map[string]uint64
	Steps                      uint64
	StepSeconds                histogram     // simulated step durations
	BatchSize                  histogram     // sequences per step
	BusySim                    time.Duration // simulated time spent in steps
}

// Engine runs the scheduler against the real clock.
type Engine struct {
	cfg   Config
	mu    sync.Mutex // guards inbox, stats, closed
	inbox []*seq
	wakeC chan struct{}

	stats  Stats
	closed bool
	nextID uint64
	sched  *scheduler
}

// NewEngine returns an engine for a resolved config; call Run to start it.
func NewEngine(cfg Config) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	e := &Engine{cfg: cfg, wakeC: make(chan struct{}, 1), sched: newScheduler(cfg)}
	e.stats.KVTotal = e.sched.capacity()
	e.stats.Finished = map[string]uint64{}
	e.stats.StepSeconds = newHistogram(stepBuckets)
	e.stats.BatchSize = newHistogram(batchBuckets)
	return e, nil
}

func (e *Engine) wake() {
	select {
	case e.wakeC <- struct{}{}:
	default:
	}
}

// Fits reports whether a request of this size can ever run (its minimum
// KV need fits the cache).
func (e *Engine) Fits(prompt, maxTokens, target int) bool {
	return e.sched.fits(prompt, maxTokens, target) // reads only cfg
}

// Submit queues a request of prompt tokens that generates target tokens
// (maxTokens is what the client asked, for the pow2 reservation).
func (e *Engine) Submit(prompt, maxTokens, target int, reason string) (*Seq, error) {
	pub := &Seq{Prompt: prompt, Target: target, Reason: reason, notify: make(chan struct{}, 1), eng: e}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil, ErrClosed
	}
	e.nextID++
	e.inbox = append(e.inbox, &seq{id: e.nextID, prompt: prompt, maxTokens: maxTokens, target: target, pub: pub})
	e.mu.Unlock()
	e.wake()
	return pub, nil
}

// Stats returns a snapshot of the engine's counters and gauges.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.stats
	s.Finished = make(map[string]uint64, len(e.stats.Finished))
	for k, v := range e.stats.Finished {
		s.Finished[k] = v
	}
	s.StepSeconds = e.stats.StepSeconds.clone()
	s.BatchSize = e.stats.BatchSize.clone()
	return s
}

// Run runs the engine loop until ctx ends; then every unfinished sequence
// is aborted and Submit fails with ErrClosed.
//
// Simulated time advances by step durations: a step starts when the
// previous one ends or, after the engine was idle, at the current real time
// (scaled by Speed). Its tokens are published when the real clock reaches
// its end (at once if the loop is late: it then catches up).
func (e *Engine) Run(ctx context.Context) {
	s := e.sched
	start := time.Now()
	simNow := func() time.Duration { return time.Duration(float64(time.Since(start)) * e.cfg.Speed) }
	var clock time.Duration // simulated time at the end of the last step
	idle := true            // no step ran since the last time the engine was empty
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer func() {
		e.mu.Lock()
		e.closed = true
		in := e.inbox
		e.inbox = nil
		e.mu.Unlock()
		for _, q := range append(append(in, s.waiting...), s.running...) {
			q.pub.aborted.Store(true)
			q.pub.done.Store(true)
			signal(q.pub)
		}
	}()
	for {
		e.mu.Lock()
		for _, q := range e.inbox {
			s.add(q)
		}
		clear(e.inbox)
		e.inbox = e.inbox[:0]
		e.mu.Unlock()
		aborts := 0
		for _, q := range s.running {
			if q.aborted = q.pub.aborted.Load(); q.aborted {
				aborts++
			}
		}
		for _, q := range s.waiting {
			if q.aborted = q.pub.aborted.Load(); q.aborted {
				aborts++
			}
		}
		if aborts > 0 {
			e.mu.Lock()
			e.stats.Finished[FinishAbort] += uint64(aborts)
			e.mu.Unlock()
		}
		st := s.schedule()
		if st == nil && len(s.waiting) > 0 {
			continue // every runner was preempted: admit from the queue
		}
		if st == nil {
			idle = true
			e.publishIdle()
			select {
			case <-ctx.Done():
				return
			case <-e.wakeC:
				continue
			}
		}
		// Within a busy period steps follow each other on the simulated
		// clock, so a late timer (a loaded host) delays emission but never
		// slows the simulated GPU down; an idle engine re-anchors to now.
		begin := clock
		if idle {
			begin = max(clock, simNow())
		}
		idle = false
		dur := e.cfg.Step.Duration(st.prefillTokens, st.decodeSeqs, st.contextTokens)
		clock = begin + dur
		if wait := time.Until(start.Add(time.Duration(float64(clock) / e.cfg.Speed))); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case <-timer.C:
			}
		} else if ctx.Err() != nil {
			return
		}
		n := len(st.seqs)
		prefill, pre := st.prefillTokens, st.preempted
		finished := s.commit(st)
		for _, q := range st.seqs {
			q.pub.generated.Store(int32(q.generated))
		}
		for _, q := range finished {
			q.pub.done.Store(true)
		}
		e.publishStep(dur, n, prefill, pre, finished) // before the wake-ups: a client that saw a token sees its step in /metrics
		for _, q := range st.seqs {
			signal(q.pub)
		}
	}
}

func signal(p *Seq) {
	select {
	case p.notify <- struct{}{}:
	default:
	}
}

// publishStep updates the stats after a step that ran from begin for dur
// with n sequences.
func (e *Engine) publishStep(dur time.Duration, n, prefill, preempted int, finished []*seq) {
	s := e.sched
	used, stored := s.usage()
	e.mu.Lock()
	defer e.mu.Unlock()
	st := &e.stats
	st.BusySim += dur
	st.Steps++
	st.StepSeconds.observe(dur.Seconds())
	st.BatchSize.observe(float64(n))
	st.PromptTokens += uint64(prefill)
	st.OutputTokens += uint64(n)
	st.Preemptions += uint64(preempted)
	for _, q := range finished {
		st.Finished[q.pub.Reason]++
	}
	st.Running, st.Waiting = len(s.running), len(s.waiting)
	st.KVUsed, st.KVStored = used, stored
	st.KVUsage = float64(used) / float64(st.KVTotal)
}

// publishIdle records that the engine has nothing to run.
func (e *Engine) publishIdle() {
	s := e.sched
	used, stored := s.usage()
	e.mu.Lock()
	defer e.mu.Unlock()
	st := &e.stats
	st.Running, st.Waiting = len(s.running), len(s.waiting)
	st.KVUsed, st.KVStored = used, stored
	st.KVUsage = float64(used) / float64(st.KVTotal)
}
