package replay

import (
	"bytes"
	"context"
	"errors"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vbench/vbench/internal/testserver"
	"github.com/vbench/vbench/trace"
)

type seen struct {
	index           int64
	sent, scheduled int64
	body            string
}

// received returns the measured requests the server saw, in send order.
func received(t *testing.T, srv *testserver.Server) []seen {
	t.Helper()
	bodies, headers := srv.Bodies(), srv.Headers()
	var out []seen
	for i, h := range headers {
		if h.Get("X-VB-Warmup") == "1" {
			continue
		}
		idx, err1 := strconv.ParseInt(h.Get("X-VB-Index"), 10, 64)
		sent, err2 := strconv.ParseInt(h.Get("X-VB-Sent"), 10, 64)
		sch, err3 := strconv.ParseInt(h.Get("X-VB-Scheduled"), 10, 64)
		if err := errors.Join(err1, err2, err3); err != nil {
			t.Fatalf("request %d: bad tags %v: %v", i, h, err)
		}
		out = append(out, seen{index: idx, sent: sent, scheduled: sch, body: string(bodies[i])})
	}
	slices.SortStableFunc(out, func(a, b seen) int { return int(a.sent - b.sent) })
	return out
}

// TestEndToEnd200: every request is sent, in trace order, tagged, at 200
// req/s. How late the sends are (the schedule lag) is reported, not
// bounded: a shared CI machine can starve the replayer for a while, and the
// lag goal (well under a millisecond) is measured by BenchmarkScheduleLag
// and bench/scripts/replay_bench.sh (docs/benchmarks/replay.md).
func TestEndToEnd200(t *testing.T) {
	srv := startServer(t, testserver.Config{TTFT: 5 * time.Millisecond, ITL: time.Millisecond})
	hdr, reqs := testTrace(800, 4)
	cfg := Config{Target: srv.URL, Rates: []float64{200}, Duration: 2 * time.Second, Run: "r1", Trial: "t1",
		Labels: map[string]string{"variant": "test"}, KeepRequests: true}
	res, err := Run(context.Background(), cfg, hdr, reqs)
	if err != nil {
		t.Fatal(err)
	}
	lr := res.Levels[0]
	t.Logf("sent %d ok %d lag p50 %v p90 %v p99 %v max %v achieved %.1f/s scheduled %.1f/s ttft p50 %v", lr.Sent, lr.OK, lr.Lag.P50, lr.Lag.P90, lr.Lag.P99, lr.Lag.Max, lr.AchievedRate, lr.ScheduledRate, lr.TTFT.P50)
	want := CutIndex(func(i int) time.Duration { return reqs[i].Offset }, len(reqs), 1.0/200, 2*time.Second)
	if lr.Planned != want || lr.Sent != want || lr.OK != want {
		t.Fatalf("planned %d sent %d ok %d; want %d each", lr.Planned, lr.Sent, lr.OK, want)
	}
	got := received(t, srv)
	if len(got) != want {
		t.Fatalf("server saw %d measured requests; want %d", len(got), want)
	}
	// The pacer dispatches in trace order; two requests due within the lag
	// of each other may reach the wire in either order (each has its own
	// goroutine and connection), never two further apart.
	indices := map[int64]bool{}
	for i, s := range got {
		indices[s.index] = true
		if i > 0 && s.index < got[i-1].index && time.Duration(got[i-1].scheduled-s.scheduled).Seconds() > lr.Lag.Max {
			t.Errorf("send order: index %d went after %d, scheduled %v apart (lag max %v)", s.index, got[i-1].index, time.Duration(got[i-1].scheduled-s.scheduled), lr.Lag.Max)
		}
	}
	if len(indices) != want {
		t.Errorf("server saw %d distinct indices; want %d", len(indices), want)
	}
	if lr.TTFT.P50 < 0.005 || lr.E2E.P50 < 0.008 {
		t.Errorf("ttft p50 %v e2e p50 %v; the server's floor is 5ms and 8ms", lr.TTFT.P50, lr.E2E.P50)
	}
	if lr.OutputTokens != int64(4*want) {
		t.Errorf("output tokens %d; want %d from usage", lr.OutputTokens, 4*want)
	}
	h := srv.Headers()[len(srv.Headers())-1]
	for k, v := range map[string]string{"X-VB-Run": "r1", "X-VB-Trial": "t1", "X-VB-Level": "200", "X-VB-Rate": "200",
		"X-VB-Trace": hdr.HashHex(), "X-VB-Label-Variant": "test"} {
		if h.Get(k) != v {
			t.Errorf("header %s = %q; want %q", k, h.Get(k), v)
		}
	}
	if dl, _ := strconv.ParseInt(h.Get("X-VB-Deadline"), 10, 64); dl < got[0].scheduled+int64(MinDrain) {
		t.Errorf("X-VB-Deadline %d is before the start plus the least drain", dl)
	}
}

// TestIdentity: two replays of one trace at different rates send the same
// bodies in the same order, and the faster one's send times are the slower
// one's divided by the rate ratio (within the lag).
func TestIdentity(t *testing.T) {
	hdr, reqs := testTrace(40, 2)
	var runs [2][]seen
	for k, rate := range []float64{20, 200} {
		srv := startServer(t, testserver.Config{})
		if _, err := Run(context.Background(), Config{Target: srv.URL, Rates: []float64{rate}}, hdr, reqs); err != nil {
			t.Fatal(err)
		}
		runs[k] = received(t, srv)
		slices.SortFunc(runs[k], func(a, b seen) int { return int(a.index - b.index) })
	}
	if len(runs[0]) != len(reqs) || len(runs[1]) != len(reqs) {
		t.Fatalf("server saw %d and %d; want %d each", len(runs[0]), len(runs[1]), len(reqs))
	}
	// Scheduled times scale exactly (to the rounding of one nanosecond per
	// request); sent times scale within the lags the replayer measured.
	var worst time.Duration
	for i := range reqs {
		a, b := runs[0][i], runs[1][i]
		if a.index != int64(i) || b.index != int64(i) || a.body != b.body {
			t.Fatalf("position %d: indices %d/%d, bodies equal %v", i, a.index, b.index, a.body == b.body)
		}
		slowSch := time.Duration(a.scheduled - runs[0][0].scheduled)
		fastSch := time.Duration(b.scheduled - runs[1][0].scheduled)
		if d := (fastSch - slowSch/10).Abs(); d > time.Microsecond {
			t.Errorf("position %d: scheduled at +%v at rate 200, +%v at rate 20: not a tenth", i, fastSch, slowSch)
		}
		slow := time.Duration(a.sent - runs[0][0].sent)
		fast := time.Duration(b.sent - runs[1][0].sent)
		dev := (fast - slow/10).Abs()
		worst = max(worst, dev)
		lagA, lagB := time.Duration(a.sent-a.scheduled), time.Duration(b.sent-b.scheduled)
		lag0A, lag0B := time.Duration(runs[0][0].sent-runs[0][0].scheduled), time.Duration(runs[1][0].sent-runs[1][0].scheduled)
		if explained := lagB + lag0B + (lagA+lag0A)/10 + time.Microsecond; dev > explained {
			t.Errorf("position %d: send times deviate by %v, more than the measured lags explain (%v)", i, dev, explained)
		}
	}
	t.Logf("worst |t200 − t20/10| = %v", worst)
}

func TestPreflight(t *testing.T) {
	hdr, reqs := testTrace(5, 2)
	t.Run("default model", func(t *testing.T) {
		srv := startServer(t, testserver.Config{Model: "served-model"})
		res, err := Run(context.Background(), Config{Target: srv.URL, Rates: []float64{100}}, hdr, reqs)
		if err != nil || res.Model != "served-model" || res.Levels[0].OK != 5 {
			t.Fatalf("err %v model %q", err, res.Model)
		}
	})
	t.Run("model rejected", func(t *testing.T) {
		srv := startServer(t, testserver.Config{Model: "served-model"})
		_, err := Run(context.Background(), Config{Target: srv.URL, Model: "wrong", Rates: []float64{100}}, hdr, reqs)
		if !errors.Is(err, ErrPreflight) || !strings.Contains(err.Error(), "HTTP 404") || !strings.Contains(err.Error(), `"wrong"`) {
			t.Fatalf("err %v; want a preflight 404 naming the model", err)
		}
		if n := srv.Requests(); n > 2 {
			t.Errorf("server saw %d requests; the load must not start", n)
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := ln.Addr().String()
		ln.Close()
		_, err := Run(context.Background(), Config{Target: "http://" + addr, Model: "m"}, hdr, reqs)
		if !errors.Is(err, ErrPreflight) || !strings.Contains(err.Error(), "unreachable") {
			t.Fatalf("err %v; want unreachable", err)
		}
	})
	t.Run("too short", func(t *testing.T) {
		_, err := Run(context.Background(), Config{Target: "http://127.0.0.1:1", Rates: []float64{1, 100}, Duration: time.Minute}, hdr, reqs)
		if !errors.Is(err, ErrTraceTooShort) || !strings.Contains(err.Error(), "level 1 (1 req/s)") || !strings.Contains(err.Error(), "needs about 6000 requests") {
			t.Fatalf("err %v; want both levels named too short", err)
		}
	})
	t.Run("bad config", func(t *testing.T) {
		_, err := Run(context.Background(), Config{Target: "localhost", Rates: []float64{-1}, OnFull: "panic"}, hdr, reqs)
		for _, want := range []string{"--target", "rate -1", "--on-full"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("err %v; want it to mention %s", err, want)
			}
		}
	})
}

// TestErrorKinds: server errors are counted by kind, not fatal.
func TestErrorKinds(t *testing.T) {
	srv := startServer(t, testserver.Config{Model: "m"})
	hdr, reqs := testTrace(6, 2)
	reqs[2].Body = []byte(`{"model":"other","prompt":"x","max_tokens":2}`) // verbatim, model kept → 404
	res, err := Run(context.Background(), Config{Target: srv.URL, Model: "", Rates: []float64{100}, KeepRequests: true}, hdr, reqs)
	if err != nil {
		t.Fatal(err)
	}
	lr := res.Levels[0]
	if lr.OK != 5 || lr.Errors["http_404"] != 1 || !strings.Contains(lr.Requests[2].Error, "does not exist") {
		t.Errorf("ok %d errors %v request 2 %+v", lr.OK, lr.Errors, lr.Requests[2])
	}
	var out bytes.Buffer
	WriteSummary(&out, res)
	if !strings.Contains(out.String(), "http_404=1") {
		t.Errorf("summary lacks the error kind:\n%s", out.String())
	}
}

var _ = trace.EndpointChat
