package bench

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vbench/vbench/backends"
)

// GPU lanes: with [run] gpus (or vbbench run --gpus) the trials of a study
// run at the same time on one host, each on as many of the listed GPUs as
// its variant takes (Spec.GPUs). One policy places them, for the plan's
// projection, the live ETA and the run itself: trials are taken in plan
// order, and whenever GPUs are free the first waiting trial that finds its
// GPUs free starts on them (first fit, so a single-GPU trial may pass a
// tensor-parallel one that waits for more GPUs); a multi-GPU trial takes an
// aligned block of the listed GPUs (findSlots). A GPU belongs
// to one trial from its backend's start to the end of its analysis, so
// trials that share a GPU never overlap. Without lanes there is one slot
// and trials run one after another in plan order, on the GPUs the
// environment gives.

// laneNeed is how many lane slots a trial takes: its variant's GPUs with
// lanes, one slot without.
func laneNeed(t Trial, lanes int) int {
	if lanes == 0 {
		return 1
	}
	return t.Variant.Spec.GPUs()
}

// firstFit returns the position in waiting of the first trial that finds
// its slots free (findSlots), or -1.
func firstFit(waiting []Trial, busy []bool, lanes int) int {
	for i, t := range waiting {
		if findSlots(busy, laneNeed(t, lanes)) != nil {
			return i
		}
	}
	return -1
}

// findSlots returns the free slots a trial of n GPUs gets, or nil when it
// must wait. A width that is a power of two takes an aligned block (GPUs
// 0-1, 2-3, …, 0-3, 4-7, …): on common 8-GPU hosts such blocks share NVLink
// or a PCIe switch, and in a plan over several hosts' GPUs (32 = 4 × 8)
// they never straddle two hosts, as a Slurm task cannot. Other widths take
// a contiguous block, else any free slots.
func findSlots(busy []bool, n int) []int {
	if n < 1 || n > len(busy) {
		return nil
	}
	pow2 := n&(n-1) == 0
	block := func(step int) []int {
		for start := 0; start+n <= len(busy); start += step {
			if !slices.Contains(busy[start:start+n], true) {
				out := make([]int, n)
				for i := range out {
					out[i] = start + i
				}
				return out
			}
		}
		return nil
	}
	if pow2 {
		return block(n)
	}
	if out := block(1); out != nil {
		return out
	}
	var out []int
	for i := range busy {
		if !busy[i] {
			out = append(out, i)
		}
	}
	if len(out) < n {
		return nil
	}
	return out[:n]
}

// takeSlots marks the slots findSlots gives busy and returns them.
func takeSlots(busy []bool, n int) []int {
	out := findSlots(busy, n)
	for _, i := range out {
		busy[i] = true
	}
	return out
}

// slotIDs maps slots to GPU ids (nil without lanes).
func slotIDs(gpus []string, slots []int) []string {
	if len(gpus) == 0 {
		return nil
	}
	out := make([]string, len(slots))
	for i, s := range slots {
		out[i] = gpus[s]
	}
	return out
}

// projection is where and when the lane policy puts each trial, given
// estimated durations.
type projection struct {
	// Start and GPUs are per trial, in the order given.
	Start []time.Duration
	GPUs  [][]string
	// Wall is when the last trial ends.
	Wall time.Duration
}

// project places trials with the lane policy when each lasts dur(t) and
// slot i is busy until busyUntil[i] (nil: all free at 0). lanes is the
// number of GPUs (0: one serial slot). A trial that needs more slots than
// exist is left out (Start -1); the plan reports it as an error.
func project(trials []Trial, gpus []string, busyUntil []time.Duration, dur func(Trial) time.Duration) projection {
	lanes := len(gpus)
	n := max(lanes, 1)
	until := make([]time.Duration, n)
	copy(until, busyUntil)
	pr := projection{Start: make([]time.Duration, len(trials)), GPUs: make([][]string, len(trials))}
	waiting := make([]int, 0, len(trials))
	for i, t := range trials {
		pr.Start[i] = -1
		if laneNeed(t, lanes) <= n {
			waiting = append(waiting, i)
		}
	}
	var now time.Duration
	for len(waiting) > 0 {
		busy := make([]bool, n)
		for s := range until {
			busy[s] = until[s] > now
		}
		for {
			ts := make([]Trial, len(waiting))
			for k, i := range waiting {
				ts[k] = trials[i]
			}
			k := firstFit(ts, busy, lanes)
			if k < 0 {
				break
			}
			i := waiting[k]
			slots := takeSlots(busy, laneNeed(trials[i], lanes))
			d := dur(trials[i])
			for _, s := range slots {
				until[s] = now + d
			}
			pr.Start[i], pr.GPUs[i] = now, slotIDs(gpus, slots)
			waiting = slices.Delete(waiting, k, k+1)
		}
		// Advance to the next time a slot frees.
		next := time.Duration(-1)
		for _, u := range until {
			if u > now && (next < 0 || u < next) {
				next = u
			}
		}
		if next < 0 {
			break
		}
		now = next
	}
	for _, u := range until {
		pr.Wall = max(pr.Wall, u)
	}
	return pr
}

// laneClock tracks the trials of a run for the ETA: those started (when,
// on which slots, estimated how long) and those still waiting.
type laneClock struct {
	mu      sync.Mutex
	now     func() time.Time
	gpus    []string
	slots   []runningTrial // by slot; zero when free
	waiting []Trial
	byTrial map[int][]int // a running trial's slots, by Trial.Index
	// initial is the ETA when the clock was made: what the study was
	// expected to take (the last progress line compares it with the time
	// it took).
	initial time.Duration
}

type runningTrial struct {
	start time.Time
	est   time.Duration
}

func newLaneClock(now func() time.Time, gpus []string, waiting []Trial) *laneClock {
	c := &laneClock{now: now, gpus: gpus, slots: make([]runningTrial, max(len(gpus), 1)), waiting: slices.Clone(waiting), byTrial: map[int][]int{}}
	c.initial = c.eta()
	return c
}

// remaining tells the clock that trial index needs rem more from now (its
// levels measured so far say so better than the plan did).
func (c *laneClock) remaining(index int, rem time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	for _, s := range c.byTrial[index] {
		if r := &c.slots[s]; !r.start.IsZero() {
			r.est = now.Sub(r.start) + rem
		}
	}
}

func (c *laneClock) started(t Trial, slots []int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range slots {
		c.slots[s] = runningTrial{start: c.now(), est: t.Estimate}
	}
	c.byTrial[t.Index] = slots
	c.waiting = slices.DeleteFunc(c.waiting, func(w Trial) bool { return w.Index == t.Index })
}

func (c *laneClock) finished(slots []int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range slots {
		c.slots[s] = runningTrial{}
	}
}

// eta projects the time left: running trials take the rest of their
// estimate (at least nothing), waiting ones are placed by the lane policy.
func (c *laneClock) eta() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	busy := make([]time.Duration, len(c.slots))
	for i, r := range c.slots {
		if !r.start.IsZero() {
			busy[i] = max(r.est-now.Sub(r.start), 0)
		}
	}
	return project(c.waiting, c.gpus, busy, func(t Trial) time.Duration { return t.Estimate }).Wall
}

// portSet keeps the ports handed to the backends of the running lanes
// apart: FreePort draws at random, and two lanes must not draw the same
// port before either server binds it.
type portSet struct {
	mu    sync.Mutex
	inUse map[int]bool
}

// pick returns a free loopback port no other lane holds.
func (ps *portSet) pick() (int, error) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.inUse == nil {
		ps.inUse = map[int]bool{}
	}
	for range 50 {
		p, err := backends.FreePort("127.0.0.1")
		if err != nil {
			return 0, err
		}
		if !ps.inUse[p] {
			ps.inUse[p] = true
			return p, nil
		}
	}
	return 0, fmt.Errorf("bench: no free port apart from the %d the lanes hold", len(ps.inUse))
}

func (ps *portSet) release(p int) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	delete(ps.inUse, p)
}

// laneTrial is one trial handed to a lane: the GPUs it is pinned to (nil
// without lanes).
type laneTrial func(ctx context.Context, t Trial, gpus []string) TrialStatus

// runLanes runs trials with the lane policy on gpus (none: one at a time)
// and returns their statuses by Trial.Index. After ctx is cancelled no
// further trial starts; the running ones see the cancellation and end, and
// trials never started are absent from the result.
func runLanes(ctx context.Context, trials []Trial, gpus []string, clock *laneClock, run laneTrial) map[int]TrialStatus {
	lanes := len(gpus)
	busy := make([]bool, max(lanes, 1))
	waiting := slices.Clone(trials)
	type result struct {
		t     Trial
		slots []int
		st    TrialStatus
	}
	done := make(chan result)
	results := map[int]TrialStatus{}
	running := 0
	for {
		for ctx.Err() == nil {
			k := firstFit(waiting, busy, lanes)
			if k < 0 {
				break
			}
			t := waiting[k]
			waiting = slices.Delete(waiting, k, k+1)
			slots := takeSlots(busy, laneNeed(t, lanes))
			running++
			if clock != nil {
				clock.started(t, slots)
			}
			go func() {
				done <- result{t: t, slots: slots, st: run(ctx, t, slotIDs(gpus, slots))}
			}()
		}
		if running == 0 {
			return results
		}
		r := <-done
		running--
		for _, s := range r.slots {
			busy[s] = false
		}
		if clock != nil {
			clock.finished(r.slots)
		}
		results[r.t.Index] = r.st
	}
}

// runTrials runs the trials not finished before (previous, from --resume)
// on the lanes and returns every trial's status in plan order.
func (r *runner) runTrials(ctx context.Context, trials []Trial, previous map[string]TrialStatus) []TrialStatus {
	var todo []Trial
	for _, t := range trials {
		if prev, ok := previous[t.Key()]; ok {
			fmt.Fprintf(r.opt.Progress, "[%d/%d] %s: done before (%s), skipped by --resume\n", t.Index+1, len(r.plan.Trials), t.Key(), prev.Dir)
			continue
		}
		todo = append(todo, t)
	}
	r.clock = newLaneClock(r.opt.Now, r.plan.GPUs, todo)
	ran := runLanes(ctx, todo, r.plan.GPUs, r.clock, r.trial)
	var out []TrialStatus
	for _, t := range trials {
		if prev, ok := previous[t.Key()]; ok {
			out = append(out, prev)
		} else if st, ok := ran[t.Index]; ok {
			out = append(out, st)
		}
	}
	return out
}

// lanesErr refuses, even with --force, trials that take more GPUs than the
// lanes have: they could never start.
func (p *Plan) lanesErr() error {
	if len(p.GPUs) == 0 {
		return nil
	}
	for _, t := range p.Trials {
		if n := t.Variant.Spec.GPUs(); n > len(p.GPUs) {
			return fmt.Errorf("bench: %s takes %d GPUs but the lanes have %d (%s): list more GPUs or lower gpu_count / tensor_parallel_size",
				t.Key(), n, len(p.GPUs), strings.Join(p.GPUs, ","))
		}
	}
	return nil
}

// laneTag is how progress lines name a trial's GPUs ("" without lanes).
func laneTag(gpus []string) string {
	if len(gpus) == 0 {
		return ""
	}
	return " [gpu " + strings.Join(gpus, ",") + "]"
}
