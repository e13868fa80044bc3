package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vbench/vbench/internal/cli"
)

func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestPlanExamples(t *testing.T) {
	for _, f := range []string{"demo.toml", "dense-4090.toml", "moe-h100.toml"} {
		code, out, errOut := runCLI("plan", filepath.Join("..", "..", "examples", f))
		if code != cli.ExitOK || !strings.Contains(out, "plan ok") || !strings.Contains(out, "run order:") {
			t.Errorf("plan %s: exit %d\n%s\n%s", f, code, out, errOut)
		}
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
		{[]string{"plan", filepath.Join(dir, "missing.toml")}, cli.ExitFailure, "", "no such file", ""},
		{[]string{"plan"}, cli.ExitUsage, "", "want exactly one study file", ""},
		{[]string{"run", "--no-such-flag", "x.toml"}, cli.ExitUsage, "", "unknown flag", ""},
		{[]string{"probe", "--variants", "nope", filepath.Join("..", "..", "examples", "demo.toml")}, cli.ExitFailure, "", `"nope" is not a variant`, ""},
		{[]string{"probe", "--level", "0s", "x.toml"}, cli.ExitUsage, "", "--level", ""},
		{[]string{"probe", "--points", "1", "x.toml"}, cli.ExitUsage, "", "--points 2 or more", ""},
		{[]string{"probe"}, cli.ExitUsage, "", "want exactly one study file", ""},
		{[]string{"frobnicate"}, cli.ExitUsage, "", `unknown command "frobnicate"`, ""},
		{nil, cli.ExitUsage, "", "Commands:", ""},
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
	for _, want := range []string{"run order: 2 GPU lanes (0,1)", "gpu 1 ", "estimate: ≈1m12s on 2 GPU lanes (serially ≈2m24s, 2.0× longer)", "plan ok"} {
		if code != cli.ExitOK || !strings.Contains(out, want) {
			t.Errorf("plan --gpus 0,1: exit %d, output lacks %q:\n%s\n%s", code, want, out, errOut)
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
