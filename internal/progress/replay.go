package progress

import (
	"fmt"
	"math"
	"strings"
	"sync"

	"github.com/vbench/vbench/internal/units"
	"github.com/vbench/vbench/replay"
)

// Replay returns a replay.Config.OnProgress that shows each phase as a
// live line of d, named like "level 8 req/s" (prefix before it), and
// replaces it by the phase's final account when it ends (indented by
// indent, with the prefix).
func Replay(d *Display, prefix, indent string) func(replay.Progress) {
	var mu sync.Mutex
	tasks := map[string]*Task{}
	return func(p replay.Progress) {
		key := p.Kind + " " + p.Label
		mu.Lock()
		t := tasks[key]
		if t == nil && p.Final == nil {
			t = d.Task(indent + prefix + PhaseName(p))
			tasks[key] = t
		}
		if p.Final != nil {
			delete(tasks, key)
		}
		mu.Unlock()
		if p.Final != nil {
			lines := strings.Split(p.Line, "\n")
			for i := range lines {
				lines[i] = indent + prefix + lines[i]
			}
			if t != nil {
				t.Done(strings.Join(lines, "\n"))
			} else {
				d.Printf("%s", strings.Join(lines, "\n"))
			}
			return
		}
		done, total := PhaseDone(p)
		t.Update(done, total, PhaseStatus(p), p.Left)
	}
}

// PhaseName names a phase: "level 8 req/s", "warm-up 8 req/s",
// "level c4 (4 in flight)".
func PhaseName(p replay.Progress) string {
	if p.Concurrency > 0 {
		return fmt.Sprintf("%s %s (%d in flight)", p.Kind, p.Label, p.Concurrency)
	}
	return fmt.Sprintf("%s %s req/s", p.Kind, p.Label)
}

// PhaseDone is the bar of a phase: its requests sent and then finished
// (half each), or for a closed-loop level the time of its window.
func PhaseDone(p replay.Progress) (done, total int64) {
	if p.Concurrency > 0 || p.Planned == 0 {
		if p.Window <= 0 {
			return 0, 0
		}
		return int64(min(p.Elapsed, p.Window) / 1e6), int64(p.Window / 1e6)
	}
	return int64(p.Sent + p.Finished), int64(2 * p.Planned)
}

// PhaseStatus is what a phase is doing: "sent 41/68, 11 in flight | lag
// p99 0.21ms | norm latency 0.0041 s/token | 0 errors", or while draining
// "draining 11 in flight (cut in 1m58s) | ...".
func PhaseStatus(p replay.Progress) string {
	var b strings.Builder
	inflight := p.Sent - p.Finished
	switch {
	case p.Draining:
		fmt.Fprintf(&b, "draining: %d in flight", inflight)
		if p.CutIn > 0 {
			fmt.Fprintf(&b, " (cut in %s)", FormatETA(p.CutIn))
		}
	case p.Planned > 0:
		fmt.Fprintf(&b, "sent %d/%d, %d in flight", p.Sent, p.Planned, inflight)
	default:
		fmt.Fprintf(&b, "sent %d, %d in flight", p.Sent, inflight)
	}
	if p.Concurrency == 0 && !math.IsNaN(p.LagP99) {
		fmt.Fprintf(&b, " | lag p99 %s", units.Seconds(p.LagP99))
	}
	fmt.Fprintf(&b, " | %s | %d failed", p.Norm, p.Failed)
	return b.String()
}
