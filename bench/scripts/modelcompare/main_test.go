package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/vbench/vbench/bench"
	"github.com/vbench/vbench/internal/testbin"
)

func TestMain(m *testing.M) { os.Exit(testbin.Main(m)) }

// twoModels is a simulated study of two models served by the same
// variants, as the dense and the MoE study are: "moe" runs at most 4
// requests at once (max_num_seqs; "dense" 64), so at equal rate it batches
// at most 4 and its requests queue: its normalized latency must come out
// higher.
func twoModels(results, tracePath string) string {
	return `name = "dense-vs-moe"
results_dir = "` + results + `"
reports_dir = "` + results + `/reports"
[trace]
path = "` + tracePath + `"
[run]
rates = [40, 80]
duration = "1s"
warmup = "300ms"
max_drain = "5s"
startup_timeout = "20s"
stop_grace = "3s"
chart = false
[[models]]
name = "dense"
model = "sim"
max_model_len = 2048
kv_cache_tokens = 8192
variants = ["vllm-page", "vllm-all-opt"]
max_num_seqs = 64
[[models]]
name = "moe"
model = "sim"
max_model_len = 2048
kv_cache_tokens = 8192
variants = ["vllm-page"]
max_num_seqs = 4
[variants.vllm-page]
preset = "sim-paged"
sim_speed = 20
[variants.vllm-all-opt]
preset = "sim-paged"
sim_speed = 20
`
}

// TestModelCompare runs the two-model study on the simulator and compares
// the models at 80 req/s: a row per model for the variant both ran (none
// for the one only the dense model ran), the 4-request model batching at
// most 4 and queueing (its normalized latency above the other's), and their
// ratios; then the errors a user meets.
func TestModelCompare(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a simulated study of two models (≈15 s)")
	}
	sim := testbin.Dir(t, "cmd/vbsim")
	dir := t.TempDir()
	tracePath := filepath.Join(dir, "trace.bin")
	testbin.Trace(t, tracePath, "--dataset", "sharegpt", "--requests", "400", "--max-total", "2048", "--seed", "1", "--quiet")
	results := filepath.Join(dir, "results")
	s, err := bench.ParseStudy(twoModels(results, tracePath))
	if err != nil {
		t.Fatal(err)
	}
	p, err := bench.MakePlan(context.Background(), s)
	if err != nil || p.Err() != nil {
		t.Fatalf("plan: %v %v", err, p.Err())
	}
	if _, err := bench.Run(context.Background(), p, bench.RunOptions{SearchDirs: []string{sim}}); err != nil {
		t.Fatalf("run: %v", err)
	}
	out := filepath.Join(dir, "compare")
	var stderr bytes.Buffer
	if err := run(context.Background(), []string{"-out", out, "-rate", "80", "-base", "dense", results}, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	b, err := os.ReadFile(filepath.Join(out, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	md := string(b)
	t.Log(md)
	row := func(model string) []string {
		m := regexp.MustCompile(`(?m)^\| vllm-page \| ` + model + ` \| 1 \| ([0-9.]+) \| [0-9.]+ \| ([0-9.]+) \| [0-9.]+ \| .*\|$`).FindStringSubmatch(md)
		if m == nil {
			t.Fatalf("no vllm-page row for %s", model)
		}
		return m[1:]
	}
	dense, moe := row("dense"), row("moe")
	num := func(s string) float64 {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if num(moe[0]) <= num(dense[0]) || num(moe[1]) > 4.01 || num(dense[1]) <= 4 {
		t.Errorf("normalized latency moe %s, dense %s (want moe's above); batched moe %s (want ≤ 4), dense %s (want > 4)", moe[0], dense[0], moe[1], dense[1])
	}
	if strings.Contains(md, "| vllm-all-opt |") {
		t.Error("a row for vllm-all-opt, which only one model ran")
	}
	if !regexp.MustCompile(`(?m)^\| vllm-page \| moe / dense \| [0-9.]+× \| [0-9.]+× \| [0-9.]+× \| [0-9.]+× \|$`).MatchString(md) {
		t.Error("no ratio row moe / dense")
	}
	if _, err := os.Stat(filepath.Join(out, "analysis", "charts", "norm_latency_vs_rate.png")); err != nil {
		t.Errorf("chart: %v", err)
	}

	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"-out", out, results}, "want -out DIR, at least one -rate R"},
		{[]string{"-out", out, "-rate", "0", results}, "want a rate in req/s > 0"},
		{[]string{"-out", out, "-rate", "80", "-base", "nope", results}, "-base nope: not among the captures' models (dense, moe)"},
		{[]string{"-out", out, "-rate", "5", results}, "no variant was run by two models at [5] req/s"},
		{[]string{"-out", out, "-rate", "80", filepath.Join(results, "moe")}, "the captures hold 1 model(s) (moe): nothing to compare"},
	} {
		var e bytes.Buffer
		if err := run(context.Background(), tt.args, &e); err == nil || !strings.Contains(err.Error()+e.String(), tt.want) {
			t.Errorf("%q: %v %s; want %q", tt.args, err, e.String(), tt.want)
		}
	}
}
