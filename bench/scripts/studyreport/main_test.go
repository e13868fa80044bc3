package main

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vbench/vbench/analyze"
	"github.com/vbench/vbench/bench"
	"github.com/vbench/vbench/capture"
	"github.com/vbench/vbench/internal/testbin"
)

func TestMain(m *testing.M) { os.Exit(testbin.Main(m)) }

// holdStudy is a simulated study file: the dense study's variant names on
// vbsim's reservation policies, so the report's paper mapping applies.
func holdStudy(name, results, tracePath string, variants string) string {
	return `name = "` + name + `"
results_dir = "` + results + `"
reports_dir = "` + results + `/reports"
[trace]
path = "` + tracePath + `"
[run]
duration = "1s"
warmup = "300ms"
max_drain = "5s"
startup_timeout = "20s"
stop_grace = "3s"
chart = false
[[models]]
name = "sim"
model = "sim"
max_model_len = 2048
kv_cache_tokens = 8192
max_num_seqs = 64
` + variants
}

const hold1Variants = `variants = ["torch-max", "torch-pow2", "torch-oracle"]
[variants.torch-max]
preset = "sim-contiguous"
sim_reservation = "max"
sim_speed = 20
rates = [4, 8, 32]
[variants.torch-pow2]
preset = "sim-contiguous"
sim_reservation = "pow2"
sim_speed = 20
rates = [8]
[variants.torch-oracle]
preset = "sim-contiguous"
sim_reservation = "oracle"
sim_speed = 20
rates = [4, 8]
`

const hold2Variants = `variants = ["vllm-page", "torch-oracle"]
[variants.vllm-page]
preset = "sim-paged"
sim_speed = 20
rates = [8]
[variants.torch-oracle]
preset = "sim-contiguous"
sim_reservation = "oracle"
sim_speed = 20
rates = [4]
`

// TestStudyReport runs two simulated holds that share the anchor
// torch-oracle at 4 req/s and reports them together: the holds' planned
// and actual times, the equal-rate batched table beside the paper's
// Fig. 13, the ordering row and the anchor's drift between the two runs.
func TestStudyReport(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two simulated holds (≈20 s)")
	}
	sim := testbin.Dir(t, "cmd/vbsim")
	dir := t.TempDir()
	tracePath := filepath.Join(dir, "trace.bin")
	testbin.Trace(t, tracePath, "--dataset", "sharegpt", "--requests", "400", "--max-total", "2048", "--seed", "1", "--quiet")
	var args []string
	for i, vars := range []string{hold1Variants, hold2Variants} {
		name := []string{"dense-hold1", "dense-hold2"}[i]
		results := filepath.Join(dir, "results-"+name)
		file := filepath.Join(dir, name+".toml")
		if err := os.WriteFile(file, []byte(holdStudy(name, results, tracePath, vars)), 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := bench.LoadStudy(file)
		if err != nil {
			t.Fatal(err)
		}
		p, err := bench.MakePlan(context.Background(), s)
		if err != nil || p.Err() != nil {
			t.Fatalf("plan %s: %v %v", name, err, p.Err())
		}
		if _, err := bench.Run(context.Background(), p, bench.RunOptions{SearchDirs: []string{sim}}); err != nil {
			t.Fatalf("run %s: %v", name, err)
		}
		args = append(args, file+"="+results)
	}
	paper, err := filepath.Abs("testdata/published_stats.json")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "report")
	if err := run(context.Background(), append([]string{"-out", out, "-workload", "sharegpt", "-equal-rate", "8", "-paper", paper, "-also-saturation", "1ms"}, args...)); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(out, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	md := string(b)
	t.Log(md)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^\| 1 \| .*dense-hold1\.toml` + "`" + ` \| .* \| 3 \| \d`),
		regexp.MustCompile(`(?m)^\| 2 \| .*dense-hold2\.toml` + "`" + ` \| .* \| 2 \| \d`),
		regexp.MustCompile(`(?m)^\| torch-max \| [0-9.]+ \| 1 \| 7\.00 \(Orca \(Max\)\) \|$`),
		regexp.MustCompile(`(?m)^\| vllm-page \| [0-9.]+ \| 1 \| 30\.42 \(vLLM\) \|$`),
		regexp.MustCompile(`(?m)^\| sustained rate \(req/s\) \| .* \| (yes|\*\*no\*\*|undecided \(bounds or CIs overlap\)) \|$`),
		regexp.MustCompile(`(?m)^\| batched at 8 req/s \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \| (yes|\*\*no\*\*|undecided \(bounds or CIs overlap\)) \|$`),
		// A second threshold, under every level: no variant sustains any.
		regexp.MustCompile(`(?m)^The same rule at 1ms/token, each variant's sustained rate \(req/s\): torch-max below its lowest rate, .*vllm-page below its lowest rate\.$`),
		// The servers' own figures, with a CI where two holds ran the rate.
		regexp.MustCompile(`(?m)^\| torch-oracle \| 4 \| [0-9]+ ± [0-9]+ \| [0-9.]+ ± [0-9.]+ \| [0-9.]+ ± [0-9.]+ \| [0-9]+ ± [0-9]+ \| [0-9]+ ± [0-9]+ \| - \| [0-9]+ ± [0-9]+ \|$`),
		// The ordering explained, pair by pair, at the rate both ran.
		regexp.MustCompile(`(?m)^\| torch-max → torch-pow2 \| 8 \| [0-9.]+ → [0-9.]+ \| [0-9.]+ → [0-9.]+ \| [0-9.]+ → [0-9.]+ \| `),
		regexp.MustCompile(`(?m)^\| torch-oracle → vllm-page \| 8 \| `),
		// What the servers allocated: the simulator's 512 blocks of 16 (its
		// kv_cache_tokens 8192) and the study's max_num_seqs, over both holds' trials.
		regexp.MustCompile(`(?m)^\| torch-oracle \| 2 \| 8192 \| 512 × 16 \| 64 \| `),
		regexp.MustCompile(`(?m)^\| 4 \| 1 \| [0-9.]+ \| \+0\.0% \|`),
		regexp.MustCompile(`(?m)^\| 4 \| 2 \| [0-9.]+ \| [+-][0-9.]+% \|`),
	} {
		if !want.MatchString(md) {
			t.Errorf("report.md lacks %s", want)
		}
	}
	// The oracle at 8 req/s ran in hold 1 only; at 4 in both: n = 2 there.
	if !regexp.MustCompile(`(?m)^\| torch-oracle \| 4 \| 2 \| [0-9.]+ ± [0-9.]+ \|`).MatchString(md) {
		t.Errorf("the anchor rate lacks its CI across the two holds")
	}
	if _, err := os.Stat(filepath.Join(out, "analysis", "charts", "norm_latency_vs_rate.png")); err != nil {
		t.Errorf("Fig. 12 chart: %v", err)
	}
	if strings.Contains(md, "NaN") {
		t.Errorf("report.md has NaN")
	}

	// Within one hold: a threshold above every variant's latency at 8 req/s
	// or less (the simulated servers are far from full there) and below
	// torch-max's at 32 (the sim's max policy holds 4 requests of 2,048
	// tokens in 8,192, so most of a level's 32 wait): max then sustains 8
	// and the others at least 8, which gives run 1's oracle / max and pow2
	// / max; no ratio pairs variants of different runs there.
	var sum struct {
		Aggregates []struct {
			Variant string  `json:"variant"`
			Rate    float64 `json:"rate"`
			NL      float64 `json:"norm_latency_with_cut_mean_s_per_tok"`
		} `json:"aggregates"`
	}
	if b, err := os.ReadFile(filepath.Join(out, "analysis", "summary.json")); err != nil || json.Unmarshal(b, &sum) != nil {
		t.Fatalf("summary.json: %v", err)
	}
	low, max32 := 0.0, 0.0
	for _, a := range sum.Aggregates {
		switch {
		case a.Rate <= 8:
			low = math.Max(low, a.NL)
		case a.Variant == "torch-max":
			max32 = a.NL
		}
	}
	thr := time.Duration(low * 1.2 * 1e9)
	if !(max32 > 2*low) {
		t.Fatalf("torch-max's latency at 32 req/s (%g s/token) is not well above every latency at 8 or less (%g)", max32, low)
	}
	outW := filepath.Join(dir, "within")
	if err := run(context.Background(), append([]string{"-out", outW, "-workload", "sharegpt", "-saturation", thr.String()}, args...)); err != nil {
		t.Fatal(err)
	}
	b, err = os.ReadFile(filepath.Join(outW, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, within, _ := strings.Cut(string(b), "## Within one hold: one machine")
	within, _, _ = strings.Cut(within, "\n## ")
	for _, v := range []string{"torch-oracle", "torch-pow2"} {
		if !regexp.MustCompile(`(?m)^\| 1 \| torch-max 8, torch-pow2 ≥ 8, torch-oracle ≥ 8 \| ` + v + ` / torch-max \| ≥ 1\.00× \| - \|$`).MatchString(within) {
			t.Errorf("no within-hold %s / max row for run 1 (threshold %v):\n%s", v, thr, within)
		}
	}
	if regexp.MustCompile(`(?m)^\| 2 \| [^\n]*torch-max`).MatchString(within) {
		t.Errorf("run 2 has no torch-max, but a within-hold row names it:\n%s", within)
	}

	// Each trial's planned and actual time, its start-up from meta.json.
	if !regexp.MustCompile(`(?m)^\| 1 \| sim/torch-max rep 1 \| 4, 8, 32 \| [0-9]+ s \| [0-9ms]+ \| [0-9.ms]+ \| [+-][0-9]+% \|$`).MatchString(md) {
		t.Errorf("report.md lacks hold 1's torch-max row in the per-trial table")
	}

	// A trial finished twice (a repeated run into the same tree): the later
	// attempt counts and the earlier is named; a planned trial with no
	// finished attempt is listed as not run.
	olds, _ := filepath.Glob(filepath.Join(dir, "results-dense-hold1", "sim", "torch-max", "*"))
	if len(olds) != 1 {
		t.Fatalf("hold 1's torch-max trials: %v", olds)
	}
	again := olds[0] + "-again"
	if out, err := exec.Command("cp", "-a", olds[0], again).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	var st map[string]any
	b, err = os.ReadFile(filepath.Join(again, "status.json"))
	if err == nil {
		err = json.Unmarshal(b, &st)
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"started", "ended"} {
		tm, err := time.Parse(time.RFC3339Nano, st[k].(string))
		if err != nil {
			t.Fatal(err)
		}
		st[k] = tm.Add(time.Hour).Format(time.RFC3339Nano)
	}
	if b, err = json.Marshal(st); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(again, "status.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	file1, _, _ := strings.Cut(args[0], "=")
	if err := os.WriteFile(file1, []byte(holdStudy("dense-hold1", filepath.Join(dir, "results-dense-hold1"), tracePath, strings.Replace(hold1Variants,
		`variants = ["torch-max", "torch-pow2", "torch-oracle"]`, `variants = ["torch-max", "torch-pow2", "torch-oracle", "vllm-all-opt"]`, 1)+`[variants.vllm-all-opt]
preset = "sim-paged"
sim_speed = 20
rates = [8]
`)), 0o644); err != nil {
		t.Fatal(err)
	}
	out3 := filepath.Join(dir, "again")
	if err := run(context.Background(), append([]string{"-out", out3, "-workload", "sharegpt"}, args...)); err != nil {
		t.Fatal(err)
	}
	b, err = os.ReadFile(filepath.Join(out3, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	md3 := string(b)
	if !regexp.MustCompile(`(?m)^\| 1 \| .*dense-hold1\.toml` + "`" + ` \| .* \| 3 \| .* \| sim/vllm-all-opt rep 1 \|$`).MatchString(md3) {
		t.Errorf("the hold table does not list the trial not run:\n%s", md3)
	}
	if !strings.Contains(md3, "Left out, an earlier finished attempt of a trial that finished again: "+olds[0]+".") {
		t.Errorf("the earlier attempt is not named:\n%s", md3)
	}
	if n := strings.Count(md3, "| 1 | sim/torch-max rep 1 |"); n != 1 {
		t.Errorf("torch-max has %d rows in the per-trial table, want 1 (the later attempt)", n)
	}

	// The same results tree given for two runs would count its trials twice.
	err = run(context.Background(), []string{"-out", filepath.Join(dir, "twice"), "-workload", "sharegpt", args[1], args[1]})
	if err == nil || !strings.Contains(err.Error(), "is in run 1 and run 2") {
		t.Errorf("a results tree given twice: %v", err)
	}
	// Also spelled two ways.
	file, tree, _ := strings.Cut(args[1], "=")
	rel, rerr := filepath.Rel(".", tree)
	if rerr != nil {
		rel = tree + "/."
	}
	err = run(context.Background(), []string{"-out", filepath.Join(dir, "twice2"), "-workload", "sharegpt", args[1], file + "=" + rel + "/"})
	if err == nil || !strings.Contains(err.Error(), "is in run 1 and run 2") {
		t.Errorf("a results tree given twice, spelled two ways: %v", err)
	}

	// A damaged capture: the report is still written, says what was lost,
	// and the run ends in capture.ErrDamaged, as vbanalyze does.
	vlogs, _ := filepath.Glob(filepath.Join(dir, "results-dense-hold2", "*", "vllm-page", "*", "capture", "rate-8", "*.vlog"))
	if len(vlogs) == 0 {
		t.Fatal("no vlog in hold 2's vllm-page capture")
	}
	fi, err := os.Stat(vlogs[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(vlogs[0], fi.Size()/2); err != nil {
		t.Fatal(err)
	}
	out2 := filepath.Join(dir, "damaged")
	err = run(context.Background(), append([]string{"-out", out2, "-workload", "sharegpt"}, args...))
	if !errors.Is(err, capture.ErrDamaged) {
		t.Errorf("damaged capture: %v; want capture.ErrDamaged", err)
	}
	if b, rerr := os.ReadFile(filepath.Join(out2, "report.md")); rerr != nil || !strings.Contains(string(b), "## Warnings") {
		t.Errorf("report.md of a damaged run (%v) lacks its warnings:\n%s", rerr, b)
	}
}

// TestArgs: bad invocations say what is wanted; a results tree without
// the hold's trials is an error naming it.
func TestArgs(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{},
		{"-out", dir, "-workload", "x", "a.toml=b"},
		{"-out", dir, "-workload", "sharegpt", "nothing"},
	} {
		if err := run(context.Background(), args); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
	file := filepath.Join(dir, "h.toml")
	os.WriteFile(file, []byte(holdStudy("h", filepath.Join(dir, "res"), filepath.Join(dir, "none.bin"), hold2Variants)), 0o644)
	os.MkdirAll(filepath.Join(dir, "res"), 0o755)
	err := run(context.Background(), []string{"-out", dir, "-workload", "sharegpt", file + "=" + filepath.Join(dir, "res")})
	if err == nil || !strings.Contains(err.Error(), `no finished trial of study "h"`) {
		t.Errorf("empty results: %v", err)
	}
}

// TestVerdict: the ordering is reproduced only when each figure's
// interval lies wholly above the one before; overlapping bounds or CIs
// leave it undecided; one at or below the one before refutes it.
func TestVerdict(t *testing.T) {
	inf := math.Inf(1)
	nan := math.NaN()
	for _, tt := range []struct {
		xs   []interval
		want string
	}{
		{[]interval{{4.8, 4.8}, {9.3, 9.3}, {12, 12}, {15, 15}}, "yes"},
		{[]interval{{4.8, 4.8}, {9.3, 9.3}, {12, 12}, {12, 12}}, "**no**"},
		{[]interval{{4.8, 4.8}, {9.3, 9.3}, {12, inf}, {15, inf}}, "undecided (bounds or CIs overlap)"},
		{[]interval{{4.8, 4.8}, {9.3, 9.3}, {10, 14}, {13, 17}}, "undecided (bounds or CIs overlap)"},
		{[]interval{{4.8, 4.8}, {9.3, 9.3}, {12, inf}, {10, 11}}, "**no**"},
		{[]interval{{4.8, 4.8}, {nan, nan}, {12, 12}, {15, 15}}, "not all measured"},
		// Knees known only between two measured rates: [4.8, 6) and [6, 8) rise.
		{[]interval{{4.8, 6}, {6, 8}, {12, 15}, {15, inf}}, "yes"},
		{[]interval{{4.8, 9}, {6, 8}, {12, 15}, {15, inf}}, "undecided (bounds or CIs overlap)"},
	} {
		if got := verdict(tt.xs); got != tt.want {
			t.Errorf("verdict(%v) = %q; want %q", tt.xs, got, tt.want)
		}
	}
	// A variant that sustained none of its rates lies below its lowest one
	// (its Rate is NaN): paged that sustained nothing under 4 is "no", not
	// undecided.
	over := satInterval(analyze.Saturation{Rate: nan, Over: true, Next: 4})
	if over != (interval{0, 4}) {
		t.Errorf("satInterval(over, next 4) = %v; want [0, 4]", over)
	}
	if got := verdict([]interval{{1, 2}, {2, 3}, {5, 6}, over}); got != "**no**" {
		t.Errorf("verdict with paged below its lowest rate 4 and oracle at 5: %q; want **no**", got)
	}
}

// TestPlannedFromText reads the trials' estimates from plan.txt as vbbench
// plan prints them, with and without GPU lanes.
func TestPlannedFromText(t *testing.T) {
	text := `run order:
    1  llama-3-8b-dummy         vllm-page          rep 1  vllm          ≈8m48s    (done at ≈8m48s)  rates [4.7, 8, 12, 15]
    2  llama-3-8b-dummy         vllm-page+flash    rep 2  vllm          ≈8m45s    (done at ≈18m0s)  rates [8, 12, 18, 26]
    3  m                        torch-oracle       rep 1  torch         gpu 0,1     start ≈7m31s   ≈7m39s    (done at ≈15m0s)  rates [5.2]

estimate: ≈22m0s of the 27m0s budget (81%)
`
	got := plannedFromText(text)
	want := map[string]time.Duration{
		"llama-3-8b-dummy/vllm-page/rep1":       8*time.Minute + 48*time.Second,
		"llama-3-8b-dummy/vllm-page+flash/rep2": 8*time.Minute + 45*time.Second,
		"m/torch-oracle/rep1":                   7*time.Minute + 39*time.Second,
	}
	if len(got) != len(want) {
		t.Fatalf("got %v; want %v", got, want)
	}
	for k, d := range want {
		if got[k] != d {
			t.Errorf("%s: %v; want %v", k, got[k], d)
		}
	}
}

// TestOffGoal: a hold more than 10 % off its plan either way is marked.
func TestOffGoal(t *testing.T) {
	for _, tt := range []struct {
		actual, planned time.Duration
		marked          bool
	}{
		{110 * time.Second, 100 * time.Second, false},
		{111 * time.Second, 100 * time.Second, true},
		{89 * time.Second, 100 * time.Second, true},
		{time.Second, 0, false},
	} {
		if got := offGoal(tt.actual, tt.planned) != ""; got != tt.marked {
			t.Errorf("offGoal(%v, %v) marked %v; want %v", tt.actual, tt.planned, got, tt.marked)
		}
	}
}

// TestOrderingWithoutBaseline: a study of vLLM variants only (the MoE
// study) says it has no ordering to check instead of an empty table.
func TestOrderingWithoutBaseline(t *testing.T) {
	sat := map[string]analyze.Saturation{"vllm-page": {Variant: "vllm-page", Rate: 8}, "vllm-all-opt": {Variant: "vllm-all-opt", Rate: 20}}
	got := orderingSection(options{equalRate: 8}, sat, &analyze.Result{})
	if !strings.Contains(got, "no ordering to check") || strings.Contains(got, "| measure |") {
		t.Errorf("orderingSection:\n%s", got)
	}
	sat["torch-oracle"] = analyze.Saturation{Variant: "torch-oracle", Rate: 6}
	if got := orderingSection(options{}, sat, &analyze.Result{}); !strings.Contains(got, "| sustained rate (req/s) | - | - | 6 | 8 |") {
		t.Errorf("with torch-oracle:\n%s", got)
	}
}

// TestMachines lists each hold run's GPU and its fingerprints, a run
// without them as not measured, and refuses a damaged fingerprint.jsonl
// with its line.
func TestMachines(t *testing.T) {
	dir := t.TempDir()
	h1, h2 := filepath.Join(dir, "h1"), filepath.Join(dir, "h2")
	for _, d := range []string{h1, h2} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(path, text string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(h1, "device.txt"), "date: 2026-12-03T19:24:13Z\nNVIDIA H200, 143771 MiB, 580.159.04, GPU-48588586-48d9-cd39-2673-dab6fd807826, 00000000:00:06.0\n")
	write(filepath.Join(h1, "fingerprint.jsonl"), `{"label": "start", "cpu": {"model": "Xeon 8480", "count": 16, "mhz": 2100}, "load1": 0.5, "busiest": [], "py_loop_ns": 21.87, "launch_us": 4.1, "sync_us": 11.2, "hbm_gbs": 4100, "bf16_tflops": 690, "gpu": {"sm_mhz": "1980", "max_sm_mhz": "1980", "temp_c": "31"}}
{"label": "trial 3", "cpu": {"model": "Xeon 8480", "count": 16}, "load1": 2.25, "busiest": ["python3 812: 98%"], "py_loop_ns": 30.5, "launch_us": null, "sync_us": null, "hbm_gbs": null, "bf16_tflops": null, "gpu": null}
`)
	write(filepath.Join(h2, "device.txt"), "date: x\nNVIDIA H200, 143771 MiB, 580.159.04\n")
	var holds []*hold
	for i, d := range []string{h1, h2} {
		h := &hold{n: i + 1, file: filepath.Join(d, "study.toml"), gpu: gpuOf(filepath.Join(d, "device.txt"))}
		var err error
		if h.fingerprints, err = readFingerprints(filepath.Join(d, "fingerprint.jsonl")); err != nil {
			t.Fatal(err)
		}
		holds = append(holds, h)
	}
	md := machines(holds)
	for _, want := range []string{
		"| 1 | GPU-48588586-48d9-cd39-2673-dab6fd807826 | start | Xeon 8480 ×16 at 2100 MHz | 21.9 | 4.10 | 11.2 | 4100 | 690 | 1980/1980 | 31 | 0.50 | - |",
		"| 1 | GPU-48588586-48d9-cd39-2673-dab6fd807826 | trial 3 | Xeon 8480 ×16 | 30.5 | - | - | - | - | - | - | 2.25 | python3 812: 98% |",
		"| 2 | - | - | - | - | - | - | - | - | - | - | - | - |",
	} {
		if !strings.Contains(md, want+"\n") {
			t.Errorf("machines lacks %q:\n%s", want, md)
		}
	}
	write(filepath.Join(h2, "fingerprint.jsonl"), "{\"label\": \"start\"}\n{\"label\": \n")
	if _, err := readFingerprints(filepath.Join(h2, "fingerprint.jsonl")); err == nil || !strings.Contains(err.Error(), "fingerprint.jsonl:2:") {
		t.Errorf("a damaged fingerprint.jsonl: %v, want its line 2 named", err)
	}
}
