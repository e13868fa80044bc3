package bench

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vbench/vbench/replay"
	"github.com/vbench/vbench/trace"
)

// fakeTrial writes a finished trial's status.json and replay files as
// vbbench run leaves them: it starts at t0, its server takes fixed before
// the engine warm-up (ew long), then each level (warm-up wu, window win,
// drain drains[i]) follows, and the trial ends tail after the last. Its
// replays name the trace hash trace.
func fakeTrial(t *testing.T, dir, trace, model, variant, status string, t0 time.Time, fixed, ew, wu, win, tail time.Duration, rates []float64, drains []time.Duration) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name string, v any) {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	at := t0.Add(fixed)
	write("replay-engine-warmup.json", replay.Result{TraceHash: trace, Started: at, Ended: at.Add(ew)})
	at = at.Add(ew)
	st := TrialStatus{Study: "s", Key: model + "/" + variant + "/rep1", Model: model, Variant: variant, Rep: 1, Status: status,
		EngineWarmup: &EngineWarmupStatus{}, Started: t0}
	for i, r := range rates {
		label := formatRate(r)
		st.Levels = append(st.Levels, LevelStatus{Label: label, Rate: r})
		end := at.Add(wu + win + drains[i])
		write("replay-rate-"+label+".json", replay.Result{TraceHash: trace, Started: at, Ended: end, Levels: []replay.LevelResult{{Label: label, Rate: r, Window: win, Elapsed: win + drains[i]}}})
		at = end
	}
	st.Ended = at.Add(tail)
	write("status.json", st)
}

func formatRate(r float64) string {
	b, _ := json.Marshal(r)
	return string(b)
}

// TestLoadMeasured checks the evidence read from hand-built trials against
// hand-computed means, that unfinished trials and hidden folders are left
// out, and that a damaged record is an error naming its file.
func TestLoadMeasured(t *testing.T) {
	root := t.TempDir()
	t0 := time.Date(2026, 12, 3, 17, 0, 0, 0, time.UTC)
	s := time.Second
	// Two runs of m/v: fixed 100 s + 20 s tail = 120 s, then 140 s + 20 s = 160 s;
	// drains at 4 req/s 20 s and 30 s; at 8 only in the second (50 s); at 2
	// only in the first, none (a drain of 0 is a measurement too).
	fakeTrial(t, filepath.Join(root, "a", "results", "m", "v", "t1"), "aaaa", "m", "v", StatusOK, t0, 100*s, 30*s, 10*s, 60*s, 20*s, []float64{2, 4}, []time.Duration{0, 20 * s})
	fakeTrial(t, filepath.Join(root, "b", "results", "m", "v", "t2"), "aaaa", "m", "v", StatusEarlyStopped, t0, 140*s, 40*s, 10*s, 60*s, 20*s, []float64{4, 8}, []time.Duration{30 * s, 50 * s})
	// Left out: a failed trial, and one under a hidden folder.
	fakeTrial(t, filepath.Join(root, "a", "results", "m", "v", "t3"), "aaaa", "m", "v", StatusFailed, t0, 900*s, 30*s, 10*s, 60*s, 20*s, []float64{4}, []time.Duration{900 * s})
	fakeTrial(t, filepath.Join(root, ".old", "m", "v", "t4"), "aaaa", "m", "v", StatusOK, t0, 900*s, 30*s, 10*s, 60*s, 20*s, []float64{4}, []time.Duration{900 * s})

	m, err := LoadMeasured(root)
	if err != nil {
		t.Fatal(err)
	}
	if m.Trials != 2 {
		t.Fatalf("read %d trials (%v), want 2", m.Trials, m.Dirs)
	}
	c, ok := m.Cell("m", "v", "")
	if !ok {
		t.Fatal("no cell for m/v")
	}
	if d2, ok := c.Drains[2]; c.Fixed != 140*s || c.EngineWarmup != 35*s || c.Drains[4] != 25*s || c.Drains[8] != 50*s || !ok || d2 != 0 || len(c.Drains) != 3 {
		t.Errorf("cell = %+v, want fixed 2m20s, engine warm-up 35s, drains 2: 0s, 4: 25s, 8: 50s", c)
	}
	if _, ok := m.Cell("m", "other", ""); ok {
		t.Error("a cell for a variant never measured")
	}
	if _, ok := m.Cell("m", "v", "bbbb"); ok {
		t.Error("a cell for a trace never replayed")
	}
	if got := m.String(); !strings.Contains(got, "m/v") || !strings.Contains(got, "drain 2:0s 4:25s 8:50s") {
		t.Errorf("String() = %q", got)
	}

	// The estimate: fixed + engine warm-up + per level (warm-up + window +
	// drain), the measured drain where measured and the model elsewhere.
	run := RunConfig{Duration: Duration(60 * s), Warmup: Duration(10 * s), WarmupMode: replay.WarmupLevel,
		Drain: Duration(2 * time.Minute), EngineWarmup: EngineWarmup{Duration: Duration(15 * s), Concurrency: 8}}
	tr := Trial{Model: ModelConfig{Name: "m"}, Variant: Variant{Name: "v"}, Rates: []float64{4, 8, 12}}
	got, measured := m.estimate(tr, run)
	model := min(typicalDrainFor(tr.Variant.Spec), run.DrainBound())
	want := 140*s + 35*s + 3*70*s + 25*s + 50*s + model
	if !measured || got != want {
		t.Errorf("estimate = %v (measured %v), want %v (measured)", got, measured, want)
	}
	tr.Variant.Name = "other"
	if got, measured := m.estimate(tr, run); measured || got != trialEstimate(tr.Variant.Spec, run, tr.Rates, typicalDrainFor(tr.Variant.Spec), 0) {
		t.Errorf("an unmeasured variant: %v (measured %v), want the model's", got, measured)
	}
	var none *Measured
	if got, measured := none.estimate(tr, run); measured || got != trialEstimate(tr.Variant.Spec, run, tr.Rates, typicalDrainFor(tr.Variant.Spec), 0) {
		t.Errorf("nil Measured: %v (measured %v), want the model's", got, measured)
	}

	// Another workload's trial of the same model × variant stays apart:
	// with the study's trace known, only its own count; with it unknown,
	// neither (the plan notes why).
	fakeTrial(t, filepath.Join(root, "c", "m", "v", "t5"), "bbbb", "m", "v", StatusOK, t0, 10*s, 1*s, 10*s, 60*s, 1*s, []float64{4}, []time.Duration{1 * s})
	m, err = LoadMeasured(root)
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := m.Cell("m", "v", "aaaa"); !ok || c.Trials != 2 || c.Drains[4] != 25*s {
		t.Errorf("trace aaaa: %+v %v, want the two trials of before", c, ok)
	}
	if c, ok := m.Cell("m", "v", "bbbb"); !ok || c.Trials != 1 || c.Drains[4] != 1*s {
		t.Errorf("trace bbbb: %+v %v, want its one trial", c, ok)
	}
	if _, ok := m.Cell("m", "v", ""); ok {
		t.Error("no trace given and two measured: a cell all the same")
	}
	view, notes := m.forTrace("")
	if _, ok := view.Cell("m", "v", ""); ok || len(notes) != 1 || !strings.Contains(notes[0], "several traces") {
		t.Errorf("forTrace(\"\"): notes %q", notes)
	}
	view, notes = m.forTrace("bbbb")
	if c, ok := view.Cell("m", "v", ""); !ok || c.Trials != 1 || len(notes) != 0 {
		t.Errorf("forTrace(bbbb): %+v %v, notes %q", c, ok, notes)
	}
	view, notes = m.forTrace("cccc")
	if _, ok := view.Cell("m", "v", ""); ok || len(notes) != 1 || !strings.Contains(notes[0], "another trace") {
		t.Errorf("forTrace(cccc): notes %q", notes)
	}

	// A probe's start-up stands for a variant with no finished trial; a
	// variant with trials keeps their figures.
	probe := ProbeResult{TraceHash: "aaaa", Variants: []VariantProbe{
		{Model: "m", Variant: "p", StartupSeconds: 200, KneeConcurrency: 8,
			Steps: []ProbeStep{{Concurrency: 4, TPOT: 0.01}, {Concurrency: 8, TPOT: 0.02}, {Concurrency: 16, TPOT: 0.05}}},
		{Model: "m", Variant: "v", StartupSeconds: 999},
		{Model: "m", Variant: "failed"}, // never started: no start-up
	}}
	pb, err := json.Marshal(probe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "probe"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "probe", "probe.json"), pb, 0o644); err != nil {
		t.Fatal(err)
	}
	m, err = LoadMeasured(root)
	if err != nil {
		t.Fatal(err)
	}
	if m.Probes != 2 {
		t.Errorf("%d probed variants, want 2", m.Probes)
	}
	view, _ = m.forTrace("aaaa")
	tp := Trial{Model: ModelConfig{Name: "m"}, Variant: Variant{Name: "p"}, Rates: []float64{4, 8}}
	modelled := trialEstimate(tp.Variant.Spec, run, tp.Rates, typicalDrainFor(tp.Variant.Spec), 0)
	if got, measured := view.estimate(tp, run); !measured || got != modelled-startupEstimate(tp.Variant.Spec)+200*s {
		t.Errorf("probed only: %v (measured %v), want the model's %v with the start-up 200s in place of %v", got, measured, modelled, startupEstimate(tp.Variant.Spec))
	}
	if c, _ := view.Cell("m", "v", ""); c.Fixed != 140*s || c.ProbeStartup != 999*s {
		t.Errorf("m/v: %+v, want the trials' fixed 2m20s (the probe's start-up recorded beside)", c)
	}
	if _, ok := view.Cell("m", "failed", ""); ok {
		t.Error("a probe whose server never started gave a cell")
	}
	if c, _ := view.Cell("m", "p", ""); c.ProbeTPOT != 20*time.Millisecond {
		t.Errorf("m/p: probe TPOT %v, want the knee step's 20ms", c.ProbeTPOT)
	}
	if got := view.String(); !strings.Contains(got, "probe: start-up ≈3m20s, TPOT at the knee 20.0 ms") {
		t.Errorf("String() = %q", got)
	}
	// With the trace's 99th-percentile output known, a level's tail is
	// it × the probe's TPOT: 500 tokens × 20 ms = 10 s.
	view.outTokens = 500
	want = 200*s + tailEstimate(tp.Variant.Spec) + engineWarmupEstimate(run, 10*s) + 2*(10*s+60*s+10*s)
	if got, _ := view.estimate(tp, run); got != want {
		t.Errorf("probed with the trace's outputs: %v, want %v", got, want)
	}
	if got := view.String(); !strings.Contains(got, "(a level's tail ≈ 500 tokens × it = 10s)") {
		t.Errorf("String() = %q", got)
	}
	view.outTokens = 0

	// A finished trial whose replay record is missing is left out, with a
	// note; the others still count.
	lost := filepath.Join(root, "c", "m", "v", "t5")
	if err := os.Remove(filepath.Join(lost, "replay-rate-4.json")); err != nil {
		t.Fatal(err)
	}
	m, err = LoadMeasured(root)
	if err != nil {
		t.Fatal(err)
	}
	if m.Trials != 2 || len(m.Notes) != 1 || !strings.Contains(m.Notes[0], lost+" left out") {
		t.Errorf("a trial without its replay record: %d trials, notes %q; want 2 and one note naming it", m.Trials, m.Notes)
	}

	// A damaged replay record is an error that names it.
	bad := filepath.Join(root, "a", "results", "m", "v", "t1", "replay-rate-4.json")
	if err := os.WriteFile(bad, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadMeasured(root); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("damaged record: err = %v, want it to name %s", err, bad)
	}
	if _, err := LoadMeasured(filepath.Join(root, "missing")); err == nil {
		t.Error("a missing folder: no error")
	}
}

// TestPlanMeasured runs the simulator study's plan with the measurements of
// one of its variants: that trial's estimate is the measured one and is
// marked so, the other's is the model's, and the printed plan says which.
func TestPlanMeasured(t *testing.T) {
	dir := t.TempDir()
	s := simStudy(t, dir)
	plain, err := MakePlan(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "measured")
	sec := time.Second
	f, err := trace.Open(s.Trace.Path)
	if err != nil {
		t.Fatal(err)
	}
	h := f.Header()
	f.Close()
	fakeTrial(t, filepath.Join(root, "sim", "t1"), h.HashHex(), "sim/8b", "sim-paged", StatusOK, time.Now().UTC(), 300*sec, 0, 1*sec, 2*sec, 0, []float64{4, 16}, []time.Duration{40 * sec, 50 * sec})
	m, err := LoadMeasured(root)
	if err != nil {
		t.Fatal(err)
	}
	p, err := MakePlanMeasured(context.Background(), s, m)
	if err != nil {
		t.Fatal(err)
	}
	// The trace's 99th-percentile output, for a probed variant's tail.
	_, reqs, err := trace.ReadFile(s.Trace.Path)
	if err != nil {
		t.Fatal(err)
	}
	longer := 0
	for _, r := range reqs {
		if r.OutputTokens > p.measured.outTokens {
			longer++
		}
	}
	if p.measured.outTokens <= 0 || longer > len(reqs)/100 {
		t.Errorf("outTokens %d: %d of %d requests expect more; want at most 1%%", p.measured.outTokens, longer, len(reqs))
	}
	for i, tr := range p.Trials {
		switch tr.Variant.Name {
		case "sim-paged":
			// fixed 300 s (the fake had no engine warm-up replay, but its status said one ran: 0 s),
			// warm-up 1 s once, and the drains capped at the study's 5 s bound.
			want := 300*sec + 1*sec + 2*(2*sec+5*sec)
			if !tr.Measured || tr.Estimate != want {
				t.Errorf("sim-paged: estimate %v (measured %v), want %v (measured)", tr.Estimate, tr.Measured, want)
			}
		default:
			if tr.Measured || tr.Estimate != plain.Trials[i].Estimate {
				t.Errorf("%s: estimate %v (measured %v), want the plan's own %v", tr.Variant.Name, tr.Estimate, tr.Measured, plain.Trials[i].Estimate)
			}
		}
	}
	empty, err := LoadMeasured(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if pe, err := MakePlanMeasured(context.Background(), s, empty); err != nil || !slices.ContainsFunc(pe.Warnings, func(w string) bool { return strings.Contains(w, "no finished trial") }) {
		t.Errorf("an empty --measured folder: %v, warnings %q", err, pe.Warnings)
	}
	var b strings.Builder
	p.Print(&b)
	if !strings.Contains(b.String(), "(measured)") || !strings.Contains(b.String(), "measured (--measured: 1 finished trials, 0 probed variants") {
		t.Errorf("plan output:\n%s", b.String())
	}
}
