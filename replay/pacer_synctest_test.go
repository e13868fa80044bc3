package replay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/vbench/vbench/metric"
)

// bubbleEngine is an in-process engine for synctest bubbles (a loopback
// socket is not durably blocking, so fake time could not advance over it):
// it answers every request with a stream of tokens after ttft, itl apart.
type bubbleEngine struct {
	ttft, itl time.Duration
	tokens    int
	mu        sync.Mutex
	arrivals  []arrival
}

type arrival struct {
	index     int64
	at        time.Time
	scheduled int64
	sent      int64
	warmup    bool
}

func (e *bubbleEngine) RoundTrip(req *http.Request) (*http.Response, error) {
	io.Copy(io.Discard, req.Body)
	req.Body.Close()
	idx, _ := strconv.ParseInt(req.Header.Get("X-VB-Index"), 10, 64)
	sch, _ := strconv.ParseInt(req.Header.Get("X-VB-Scheduled"), 10, 64)
	sent, _ := strconv.ParseInt(req.Header.Get("X-VB-Sent"), 10, 64)
	e.mu.Lock()
	e.arrivals = append(e.arrivals, arrival{index: idx, at: time.Now(), scheduled: sch, sent: sent, warmup: req.Header.Get("X-VB-Warmup") == "1"})
	e.mu.Unlock()
	pr, pw := io.Pipe()
	ctx := req.Context()
	go func() {
		start := time.Now()
		for i := 0; i < e.tokens; i++ {
			t := time.NewTimer(time.Until(start.Add(e.ttft + time.Duration(i)*e.itl)))
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				pw.CloseWithError(ctx.Err())
				return
			}
			fmt.Fprintf(pw, "data: {\"choices\":[{\"text\":\"t%d\"}],\"usage\":{\"completion_tokens\":%d}}\n\n", i, i+1)
		}
		io.WriteString(pw, "data: [DONE]\n\n")
		pw.Close()
	}()
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/event-stream"}}, Body: pr, Request: req}, nil
}

func bubbleConfig(e *bubbleEngine) Config {
	return Config{Target: "http://engine.invalid", Model: "m", SkipPreflight: true, Pacer: PacerTimer, KeepRequests: true, Client: &http.Client{Transport: e}}
}

// TestPacerOpenLoopSynctest: responses far slower than the gaps between
// requests never delay a send; on the fake clock every request goes out at
// exactly its due time.
func TestPacerOpenLoopSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := &bubbleEngine{ttft: 5 * time.Second, itl: 100 * time.Millisecond, tokens: 5}
		hdr, reqs := constTrace(20, time.Second, 5)
		cfg := bubbleConfig(e)
		cfg.Rates = []float64{10}
		start := time.Now()
		res, err := Run(context.Background(), cfg, hdr, reqs)
		if err != nil {
			t.Fatal(err)
		}
		lr := res.Levels[0]
		if lr.Sent != 20 || lr.OK != 20 || lr.Lag.Max != 0 {
			t.Fatalf("sent %d ok %d lag max %v; want 20, 20, 0", lr.Sent, lr.OK, lr.Lag.Max)
		}
		for i, a := range e.arrivals {
			want := start.Add(time.Duration(i) * 100 * time.Millisecond)
			if a.index != int64(i) || !a.at.Equal(want) || a.sent != a.scheduled {
				t.Errorf("arrival %d: index %d at start+%v (sent−scheduled %v); want index %d at start+%v", i, a.index, a.at.Sub(start), time.Duration(a.sent-a.scheduled), i, want.Sub(start))
			}
		}
		if lr.TTFT.P50 != 5 || lr.E2E.Max != 5.4 {
			t.Errorf("ttft p50 %v e2e max %v; want 5s, 5.4s", lr.TTFT.P50, lr.E2E.Max)
		}
		if lr.OutputTokens != 100 {
			t.Errorf("output tokens %d; want 100", lr.OutputTokens)
		}
		if got := time.Since(start); got != 1900*time.Millisecond+5400*time.Millisecond {
			t.Errorf("run took %v; want the last send at 1.9s plus its 5.4s response", got)
		}
	})
}

// TestPacerDrainCutSynctest: a level ends at its duration; requests still
// in flight at duration+drain are cut and counted as cut.
func TestPacerDrainCutSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := &bubbleEngine{ttft: 100 * time.Millisecond, itl: time.Second, tokens: 10}
		hdr, reqs := constTrace(50, time.Second, 10)
		cfg := bubbleConfig(e)
		cfg.Rates = []float64{10}
		cfg.Duration = time.Second
		cfg.Drain = 2 * time.Second
		start := time.Now()
		res, err := Run(context.Background(), cfg, hdr, reqs)
		if err != nil {
			t.Fatal(err)
		}
		lr := res.Levels[0]
		if lr.Planned != 10 || lr.Sent != 10 || lr.Cut != 10 || lr.OK != 0 {
			t.Errorf("planned %d sent %d cut %d ok %d; want 10 sent, all cut", lr.Planned, lr.Sent, lr.Cut, lr.OK)
		}
		if got := time.Since(start); got != 3*time.Second {
			t.Errorf("level took %v; want duration 1s + drain 2s", got)
		}
		// Cut requests are censored with their partial latency: request i,
		// sent at i × 100 ms, ran until the cut at 3 s; its normalized
		// latency is at least that over the 10 tokens it asked for.
		for i, q := range lr.Requests {
			want := 3*time.Second - time.Duration(i)*100*time.Millisecond
			if q.Outcome != metric.Cut || q.End != want || q.ExpectedOutput != 10 || q.NormLatencyBound() != want.Seconds()/10 {
				t.Errorf("request %d: %s, elapsed %v, expected output %d, bound %v; want cut after %v, 10 tokens", i, q.Outcome, q.End, q.ExpectedOutput, q.NormLatencyBound(), want)
			}
		}
		if lr.NormLatencyWithCut.N != 10 || lr.NormLatency.N != 0 {
			t.Errorf("norm latency with cut over %d, completed over %d; want 10 and 0", lr.NormLatencyWithCut.N, lr.NormLatency.N)
		}
		if len(e.arrivals) != 10 {
			t.Errorf("engine saw %d requests; want the 10 due before 1s", len(e.arrivals))
		}
	})
}

// TestPacerConcurrencyCapSynctest: with a cap, drop skips and counts;
// wait delays sends, and the delay shows as lag.
func TestPacerConcurrencyCapSynctest(t *testing.T) {
	for _, policy := range []string{OnFullDrop, OnFullWait} {
		t.Run(policy, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				// Each response lasts 250ms; requests come every 100ms; cap 1.
				e := &bubbleEngine{ttft: 250 * time.Millisecond, tokens: 1}
				hdr, reqs := constTrace(10, 100*time.Millisecond, 1)
				cfg := bubbleConfig(e)
				cfg.MaxConcurrency, cfg.OnFull = 1, policy
				res, err := Run(context.Background(), cfg, hdr, reqs)
				if err != nil {
					t.Fatal(err)
				}
				lr := res.Levels[0]
				switch policy {
				case OnFullDrop:
					// Sent at 0, 300, 600, 900 ms; the others found the slot busy.
					if lr.Sent != 4 || lr.Dropped != 6 || lr.Lag.Max != 0 {
						t.Errorf("sent %d dropped %d lag max %v; want 4, 6, 0", lr.Sent, lr.Dropped, lr.Lag.Max)
					}
				case OnFullWait:
					// Request n goes when n−1 ends: at 250·n ms, due at 100·n ms.
					if lr.Sent != 10 || lr.Dropped != 0 || lr.Lag.Max != (9*150*time.Millisecond).Seconds() {
						t.Errorf("sent %d dropped %d lag max %v; want 10, 0, 1.35s", lr.Sent, lr.Dropped, lr.Lag.Max)
					}
					if !lr.LagExceeded || !res.LagExceeded {
						t.Error("lag over the threshold is not marked")
					}
				}
			})
		})
	}
}

// TestPacerInterruptSynctest: cancelling stops the sending at once, lets
// in-flight requests finish for InterruptDrain, cuts the rest, and returns
// what ran with the context's error.
func TestPacerInterruptSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := &bubbleEngine{ttft: 50 * time.Millisecond, itl: 50 * time.Millisecond, tokens: 100}
		hdr, reqs := constTrace(100, 100*time.Millisecond, 100)
		cfg := bubbleConfig(e)
		cfg.Rates = []float64{0, 10}
		cfg.InterruptDrain = time.Second
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(550*time.Millisecond, cancel)
		start := time.Now()
		res, err := Run(ctx, cfg, hdr, reqs)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err %v; want context.Canceled", err)
		}
		if !res.Interrupted || len(res.Levels) != 1 {
			t.Fatalf("interrupted %v levels %d; want true, 1 (the second level never starts)", res.Interrupted, len(res.Levels))
		}
		lr := res.Levels[0]
		if lr.Sent != 6 || lr.Cut != 6 || !lr.Interrupted {
			t.Errorf("sent %d cut %d; want 6 sent (0..500ms) and cut", lr.Sent, lr.Cut)
		}
		if got := time.Since(start); got != 1550*time.Millisecond {
			t.Errorf("stopped after %v; want 550ms + 1s interrupt drain", got)
		}
	})
}

// TestWarmupSynctest: warm-up requests come from the trace's end, carry
// X-VB-Warmup, and run before each level (level mode) or once (run mode).
func TestWarmupSynctest(t *testing.T) {
	for _, mode := range []string{WarmupLevel, WarmupRun} {
		t.Run(mode, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := &bubbleEngine{ttft: 10 * time.Millisecond, tokens: 1}
				hdr, reqs := constTrace(30, time.Second, 1)
				cfg := bubbleConfig(e)
				cfg.Rates = []float64{10, 20}
				cfg.Duration = time.Second
				cfg.WarmupRequests = 3
				cfg.WarmupMode = mode
				res, err := Run(context.Background(), cfg, hdr, reqs)
				if err != nil {
					t.Fatal(err)
				}
				wantWarm := map[string]int{WarmupLevel: 2, WarmupRun: 1}[mode]
				if len(res.Warmups) != wantWarm {
					t.Fatalf("%d warm-ups; want %d", len(res.Warmups), wantWarm)
				}
				var warm []int64
				for _, a := range e.arrivals {
					if a.warmup {
						warm = append(warm, a.index)
					}
				}
				if len(warm) != 3*wantWarm || warm[0] != 27 || warm[2] != 29 {
					t.Errorf("warm-up indices %v; want 27,28,29 per warm-up", warm)
				}
				if res.Levels[0].Sent != 10 || res.Levels[1].Sent != 20 {
					t.Errorf("levels sent %d, %d; want 10, 20", res.Levels[0].Sent, res.Levels[1].Sent)
				}
			})
		})
	}
}

// TestAutoDrainSynctest: with no --drain, a level's drain is long enough
// for its longest expected request at the TPOT the preflight measured
// (2 × (TTFT + 30 tokens × 1 s) = 60 s here), so the slow requests finish
// instead of being cut (issue 18: a level was called saturated because
// its longest requests outlasted a fixed drain).
func TestAutoDrainSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := &bubbleEngine{ttft: 100 * time.Millisecond, itl: time.Second, tokens: 30}
		hdr, reqs := constTrace(50, time.Second, 30)
		cfg := bubbleConfig(e)
		cfg.SkipPreflight = false
		cfg.Rates = []float64{10}
		cfg.Duration = time.Second
		res, err := Run(context.Background(), cfg, hdr, reqs)
		if err != nil {
			t.Fatal(err)
		}
		lr := res.Levels[0]
		if lr.Drain != 60*time.Second || lr.Cut != 0 || lr.OK != 10 {
			t.Errorf("drain %v (%s), cut %d, ok %d; want 60s, none cut, 10 ok", lr.Drain, lr.DrainReason, lr.Cut, lr.OK)
		}
		// A fixed drain shorter than the requests cuts them all; a caller's
		// measurement (vbbench's earlier levels) sets the drain the same
		// way as the preflight's.
		cfg.SkipPreflight = true
		cfg.Measured = Measured{TTFT: 100 * time.Millisecond, TPOT: 2 * time.Second}
		res, err = Run(context.Background(), cfg, hdr, reqs)
		if err != nil {
			t.Fatal(err)
		}
		if lr := res.Levels[0]; lr.Drain != 120*time.Second || lr.Cut != 0 {
			t.Errorf("with a 2-s TPOT measured: drain %v (%s), cut %d; want 2 × (0.1 s + 60 s) ≈ 120s, none cut", lr.Drain, lr.DrainReason, lr.Cut)
		}
	})
}

// TestAutoDrainBacklogSynctest: the second level of a run, at twice the
// first's rate, drains for the queue it would build if the server served
// only the first rate (the first level has no earlier rate, so none).
func TestAutoDrainBacklogSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := &bubbleEngine{ttft: 10 * time.Millisecond, itl: 10 * time.Millisecond, tokens: 5}
		hdr, reqs := constTrace(200, 100*time.Millisecond, 5)
		cfg := bubbleConfig(e)
		cfg.SkipPreflight = false
		cfg.Rates = []float64{2, 4}
		cfg.Duration = 10 * time.Second
		res, err := Run(context.Background(), cfg, hdr, reqs)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Levels) != 2 {
			t.Fatalf("%d levels, want 2", len(res.Levels))
		}
		if why := res.Levels[0].DrainReason; strings.Contains(why, "backlog") {
			t.Errorf("level 1's drain counts a backlog: %s", why)
		}
		// (4 − 2) / 2 × 10 s = 10 s on top of the 10-s floor's worth.
		if lv := res.Levels[1]; !strings.Contains(lv.DrainReason, "backlog (4 − 2 req/s) / 2 req/s × 10s (10s)") || lv.Drain < 10*time.Second {
			t.Errorf("level 2: drain %v (%s); want a 10-s backlog term", lv.Drain, lv.DrainReason)
		}
	})
}

func TestAutoDrain(t *testing.T) {
	ms := time.Millisecond
	for _, tt := range []struct {
		out    int32
		m      Measured
		max    time.Duration
		rate   float64
		window time.Duration
		want   time.Duration
	}{
		{100, Measured{}, 0, 0, 0, DefaultDrain},                                      // nothing measured
		{0, Measured{TTFT: 100 * ms, TPOT: 20 * ms}, 0, 0, 0, DefaultDrain},           // no lengths in the trace
		{1000, Measured{TTFT: 100 * ms, TPOT: 20 * ms}, 0, 0, 0, 40 * time.Second},    // 2 × (0.1 + 20) s
		{10, Measured{TTFT: 10 * ms, TPOT: 5 * ms}, 0, 0, 0, MinDrain},                // short: the floor
		{4000, Measured{TTFT: time.Second, TPOT: 500 * ms}, 0, 0, 0, DefaultMaxDrain}, // long: the cap
		{4000, Measured{TTFT: time.Second, TPOT: 500 * ms}, time.Minute, 0, 0, time.Minute},
		{100, Measured{}, time.Minute, 0, 0, time.Minute}, // the cap bounds the fallback too
		// The H200's vllm-all-opt at 28 req/s after 20: 2 × (86 ms + 825 × 7.9 ms) = 13 s,
		// plus the queue if the server served only 20 req/s: 8 / 20 × 60 s = 24 s.
		{825, Measured{TTFT: 86 * ms, TPOT: 7900 * time.Microsecond, Rate: 20}, 2 * time.Minute, 28, time.Minute, 37 * time.Second},
		{825, Measured{TTFT: 86 * ms, TPOT: 7900 * time.Microsecond, Rate: 20}, 2 * time.Minute, 20, time.Minute, 13 * time.Second}, // no faster than before: no backlog
		{825, Measured{TTFT: 86 * ms, TPOT: 7900 * time.Microsecond}, 2 * time.Minute, 28, time.Minute, 13 * time.Second},           // no earlier rate: no backlog
		{825, Measured{TTFT: 86 * ms, TPOT: 7900 * time.Microsecond, Rate: 5}, 2 * time.Minute, 28, time.Minute, 2 * time.Minute},   // the cap bounds the backlog
	} {
		if got, why := AutoDrain(tt.out, tt.m, tt.max, tt.rate, tt.window); got != tt.want {
			t.Errorf("AutoDrain(%d, %+v, %v, %g, %v) = %v (%s); want %v", tt.out, tt.m, tt.max, tt.rate, tt.window, got, why, tt.want)
		}
	}
}
