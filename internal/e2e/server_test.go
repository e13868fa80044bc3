package e2e

import (
	"context"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/vbench/vbench/analyze"
	"github.com/vbench/vbench/backends/sim"
	"github.com/vbench/vbench/internal/recorder"
	"github.com/vbench/vbench/replay"
	"github.com/vbench/vbench/synth"
)

// TestServerInternals records the simulator's own metrics through the
// embedded proxy (ScrapeMetrics "vbsim:*", as the sim presets do) and
// checks the analysis's server-internals figures against what the engines
// must show: contiguous max reservation fills a small share of the KV it
// reserves (the vLLM paper's Figure 2: 20–38%), paged nearly all of it;
// the mean batch per step agrees with the running gauge.
func TestServerInternals(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: ~10 s")
	}
	ctx := context.Background()
	sc := synth.DefaultConfig()
	sc.Requests = 200
	sc.Seed = 2
	hdr, reqs := synthesize(t, sc)
	variants := []struct {
		name string
		cfg  sim.Config
	}{
		{"sim-paged", sim.Config{Model: "opt", Policy: sim.PolicyPaged, Speed: speed, Seed: 1}},
		{"sim-contiguous", sim.Config{Model: "opt", Policy: sim.PolicyContiguous, Reservation: sim.ReserveMax, Speed: speed, Seed: 1}},
	}
	dir := t.TempDir()
	var captures []string
	for _, v := range variants {
		capDir := filepath.Join(dir, v.name)
		captures = append(captures, capDir)
		_, err := recordedReplay(ctx, recorder.Config{
			Capture:        capDir,
			Upstream:       startSim(t, v.cfg),
			Labels:         map[string]string{"variant": v.name},
			ScrapeInterval: 100 * time.Millisecond,
			ScrapeMetrics:  []string{"vbsim:*"},
		}, replay.Config{
			Rates:        []float64{hiRate * speed},
			Duration:     4 * time.Second,
			Drain:        3 * time.Second,
			ExactOutput:  true,
			Labels:       map[string]string{"variant": v.name},
			Run:          "e2e-server",
			LagThreshold: time.Second,
		}, hdr, reqs)
		if err != nil {
			t.Fatalf("replay %s: %v", v.name, err)
		}
	}
	res, err := analyze.Analyze(ctx, analyze.Config{Captures: captures, By: []string{"variant", "rate"}})
	if err != nil {
		t.Fatal(err)
	}
	util := map[string]float64{}
	for _, g := range res.Groups {
		t.Logf("%s: steps/s %.1f, step %.2f ms (simulated), batch/step %.2f (running %.2f), KV reserved %.0f filled %.0f (%.1f%%) of %.0f, %d extra series",
			g.Variant, g.StepsPerS, 1e3*g.StepTime, g.BatchPerStep, g.Running, g.KVReserved, g.KVFilled, 100*g.KVReservedUtil, g.KVCapacity, len(g.ServerMetrics))
		util[g.Variant] = g.KVReservedUtil
		if !(g.StepsPerS > 0 && g.StepTime > 0 && g.KVCapacity > 0 && g.KVReserved > 0 && g.KVFilled > 0) {
			t.Errorf("%s: server figures missing: %+v", g.Variant, g)
		}
		// The batch per step counts every step (prefill-only ones too); the
		// gauge is sampled every 100 ms (scaled): close, not equal.
		if tol := math.Max(1, 0.25*g.Running); math.IsNaN(g.BatchPerStep) || math.Abs(g.BatchPerStep-g.Running) > tol {
			t.Errorf("%s: batch per step %.2f vs running %.2f; want within %.2f", g.Variant, g.BatchPerStep, g.Running, tol)
		}
		if !math.IsNaN(g.KVLargestHole) {
			t.Errorf("%s: largest hole %v; vbsim does not export it", g.Variant, g.KVLargestHole)
		}
	}
	if c, p := util["sim-contiguous"], util["sim-paged"]; !(c > 0.05 && c < 0.6 && p > 0.85 && p <= 1) {
		t.Errorf("filled/reserved: contiguous %.3f, paged %.3f; want contiguous in (5%%, 60%%) and paged above 85%%", c, p)
	}
}
