package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const denseStudy = "../examples/h200-dense-sharegpt.toml"

// denseText is that study as of 2026-12-03, when the holds of
// docs/results/h200-2026-12-03/holds were made by hand from it: the tests
// of exact splits and messages use it, not the example, whose ladders
// move.
const denseText = `
name = "dense"
description = "Llama-3-8B (dummy) on one H200, ShareGPT: torch max/pow2/oracle vs vLLM paged, paged+FA3, all optimizations"
results_dir = "results"
reports_dir = "reports"
budget = "2h"
[gpu]
name = "H200"
memory_gib = 141
[trace]
path = "traces/sharegpt-dense.bin"
generate = ["vbsynth", "--dataset", "sharegpt", "--requests", "6000", "--max-total", "2048", "--seed", "1", "--quiet", "-o", "{path}"]
[run]
duration = "60s"
warmup = "10s"
warmup_mode = "level"
engine_warmup = { duration = "15s", concurrency = 64 }
max_drain = "2m"
repetitions = 1
startup_timeout = "10m"
stop_grace = "20s"
early_stop = { normalized_latency = "1s" }
[[models]]
name = "llama-3-8b-dummy"
model = "/root/vbench-bundle/models/llama3-8b"
served_model_name = "llama-3-8b-dummy"
max_model_len = 2048
dtype = "bfloat16"
load_format = "dummy"
kv_cache_tokens = 32768
max_num_seqs = 256
max_num_batched_tokens = 8192
variants = ["torch-max", "torch-pow2", "torch-oracle", "vllm-page", "vllm-page+flash", "vllm-all-opt"]
[variants.torch-max]
preset = "torch-baseline"
kv_policy = "max"
rates = [2.2, 3.5, 4.7, 6]
[variants.torch-pow2]
preset = "torch-baseline"
kv_policy = "pow2"
rates = [4.3, 6.7, 9.1, 12]
[variants.torch-oracle]
preset = "torch-baseline"
kv_policy = "oracle"
rates = [5.2, 8.1, 11, 14]
[variants.vllm-page]
preset = "vllm-page"
gpu_memory_utilization = 0.6
rates = [4.7, 7.4, 10, 13]
[variants."vllm-page+flash"]
preset = "vllm-page+flash"
gpu_memory_utilization = 0.6
rates = [7.9, 12, 17, 21]
[variants.vllm-all-opt]
preset = "vllm-all-opt"
gpu_memory_utilization = 0.6
rates = [13, 20, 28, 35]
`

// rateList is "5.2, 11".
func rateList(rates []float64) string { return strings.Trim(fmtRates(rates), "[]") }

// planFile and planText plan a study file or text, failing the test on
// any error.
func planFile(t *testing.T, path string) *Plan {
	t.Helper()
	s, err := LoadStudy(path)
	return planOf(t, s, err)
}

func planText(t *testing.T, text string) *Plan {
	t.Helper()
	s, err := ParseStudy(text)
	return planOf(t, s, err)
}

func planOf(t *testing.T, s *Study, err error) *Plan {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	p, err := MakePlan(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// holdLine is a hold's trials as variant[rates], "+anchor" on the anchor
// trial: "torch-max[2.2 3.5 4.7 6]".
func holdLine(hd Hold) []string {
	var out []string
	for _, t := range hd.Trials {
		s := t.Model.Name + "/" + t.Variant.Name + strings.ReplaceAll(strings.Trim(fmtRates(t.Rates), " "), ", ", " ")
		if t.Anchor {
			s += "+anchor"
		}
		out = append(out, s)
	}
	return out
}

// TestSplitHoldsDense: the dense ShareGPT study (≈46 min) in holds of 27
// min is the three holds made by hand in docs/results/h200-2026-12-03/holds:
// the three torch policies, then two vLLM presets and torch-oracle at two
// rates, then the last vLLM preset and the anchor. So it is for the study
// as it was then (its anchor rates 5.2 and 11) and for the example now.
func TestSplitHoldsDense(t *testing.T) {
	for _, tc := range []struct {
		name   string
		p      *Plan
		anchor []float64 // nil: the example's, whatever its ladders
	}{
		{denseStudy, planFile(t, denseStudy), nil},
		{"the study of 2026-12-03", planText(t, denseText), []float64{5.2, 11}},
	} {
		p := tc.p
		h, err := p.SplitHolds(27*time.Minute, "", nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		ladder := p.Trials[2].Rates // torch-oracle's
		if want := []float64{ladder[0], ladder[len(ladder)/2]}; !slices.Equal(h.AnchorRates, want) || tc.anchor != nil && !slices.Equal(h.AnchorRates, tc.anchor) {
			t.Errorf("%s: anchor rates %v; want the lowest and the middle of torch-oracle's ladder %v", tc.name, h.AnchorRates, ladder)
		}
		want := [][]string{
			{"torch-max", "torch-pow2", "torch-oracle"},
			{"vllm-page", "vllm-page+flash", "torch-oracle+anchor"},
			{"vllm-all-opt", "torch-oracle+anchor"},
		}
		if h.OneHold || len(h.Holds) != len(want) || h.PerRep != 3 || h.Anchor != "torch-oracle" {
			t.Fatalf("%s: one hold %v, %d holds (%d per repetition), anchor %s; want 3 holds, anchor torch-oracle",
				tc.name, h.OneHold, len(h.Holds), h.PerRep, h.Anchor)
		}
		seen := map[int]int{} // plan index → holds that run it whole
		for i, hd := range h.Holds {
			var got []string
			var sum time.Duration
			for _, tr := range hd.Trials {
				// One after another from the hold's start (no lanes).
				if tr.Start != sum || tr.GPUs != nil {
					t.Errorf("%s: hold %d: %s starts at %s on %v; want %s, no lanes", tc.name, i+1, tr.Key(), tr.Start, tr.GPUs, sum)
				}
				sum += tr.Estimate
				if tr.Anchor {
					got = append(got, tr.Variant.Name+"+anchor")
					if tr.Model.Name != "llama-3-8b-dummy" || !slices.Equal(tr.Rates, h.AnchorRates) {
						t.Errorf("%s: hold %d: anchor trial %s at %v", tc.name, i+1, tr.Key(), tr.Rates)
					}
					continue
				}
				got = append(got, tr.Variant.Name)
				seen[tr.Index]++
				if pt := p.Trials[tr.Index]; !slices.Equal(tr.Rates, pt.Rates) || tr.Estimate != pt.Estimate || tr.Key() != pt.Key() {
					t.Errorf("%s: hold %d: %s at %v ≈%s; the plan's trial %d: %s at %v ≈%s", tc.name, i+1, tr.Key(), tr.Rates, tr.Estimate, tr.Index+1, pt.Key(), pt.Rates, pt.Estimate)
				}
			}
			if !slices.Equal(got, want[i]) {
				t.Errorf("%s: hold %d = %q; want %q", tc.name, i+1, got, want[i])
			}
			if hd.Number != i+1 || hd.Rep != 1 {
				t.Errorf("%s: hold %d: number %d, rep %d", tc.name, i+1, hd.Number, hd.Rep)
			}
			if hd.Estimate > 27*time.Minute || hd.Estimate != sum {
				t.Errorf("%s: hold %d: estimate %s; want the sum of its trials' %s, at most 27m", tc.name, i+1, hd.Estimate, sum)
			}
		}
		for _, tr := range p.Trials {
			if seen[tr.Index] != 1 {
				t.Errorf("%s: trial %d (%s) runs whole in %d holds; want 1", tc.name, tr.Index+1, tr.Key(), seen[tr.Index])
			}
		}
		if tc.anchor == nil {
			continue
		}
		// The estimates: torch 45 s start + 15 s stop + 30 s engine warm-up
		// + 4 × (10 s warm-up + 60 s + 15 s drain) = 7m10s; the anchor at two
		// rates 4m20s; vLLM eager 100 s to start, 8m5s; all-opt 2 min, 8m25s.
		for i, want := range []time.Duration{21*time.Minute + 30*time.Second, 20*time.Minute + 30*time.Second, 12*time.Minute + 45*time.Second} {
			if h.Holds[i].Estimate != want {
				t.Errorf("%s: hold %d: ≈%s; want ≈%s", tc.name, i+1, h.Holds[i].Estimate, want)
			}
		}
		var out bytes.Buffer
		h.Print(&out)
		for _, s := range []string{"hold 2: ≈20m30s of 27m0s", "torch-oracle       rates [5.2, 11]              ≈4m20s  anchor\n",
			"rates [5.2, 8.1, 11, 14]     ≈7m10s  anchor, whole ladder", "3 holds per repetition × 1 repetition = 3 holds in all"} {
			if !strings.Contains(out.String(), s) {
				t.Errorf("Print lacks %q:\n%s", s, out.String())
			}
		}
	}
}

// TestSplitHoldsAnchorChoice: --anchor and --anchor-rates pick the anchor
// and its rates; the default rates are the ladder's lowest and its rate at
// index len/2; a different hold length gives a different split.
func TestSplitHoldsAnchorChoice(t *testing.T) {
	p := planText(t, denseText)
	tests := []struct {
		hold   time.Duration
		anchor string
		rates  []float64
		want   string   // anchor and its rates
		holds  []string // per hold: its variants
	}{
		{27 * time.Minute, "", []float64{14, 5.2, 14}, "torch-oracle [5.2 14]", nil},
		// vllm-page at 4.7 and 10 takes ≈5m15s: the torch policies and it
		// ≈26m45s, the three vLLM presets ≈24m35s.
		{27 * time.Minute, "vllm-page", nil, "vllm-page [4.7 10]", []string{
			"torch-max torch-pow2 torch-oracle vllm-page+anchor", "vllm-page vllm-page+flash vllm-all-opt"}},
		{27 * time.Minute, "torch-max", []float64{2.2}, "torch-max [2.2]", []string{
			"torch-max torch-pow2 torch-oracle", "vllm-page vllm-page+flash torch-max+anchor", "vllm-all-opt torch-max+anchor"}},
		// 40 min: two holds, the first as full as it gets.
		{40 * time.Minute, "", nil, "torch-oracle [5.2 11]", []string{
			"torch-max torch-pow2 torch-oracle vllm-page vllm-page+flash", "vllm-all-opt torch-oracle+anchor"}},
		{22 * time.Minute, "", nil, "torch-oracle [5.2 11]", []string{
			"torch-max torch-pow2 torch-oracle", "vllm-page vllm-page+flash torch-oracle+anchor", "vllm-all-opt torch-oracle+anchor"}},
		// 16 min: torch-max and torch-pow2 with the anchor take ≈18m40s,
		// so the fewest holds are five, torch-pow2 with torch-oracle whole.
		{16 * time.Minute, "", nil, "torch-oracle [5.2 11]", []string{
			"torch-max torch-oracle+anchor", "torch-pow2 torch-oracle", "vllm-page torch-oracle+anchor",
			"vllm-page+flash torch-oracle+anchor", "vllm-all-opt torch-oracle+anchor"}},
	}
	for _, tt := range tests {
		h, err := p.SplitHolds(tt.hold, tt.anchor, tt.rates)
		if err != nil {
			t.Errorf("SplitHolds(%s, %q, %v): %v", tt.hold, tt.anchor, tt.rates, err)
			continue
		}
		if got := h.Anchor + " " + strings.ReplaceAll(fmtRates(h.AnchorRates), ", ", " "); got != tt.want {
			t.Errorf("SplitHolds(%s, %q, %v): anchor %s; want %s", tt.hold, tt.anchor, tt.rates, got, tt.want)
		}
		if tt.holds == nil {
			continue
		}
		var got []string
		for _, hd := range h.Holds {
			var vs []string
			for _, tr := range hd.Trials {
				v := tr.Variant.Name
				if tr.Anchor {
					v += "+anchor"
				}
				vs = append(vs, v)
			}
			got = append(got, strings.Join(vs, " "))
			if hd.Estimate > tt.hold {
				t.Errorf("SplitHolds(%s, %q): hold %d ≈%s", tt.hold, tt.anchor, hd.Number, hd.Estimate)
			}
		}
		if !slices.Equal(got, tt.holds) {
			t.Errorf("SplitHolds(%s, %q, %v) = %q; want %q", tt.hold, tt.anchor, tt.rates, got, tt.holds)
		}
	}
}

// TestSplitHoldsErrors: what cannot be split says why and what to change.
func TestSplitHoldsErrors(t *testing.T) {
	p := planText(t, denseText)
	tests := []struct {
		hold   time.Duration
		anchor string
		rates  []float64
		want   []string
	}{
		{27 * time.Minute, "nope", nil, []string{`anchor "nope" is not a variant of the study; its variants: torch-max, torch-pow2, torch-oracle, vllm-page, vllm-page+flash, vllm-all-opt`}},
		{27 * time.Minute, "", []float64{5.2, 6}, []string{"anchor rate 6 is not in the ladder of llama-3-8b-dummy/torch-oracle [5.2, 8.1, 11, 14]", "pick the anchor rates from it"}},
		{27 * time.Minute, "vllm-page", []float64{5.2}, []string{"anchor rate 5.2 is not in the ladder of llama-3-8b-dummy/vllm-page [4.7, 7.4, 10, 13]"}},
		{27 * time.Minute, "", []float64{}, []string{"no anchor rates given"}},
		{0, "", nil, []string{"hold 0s: want a positive length"}},
		// vllm-page ≈8m5s and the anchor ≈4m20s: 25 s over 12 min; one
		// level less fits. torch-oracle runs whole, with no anchor trial.
		{12 * time.Minute, "", nil, []string{
			"trial 4 (llama-3-8b-dummy/vllm-page/rep1) takes ≈8m5s, and with the anchor trial its hold also runs (torch-oracle at [5.2, 11], ≈4m20s) ≈12m25s, over the hold of 12m0s by 25s; trim the ladders by 1 rate → ≈6m40s: drop llama-3-8b-dummy/vllm-page [13]",
			"trial 6 (llama-3-8b-dummy/vllm-all-opt/rep1)", "by 45s"}},
		{4 * time.Minute, "", nil, []string{"trial 1 (llama-3-8b-dummy/torch-max/rep1)", "the anchor trial alone does not fit: fewer anchor rates, or a longer hold"}},
		{2 * time.Minute, "torch-max", []float64{2.2}, []string{"trial 1 (llama-3-8b-dummy/torch-max/rep1) takes ≈7m10s, over the hold of 2m0s by 5m10s; not even one of its levels fits"}},
	}
	for _, tt := range tests {
		h, err := p.SplitHolds(tt.hold, tt.anchor, tt.rates)
		if err == nil {
			t.Errorf("SplitHolds(%s, %q, %v) = %d holds; want an error", tt.hold, tt.anchor, tt.rates, len(h.Holds))
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("SplitHolds(%s, %q, %v): %v\nwant it to say %q", tt.hold, tt.anchor, tt.rates, err, w)
			}
		}
		if tt.hold == 12*time.Minute && strings.Contains(err.Error(), "torch-oracle/rep1") {
			t.Errorf("torch-oracle runs whole in its hold (≈7m10s) and fits: %v", err)
		}
	}
}

// TestSplitHoldsOneHold: a plan that fits one hold is not split, and no
// file is written for it; an explicit anchor is still checked.
func TestSplitHoldsOneHold(t *testing.T) {
	p := planFile(t, "../examples/demo.toml")
	h, err := p.SplitHolds(27*time.Minute, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "holds")
	files, err := h.WriteStudies(dir, "")
	if !h.OneHold || len(h.Holds) != 0 || files != nil || err != nil {
		t.Errorf("demo in 27m: one hold %v, %d holds, files %q, %v; want one hold, nothing written", h.OneHold, len(h.Holds), files, err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("WriteStudies made %s for a study that fits one hold", dir)
	}
	var out bytes.Buffer
	h.Print(&out)
	if !strings.Contains(out.String(), "fits one hold of 27m0s (≈1m18s)") {
		t.Errorf("Print: %q", out.String())
	}
	if _, err := p.SplitHolds(27*time.Minute, "sim-nope", nil); err == nil || !strings.Contains(err.Error(), "sim-paged, sim-contiguous") {
		t.Errorf("an unknown anchor of a study that fits one hold: %v", err)
	}
	// The same study (two trials of ≈39s) in holds of 70 s: one trial per
	// hold, the second with the anchor at 2 and 8 req/s (≈28s).
	h, err = p.SplitHolds(70*time.Second, "", nil)
	if err != nil || len(h.Holds) != 2 || h.Anchor != "sim-paged" || !slices.Equal(h.AnchorRates, []float64{2, 8}) {
		t.Fatalf("demo in 70s: %v, %+v", err, h)
	}
	if got := holdLine(h.Holds[1]); !slices.Equal(got, []string{"sim-8b/sim-contiguous[2 8 24]", "sim-8b/sim-paged[2 8]+anchor"}) || h.Holds[1].Estimate != 67*time.Second {
		t.Errorf("demo in 70s: hold 2 = %q ≈%s", got, h.Holds[1].Estimate)
	}
}

// TestWriteStudiesRoundTrip: each hold file loads and plans clean within
// its hold, runs its trials with the resolved specs (what each server's
// command is built from), model and rates of the source, the anchor at its
// anchor rates, on the same trace with the same run settings.
func TestWriteStudiesRoundTrip(t *testing.T) {
	p := planFile(t, denseStudy)
	h, err := p.SplitHolds(27*time.Minute, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cmd := "vbbench plan --hold 27m0s --split-holds " + dir + " " + denseStudy
	files, err := h.WriteStudies(dir, cmd)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 3 {
		t.Fatalf("files %q; want 3", files)
	}
	checkHoldFiles(t, p, h, files)
	b, _ := os.ReadFile(files[1])
	var rates []string
	for _, r := range h.AnchorRates {
		rates = append(rates, strconv.FormatFloat(r, 'f', -1, 64))
	}
	for _, want := range []string{"# Hold 2 of 3 of the study \"h200-dense-sharegpt\", generated from\n# " + denseStudy + " by:\n#   " + cmd + "\n",
		"#   llama-3-8b-dummy/torch-oracle at " + rateList(h.AnchorRates) + " req/s, ≈" + anchorEstimate(t, h, 1).String() + " (the anchor)\n",
		"# The anchor is torch-oracle at " + rateList(h.AnchorRates) + " req/s in every hold (its whole ladder in", "hold 1): its difference",
		"\nrates = [" + strings.Join(rates, ", ") + "]\n"} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("%s lacks %q:\n%s", files[1], want, b)
		}
	}
	if filepath.Base(files[2]) != "h200-dense-sharegpt-hold3.toml" {
		t.Errorf("hold 3's file %s", files[2])
	}
}

// checkHoldFiles compares the hold files of split h of plan p with p.
func checkHoldFiles(t *testing.T, p *Plan, h *HoldSplit, files []string) {
	t.Helper()
	src := p.Study
	for i, f := range files {
		hp := planFile(t, f)
		hs := hp.Study
		hd := h.Holds[i]
		var planOut bytes.Buffer
		hp.Print(&planOut)
		if err := hp.Err(); err != nil || hs.Budget.D() != h.Hold || hs.Name != fmt.Sprintf("%s-hold%d", src.Name, hd.Number) || hp.Estimate != hd.Estimate {
			t.Errorf("%s: plan %v, budget %s, name %q, estimate %s (the split's %s)\n%s", f, err, hs.Budget.D(), hs.Name, hp.Estimate, hd.Estimate, planOut.String())
		}
		wantRun := src.Run
		wantRun.Repetitions = 1
		if !reflect.DeepEqual(hs.Run, wantRun) || !reflect.DeepEqual(hs.Trace, src.Trace) || !reflect.DeepEqual(hs.GPU, src.GPU) ||
			hs.ResultsDir != src.ResultsDir || hs.ReportsDir != src.ReportsDir || hs.Description != src.Description || !reflect.DeepEqual(hs.Slurm, src.Slurm) {
			t.Errorf("%s: run %+v trace %+v gpu %+v; want the source's %+v %+v %+v", f, hs.Run, hs.Trace, hs.GPU, wantRun, src.Trace, src.GPU)
		}
		if len(hp.Trials) != len(hd.Trials) {
			t.Errorf("%s: %d trials; the hold has %d", f, len(hp.Trials), len(hd.Trials))
			continue
		}
		for k, got := range hp.Trials {
			want := hd.Trials[k]
			srcTrial := p.Trials[want.Index]
			gm, wm := got.Model, srcTrial.Model
			gm.Variants, wm.Variants = nil, nil
			gj, _ := json.Marshal(got.Variant.Spec)
			wj, _ := json.Marshal(srcTrial.Variant.Spec)
			if got.Variant.Name != srcTrial.Variant.Name || got.Variant.Preset != srcTrial.Variant.Preset ||
				!reflect.DeepEqual(got.Variant.Spec, srcTrial.Variant.Spec) || !reflect.DeepEqual(gm, wm) {
				t.Errorf("%s: trial %d %s/%s (preset %s) spec %s model %+v;\nthe source's %s/%s (preset %s) spec %s model %+v",
					f, k+1, got.Model.Name, got.Variant.Name, got.Variant.Preset, gj, gm, srcTrial.Model.Name, srcTrial.Variant.Name, srcTrial.Variant.Preset, wj, wm)
			}
			wantRates := srcTrial.Rates
			if want.Anchor {
				wantRates = h.AnchorRates
			}
			if !slices.Equal(got.Rates, wantRates) || got.Rates == nil {
				t.Errorf("%s: trial %d %s at %v; want %v", f, k+1, got.Variant.Name, got.Rates, wantRates)
			}
		}
	}
}

// TestWriteStudiesIdempotent: a second run writes the same bytes and is
// fine; a file that differs is refused by name, before any file is written.
func TestWriteStudiesIdempotent(t *testing.T) {
	p := planFile(t, denseStudy)
	h, err := p.SplitHolds(27*time.Minute, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	first, err := h.WriteStudies(dir, "cmd")
	if err != nil {
		t.Fatal(err)
	}
	// An identical file is left alone: not rewritten (its time stays).
	past := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := os.Chtimes(first[0], past, past); err != nil {
		t.Fatal(err)
	}
	again, err := h.WriteStudies(dir, "cmd")
	if err != nil || !slices.Equal(first, again) {
		t.Errorf("second WriteStudies: %q, %v; want the same files again", again, err)
	}
	if fi, err := os.Stat(first[0]); err != nil || !fi.ModTime().Equal(past) {
		t.Errorf("%s was rewritten though identical (%v)", first[0], err)
	}
	// A different command in the header makes a different file.
	if err := os.Remove(first[0]); err != nil {
		t.Fatal(err)
	}
	_, err = h.WriteStudies(dir, "another cmd")
	if err == nil || !strings.Contains(err.Error(), first[1]+" exists and differs from hold 2") || !strings.Contains(err.Error(), first[2]) {
		t.Errorf("WriteStudies over different files: %v; want both named", err)
	}
	if _, err := os.Stat(first[0]); !os.IsNotExist(err) {
		t.Errorf("%s was written though other files were refused", first[0])
	}
}

// TestSplitHoldsModelsReps: two models × three simulator variants × two
// repetitions. The holds go repetition by repetition, each split alike;
// each model that a hold runs only in part gets its anchor trial there; a
// hold never runs the anchor whole for one model and at the anchor rates
// for another; the files have repetitions = 1.
func TestSplitHoldsModelsReps(t *testing.T) {
	text := `
name = "two/models"
budget = "4h"
[trace]
path = "missing.bin"
generate = ["vbsynth"]
[run]
rates = [1, 2, 3, 4]
duration = "60s"
warmup = "10s"
repetitions = 2
[[models]]
name = "a"
model = "sim"
variants = ["x", "sim-paged", "sim-contiguous"]
[[models]]
name = "b"
model = "sim"
variants = ["sim-contiguous", "x", "sim-paged"]
rates = [1, 3, 5]
[variants.x]
preset = "sim-paged"
sim_speed = 4
`
	// Estimates: a sim trial at 4 rates 1 + 3 + 10 + 4 × 63 = 266 s, at 3
	// rates 203 s; the anchor trial (x at [1, 3]) 140 s. In 13 min (780 s):
	// hold 2 is 749 s; b/x would make it 812 s, and a hold that runs
	// model a's anchor trial cannot run model b's x whole anyway.
	p := planText(t, text)
	h, err := p.SplitHolds(13*time.Minute, "", []float64{1, 3})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"a/x[1 2 3 4] a/sim-paged[1 2 3 4]",
		"a/sim-contiguous[1 2 3 4] a/x[1 3]+anchor b/sim-contiguous[1 3 5] b/x[1 3]+anchor",
		"b/x[1 3 5] b/sim-paged[1 3 5]",
	}
	if len(h.Holds) != 6 || h.PerRep != 3 {
		t.Fatalf("%d holds, %d per repetition; want 6, 3", len(h.Holds), h.PerRep)
	}
	for i, hd := range h.Holds {
		if got := strings.Join(holdLine(hd), " "); got != want[i%3] || hd.Rep != i/3+1 || hd.Number != i+1 {
			t.Errorf("hold %d (rep %d) = %s; want %s (rep %d)", hd.Number, hd.Rep, got, want[i%3], i/3+1)
		}
		if hd.Estimate > h.Hold {
			t.Errorf("hold %d ≈%s", hd.Number, hd.Estimate)
		}
	}
	var rep1 []Trial
	for _, tr := range p.Trials {
		if tr.Rep == 1 {
			rep1 = append(rep1, tr)
		}
	}
	if hd, ok := h.holdOf(rep1, 2, 5); ok {
		t.Errorf("a/sim-contiguous, b/sim-contiguous, b/x: %q; want no hold (x whole for b, at the anchor rates for a)", holdLine(hd))
	}
	if hd, ok := h.holdOf(rep1, 2, 4); !ok || hd.Estimate != 749*time.Second {
		t.Errorf("a/sim-contiguous, b/sim-contiguous: %q ≈%s, %v; want 749 s", holdLine(hd), hd.Estimate, ok)
	}
	var out bytes.Buffer
	h.Print(&out)
	if !strings.Contains(out.String(), "hold 4, repetition 2: ") || !strings.Contains(out.String(), "3 holds per repetition × 2 repetitions = 6 holds in all") {
		t.Errorf("Print:\n%s", out.String())
	}
	dir := t.TempDir()
	s := p.Study
	s.path = filepath.Join(dir, "two.toml") // as if loaded from there
	files, err := h.WriteStudies(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(files[0]) != "two_models-hold1.toml" || len(files) != 6 {
		t.Errorf("files %q; want two_models-hold1.toml …", files)
	}
	checkHoldFiles(t, p, h, files)
	b, _ := os.ReadFile(files[4])
	if !bytes.Contains(b, []byte(`(hold 2 of 3 of repetition 2 of 2)`)) || bytes.Contains(b, []byte("by:")) {
		t.Errorf("%s:\n%s", files[4], b)
	}
	// Each model's anchor runs whole in its own hold of the repetition.
	if flat := strings.Join(strings.Fields(strings.ReplaceAll(string(b), "#", " ")), " "); !strings.Contains(flat, "in every hold (its whole ladder: a's in hold 4, b's in hold 6):") {
		t.Errorf("%s: the header does not say where each model's anchor runs whole:\n%s", files[4], b)
	}
	if _, err := p.SplitHolds(13*time.Minute, "sim-paged", nil); err != nil {
		t.Errorf("anchor sim-paged: %v", err)
	}
	text2 := strings.Replace(text, `variants = ["sim-contiguous", "x", "sim-paged"]`, `variants = ["sim-contiguous", "sim-paged"]`, 1)
	if _, err := planText(t, text2).SplitHolds(13*time.Minute, "x", nil); err == nil || !strings.Contains(err.Error(), "model b does not run it (its variants: sim-contiguous, sim-paged)") {
		t.Errorf("an anchor model b lacks: %v", err)
	}
}

// TestWriteStudiesRefusesPlanErrors: a plan with errors gets no files.
func TestWriteStudiesRefusesPlanErrors(t *testing.T) {
	p := planFile(t, denseStudy)
	p.Study.Budget = Duration(30 * time.Minute)
	p2, err := MakePlan(context.Background(), p.Study)
	if err != nil {
		t.Fatal(err)
	}
	h, err := p2.SplitHolds(27*time.Minute, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "holds")
	if files, err := h.WriteStudies(dir, ""); err == nil || files != nil || !strings.Contains(err.Error(), "no hold files written") {
		t.Errorf("WriteStudies of a plan over its budget: %q, %v", files, err)
	}
}

// TestSplitHoldsFewest: a split that fills each hold in turn would need
// three holds here, the search finds two. Model a's trials q (8 rates,
// 518 s), x and p (140 s each), model b's x and r (77 s each), the anchor
// x at 1 req/s (77 s), holds of 700 s: a/q and a/x fill the first hold,
// then a/p would need a's anchor trial beside b's whole x (one file, one
// ladder per variant). Two holds: a/q with a's anchor trial, then the rest.
func TestSplitHoldsFewest(t *testing.T) {
	p := planText(t, `
name = "fewest"
[trace]
path = "missing.bin"
generate = ["vbsynth"]
[run]
duration = "60s"
warmup = "10s"
[[models]]
name = "a"
model = "sim"
rates = [1, 2]
variants = ["q", "x", "p"]
[[models]]
name = "b"
model = "sim"
rates = [1]
variants = ["x", "r"]
[variants.q]
preset = "sim-paged"
rates = [1, 2, 3, 4, 5, 6, 7, 8]
[variants.x]
preset = "sim-paged"
[variants.p]
preset = "sim-contiguous"
[variants.r]
preset = "sim-contiguous"
`)
	h, err := p.SplitHolds(700*time.Second, "x", []float64{1})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, hd := range h.Holds {
		got = append(got, strings.Join(holdLine(hd), " "))
	}
	want := []string{"a/q[1 2 3 4 5 6 7 8] a/x[1]+anchor", "a/x[1 2] a/p[1 2] b/x[1] b/r[1]"}
	if !slices.Equal(got, want) {
		t.Errorf("holds %q; want %q", got, want)
	}
	s := p.Study
	s.path = filepath.Join(t.TempDir(), "fewest.toml")
	files, err := h.WriteStudies(filepath.Dir(s.path), "")
	if err != nil {
		t.Fatal(err)
	}
	checkHoldFiles(t, p, h, files)
}

// anchorEstimate is the estimate of the anchor trial of hold i (0-based),
// as the hold files print it.
func anchorEstimate(t *testing.T, h *HoldSplit, i int) time.Duration {
	t.Helper()
	for _, tr := range h.Holds[i].Trials {
		if tr.Anchor {
			return toSecond(tr.Estimate)
		}
	}
	t.Fatalf("hold %d has no anchor trial", i+1)
	return 0
}

// TestHoldFileNamesLongStudy: a study name too long for a file name is
// shortened before the hold number is added, so each hold keeps a file of
// its own (the number was cut off once, and every hold wrote one file).
func TestHoldFileNamesLongStudy(t *testing.T) {
	long := strings.Repeat("n", 98)
	p := planText(t, strings.Replace(denseText, `name = "dense"`, `name = "`+long+`"`, 1))
	h, err := p.SplitHolds(27*time.Minute, "", nil)
	if err != nil || len(h.Holds) < 2 {
		t.Fatalf("split: %v, %d holds; want several", err, len(h.Holds))
	}
	files, err := h.WriteStudies(t.TempDir(), "cmd")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i, f := range files {
		if seen[f] || !strings.HasSuffix(f, fmt.Sprintf("-hold%d.toml", i+1)) {
			t.Errorf("hold %d's file %s: repeated or without its number (%q)", i+1, f, files)
		}
		seen[f] = true
	}
}

// TestHoldFilesKeepGPULanes: a split estimated on GPU lanes (--gpus, which
// overrides the file's run.gpus) writes those lanes into each hold file, so
// the file plans on them and fits its hold as the split said.
func TestHoldFilesKeepGPULanes(t *testing.T) {
	s, err := ParseStudy(denseText)
	if err != nil {
		t.Fatal(err)
	}
	s.Run.GPUs = GPUList{"0", "1"}
	p := planOf(t, s, nil)
	h, err := p.SplitHolds(10*time.Minute, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	files, err := h.WriteStudies(t.TempDir(), "cmd")
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range files {
		hp := planFile(t, f)
		if !slices.Equal(hp.GPUs, []string{"0", "1"}) || hp.Estimate != h.Holds[i].Estimate || hp.Estimate > 10*time.Minute {
			t.Errorf("%s plans on lanes %v at ≈%s; the split said ≈%s on 0,1 within 10m", f, hp.GPUs, hp.Estimate, h.Holds[i].Estimate)
		}
	}
}
