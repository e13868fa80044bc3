package replay

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/vbench/vbench/internal/testserver"
)

// TestProgressEvents: each phase reports while it runs and once when it
// ends, with its account; a warm-up (WarmupRun) reports its end before
// its level does, and nothing comes after a phase's final report.
func TestProgressEvents(t *testing.T) {
	srv := startServer(t, testserver.Config{TTFT: 5 * time.Millisecond, ITL: 5 * time.Millisecond})
	hdr, reqs := constTrace(400, 10*time.Millisecond, 5)
	var mu sync.Mutex
	var events []Progress
	cfg := Config{Target: srv.URL, Model: "m", Rates: []float64{100}, Duration: 600 * time.Millisecond,
		WarmupDuration: 300 * time.Millisecond, WarmupMode: WarmupRun, ProgressInterval: 50 * time.Millisecond,
		OnProgress: func(p Progress) {
			mu.Lock()
			events = append(events, p)
			mu.Unlock()
		}}
	if _, err := Run(context.Background(), cfg, hdr, reqs); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	final := map[string]int{} // phase → index of its final report
	running := map[string]int{}
	for i, p := range events {
		key := p.Kind + " " + p.Label
		if _, done := final[key]; done {
			t.Errorf("event %d for %s after its final report: %+v", i, key, p)
		}
		if p.Final != nil {
			final[key] = i
			if p.Line == "" || p.Final.Sent == 0 {
				t.Errorf("final report of %s: line %q, result %+v", key, p.Line, p.Final)
			}
			continue
		}
		running[key]++
		if p.Left < 0 || p.Sent < p.Finished || p.Planned == 0 {
			t.Errorf("running report of %s: %+v", key, p)
		}
	}
	w, okW := final["warm-up 100"]
	l, okL := final["level 100"]
	if !okW || !okL || w > l {
		t.Errorf("final reports at %v; want the warm-up's before the level's", final)
	}
	if running["level 100"] == 0 {
		t.Errorf("no running report of the level (every 50 ms over 600 ms)")
	}
}
