package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/vbench/vbench/analyze"
	"github.com/vbench/vbench/metric"
	"github.com/vbench/vbench/trace"
)

func TestLadder(t *testing.T) {
	tests := []struct {
		lo, hi    float64
		n         int
		geometric bool
		want      []float64
	}{
		{2, 15, 6, false, []float64{2, 4.6, 7.2, 9.8, 12, 15}},
		{0.2, 1.5, 6, false, []float64{0.2, 0.46, 0.72, 0.98, 1.2, 1.5}},
		{1, 100, 3, true, []float64{1, 10, 100}},
		{1234, 5678, 2, false, []float64{1200, 5700}},
		{1, 1.04, 4, false, []float64{1}}, // rounding repeats are dropped
		{0, 5, 3, false, nil},
		{5, 1, 3, false, nil},
	}
	for _, tt := range tests {
		if got := Ladder(tt.lo, tt.hi, tt.n, tt.geometric); !slices.Equal(got, tt.want) {
			t.Errorf("Ladder(%v, %v, %d, %v) = %v; want %v", tt.lo, tt.hi, tt.n, tt.geometric, got, tt.want)
		}
	}
}

// TestProbeMeasure: a request counts by the fraction of its lifetime inside
// the window, its tokens by the fraction of its decode time; a cut one not
// at all; the latencies are the group's.
func TestProbeMeasure(t *testing.T) {
	const s = int64(time.Second)
	ok := func(start int64, first, end time.Duration, tokens int32) metric.Request {
		return metric.Request{Start: start, FirstContent: first, End: end, OutputTokens: tokens, Outcome: metric.OK, Streamed: true, ContentChunks: 1}
	}
	reqs := []metric.Request{
		ok(0, 100*time.Millisecond, time.Second, 11),                                                      // inside: 1 request, 11 tokens
		ok(1*s, time.Second, 2*time.Second, 10),                                                           // ends at the cut: all inside
		ok(2*s, time.Second, 2*time.Second, 10),                                                           // half its life inside; its decode starts at the cut: 0 tokens
		{Start: 2 * s, End: time.Second, OutputTokens: 5, Outcome: metric.Cut, ErrorKind: metric.KindCut}, // not counted
		{Start: 0, End: time.Second, Warmup: true, Outcome: metric.OK, OutputTokens: 99},                  // warm-up: not counted
	}
	sum := metric.Summarize(reqs[:4])
	g := &analyze.Group{Count: sum.Count, Completed: sum.Completed, Cut: sum.Cut, TTFT: sum.TTFT, TPOT: sum.TPOT, E2E: sum.E2E, NormLatencyWithCut: sum.NormLatencyWithCut}
	var st ProbeStep
	st.measure(reqs, g, 3*time.Second)
	if want := (1 + 1 + 0.5) / 3.0; st.ReqPerS != want {
		t.Errorf("req/s %v; want %v", st.ReqPerS, want)
	}
	if want := (11.0 + 10) / 3; st.OutputTokPerS != want {
		t.Errorf("tok/s %v; want %v", st.OutputTokPerS, want)
	}
	if want := (0.9/10 + 1.0/9 + 1.0/9) / 3; st.TPOT < want-1e-12 || st.TPOT > want+1e-12 {
		t.Errorf("TPOT %v; want %v", st.TPOT, want)
	}
	if st.Sent != 4 || st.OK != 3 || st.Failed != 1 || st.tokens != 31 {
		t.Errorf("sent %d ok %d failed %d tokens %d; want 4 3 1 31", st.Sent, st.OK, st.Failed, st.tokens)
	}
}

// probeStudy is two simulated variants whose capacities differ fourfold or
// more: contiguous KV reserving max_model_len (15.7 K / 4096 = 3 requests
// at once) and paged KV capped at 16 sequences; ten times real time.
func probeStudy(t *testing.T, dir string) *Study {
	t.Helper()
	tracePath := filepath.Join(dir, "trace.bin")
	writeTrace(t, tracePath, 2000)
	s, err := ParseStudy(`name = "probe-ci"
results_dir = "` + filepath.Join(dir, "results") + `"
reports_dir = "` + filepath.Join(dir, "reports") + `"
[trace]
path = "` + tracePath + `"
[run]
duration = "1s"
drain = "5s"
startup_timeout = "20s"
stop_grace = "3s"
chart = false
[[models]]
name = "sim"
model = "sim"
max_model_len = 4096
variants = ["paged", "contiguous"]
[variants.paged]
preset = "sim-paged"
sim_speed = 10
max_num_seqs = 16
[variants.contiguous]
preset = "sim-contiguous"
sim_speed = 10
`)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestProbeSim probes two simulated variants of different capacity end to
// end (real vbsim processes, the embedded proxy, Badger captures): each
// gets a saturation and a knee, the paged one the higher, and every
// suggested ladder has rates below and above each knee it covers. The
// study has no rates at all: probing is how one gets them.
func TestProbeSim(t *testing.T) {
	if testing.Short() {
		t.Skip("probes two simulated servers (≈15 s)")
	}
	bin := buildSim(t)
	dir := t.TempDir()
	s := probeStudy(t, dir)
	if p, err := MakePlan(context.Background(), s); err != nil || !strings.Contains(errString(p.Err()), "no rates") {
		t.Errorf("plan of a study without rates: %v %v; want a 'no rates' error", err, p.Err())
	}
	var progress bytes.Buffer
	out := filepath.Join(dir, "probe")
	res, err := Probe(context.Background(), s, ProbeOptions{Level: 500 * time.Millisecond, MaxConcurrency: 64, Out: out,
		SearchDirs: []string{bin}, Progress: &syncBuf{b: &progress}})
	if err != nil {
		t.Fatalf("Probe: %v\n%s", err, progress.String())
	}
	if len(res.Variants) != 2 {
		t.Fatalf("%d variants probed; want 2", len(res.Variants))
	}
	sat := map[string]float64{}
	for _, vp := range res.Variants {
		t.Logf("%s: saturation %.3g req/s (%.4g tok/s) knee c%d plateau %v (%s); ladder %v", vp.Variant, vp.Saturation,
			vp.SaturationTokPerS, vp.KneeConcurrency, vp.Plateau, vp.StopCause, vp.Ladder)
		if vp.Error != "" || vp.Saturation <= 0 || vp.KneeConcurrency < 1 || len(vp.Steps) < 3 || vp.SingleStream.OK == 0 || vp.StartupSeconds <= 0 {
			t.Errorf("%s: %+v", vp.Variant, vp)
			continue
		}
		if vp.Steps[0].Concurrency != 1 || vp.Steps[1].Concurrency != 2 {
			t.Errorf("%s: steps start %d, %d; want 1, 2", vp.Variant, vp.Steps[0].Concurrency, vp.Steps[1].Concurrency)
		}
		sat[vp.Variant] = vp.Saturation
		for name, l := range map[string][]float64{"own": vp.Ladder, "variant": res.VariantLadders[vp.Variant], "combined": res.Ladder} {
			if len(l) < 2 || l[0] >= vp.Saturation || l[len(l)-1] <= vp.Saturation {
				t.Errorf("%s: %s ladder %v does not bracket the saturation %.3g", vp.Variant, name, l, vp.Saturation)
			}
			if checkRates("ladder", l) != nil {
				t.Errorf("%s: %s ladder %v is not valid study rates", vp.Variant, name, l)
			}
		}
		for _, f := range []string{"config.json", "backend.log", "capture/c1", "replay-c1.json"} {
			if _, err := os.Stat(filepath.Join(vp.Dir, f)); err != nil {
				t.Errorf("%s: %v", vp.Variant, err)
			}
		}
	}
	if sat["paged"] <= sat["contiguous"] {
		t.Errorf("saturation paged %.3g <= contiguous %.3g; paged KV should carry more", sat["paged"], sat["contiguous"])
	}
	// The files, and the TOML to paste parses as a study fragment.
	var onDisk ProbeResult
	b, err := os.ReadFile(filepath.Join(out, "probe.json"))
	if err != nil || json.Unmarshal(b, &onDisk) != nil || len(onDisk.Variants) != 2 || !slices.Equal(onDisk.Ladder, res.Ladder) {
		t.Errorf("probe.json: %v\n%s", err, b)
	}
	md, _ := os.ReadFile(filepath.Join(out, "probe.md"))
	if !strings.Contains(string(md), "| concurrency |") || !strings.Contains(string(md), "rates = [") || !strings.Contains(string(md), "Server start-up (launch to healthy): ") {
		t.Errorf("probe.md:\n%s", md)
	}
	var snip map[string]any
	if _, err := toml.Decode(res.Snippet, &snip); err != nil || !strings.Contains(res.Snippet, "[variants.paged]") {
		t.Errorf("snippet is not TOML (%v):\n%s", err, res.Snippet)
	}
	// The captures analyse like a trial's: one group per step, tagged.
	ar, err := analyze.Analyze(context.Background(), analyze.Config{Captures: []string{filepath.Join(res.Variants[0].Dir, "capture", "c2")}})
	if err != nil || len(ar.Groups) == 0 || ar.Groups[0].Level != "c2" || ar.Groups[0].Completed == 0 {
		t.Errorf("analysis of a probe capture: %v %+v", err, ar)
	}
}

// TestPerVariantRates: a variant's own rates, then a model's, replace
// run.rates in the plan (trials, estimate) and in the run (levels and
// capture directories).
func TestPerVariantRates(t *testing.T) {
	dir := t.TempDir()
	tracePath := filepath.Join(dir, "trace.bin")
	writeTrace(t, tracePath, 400)
	text := `name = "rates-ci"
results_dir = "` + filepath.Join(dir, "results") + `"
reports_dir = "` + filepath.Join(dir, "reports") + `"
[trace]
path = "` + tracePath + `"
[run]
rates = [1, 2, 3]
duration = "1s"
drain = "3s"
startup_timeout = "20s"
stop_grace = "3s"
chart = false
[[models]]
name = "sim"
model = "sim"
max_model_len = 2048
rates = [5, 10]
variants = ["sim-paged", "slow"]
[[models]]
name = "other"
model = "sim"
variants = ["sim-paged"]
[variants.slow]
preset = "sim-contiguous"
sim_speed = 20
rates = [4]
`
	s, err := ParseStudy(text)
	if err != nil {
		t.Fatal(err)
	}
	p, err := MakePlan(context.Background(), s)
	if err != nil || p.Err() != nil {
		t.Fatalf("plan: %v %v", err, p.Err())
	}
	want := map[string][]float64{"sim/sim-paged/rep1": {5, 10}, "sim/slow/rep1": {4}, "other/sim-paged/rep1": {1, 2, 3}}
	for _, tr := range p.Trials {
		if !slices.Equal(tr.Rates, want[tr.Key()]) {
			t.Errorf("trial %s: rates %v; want %v", tr.Key(), tr.Rates, want[tr.Key()])
		}
		if got, w := tr.Estimate, trialEstimate(tr.Variant.Spec, s.Run, want[tr.Key()], typicalDrainFor(tr.Variant.Spec), 0); got != w {
			t.Errorf("trial %s: estimate %v; want %v", tr.Key(), got, w)
		}
	}
	var plan strings.Builder
	p.Print(&plan)
	if !strings.Contains(plan.String(), "rates [4]") || !strings.Contains(plan.String(), "rates [5, 10]") {
		t.Errorf("plan does not show per-trial rates:\n%s", plan.String())
	}

	// Bad rates are found wherever they are, all at once.
	bad := strings.Replace(strings.Replace(text, "rates = [4]", "rates = [4, 2]", 1), "rates = [5, 10]", "rates = [-1]", 1)
	if _, err := ParseStudy(bad); err == nil || !strings.Contains(err.Error(), `variant "slow": rates must rise`) ||
		!strings.Contains(err.Error(), `model "sim": rates[0] = -1`) {
		t.Errorf("bad per-variant/model rates: %v", err)
	}

	if testing.Short() {
		return
	}
	// Run the "sim" model only: its two trials have their own levels.
	bin := buildSim(t)
	s.Models = s.Models[:1]
	p, _ = MakePlan(context.Background(), s)
	res, err := Run(context.Background(), p, RunOptions{SearchDirs: []string{bin}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range res.Trials {
		var got []float64
		for _, l := range tr.Levels {
			got = append(got, l.Rate)
			if _, err := os.Stat(filepath.Join(tr.Dir, "capture", "rate-"+l.Label)); err != nil {
				t.Errorf("%s: %v", tr.Key, err)
			}
		}
		if !slices.Equal(got, want[tr.Key]) || tr.Status != StatusOK {
			t.Errorf("%s: %s, levels %v; want ok, %v", tr.Key, tr.Status, got, want[tr.Key])
		}
		var cfg TrialConfig
		b, _ := os.ReadFile(filepath.Join(tr.Dir, "config.json"))
		if json.Unmarshal(b, &cfg) != nil || !slices.Equal(cfg.Run.Rates, want[tr.Key]) {
			t.Errorf("%s: config.json run.rates %v; want %v", tr.Key, cfg.Run.Rates, want[tr.Key])
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestSuggest: ladders from saturations alone (no server): each variant's
// spans 20–150% of its knee, the combined one covers both knees, the TOML
// gives a preset for a variant the study does not define, and probe.md
// marks a step whose trace ran out.
func TestSuggest(t *testing.T) {
	s, err := ParseStudy(minimalStudy)
	if err != nil {
		t.Fatal(err)
	}
	r := &ProbeResult{Study: "t", MeanOutput: 100, Options: ProbeOptions{Level: time.Second}, Variants: []VariantProbe{
		{Model: "m", Variant: "vllm-page", Saturation: 40, SaturationTokPerS: 4000, KneeConcurrency: 32, Plateau: true,
			Steps: []ProbeStep{{Concurrency: 32, OK: 9, Exhausted: true}}},
		{Model: "m", Variant: "mine", Saturation: 10, SaturationTokPerS: 1000, KneeConcurrency: 4, Plateau: true},
	}}
	r.suggest(6)
	r.Snippet = snippet(s, r)
	if want := []float64{8, 18, 29, 39, 50, 60}; !slices.Equal(r.Variants[0].Ladder, want) {
		t.Errorf("vllm-page ladder %v; want %v", r.Variants[0].Ladder, want)
	}
	if want := []float64{2, 3.3, 5.3, 8.6, 14, 23, 37, 60}; !slices.Equal(r.Ladder, want) {
		t.Errorf("combined ladder %v; want %v (geometric, 6 + 2 points for knees 4× apart)", r.Ladder, want)
	}
	for _, want := range []string{"[run]\nrates = [2, 3.3", "[variants.mine]  # add to the existing table\nrates = [2, 4.6, 7.2, 9.8, 12, 15]\nsaturation = 10  #",
		"[variants.vllm-page]\npreset = \"vllm-page\"\nrates = [8, 18", "saturation = 40  # req/s, this probe's"} {
		if !strings.Contains(r.Snippet, want) {
			t.Errorf("snippet lacks %q:\n%s", want, r.Snippet)
		}
	}
	var snip map[string]any
	if _, err := toml.Decode(r.Snippet, &snip); err != nil {
		t.Errorf("snippet is not TOML: %v\n%s", err, r.Snippet)
	}
	// The table of a variant the study lacks pastes as it is, saturation
	// included: a key the study file knows.
	if i := strings.Index(r.Snippet, "[variants.vllm-page]"); i < 0 {
		t.Errorf("snippet lacks the vllm-page table")
	} else if _, err := ParseStudy(minimalStudy + "\n" + r.Snippet[i:]); err != nil {
		t.Errorf("the vllm-page table does not parse in a study: %v", err)
	}
	if md := r.Markdown(); !strings.Contains(md, "| 9 † |") || !strings.Contains(md, "† the trace ran out") || !strings.Contains(md, "Saturation 40 req/s") {
		t.Errorf("probe.md:\n%s", md)
	}
}

// TestProbeTraceShort is the H100 case: a 3,569-request trace at 1 req/s,
// warm-up + run.duration = 35 s, and the ladder [25 … 190]. The probe
// names the rates plan would refuse (by plan's own test), the trace that
// fits them with margin (from trace.generate), the run.duration that fits
// the present trace, and still gives the ladder.
func TestProbeTraceShort(t *testing.T) {
	s, err := ParseStudy(strings.Replace(minimalStudy, `path = "trace.bin"`,
		`path = "traces/alpaca.bin"
generate = ["vbsynth", "--dataset", "alpaca", "--span=1h", "--seed", "7", "--quiet", "-o", "{path}"]`, 1))
	if err != nil {
		t.Fatal(err)
	}
	s.Run.Duration, s.Run.Warmup = Duration(30*time.Second), Duration(5*time.Second)
	h := trace.Header{Generator: "vbsynth", Dataset: "alpaca", MeanRate: 1, Count: 3569, Span: 3568 * time.Second}
	r := &ProbeResult{Study: "t", MeanOutput: 100, Options: ProbeOptions{Level: 8 * time.Second},
		Ladder: []float64{25, 57, 90, 120, 150, 190}, VariantLadders: map[string][]float64{"vllm-page": {25, 190}},
		Variants: []VariantProbe{{Model: "m", Variant: "vllm-page", Saturation: 127, SaturationTokPerS: 12700, Plateau: true,
			Ladder: []float64{25, 57, 90, 120, 150, 190}}}}
	r.Trace = newProbeTrace(s, h, r.Options.Level)
	if r.Trace.MaxRate < 101.9 || r.Trace.MaxRate > 102 || r.Trace.StepMaxReqPerS != 3569.0/8 {
		t.Errorf("max rate %v, step max %v; want 3568/35 ≈ 101.94 and 446", r.Trace.MaxRate, r.Trace.StepMaxReqPerS)
	}
	r.Trace.check(s, h, r.allRates())
	tr := r.Trace
	if !slices.Equal(tr.ShortRates, []float64{120, 150, 190}) {
		t.Errorf("short rates %v; want [120 150 190]", tr.ShortRates)
	}
	// Plan agrees rate by rate.
	if errs := checkTrace(h, s.Run, r.Ladder); len(errs) != 3 || !strings.Contains(errs[2], "at 190 req/s") {
		t.Errorf("plan's check: %q", errs)
	}
	// The suggested trace passes plan at every rate; the least count plan
	// names is what the probe computed.
	if !strings.Contains(checkTrace(h, s.Run, []float64{190})[0], fmt.Sprintf("≥ %d requests", tr.LeastRequests)) {
		t.Errorf("least requests %d differ from plan's", tr.LeastRequests)
	}
	longer := h
	longer.Count, longer.Span = tr.WantRequests, time.Duration(float64(h.Span)*float64(tr.WantRequests)/float64(h.Count))
	if errs := checkTrace(longer, s.Run, r.Ladder); len(errs) > 0 || tr.WantRequests != 7000 || tr.WantSpan != 117*time.Minute {
		t.Errorf("want %d requests (--span %v): plan says %q; want 7000 (6652 + 5%%, rounded up), 117m", tr.WantRequests, tr.WantSpan, errs)
	}
	s2 := *s
	s2.Run.Duration = Duration(tr.MaxDuration)
	if errs := checkTrace(h, s2.Run, r.Ladder); len(errs) > 0 || tr.MaxDuration != 13*time.Second {
		t.Errorf("run.duration %v: plan says %q; want 13s (18.8 s at 190 req/s − 5 s warm-up)", tr.MaxDuration, errs)
	}
	wantCmd := "vbsynth --dataset alpaca --requests 7000 --seed 7 --quiet -o traces/alpaca.bin"
	for _, want := range []string{"rates [120, 150, 190] req/s", "up to 102 req/s", "≥ 7000 requests (vbsynth --span 117m)", "`" + wantCmd + "`",
		"trace.generate", `run.duration to "13s"`} {
		if !strings.Contains(tr.Fix, want) {
			t.Errorf("fix lacks %q:\n%s", want, tr.Fix)
		}
	}
	r.Snippet = snippet(s, r)
	var snip map[string]any
	if _, err := toml.Decode(r.Snippet, &snip); err != nil || !strings.Contains(r.Snippet, "rates = [25, 57, 90, 120, 150, 190]") ||
		!strings.Contains(r.Snippet, "#   "+wantCmd) {
		t.Errorf("snippet (%v):\n%s", err, r.Snippet)
	}
	r.Warnings = []string{tr.Fix}
	if md := r.Markdown(); !strings.Contains(md, "**Trace too short:** the trace is too short") || strings.Contains(md, "## Warnings") ||
		!strings.Contains(md, "All variants: [25, 57, 90, 120, 150, 190] req/s") {
		t.Errorf("probe.md:\n%s", md)
	}

	// Every rate fits: nothing to fix.
	r.Trace.check(s, h, []float64{25, 57, 90})
	if len(r.Trace.ShortRates) > 0 || r.Trace.Fix != "" {
		t.Errorf("fitting ladder: %+v", r.Trace)
	}
}

func TestSynthCommand(t *testing.T) {
	s, _ := ParseStudy(minimalStudy)
	tests := []struct {
		gen  []string
		h    trace.Header
		want string
	}{
		{[]string{"vbsynth", "--dataset", "sharegpt", "--span", "10m", "--requests", "5", "-o", "{path}"}, trace.Header{},
			"vbsynth --dataset sharegpt --requests 40 -o trace.bin"},
		{[]string{"bin/vbsynth", "--mix", "my mix.json", "-o", "{path}"}, trace.Header{},
			"bin/vbsynth --requests 40 --mix 'my mix.json' -o trace.bin"},
		{nil, trace.Header{Generator: "vbsynth v1", Dataset: "sharegpt", Seed: 3}, "vbsynth --dataset sharegpt --seed 3 --requests 40 -o trace.bin"},
		{nil, trace.Header{Generator: "vbsynth v1", Dataset: "sharegpt:0.7,alpaca:0.3"}, "vbsynth ... --requests 40 -o trace.bin"},
		{nil, trace.Header{Generator: "vbsynth import"}, "vbsynth ... --requests 40 -o trace.bin"},
	}
	for _, tt := range tests {
		s.Trace.Generate = tt.gen
		if got := synthCommand(s, tt.h, 40); got != tt.want {
			t.Errorf("synthCommand(%q, %+v) = %q; want %q", tt.gen, tt.h, got, tt.want)
		}
	}
}

// TestProbeTraceWarnings: before the first step the probe warns about
// steps the trace cannot feed, and before each step predicts from the one
// before whether it will run out.
func TestProbeTraceWarnings(t *testing.T) {
	pt := ProbeTrace{Path: "t.bin", Requests: 100, Need: 35 * time.Second, MaxRate: 2.8, StepMaxReqPerS: 12.5}
	info, warns := pt.preflight(8*time.Second, 256)
	if !strings.Contains(info, "100 requests") || !strings.Contains(info, "up to 2.8 req/s") || !strings.Contains(info, "above 12.5 completed req/s") {
		t.Errorf("info: %s", info)
	}
	if len(warns) != 1 || !strings.Contains(warns[0], "concurrency 64, 128, 256") || !strings.Contains(warns[0], "--max-concurrency 32") ||
		!strings.Contains(warns[0], "≥ 512 requests") {
		t.Errorf("warnings %q", warns)
	}
	if _, warns := pt.preflight(8*time.Second, 50); len(warns) != 0 { // top step 32: 64 requests suffice
		t.Errorf("max-concurrency 50: warnings %q", warns)
	}
	tests := []struct {
		prev ProbeStep
		n    int
		want string
	}{
		{ProbeStep{Concurrency: 4, ReqPerS: 10}, 8, ""}, // 80 + 8 ≤ 100
		{ProbeStep{Concurrency: 8, ReqPerS: 12}, 16, "trace's 100 requests: concurrency 8 already completed 12 req/s, so a 8s step draws at least that × 8s + 16 in flight ≈ 112"}, // 96 + 16 > 100
		{ProbeStep{Concurrency: 8, ReqPerS: 1, Exhausted: true}, 16, "as concurrency 8 did"},
	}
	for _, tt := range tests {
		msg, out := runsOut(tt.prev, tt.n, 8*time.Second, 100)
		if out != (tt.want != "") || !strings.Contains(msg, tt.want) {
			t.Errorf("runsOut(%+v, %d) = %q, %v; want %q", tt.prev, tt.n, msg, out, tt.want)
		}
	}
}

// TestProbeMinConcurrency: --min-concurrency starts the steps there
// (doubling from it, the warm-up on the first) and a first step above 1
// leaves the single-stream figures empty; a start above the top step is
// refused before any server starts.
func TestProbeMinConcurrency(t *testing.T) {
	dir := t.TempDir()
	s := probeStudy(t, dir)
	_, err := Probe(context.Background(), s, ProbeOptions{MinConcurrency: 32, MaxConcurrency: 16, Out: filepath.Join(dir, "bad")})
	if err == nil || !strings.Contains(err.Error(), "--min-concurrency 32: want 1 to --max-concurrency (16)") {
		t.Fatalf("min above max: %v; want a --min-concurrency error", err)
	}
	if testing.Short() {
		t.Skip("probes one simulated server (≈5 s)")
	}
	bin := buildSim(t)
	// With an engine warm-up in the study, the probe runs it first, at the
	// top step's concurrency when that is higher than the study's.
	s.Run.EngineWarmup = EngineWarmup{Duration: Duration(500 * time.Millisecond), Concurrency: 8}
	var progress bytes.Buffer
	res, err := Probe(context.Background(), s, ProbeOptions{Variants: []string{"paged"}, Level: 500 * time.Millisecond,
		MinConcurrency: 4, MaxConcurrency: 16, Out: filepath.Join(dir, "probe"), SearchDirs: []string{bin},
		Progress: &syncBuf{b: &progress}})
	if err != nil || len(res.Variants) != 1 {
		t.Fatalf("Probe: %v\n%s", err, progress.String())
	}
	vp := res.Variants[0]
	var got []int
	for _, st := range vp.Steps {
		got = append(got, st.Concurrency)
	}
	if len(got) == 0 || got[0] != 4 || (len(got) > 1 && got[1] != 8) || got[len(got)-1] > 16 {
		t.Errorf("steps %v; want doubling from 4 up to 16", got)
	}
	if vp.SingleStream.OK != 0 || res.Options.MinConcurrency != 4 {
		t.Errorf("single stream %+v, options %+v; want none and min 4 recorded", vp.SingleStream, res.Options)
	}
	ws := vp.EngineWarmup
	if ws == nil || ws.Concurrency != 16 || ws.Requests < 16 || ws.Completed == 0 || ws.Error != "" {
		t.Fatalf("engine warm-up %+v; want one at concurrency 16 with its requests", ws)
	}
	// Its requests are warm-up requests: measured only with the window all.
	ewCap := filepath.Join(vp.Dir, "capture", "engine-warmup")
	ar, err := analyze.Analyze(context.Background(), analyze.Config{Captures: []string{ewCap}, By: []string{"level"}, Window: analyze.WindowAll})
	levels := map[string]int{}
	for _, g := range ar.Groups {
		levels[g.Level] = g.Count
	}
	if err != nil || len(ar.Groups) != 2 || levels["c16"] != ws.Requests || levels["preflight"] == 0 {
		t.Errorf("capture/engine-warmup: %v; want the preflight and one group of %d requests at c16", err, ws.Requests)
	}
	if _, err := analyze.Analyze(context.Background(), analyze.Config{Captures: []string{ewCap}}); !errors.Is(err, analyze.ErrNoRecords) {
		t.Errorf("capture/engine-warmup in the default window: %v; want ErrNoRecords (all warm-up)", err)
	}
	if md := res.Markdown(); !strings.Contains(md, "Engine warm-up before the steps (not measured): closed loop at 16") {
		t.Errorf("probe.md lacks the engine warm-up:\n%s", md)
	}
}
