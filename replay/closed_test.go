package replay

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vbench/vbench/internal/testserver"
	"github.com/vbench/vbench/metric"
)

// maxInFlight returns the most requests whose [Sent, Sent+End) intervals
// overlap.
func maxInFlight(rs []metric.Request) int {
	type ev struct {
		at    int64
		delta int
	}
	var evs []ev
	for _, r := range rs {
		evs = append(evs, ev{r.Sent, 1}, ev{r.Sent + int64(r.End), -1})
	}
	slices.SortFunc(evs, func(a, b ev) int {
		if a.at != b.at {
			return int(a.at - b.at)
		}
		return a.delta - b.delta // an end before a start at the same instant
	})
	n, most := 0, 0
	for _, e := range evs {
		n += e.delta
		most = max(most, n)
	}
	return most
}

// TestClosedLoop: each level keeps at most N requests in flight, sends the
// trace from its first request in order, once each, and records its
// concurrency; arrival times are ignored (the trace's offsets span minutes).
func TestClosedLoop(t *testing.T) {
	srv := startServer(t, testserver.Config{TTFT: 10 * time.Millisecond, ITL: 2 * time.Millisecond})
	hdr, reqs := testTrace(2000, 8)
	cfg := Config{Target: srv.URL, Concurrency: []int{1, 4}, Duration: 400 * time.Millisecond, Drain: 5 * time.Second, KeepRequests: true}
	res, err := Run(context.Background(), cfg, hdr, reqs)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Levels) != 2 {
		t.Fatalf("%d levels; want 2", len(res.Levels))
	}
	for i, n := range []int{1, 4} {
		lr := res.Levels[i]
		if lr.Label != ClosedLabel(n) || lr.Concurrency != n || lr.Rate != 0 || lr.Exhausted {
			t.Errorf("level %d: label %q concurrency %d rate %v exhausted %v; want %q, %d, 0, false", i, lr.Label, lr.Concurrency, lr.Rate, lr.Exhausted, ClosedLabel(n), n)
		}
		if lr.Sent == 0 || lr.OK != lr.Sent || len(lr.Errors) != 0 {
			t.Errorf("level %s: sent %d ok %d errors %v; want all ok", lr.Label, lr.Sent, lr.OK, lr.Errors)
		}
		if got := maxInFlight(lr.Requests); got > n {
			t.Errorf("level %s: %d requests in flight at once; want at most %d", lr.Label, got, n)
		}
		idx := make([]int64, len(lr.Requests))
		for j, q := range lr.Requests {
			idx[j] = q.Index
			if q.Scheduled > q.Sent {
				t.Errorf("level %s: request %d scheduled after it was sent", lr.Label, q.Index)
			}
		}
		slices.Sort(idx)
		for j, v := range idx {
			if v != int64(j) {
				t.Fatalf("level %s: sent indexes %v…; want 0..%d once each", lr.Label, idx[:min(len(idx), 10)], len(idx)-1)
			}
		}
	}
	for _, h := range srv.Headers() {
		if h.Get("X-VB-Level") == "preflight" {
			continue
		}
		if l := h.Get("X-VB-Level"); l != "c1" && l != "c4" {
			t.Errorf("X-VB-Level %q; want c1 or c4", l)
		}
		if h.Get("X-VB-Deadline") == "" {
			t.Error("no X-VB-Deadline on a closed-loop level with a duration")
		}
	}
	var sum strings.Builder
	if err := WriteSummary(&sum, res); err != nil || !strings.Contains(sum.String(), "c4") {
		t.Errorf("summary %q (%v) does not show level c4", sum.String(), err)
	}
}

// TestClosedLoopTraceRunsOut: a trace shorter than the level ends it early,
// every request sent once, and says so; with no duration the whole trace is
// played and that is no shortage.
func TestClosedLoopTraceRunsOut(t *testing.T) {
	srv := startServer(t, testserver.Config{TTFT: time.Millisecond})
	hdr, reqs := testTrace(12, 4)
	for _, d := range []time.Duration{time.Minute, 0} {
		start := time.Now()
		res, err := Run(context.Background(), Config{Target: srv.URL, Concurrency: []int{3}, Duration: d}, hdr, reqs)
		if err != nil {
			t.Fatal(err)
		}
		lr := res.Levels[0]
		if lr.Sent != 12 || lr.OK != 12 || lr.Exhausted != (d > 0) {
			t.Errorf("duration %v: sent %d ok %d exhausted %v; want 12, 12, %v", d, lr.Sent, lr.OK, lr.Exhausted, d > 0)
		}
		if el := time.Since(start); el > 30*time.Second {
			t.Errorf("duration %v: took %v; the level should end when the trace runs out", d, el)
		}
	}
}

// TestClosedLoopWarmup: the warm-up sends the trace's last requests, tagged
// as warm-up, before the measured level, which starts from the first.
func TestClosedLoopWarmup(t *testing.T) {
	srv := startServer(t, testserver.Config{})
	hdr, reqs := testTrace(50, 2)
	res, err := Run(context.Background(), Config{Target: srv.URL, Concurrency: []int{2}, WarmupRequests: 5, Duration: 0}, hdr, reqs)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Warmups) != 1 || res.Warmups[0].Sent != 5 || res.Levels[0].Sent != 50 {
		t.Fatalf("warm-ups %+v, level sent %d; want one warm-up of 5 and a level of 50", res.Warmups, res.Levels[0].Sent)
	}
	var warm []string
	for _, h := range srv.Headers() {
		if h.Get("X-VB-Warmup") == "1" && h.Get("X-VB-Level") != "preflight" {
			warm = append(warm, h.Get("X-VB-Index"))
		}
	}
	slices.Sort(warm)
	if want := []string{"45", "46", "47", "48", "49"}; !slices.Equal(warm, want) {
		t.Errorf("warm-up indexes %v; want %v", warm, want)
	}
}

func TestClosedLoopValidate(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Target: "http://x", Concurrency: []int{1}, Rates: []float64{2}}, "exclude each other"},
		{Config{Target: "http://x", Concurrency: []int{4}, MaxConcurrency: 2}, "--max-concurrency"},
		{Config{Target: "http://x", Concurrency: []int{2, 0}}, "concurrency 0"},
	} {
		cfg := c.cfg.WithDefaults()
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate(%+v) = %v; want an error mentioning %q", c.cfg.Concurrency, err, c.want)
		}
	}
}
