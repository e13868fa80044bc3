package replay

import (
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/vbench/vbench/metric"
	"github.com/vbench/vbench/trace"
)

// The cut policy, one for vbreplay and vbbench (issue 18). A level's
// requests may run until its sending window ends plus a drain; whatever
// still runs then is cut and reported as censored (metric.Cut) with its
// partial latency, never hidden and never a failure. The default drain
// (Config.Drain 0) is long enough for the level's longest expected
// request:
//
//	drain = DrainFactor × (TTFT + longest expected output × TPOT) + backlog
//	backlog = (rate − R) / R × window, when the level's rate exceeds R
//
// with TTFT and TPOT the highest p90s measured so far against this server
// — the preflight (it asks for preflightTokens tokens), the levels already
// run, and Config.Measured from the caller (vbbench passes the trial's
// earlier levels) — and the longest expected output the largest output
// length (else max_tokens) among the level's requests; at least MinDrain,
// at most Config.MaxDrain. R is the highest rate of a level run so far: the
// server may serve no more than that, and the queue a faster level would
// then build in its window takes the backlog term to serve. Without it the
// first level past a server's knee cut its queued requests (an H200 run:
// 11 of 1,694 at 28 req/s after 20, with a 13-s drain). While nothing is measured (a server that sends
// one token, or --no-preflight on a first level) it is DefaultDrain,
// capped the same way. The drain is an upper bound: a level ends as soon
// as its last request does.

// Drain policy constants (see the comment above).
const (
	// DefaultDrain is the drain while no TTFT and TPOT are measured.
	DefaultDrain = 120 * time.Second
	// MinDrain is the least automatic drain.
	MinDrain = 10 * time.Second
	// DefaultMaxDrain caps the automatic drain (Config.MaxDrain).
	DefaultMaxDrain = 5 * time.Minute
	// DrainFactor is the margin over the longest request's expected time:
	// load grows from one level to the next, and TPOT with it.
	DrainFactor = 2
	// preflightTokens is the output the preflight asks for: enough for a
	// TPOT.
	preflightTokens = 8
)

// Measured is what is known of a server's speed under load: the p90 of
// the time to first token and of the time per output token.
type Measured struct {
	TTFT time.Duration `json:"ttft_p90_ns"`
	TPOT time.Duration `json:"tpot_p90_ns"`
	// Rate is the highest request rate (req/s) of a paced level run so
	// far: a lower bound of what the server can serve (0: none).
	Rate float64 `json:"rate,omitempty"`
}

// known reports whether a TPOT was measured.
func (m Measured) known() bool { return m.TPOT > 0 }

// Merge keeps the larger of each figure.
func (m Measured) Merge(o Measured) Measured {
	return Measured{TTFT: max(m.TTFT, o.TTFT), TPOT: max(m.TPOT, o.TPOT), Rate: max(m.Rate, o.Rate)}
}

// MeasuredOf returns the p90 TTFT and TPOT of a summary (zero where it has
// none).
func MeasuredOf(s metric.Summary) Measured {
	d := func(v float64) time.Duration {
		if math.IsNaN(v) || v <= 0 {
			return 0
		}
		return time.Duration(v * 1e9)
	}
	return Measured{TTFT: d(s.TTFT.P90), TPOT: d(s.TPOT.P90)}
}

// speed is a runner's running knowledge of the server's speed.
type speed struct {
	mu sync.Mutex
	m  Measured
}

func (s *speed) add(m Measured) {
	s.mu.Lock()
	s.m = s.m.Merge(m)
	s.mu.Unlock()
}

func (s *speed) get() Measured {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m
}

// expectedOutputOf is the longest output a phase's requests expect (0:
// unknown).
func expectedOutputOf(reqs []trace.Request, items []item) int32 {
	var most int32
	for _, it := range items {
		most = max(most, expectedOutput(&reqs[it.req]))
	}
	return most
}

// AutoDrain is the policy's drain for a level at rate (req/s; 0: not
// paced) sending for window, whose longest request expects maxOutput
// tokens, given what was measured and the cap: see the comment at the top
// of this file. The reason says how it was chosen.
func AutoDrain(maxOutput int32, m Measured, maxDrain time.Duration, rate float64, window time.Duration) (time.Duration, string) {
	if maxDrain <= 0 {
		maxDrain = DefaultMaxDrain
	}
	if !m.known() || maxOutput <= 0 {
		d := min(DefaultDrain, maxDrain)
		why := "no TPOT measured yet"
		if maxOutput <= 0 {
			why = "no output lengths in the trace"
		}
		return d, fmt.Sprintf("default %v (%s)", d, why)
	}
	need := DrainFactor * (m.TTFT + time.Duration(maxOutput)*m.TPOT)
	why := fmt.Sprintf("%d × (TTFT p90 %v + %d tokens × TPOT p90 %v)",
		DrainFactor, m.TTFT.Round(time.Millisecond), maxOutput, m.TPOT.Round(100*time.Microsecond))
	if backlog := Backlog(rate, m.Rate, window); backlog > 0 {
		need += backlog
		why += fmt.Sprintf(" + backlog (%g − %g req/s) / %g req/s × %v (%v)", rate, m.Rate, m.Rate, window, backlog.Round(time.Second))
	}
	d := min(max(need, MinDrain), maxDrain).Round(time.Second)
	return d, fmt.Sprintf("%s = %v, within [%v, %v]", why, need.Round(time.Second), MinDrain, maxDrain)
}

// Backlog is how long a server that serves served req/s takes to empty
// the queue a level at rate req/s builds while it sends for window:
// (rate − served) × window requests, served at served. Zero when the rate
// is not above it or either is unknown (≤ 0). The one queue estimate of the
// automatic drain and of vbbench's plan.
func Backlog(rate, served float64, window time.Duration) time.Duration {
	if served <= 0 || rate <= served || window <= 0 {
		return 0
	}
	return time.Duration((rate - served) / served * float64(window))
}

// drainFor is the drain of a phase: Config.Drain when set, else the
// policy's.
func (r *runner) drainFor(ph *phase) (time.Duration, string) {
	if r.cfg.Drain > 0 {
		return r.cfg.Drain, "set (--drain)"
	}
	rate := ph.rate
	if ph.conc > 0 {
		rate = 0 // a closed loop builds no queue past its concurrency
	}
	return AutoDrain(expectedOutputOf(r.reqs, ph.items), r.speed.get(), r.cfg.MaxDrain, rate, ph.window)
}
