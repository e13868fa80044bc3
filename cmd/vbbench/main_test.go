package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vbench/vbench/bench"
	"github.com/vbench/vbench/internal/cli"
	"github.com/vbench/vbench/trace"
)

func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestPlanExamples(t *testing.T) {
	for _, f := range []string{"demo.toml", "dense-4090.toml", "moe-h100.toml", "moe-h200.toml", "h200-vllm-smoke.toml", "moe-h200-smoke.toml", "h200-dense-sharegpt.toml", "h200-dense-alpaca.toml", "moe-h200-alpaca.toml"} {
		code, out, errOut := runCLI("plan", filepath.Join("..", "..", "examples", f))
		if code != cli.ExitOK || !strings.Contains(out, "plan ok") || !strings.Contains(out, "run order:") {
			t.Errorf("plan %s: exit %d\n%s\n%s", f, code, out, errOut)
		}
	}
}

// TestHoldFilesCurrent: the committed hold files of the dense ShareGPT
// study (each docs/results/*/holds*/ folder: repetition 1's, and 2's split
// differently) are what the vbbench plan command in their header writes
// for the example as it is now (the command refuses to overwrite a file
// that differs): a ladder edited in the example without regenerating them
// fails here. Their --measured folders are finished hold runs, which do not
// change.
func TestHoldFilesCurrent(t *testing.T) {
	t.Chdir(filepath.Join("..", ".."))
	firsts, _ := filepath.Glob("docs/results/*/holds*/*-hold1.toml")
	if len(firsts) < 2 {
		t.Fatalf("hold files: %v, want repetition 1's and 2's", firsts)
	}
	for _, f := range firsts {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		_, after, ok := strings.Cut(string(b), "\n#   vbbench plan ")
		line, _, _ := strings.Cut(after, "\n")
		if !ok || strings.ContainsAny(line, `'"\`) {
			t.Fatalf("%s: no plain vbbench plan command in its header", f)
		}
		code, out, errOut := runCLI(append([]string{"plan"}, strings.Fields(line)...)...)
		if code != cli.ExitOK || !strings.Contains(out, "written or already identical") {
			t.Errorf("%s and its holds are stale: regenerate them with the command in their header\nexit %d\n%s\n%s", f, code, out, errOut)
		}
	}
}

// TestPlanHolds: the study files of the GPU holds under docs/results (a
// study split to fit a 30-minute hold) plan within their budgets.
func TestPlanHolds(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "docs", "results", "*", "holds*", "*.toml"))
	if len(files) == 0 {
		t.Fatal("no hold study files under docs/results/*/holds")
	}
	for _, f := range files {
		code, out, errOut := runCLI("plan", f)
		if code != cli.ExitOK || !strings.Contains(out, "plan ok") || !regexp.MustCompile(`of the 2[0-9]m[0-9]+s budget`).MatchString(out) {
			t.Errorf("plan %s: exit %d\n%s\n%s", f, code, out, errOut)
		}
	}
}

// TestPlanMoEH200: the MoE study fits the H200 (141 GB), every preset with
// the fixed 65,536-token KV cache, and not a 24 GB card, whose usable
// memory is less than the FP8 weights.
func TestPlanMoEH200(t *testing.T) {
	moe, err := os.ReadFile("../../examples/moe-h200.toml")
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI("plan", "../../examples/moe-h200.toml")
	if code != cli.ExitOK || strings.Count(out, "  ok    qwen3-30b-a3b-fp8") != 3 || !strings.Contains(out, "weights ≈29.0 GiB, KV fixed at 65536 tokens") {
		t.Errorf("plan moe-h200 on 141 GB: exit %d\n%s\n%s", code, out, errOut)
	}
	small := filepath.Join(t.TempDir(), "moe24.toml")
	os.WriteFile(small, []byte(strings.Replace(string(moe), "memory_gib = 141", "memory_gib = 24", 1)), 0o644)
	code, out, errOut = runCLI("plan", small)
	if code != cli.ExitFailure || strings.Count(out, "  NO    qwen3-30b-a3b-fp8") != 3 ||
		!strings.Contains(out, "weights need ≈29.0 GiB (31.2 GB) but only 22.1 GiB of the 24 GiB card are usable") {
		t.Errorf("plan moe-h200 on 24 GB: exit %d\n%s\n%s", code, out, errOut)
	}
}

func TestPlanErrors(t *testing.T) {
	dir := t.TempDir()
	moe, _ := os.ReadFile("../../examples/moe-h100.toml")
	small := strings.Replace(string(moe), "memory_gib = 80", "memory_gib = 24", 1)
	os.WriteFile(filepath.Join(dir, "moe24.toml"), []byte(small), 0o644)
	os.WriteFile(filepath.Join(dir, "typo.toml"), []byte(strings.Replace(string(moe), "memory_gib = 80", "memory_gib = 80\nmemory_gb = 80", 1)), 0o644)
	tests := []struct {
		args     []string
		code     int
		wantOut  string
		wantErr  string
		notInErr string
	}{
		{[]string{"plan", filepath.Join(dir, "moe24.toml")}, cli.ExitFailure, "does not fit", "the plan has 1 errors", "Suggestion"},
		{[]string{"plan", filepath.Join(dir, "typo.toml")}, cli.ExitFailure, "", "unknown keys: gpu.memory_gb", ""},
		{[]string{"plan", filepath.Join(dir, "missing.toml")}, cli.ExitFailure, "", "vbbench plan: study: open " + filepath.Join(dir, "missing.toml") + ": no such file", "bench: "},
		{[]string{"plan"}, cli.ExitUsage, "", "want exactly one study file", ""},
		{[]string{"plan", "--order", "torch-oracle,nope", filepath.Join("..", "..", "examples", "h200-dense-sharegpt.toml")}, cli.ExitUsage, "", `--order: variant "nope" in the order is not a variant of any model in the study`, ""},
		{[]string{"plan", "--order", "torch-max,torch-max", filepath.Join("..", "..", "examples", "h200-dense-sharegpt.toml")}, cli.ExitUsage, "", `--order: variant "torch-max" is named twice`, ""},
		{[]string{"run", "--no-such-flag", "x.toml"}, cli.ExitUsage, "", "unknown flag", ""},
		{[]string{"probe", "--variants", "nope", filepath.Join("..", "..", "examples", "demo.toml")}, cli.ExitFailure, "", `"nope" is not a variant`, ""},
		{[]string{"probe", "--level", "0s", "x.toml"}, cli.ExitUsage, "", "--duration 0s", ""}, // --level: the old name
		{[]string{"probe", "--duration", "0s", "x.toml"}, cli.ExitUsage, "", "--duration 0s", ""},
		{[]string{"probe", "--points", "1", "x.toml"}, cli.ExitUsage, "", "--points 2 or more", ""},
		{[]string{"probe"}, cli.ExitUsage, "", "want exactly one study file", ""},
		{[]string{"frobnicate"}, cli.ExitUsage, "", `unknown command "frobnicate"`, ""},
		{nil, cli.ExitUsage, "", "Commands:", ""},
		// --help lists every command's flags.
		{[]string{"--help"}, cli.ExitOK, "", "Usage: vbbench run [flags] STUDY.toml", "[=true|false]"},
		{[]string{"--help"}, cli.ExitOK, "", "--max-concurrency int", ""},
		{[]string{"--help"}, cli.ExitOK, "", "--resume", ""},
	}
	for _, tt := range tests {
		code, out, errOut := runCLI(tt.args...)
		if code != tt.code || !strings.Contains(out, tt.wantOut) || !strings.Contains(errOut, tt.wantErr) ||
			(tt.notInErr != "" && strings.Contains(errOut, tt.notInErr)) {
			t.Errorf("vbbench %v: exit %d (want %d)\nstdout: %s\nstderr: %s", tt.args, code, tt.code, out, errOut)
		}
		if strings.Contains(errOut, "goroutine") || strings.Contains(errOut, "panic") {
			t.Errorf("vbbench %v: stack trace:\n%s", tt.args, errOut)
		}
	}
}

func TestPresets(t *testing.T) {
	code, out, _ := runCLI("presets")
	for _, p := range []string{"torch-baseline", "vllm-page", "vllm-page+flash", "vllm-all-opt", "transformers-cb", "sim-paged", "sim-contiguous", "TRITON_ATTN"} {
		if !strings.Contains(out, p) {
			t.Errorf("presets lack %s (exit %d):\n%s", p, code, out)
		}
	}
}

// TestRunRefusesNonFittingStudy: run checks the plan before touching
// anything and points at --force.
func TestRunRefusesNonFittingStudy(t *testing.T) {
	dir := t.TempDir()
	moe, _ := os.ReadFile("../../examples/moe-h100.toml")
	small := strings.Replace(string(moe), "memory_gib = 80", "memory_gib = 24", 1)
	small = strings.Replace(small, `name = "moe-h100"`, "name = \"moe-h100\"\nresults_dir = \""+filepath.Join(dir, "results")+"\"", 1)
	os.WriteFile(filepath.Join(dir, "s.toml"), []byte(small), 0o644)
	code, _, errOut := runCLI("run", "--quiet", filepath.Join(dir, "s.toml"))
	if code != cli.ExitFailure || !strings.Contains(errOut, "does not fit") || !strings.Contains(errOut, "--force") {
		t.Errorf("exit %d: %s", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "results")); !os.IsNotExist(err) {
		t.Error("refused run created results/")
	}
}

// TestPlanGPUs: plan --gpus (the command docs/readme/bench.md shows) places
// the demo's two trials side by side; a bad list is a usage error.
func TestPlanGPUs(t *testing.T) {
	code, out, errOut := runCLI("plan", "--gpus", "0,1", filepath.Join("..", "..", "examples", "demo.toml"))
	for _, want := range []string{"run order: 2 GPU lanes (0,1)", "gpu 1 ", "estimate: ≈39s on 2 GPU lanes (serially ≈1m18s, 2.0× longer)", "plan ok"} {
		if code != cli.ExitOK || !strings.Contains(out, want) {
			t.Errorf("plan --gpus 0,1: exit %d, output lacks %q:\n%s\n%s", code, want, out, errOut)
		}
	}
	// docs/scaling.md: 100 trials over 32 GPUs.
	var ids []string
	for i := range 32 {
		ids = append(ids, fmt.Sprint(i))
	}
	code, out, errOut = runCLI("plan", "--gpus", strings.Join(ids, ","), filepath.Join("..", "..", "examples", "scale-100.toml"))
	for _, want := range []string{"100 trials", "estimate: ≈45m0s on 32 GPU lanes (serially ≈12h32m0s, 16.6× longer)", "≈1h3m0s if every level drains fully",
		"  100  llama-3.3-70b            vllm-all-opt-tp8   rep 5  vllm          gpu 0,1,2,3,4,5,6,7 start ≈38m0s"} {
		if code != cli.ExitOK || !strings.Contains(out, want) {
			t.Errorf("plan scale-100 on 32 lanes: exit %d, output lacks %q:\n%s\n%s", code, want, out, errOut)
		}
	}
	for n, want := range map[int]string{8: "estimate: ≈2h52m0s on 8 GPU lanes", 16: "estimate: ≈1h29m0s on 16 GPU lanes"} {
		code, out, _ = runCLI("plan", "--gpus", strings.Join(ids[:n], ","), filepath.Join("..", "..", "examples", "scale-100.toml"))
		if code != cli.ExitOK || !strings.Contains(out, want) {
			t.Errorf("plan scale-100 on %d lanes: exit %d, lacks %q", n, code, want)
		}
	}
	code, _, errOut = runCLI("plan", "--gpus", "0,0", filepath.Join("..", "..", "examples", "demo.toml"))
	if code != cli.ExitUsage || !strings.Contains(errOut, "GPU 0 is listed twice") {
		t.Errorf("plan --gpus 0,0: exit %d: %s", code, errOut)
	}
	code, _, errOut = runCLI("run", "--trial", "3", filepath.Join("..", "..", "examples", "demo.toml"))
	if code != cli.ExitUsage || !strings.Contains(errOut, "the plan has trials 1 to 2") {
		t.Errorf("run --trial 3: exit %d: %s", code, errOut)
	}
}

// TestSlurmCLI: vbbench slurm --dry-run writes the batch script without a
// cluster; status and report read an empty results tree; bad combinations
// are usage errors.
func TestSlurmCLI(t *testing.T) {
	demo, err := os.ReadFile(filepath.Join("..", "..", "examples", "demo.toml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	t.Chdir(dir)
	// The demo's trace, made here (the submitter makes a missing one with
	// vbsynth; none is built for this test).
	reqs := make([]trace.Request, 600)
	for i := range reqs {
		reqs[i] = trace.Request{Index: int64(i), Offset: time.Duration(i) * time.Second, Endpoint: trace.EndpointCompletions,
			Prompt: "hello", InputTokens: 1, OutputTokens: 8, Sampling: trace.Sampling{MaxTokens: 8}}
	}
	os.MkdirAll("demo-results", 0o755)
	if _, err := trace.WriteFile("demo-results/demo-trace.bin", trace.Header{Generator: "test", MeanRate: 1}, reqs); err != nil {
		t.Fatal(err)
	}
	os.WriteFile("demo.toml", demo, 0o644)
	code, out, errOut := runCLI("slurm", "--dry-run", "--partition", "gpu", "--sbatch-arg=--constraint=h100", "demo.toml")
	if code != cli.ExitOK || !strings.Contains(out, "job -: trials 1-2 (0 GPU per task)") || !strings.Contains(out, "2 of 2 trials submitted") {
		t.Fatalf("slurm --dry-run: exit %d\n%s\n%s", code, out, errOut)
	}
	scripts, _ := filepath.Glob(filepath.Join(dir, "demo-results", "results", "slurm", "*", "array-0gpu.sh"))
	if len(scripts) != 1 {
		t.Fatalf("scripts %v", scripts)
	}
	script, _ := os.ReadFile(scripts[0])
	for _, want := range []string{"#SBATCH --partition=gpu\n", "#SBATCH --constraint=h100\n", "#SBATCH --array=1-2\n", "run --trial \"$SLURM_ARRAY_TASK_ID\" --resume --gpus none"} {
		if !strings.Contains(string(script), want) {
			t.Errorf("script lacks %q:\n%s", want, script)
		}
	}
	code, out, _ = runCLI("status", "demo.toml")
	if code != cli.ExitOK || !strings.Contains(out, `study "demo-sim": 2 trials, 0 finished (2 not-started)`) {
		t.Errorf("status: exit %d\n%s", code, out)
	}
	for _, tt := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"report", "demo.toml"}, cli.ExitFailure, "no finished trial of study demo-sim"},
		{[]string{"slurm", "--wait", "--dry-run", "demo.toml"}, cli.ExitUsage, "exclude each other"},
		{[]string{"slurm", "--mem", "lots", "--dry-run", "demo.toml"}, cli.ExitFailure, `slurm.mem "lots"`},
		{[]string{"run", "--executor", "slurm", "--gpus", "0", "demo.toml"}, cli.ExitUsage, "--gpus does not apply with --executor slurm"},
		{[]string{"run", "--executor", "k8s", "demo.toml"}, cli.ExitUsage, `--executor "k8s": want local or slurm`},
	} {
		code, _, errOut := runCLI(tt.args...)
		if code != tt.code || !strings.Contains(errOut, tt.err) {
			t.Errorf("vbbench %v: exit %d (want %d): %s", tt.args, code, tt.code, errOut)
		}
	}
}

// TestPlanSplitHolds: plan --hold splits the dense ShareGPT study into
// three holds as they were made by hand in docs/results/h200-2026-12-03/holds
// (the split's own checks are bench's), prints the split, writes it with
// --split-holds (again: nothing changes; over a different file: refused),
// and each written file plans clean within its hold.
func TestPlanSplitHolds(t *testing.T) {
	study := filepath.Join("..", "..", "examples", "h200-dense-sharegpt.toml")
	s, err := bench.LoadStudy(study)
	if err != nil {
		t.Fatal(err)
	}
	p, err := bench.MakePlan(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	split, err := p.SplitHolds(27*time.Minute, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var printed bytes.Buffer
	split.Print(&printed)
	dir := filepath.Join(t.TempDir(), "holds")
	args := []string{"plan", "--hold", "27m", "--split-holds", dir, study}
	code, out, errOut := runCLI(args...)
	for _, want := range []string{"plan ok\n" + printed.String(), "3 holds per repetition × 1 repetition = 3 holds in all\n", filepath.Join(dir, "h200-dense-sharegpt-hold3.toml")} {
		if code != cli.ExitOK || !strings.Contains(out, want) {
			t.Fatalf("vbbench %q: exit %d, stdout lacks %q\n%s\n%s", args, code, want, out, errOut)
		}
	}
	var rates []string
	for _, r := range split.AnchorRates {
		rates = append(rates, strconv.FormatFloat(r, 'g', -1, 64))
	}
	var written [][]byte
	for n := 1; n <= 3; n++ {
		f := filepath.Join(dir, fmt.Sprintf("h200-dense-sharegpt-hold%d.toml", n))
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		written = append(written, b)
		cmd := fmt.Sprintf("#   vbbench plan --hold 27m0s --anchor torch-oracle --anchor-rates %s --split-holds %s %s\n", strings.Join(rates, ","), dir, study)
		if !strings.Contains(string(b), cmd) {
			t.Errorf("%s: its header lacks the command %q:\n%s", f, cmd, b)
		}
		code, out, errOut := runCLI("plan", f)
		if code != cli.ExitOK || !strings.Contains(out, "plan ok") || !regexp.MustCompile(`of the 2[0-9]m[0-9]+s budget`).MatchString(out) {
			t.Errorf("plan %s: exit %d\n%s\n%s", f, code, out, errOut)
		}
	}
	// Again, the flags in another order: the same files, untouched.
	slices.Reverse(rates)
	code, out, errOut = runCLI("plan", "--split-holds", dir+"/", "--anchor-rates", strings.Join(rates, ","), "--hold", "27m0s", study)
	if code != cli.ExitOK || !strings.Contains(out, "3 holds in all") {
		t.Fatalf("second run: exit %d\n%s\n%s", code, out, errOut)
	}
	for n, b := range written {
		if again, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("h200-dense-sharegpt-hold%d.toml", n+1))); string(again) != string(b) {
			t.Errorf("hold %d's file changed on the second run", n+1)
		}
	}
	// Another anchor makes other files: refused, by name.
	code, _, errOut = runCLI("plan", "--hold", "27m", "--anchor", "torch-pow2", "--split-holds", dir, study)
	if code != cli.ExitFailure || !strings.Contains(errOut, filepath.Join(dir, "h200-dense-sharegpt-hold1.toml")+" exists and differs from hold 1") {
		t.Errorf("over different files: exit %d\n%s", code, errOut)
	}
}

// TestPlanHoldErrors: the hold flags' usage and what cannot be split.
func TestPlanHoldErrors(t *testing.T) {
	dense := filepath.Join("..", "..", "examples", "h200-dense-sharegpt.toml")
	demo := filepath.Join("..", "..", "examples", "demo.toml")
	dir := filepath.Join(t.TempDir(), "holds")
	tests := []struct {
		args    []string
		code    int
		wantOut string
		wantErr string
	}{
		{[]string{"plan", "--hold", "27m", "--split-holds", dir, demo}, cli.ExitOK, "holds: fits one hold of 27m0s (≈1m18s): run the study as it is\n", "no hold files written: the study fits one hold"},
		{[]string{"plan", "--anchor", "torch-oracle", dense}, cli.ExitUsage, "", "--anchor needs --hold"},
		{[]string{"plan", "--split-holds", dir, dense}, cli.ExitUsage, "", "--split-holds needs --hold"},
		{[]string{"plan", "--hold", "-5m", dense}, cli.ExitUsage, "", "--hold -5m0s: want a positive duration"},
		{[]string{"plan", "--hold", "27m", "--anchor-rates", "5.2,x", dense}, cli.ExitUsage, "", `invalid argument "5.2,x" for "--anchor-rates"`},
		{[]string{"plan", "--hold", "27m", "--anchor", "torch-nope", dense}, cli.ExitFailure, "plan ok",
			`anchor "torch-nope" is not a variant of the study; its variants: torch-max, torch-pow2, torch-oracle, vllm-page, vllm-page+flash, vllm-all-opt`},
		{[]string{"plan", "--hold", "27m", "--anchor-rates", "5.2,6.5", dense}, cli.ExitFailure, "",
			"anchor rate 6.5 is not in the ladder of llama-3-8b-dummy/torch-oracle [5.2, "},
		{[]string{"plan", "--hold", "27m", "--anchor-rates", "5.2,6.5", dense}, cli.ExitFailure, "", "drift is measurable only at rates that every hold runs"},
		{[]string{"plan", "--hold", "12m", "--split-holds", dir, dense}, cli.ExitFailure, "",
			"trial 1 (llama-3-8b-dummy/torch-max/rep1) takes ≈9m11s, and with the anchor trial its hold also runs (torch-oracle at ["},
		{[]string{"plan", "--hold", "12m", "--split-holds", dir, dense}, cli.ExitFailure, "",
			"≈4m25s) ≈13m36s, over the hold of 12m0s by 1m36s; trim the ladders by 1 rate → ≈6m2s: drop llama-3-8b-dummy/torch-max ["},
	}
	for _, tt := range tests {
		code, out, errOut := runCLI(tt.args...)
		if code != tt.code || !strings.Contains(out, tt.wantOut) || !strings.Contains(errOut, tt.wantErr) {
			t.Errorf("vbbench %q: exit %d (want %d)\nstdout: %s\nstderr: %s", tt.args, code, tt.code, out, errOut)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s was made, though no split wrote a file", dir)
	}
}

// TestPlanMeasuredFlag: --measured over two committed H200 hold runs (the
// vLLM variants' and the anchor's) estimates the variants they measured
// from them (each marked) and the others from the model; a folder that
// does not exist is an error that names it.
func TestPlanMeasuredFlag(t *testing.T) {
	runs := filepath.Join("..", "..", "docs", "results", "h200-2026-12-03", "runs", "sharegpt-rep1-hold3")
	hold2 := filepath.Join("..", "..", "docs", "results", "h200-2026-12-03", "runs", "sharegpt-rep1-hold2")
	code, out, errOut := runCLI("plan", "--measured", runs, "--measured", hold2, filepath.Join("..", "..", "examples", "h200-dense-sharegpt.toml"))
	if code != cli.ExitOK || !strings.Contains(out, "plan ok") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	for _, v := range []string{"torch-oracle", "vllm-page", "vllm-page+flash", "vllm-all-opt"} {
		if !regexp.MustCompile(`(?m)^ +\d+ +llama-3-8b-dummy +` + regexp.QuoteMeta(v) + ` +rep 1 .*\(measured\)$`).MatchString(out) {
			t.Errorf("%s is not estimated from its measurements:\n%s", v, out)
		}
	}
	for _, v := range []string{"torch-max", "torch-pow2"} {
		if regexp.MustCompile(`(?m)^ +\d+ +llama-3-8b-dummy +` + v + ` .*\(measured\)$`).MatchString(out) {
			t.Errorf("%s was never measured but is marked so:\n%s", v, out)
		}
	}
	// The hold files' header command carries the folders, so the split
	// can be made again.
	dir := t.TempDir()
	code, out, errOut = runCLI("plan", "--measured", runs, "--hold", "27m", "--split-holds", dir, filepath.Join("..", "..", "examples", "h200-dense-sharegpt.toml"))
	if code != cli.ExitOK {
		t.Fatalf("split: exit %d\n%s\n%s", code, out, errOut)
	}
	b, err := os.ReadFile(filepath.Join(dir, "h200-dense-sharegpt-hold1.toml"))
	if want := "vbbench plan --measured " + filepath.Clean(runs) + " --hold 27m0s"; err != nil || !strings.Contains(string(b), want) {
		t.Errorf("the hold file's header lacks %q (%v):\n%.600s", want, err, b)
	}
	missing := filepath.Join(t.TempDir(), "none")
	if code, _, errOut := runCLI("plan", "--measured", missing, filepath.Join("..", "..", "examples", "demo.toml")); code == cli.ExitOK || !strings.Contains(errOut, missing) {
		t.Errorf("a missing --measured folder: exit %d\n%s", code, errOut)
	}
}

// TestPlanManyStudies: both dense workloads planned together against the
// seed's 4-hour budget (deliverable 6 of issue #16): the sum, and over a
// smaller total budget an error that names, per study, the ladder trim that
// alone brings the sum under; the JSON's total is the sum of the plans'.
func TestPlanManyStudies(t *testing.T) {
	ex := func(f string) string { return filepath.Join("..", "..", "examples", f) }
	a, b := ex("h200-dense-sharegpt.toml"), ex("h200-dense-alpaca.toml")
	code, out, errOut := runCLI("plan", "--total-budget", "4h", a, b)
	if code != cli.ExitOK || !regexp.MustCompile(`(?m)^all 2 studies, one after another: ≈\S+ \(h200-dense-sharegpt ≈\S+, h200-dense-alpaca ≈\S+\) of the total budget 4h0m0s \(\d+%\)$`).MatchString(out) ||
		strings.Count(out, "plan ok") != 2 {
		t.Errorf("4h: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut = runCLI("plan", "--total-budget", "1h30m", a, b)
	if code == cli.ExitOK || !strings.Contains(errOut, "over the total budget of 1h30m0s; any one of these brings them under: h200-dense-sharegpt: trim the ladders") ||
		!strings.Contains(errOut, "or h200-dense-alpaca: trim the ladders") {
		t.Errorf("1h30m: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, _ = runCLI("plan", "--json", a, b)
	var v struct {
		Studies []struct {
			Estimate int64 `json:"estimate_ns"`
		} `json:"studies"`
		Total int64 `json:"total_ns"`
	}
	if err := json.Unmarshal([]byte(out), &v); code != cli.ExitOK || err != nil || len(v.Studies) != 2 || v.Total != v.Studies[0].Estimate+v.Studies[1].Estimate || v.Total == 0 {
		t.Errorf("--json: exit %d, %v: %+v", code, err, v)
	}
	if code, _, errOut := runCLI("plan", "--hold", "27m", a, b); code != cli.ExitUsage || !strings.Contains(errOut, "--hold splits one study") {
		t.Errorf("--hold with two studies: exit %d\n%s", code, errOut)
	}
}
