package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vbench/vbench/bench"
	"github.com/vbench/vbench/internal/testbin"
)

// TestSlurmArray runs a simulator study on a real Slurm cluster as a job
// array of four tasks: `vbbench slurm --wait` submits it, each task runs
// `vbbench run --trial N` into the shared results; one variant's server
// fails until a file exists, so its task fails; `vbbench slurm --resume`
// then submits that trial alone; `vbbench status` and `vbbench report`
// gather everything. It needs a running cluster whose sbatch is on PATH
// (scripts/slurm-test.sh starts one: make slurm-test) and VBENCH_SLURM=1.
func TestSlurmArray(t *testing.T) {
	if os.Getenv("VBENCH_SLURM") != "1" {
		t.Skip("needs a Slurm cluster: make slurm-test starts one and sets VBENCH_SLURM=1")
	}
	bin := testbin.Dir(t, "cmd/vbbench", "cmd/vbsim", "cmd/vbsynth")
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	fixed := filepath.Join(dir, "fixed")
	study := filepath.Join(dir, "study.toml")
	text := fmt.Sprintf(`name = "slurm-ci"
results_dir = "results"
reports_dir = "reports"
# Less than the four trials take one after another: neither the submission
# nor a task's run of one trial is held to the whole matrix's budget.
budget = "1m"
[trace]
path = "trace.bin"
generate = [%[1]q, "--dataset", "sharegpt", "--span", "5m", "--seed", "1", "--quiet", "-o", "{path}"]
[run]
rates = [4]
duration = "2s"
warmup = "0s"
drain = "5s"
startup_timeout = "30s"
stop_grace = "3s"
chart = false
[[models]]
name = "sim-8b"
model = "sim"
max_model_len = 4096
variants = ["sim-paged", "sim-contiguous", "sim-fast", "flaky"]
[variants.sim-paged]
preset = "sim-paged"
sim_speed = 20
[variants.sim-contiguous]
preset = "sim-contiguous"
sim_speed = 20
[variants.sim-fast]
preset = "sim-paged"
sim_speed = 40
[variants.flaky]
kind = "exec"
command = ["/bin/sh", "-c", "test -e %[2]s || { echo 'flaky: not fixed yet' >&2; exit 3; }; exec %[3]s --port {port} --speed 20"]
[slurm]
time = "10m"
`, filepath.Join(bin, "vbsynth"), fixed, filepath.Join(bin, "vbsim"))
	if err := os.WriteFile(study, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	vbbench := func(args ...string) (int, string, string) {
		t.Helper()
		cmd := exec.CommandContext(ctx, filepath.Join(bin, "vbbench"), args...)
		cmd.Dir = dir
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("vbbench %v: %v", args, err)
		}
		return code, out.String(), errb.String()
	}
	status := func() bench.StudyState {
		t.Helper()
		code, out, errOut := vbbench("status", "--json", "study.toml")
		var st bench.StudyState
		if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
			t.Fatalf("status: exit %d\n%s\n%s", code, out, errOut)
		}
		return st
	}

	// The whole array; the flaky trial fails.
	start := time.Now()
	code, out, errOut := vbbench("slurm", "--wait", "--poll", "1s", "study.toml")
	firstWall := time.Since(start)
	if code != 1 || !strings.Contains(out, "trials 1-4 (0 GPU per task)") || !strings.Contains(out, "4 of 4 trials submitted") ||
		!strings.Contains(errOut, "1 trials did not finish") || !strings.Contains(out, "report: ") {
		t.Fatalf("slurm: exit %d\n%s\n%s", code, out, errOut)
	}
	t.Logf("first array (4 tasks): %.1f s from submission to report\n%s", firstWall.Seconds(), out)
	if !strings.Contains(out, "… flaky: not fixed yet") {
		t.Errorf("the status table does not say why the trial failed:\n%s", out)
	}
	st := status()
	for _, tr := range st.Trials {
		want := bench.StatusOK
		if strings.Contains(tr.Key, "flaky") {
			want = bench.StatusFailed
		}
		if tr.Status != want || tr.Attempts != 1 || tr.Queue != "" {
			t.Errorf("%s: %+v, want %s", tr.Key, tr, want)
		}
	}
	subs, _ := filepath.Glob(filepath.Join(dir, "results", "slurm", "*", "submission.json"))
	if len(subs) != 1 {
		t.Fatalf("submissions %v", subs)
	}
	subDir := filepath.Dir(subs[0])
	outs, _ := filepath.Glob(filepath.Join(subDir, "task-*_*.out"))
	if len(outs) != 4 {
		t.Errorf("task outputs %v", outs)
	}
	flakyOut, _ := filepath.Glob(filepath.Join(subDir, "task-*_4.out"))
	if len(flakyOut) == 1 {
		if b, _ := os.ReadFile(flakyOut[0]); !bytes.Contains(b, []byte("flaky/rep1                        failed: backends: /bin/sh exited before it became healthy")) {
			t.Errorf("the failed task's output does not say it failed:\n%s", b)
		}
	}
	if !strings.Contains(st.Trials[3].Error, "flaky: not fixed yet") {
		t.Errorf("status does not say why the trial failed: %q", st.Trials[3].Error)
	}
	// A trial run by a task records its job in meta.json (the status's
	// directories are relative to the working directory, as the study's).
	var meta bench.Meta
	b, _ := os.ReadFile(filepath.Join(dir, st.Trials[0].Dir, "meta.json"))
	json.Unmarshal(b, &meta)
	if meta.Slurm["SLURM_ARRAY_TASK_ID"] != "1" || meta.Slurm["SLURM_ARRAY_JOB_ID"] == "" {
		t.Errorf("meta.json slurm: %v", meta.Slurm)
	}

	// Fixed: --resume submits the failed trial alone.
	if err := os.WriteFile(fixed, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = vbbench("slurm", "--resume", "--wait", "--poll", "1s", "study.toml")
	if code != 0 || !strings.Contains(out, "trials 4 (0 GPU per task)") || !strings.Contains(out, "1 of 4 trials submitted, 3 skipped") {
		t.Fatalf("slurm --resume: exit %d\n%s\n%s", code, out, errOut)
	}
	st = status()
	if st.Finished() != 4 || st.Trials[3].Attempts != 2 {
		t.Errorf("after --resume: %+v", st)
	}
	code, out, errOut = vbbench("run", "--executor", "slurm", "--resume", "study.toml")
	if code != 0 || !strings.Contains(out, "0 of 4 trials submitted, 4 skipped") {
		t.Errorf("nothing left: exit %d\n%s\n%s", code, out, errOut)
	}

	code, out, errOut = vbbench("report", "study.toml")
	path := strings.TrimSpace(strings.TrimPrefix(out, "report: "))
	report, err := os.ReadFile(filepath.Join(dir, path))
	if code != 0 || err != nil {
		t.Fatalf("report: exit %d %v\n%s\n%s", code, err, out, errOut)
	}
	for _, v := range []string{"sim-paged", "sim-contiguous", "sim-fast", "flaky"} {
		if !bytes.Contains(report, []byte(v)) {
			t.Errorf("report lacks %s", v)
		}
	}
	index, _ := os.ReadFile(filepath.Join(dir, "results", "README.md"))
	if n := strings.Count(string(index), "| slurm-ci |"); n != 5 || strings.Count(string(index), "# vbench results") != 1 {
		t.Errorf("index (want 5 rows, one header):\n%s", index)
	}
}
