package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vbench/vbench/bench"
	"github.com/vbench/vbench/internal/cli"
	"github.com/vbench/vbench/internal/testbin"
	"github.com/vbench/vbench/trace"
)

func TestMain(m *testing.M) { os.Exit(testbin.Main(m)) }

// TestProbeShortTrace probes a simulated server with a trace far too short
// for the study's run.duration: the probe warns before its first step
// (too few requests for the top steps), still suggests a ladder, and says
// on stderr, in probe.md and in probe.json which rates the trace cannot
// fill and the vbsynth command that makes one that can.
func TestProbeShortTrace(t *testing.T) {
	if testing.Short() {
		t.Skip("probes a simulated server (≈5 s)")
	}
	t.Setenv("PATH", testbin.Dir(t, "cmd/vbsim")+string(os.PathListSeparator)+os.Getenv("PATH"))
	dir := t.TempDir()
	tracePath := filepath.Join(dir, "trace.bin")
	reqs := make([]trace.Request, 120)
	for i := range reqs {
		reqs[i] = trace.Request{Index: int64(i), Offset: time.Duration(i) * time.Second, Endpoint: trace.EndpointCompletions,
			Prompt: strings.Repeat("word ", 40), InputTokens: 40, OutputTokens: 20, Sampling: trace.Sampling{MaxTokens: 20, MinTokens: 20, IgnoreEOS: true}}
	}
	if _, err := trace.WriteFile(tracePath, trace.Header{Generator: "test", Arrival: trace.ArrivalConstant, MeanRate: 1}, reqs); err != nil {
		t.Fatal(err)
	}
	// 119 s of trace at 1 req/s lasts warm-up + duration = 10 min only up
	// to 0.2 req/s: any real knee is past it.
	study := `name = "probe-short"
results_dir = "` + filepath.Join(dir, "results") + `"
reports_dir = "` + filepath.Join(dir, "reports") + `"
[trace]
path = "` + tracePath + `"
generate = ["vbsynth", "--dataset", "sharegpt", "--span", "2m", "--seed", "1", "-o", "{path}"]
[run]
duration = "10m"
drain = "5s"
startup_timeout = "20s"
stop_grace = "3s"
[[models]]
name = "sim"
model = "sim"
max_model_len = 2048
variants = ["sim-paged"]
[variants.sim-paged]
preset = "sim-paged"
sim_speed = 20
`
	path := filepath.Join(dir, "s.toml")
	if err := os.WriteFile(path, []byte(study), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "probe")
	code, stdout, stderr := runCLI("probe", "--quiet", "--level", "300ms", "--max-concurrency", "64", "--out", out, path)
	if code != cli.ExitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	var res bench.ProbeResult
	b, err := os.ReadFile(filepath.Join(out, "probe.json"))
	if err != nil || json.Unmarshal(b, &res) != nil {
		t.Fatalf("probe.json: %v\n%s", err, b)
	}
	tr := res.Trace
	if len(res.Ladder) < 2 || len(tr.ShortRates) == 0 || tr.ShortRates[len(tr.ShortRates)-1] != res.Ladder[len(res.Ladder)-1] || tr.WantRequests <= 120 {
		t.Fatalf("ladder %v, trace %+v; want short rates ending at the ladder's top and a longer trace", res.Ladder, tr)
	}
	cmd := fmt.Sprintf("vbsynth --dataset sharegpt --requests %d --seed 1 -o %s", tr.WantRequests, tracePath)
	if tr.Command != cmd || !strings.Contains(tr.Fix, tr.Command) {
		t.Errorf("command %q; want %q (fix: %s)", tr.Command, cmd, tr.Fix)
	}
	md, _ := os.ReadFile(filepath.Join(out, "probe.md"))
	// Before the first step (stderr even with --quiet), then the fix.
	for _, want := range []string{"warning: the trace's 120 requests are too few for concurrency 64", "warning: the trace is too short for the suggested rates", tr.Command} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if i, j := strings.Index(stderr, "too few for concurrency"), strings.Index(stderr, "too short for the suggested"); i > j {
		t.Errorf("the pre-start warning comes after the fix:\n%s", stderr)
	}
	for name, text := range map[string]string{"probe.md": string(md), "stdout": stdout} {
		for _, want := range []string{"**Trace too short:**", "## Warnings", "All variants: [", "#   " + tr.Command} {
			if !strings.Contains(text, want) {
				t.Errorf("%s lacks %q:\n%s", name, want, text)
			}
		}
	}
	// The fix works: plan accepts the ladder with a trace of the suggested size.
	long := make([]trace.Request, tr.WantRequests)
	for i := range long {
		long[i] = reqs[0]
		long[i].Index, long[i].Offset = int64(i), time.Duration(i)*time.Second
	}
	if _, err := trace.WriteFile(tracePath, trace.Header{Generator: "test", Arrival: trace.ArrivalConstant, MeanRate: 1}, long); err != nil {
		t.Fatal(err)
	}
	withRates := strings.Replace(study, "[run]\n", "[run]\nrates = "+ratesLine(res.Ladder)+"\n", 1)
	if err := os.WriteFile(path, []byte(withRates), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, stdout, stderr := runCLI("plan", path); code != cli.ExitOK || strings.Contains(stdout+stderr, "shorter than warm-up") {
		t.Errorf("plan with the suggested trace: exit %d\n%s\n%s", code, stdout, stderr)
	}
}

func ratesLine(r []float64) string {
	b, _ := json.Marshal(r)
	return string(b)
}
