// Package e2e holds vbench's end-to-end test: the whole pipeline of `make
// demo`, in process and short enough for CI.
package e2e

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vbench/vbench/analyze"
	"github.com/vbench/vbench/analyze/render"
	"github.com/vbench/vbench/backends/sim"
	"github.com/vbench/vbench/internal/recorder"
	"github.com/vbench/vbench/replay"
	"github.com/vbench/vbench/synth"
	"github.com/vbench/vbench/trace"
)

// speed is how much faster than real time the simulated engines run. The
// load at the high rate is ≈ hiRate × 330 × speed chunks/s through the
// proxy: low enough for two noisy CI cores under -race.
const speed = 5

// hiRate is the high rate level in requests/s of the simulated engine:
// well past contiguous/max's knee (≈0.6) and well before paged's (≈2).
const hiRate = 1.6

// startSim serves a simulator on a loopback port.
// synthesize builds the whole trace sc describes, in memory.
func synthesize(t *testing.T, sc synth.Config) (trace.Header, []trace.Request) {
	t.Helper()
	syn, err := synth.New(context.Background(), sc)
	if err != nil {
		t.Fatal(err)
	}
	var reqs []trace.Request
	for {
		var r trace.Request
		if !syn.Next(&r) {
			break
		}
		reqs = append(reqs, r.Clone())
	}
	return syn.Header(), reqs
}

func startSim(t *testing.T, cfg sim.Config) string {
	t.Helper()
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	t.Cleanup(func() { s.Close(); hs.Close() })
	return "http://" + ln.Addr().String()
}

// TestPagedSustainsMoreThanContiguous runs synth → replay (embedded
// recording proxy) → vbsim ×2 → analyze and asserts the vLLM paper's
// ordering: with the same KV budget, the paged engine sustains a higher
// request rate than contiguous max reservation and batches more requests
// at the same rate.
func TestPagedSustainsMoreThanContiguous(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: ~30 s")
	}
	ctx := context.Background()

	// 1. A ShareGPT-like trace from the embedded profile.
	sc := synth.DefaultConfig()
	sc.Dataset = "sharegpt"
	sc.Requests = 0
	sc.Span = 10 * time.Minute
	sc.Seed = 1
	hdr, reqs := synthesize(t, sc)
	if len(reqs) < 300 {
		t.Fatalf("synth made %d requests for 10 minutes at 1 req/s", len(reqs))
	}

	// 2. Two simulated OPT-13B/A100 engines with the same KV budget. At
	// 0.4 req/s (simulated) both keep up; at hiRate the paged engine does
	// (knee ≈ 2) and max reservation (7 sequences, knee ≈ 0.6) does not.
	variants := []struct {
		name string
		cfg  sim.Config
	}{
		{"sim-paged", sim.Config{Model: "opt", Policy: sim.PolicyPaged, Speed: speed, Seed: 1}},
		{"sim-contiguous", sim.Config{Model: "opt", Policy: sim.PolicyContiguous, Reservation: sim.ReserveMax, Speed: speed, Seed: 1}},
	}
	dir := t.TempDir()
	var captures []string
	var wg sync.WaitGroup
	errs := make([]error, len(variants))
	for i, v := range variants {
		url := startSim(t, v.cfg)
		capDir := filepath.Join(dir, v.name)
		captures = append(captures, capDir)
		wg.Add(1)
		go func() { // both variants side by side, as make demo does
			defer wg.Done()
			res, err := recordedReplay(ctx, recorder.Config{
				Capture:        capDir,
				Upstream:       url,
				Labels:         map[string]string{"variant": v.name},
				ScrapeInterval: 200 * time.Millisecond,
			}, replay.Config{
				Rates:        []float64{0.4 * speed, hiRate * speed},
				Duration:     8 * time.Second,
				Drain:        5 * time.Second,
				ExactOutput:  true,
				Labels:       map[string]string{"variant": v.name},
				Run:          "e2e",
				Trial:        v.name,
				LagThreshold: time.Second,
			}, hdr, reqs)
			if err == nil && len(res.Levels) != 2 {
				err = fmt.Errorf("%d levels; want 2", len(res.Levels))
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replay %s: %v", variants[i].name, err)
		}
	}

	// 3. Analysis, with the saturation threshold at 0.06 s/token of the
	// simulated engine (≈2× its unloaded normalized latency).
	out := filepath.Join(dir, "out")
	acfg := analyze.Config{Captures: captures, By: []string{"variant", "rate"}, Out: out, Saturation: 60 * time.Millisecond / speed}
	res, err := analyze.Analyze(ctx, acfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := render.Write(ctx, res, acfg); err != nil {
		t.Fatal(err)
	}
	groups := map[string]*analyze.Group{}
	for _, g := range res.Groups {
		groups[g.Variant+"@"+g.Level] = g
		t.Logf("%s rate %s: %d/%d completed, norm latency %.4f s/token, batched %.2f, decoding (client) %.2f, in flight %.1f",
			g.Variant, g.Level, g.Completed, g.Count, g.NormLatency.Mean, g.Running, g.DecodingMean, g.InFlightMean)
	}
	// The client-side batch estimate (requests between their first and
	// last token) against the server's own running count: they differ by
	// the prefill step (running counts a request from admission, the
	// client from its first token), by the end of the stream reaching the
	// proxy after the server dropped the request, and by the 200-ms
	// (scaled) sampling of the gauge.
	for _, g := range res.Groups {
		tol := math.Max(1, 0.15*g.Running)
		if math.IsNaN(g.Running) || math.Abs(g.DecodingMean-g.Running) > tol {
			t.Errorf("%s rate %s: client-side decoding %.2f vs server running %.2f; want within %.2f", g.Variant, g.Level, g.DecodingMean, g.Running, tol)
		}
	}
	sat := map[string]analyze.Saturation{}
	for _, s := range res.Saturation {
		sat[s.Variant] = s
	}
	for _, line := range render.SaturationLines(res) {
		t.Log(line)
	}
	p, c := sat["sim-paged"], sat["sim-contiguous"]
	if !(p.Rate > c.Rate) && !(math.IsNaN(c.Rate) && !math.IsNaN(p.Rate)) {
		t.Fatalf("paged sustains %v req/s, contiguous %v; want paged strictly higher", p.Rate, c.Rate)
	}
	if !p.Never {
		t.Errorf("paged saturated within the ladder (%+v); its knee should be beyond %v req/s", p, hiRate*speed)
	}
	hi := fmt.Sprint(hiRate * speed)
	gp, gc := groups["sim-paged@"+hi], groups["sim-contiguous@"+hi]
	if gp == nil || gc == nil {
		t.Fatalf("no groups for rate %s: %v", hi, keys(groups))
	}
	if !(gp.Running > gc.Running+2) {
		t.Errorf("at %s req/s paged batches %.1f requests, contiguous %.1f; want clearly more", hi, gp.Running, gc.Running)
	}
	if gc.Running > 7.01 {
		t.Errorf("contiguous/max batched %.2f > 7 = 15696 KV tokens / 2048 per reservation", gc.Running)
	}
	if !(gc.NormLatency.Mean > 2*gp.NormLatency.Mean) {
		t.Errorf("at %s req/s normalized latency contiguous %.4f vs paged %.4f; want contiguous far worse", hi, gc.NormLatency.Mean, gp.NormLatency.Mean)
	}
}

func keys(m map[string]*analyze.Group) string {
	var k []string
	for key := range m {
		k = append(k, key)
	}
	return strings.Join(k, ", ")
}

// recordedReplay replays through an in-process recording proxy into
// rc.Capture (as vbbench does) and closes the capture.
func recordedReplay(ctx context.Context, rc recorder.Config, cfg replay.Config, hdr trace.Header, reqs []trace.Request) (*replay.Result, error) {
	rec, err := recorder.Start(rc)
	if err != nil {
		return nil, err
	}
	cfg.Target = rec.URL()
	res, err := replay.Run(ctx, cfg, hdr, reqs)
	if _, serr := rec.Stop(); serr != nil {
		err = errors.Join(err, serr)
	}
	return res, err
}
