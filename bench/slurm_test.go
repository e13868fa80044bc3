package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// slurmStudy writes a study file of three simulator variants and a vLLM
// variant with tensor parallelism 2 (the plan is never run) into dir.
func slurmStudy(t *testing.T, dir, slurm string) *Study {
	t.Helper()
	text := strings.Replace(studyText(t, dir), `variants = ["sim-paged", "sim-contiguous"]`,
		`variants = ["sim-paged", "sim-contiguous"]
[[models]]
name = "qwen"
model = "Qwen/Qwen3-8B"
max_model_len = 4096
variants = ["tp2"]
rates = [4]
[variants.tp2]
preset = "vllm-all-opt"
tensor_parallel_size = 2
vllm_version = "0.11.0"`, 1) + slurm
	path := filepath.Join(dir, "study.toml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := LoadStudy(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fakeSlurm puts sbatch and squeue scripts first on PATH: sbatch answers
// job ids 100, 101, … and records its script; squeue prints the file
// queue.txt of dir (lines "JOB TASK STATE").
func fakeSlurm(t *testing.T, dir string) {
	t.Helper()
	bin := filepath.Join(dir, "fakebin")
	os.MkdirAll(bin, 0o755)
	sbatch := `#!/bin/sh
n=$(cat "` + dir + `/next" 2>/dev/null || echo 100)
echo $((n+1)) > "` + dir + `/next"
echo "$@" >> "` + dir + `/sbatch.log"
echo "$n;cluster"
`
	squeue := `#!/bin/sh
echo "$@" >> "` + dir + `/squeue.log"
cat "` + dir + `/queue.txt" 2>/dev/null
`
	os.WriteFile(filepath.Join(bin, "sbatch"), []byte(sbatch), 0o755)
	os.WriteFile(filepath.Join(bin, "squeue"), []byte(squeue), 0o755)
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
}

func TestSubmitSlurmScripts(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	s := slurmStudy(t, dir, `[slurm]
partition = "gpu"
account = "lab"
time = "2h"
max_parallel = 2
mem = "32G"
vbbench = "/opt/vbench/bin/vbbench"
setup = ["module load cuda/12.4", "source /opt/venv/bin/activate"]
sbatch_args = ["--constraint=h100"]
`)
	s.GPU.MemoryGiB = 80
	p, err := MakePlan(context.Background(), s)
	if err != nil || p.Err() != nil {
		t.Fatalf("plan: %v %v", err, p.Err())
	}
	var progress bytes.Buffer
	sub, err := SubmitSlurm(context.Background(), p, SlurmOptions{DryRun: true, Config: s.Slurm, Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	if len(sub.Jobs) != 2 {
		t.Fatalf("jobs %+v", sub.Jobs)
	}
	sim, tp := sub.Jobs[0], sub.Jobs[1]
	if sim.GPUs != 0 || sim.Array != "1-2" || tp.GPUs != 2 || tp.Array != "3" || !slices.Equal(tp.Trials, []int{3}) {
		t.Errorf("arrays: %+v", sub.Jobs)
	}
	script, _ := os.ReadFile(tp.Script)
	for _, want := range []string{
		"#SBATCH --array=3%2\n", "#SBATCH --gres=gpu:2\n", "#SBATCH --partition=gpu\n", "#SBATCH --account=lab\n",
		"#SBATCH --time=120\n", "#SBATCH --mem=32G\n", "#SBATCH --constraint=h100\n", "#SBATCH --chdir=" + dir + "\n",
		"#SBATCH --output=" + sub.Dir + "/task-%A_%a.out\n", "module load cuda/12.4\nsource /opt/venv/bin/activate\n",
		`exec '/opt/vbench/bin/vbbench' run --trial "$SLURM_ARRAY_TASK_ID" --resume --gpus none '` + sub.Dir + "/study.toml'\n",
	} {
		if !strings.Contains(string(script), want) {
			t.Errorf("script lacks %q:\n%s", want, script)
		}
	}
	if simScript, _ := os.ReadFile(sim.Script); strings.Contains(string(simScript), "--gres") {
		t.Errorf("the simulator's array asks for GRES:\n%s", simScript)
	}
	// The tasks read a frozen copy of the study; the trace is stored.
	if b, _ := os.ReadFile(filepath.Join(sub.Dir, "study.toml")); !bytes.Contains(b, []byte(`name = "sim-ci"`)) {
		t.Errorf("frozen study: %q", b)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "results", "traces", "*.bin")); len(m) != 1 {
		t.Errorf("stored traces: %v", m)
	}
	if !strings.Contains(progress.String(), "written (dry run, not submitted)") {
		t.Errorf("progress: %s", progress.String())
	}

	// gres = "none", a typed GRES and the default time limit.
	cfg := s.Slurm
	cfg.GRES, cfg.Time = "gpu:a100", 0
	sub, err = SubmitSlurm(context.Background(), p, SlurmOptions{DryRun: true, Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	script, _ = os.ReadFile(sub.Jobs[1].Script)
	worst := trialEstimate(p.Trials[2].Variant.Spec, s.Run, p.Trials[2].Rates, s.Run.Drain.D(), 0)
	if !strings.Contains(string(script), "--gres=gpu:a100:2\n") || !strings.Contains(string(script), "--time="+slurmTime(worst*3/2+10*time.Minute)+"\n") {
		t.Errorf("typed gres / default time:\n%s", script)
	}
	cfg.GRES = "none"
	sub, _ = SubmitSlurm(context.Background(), p, SlurmOptions{DryRun: true, Config: cfg})
	if len(sub.Jobs) != 1 || sub.Jobs[0].Array != "1-3" {
		t.Errorf("gres none: %+v", sub.Jobs)
	}
}

// TestSubmitSlurmResume: with fake sbatch and squeue, a resubmission
// leaves out finished trials and those still queued, and status tells
// queued, finished, failed and lost trials apart.
func TestSubmitSlurmResume(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	fakeSlurm(t, dir)
	s := slurmStudy(t, dir, "")
	s.GPU.MemoryGiB = 80
	p, _ := MakePlan(context.Background(), s)
	ctx := context.Background()
	sub, err := SubmitSlurm(ctx, p, SlurmOptions{Config: s.Slurm})
	if err != nil {
		t.Fatal(err)
	}
	if len(sub.Jobs) != 2 || sub.Jobs[0].ID != "100" || sub.Jobs[1].ID != "101" {
		t.Fatalf("jobs %+v", sub.Jobs)
	}
	log, _ := os.ReadFile(filepath.Join(dir, "sbatch.log"))
	if !strings.Contains(string(log), "--parsable "+sub.Jobs[0].Script) {
		t.Errorf("sbatch called with %q", log)
	}

	// Trial 1 finished, trial 2 ran under Slurm and its task vanished,
	// trial 3 is still pending.
	writeAttempt := func(tr Trial, status string, slurm bool) {
		d := filepath.Join(dir, "results", SanitizeName(tr.Model.Name), SanitizeName(tr.Variant.Name), "x")
		os.MkdirAll(d, 0o755)
		writeJSON(filepath.Join(d, "status.json"), TrialStatus{Study: s.Name, Key: tr.Key(), Status: status, Started: time.Now()})
		meta := Meta{}
		if slurm {
			meta.Slurm = map[string]string{"SLURM_JOB_ID": "100"}
		}
		writeJSON(filepath.Join(d, "meta.json"), meta)
	}
	writeAttempt(p.Trials[0], StatusOK, true)
	writeAttempt(p.Trials[1], StatusRunning, true)
	os.WriteFile(filepath.Join(dir, "queue.txt"), []byte("101 3 PENDING\n"), 0o644)

	st, err := Status(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	got := []string{st.Trials[0].Status, st.Trials[1].Status, st.Trials[2].Status + "/" + st.Trials[2].Queue + "/" + st.Trials[2].Job}
	if !slices.Equal(got, []string{StatusOK, StatusLost, StatusNotStarted + "/PENDING/101"}) || st.Finished() != 1 {
		t.Errorf("status: %v", got)
	}
	var out bytes.Buffer
	st.Print(&out, s.ResultsDir)
	if !strings.Contains(out.String(), "3 trials, 1 finished (1 ok, 1 lost, 1 not-started); 1 in the Slurm queue") ||
		!strings.Contains(out.String(), "slurm 101 pending") {
		t.Errorf("status table:\n%s", out.String())
	}
	squeueArgs, _ := os.ReadFile(filepath.Join(dir, "squeue.log"))
	if !strings.Contains(string(squeueArgs), "-j 100,101") {
		t.Errorf("squeue asked %q", squeueArgs)
	}

	sub2, err := SubmitSlurm(ctx, p, SlurmOptions{Config: s.Slurm, Resume: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(sub2.Jobs) != 1 || sub2.Jobs[0].Array != "2" || len(sub2.Skipped) != 2 ||
		!strings.Contains(sub2.Skipped[1], "pending in Slurm job 101") {
		t.Errorf("resubmission: %+v", sub2)
	}
	subs, _ := Submissions(s)
	if len(subs) != 2 {
		t.Errorf("%d submissions recorded", len(subs))
	}

	// Nothing left to submit: no job, no directory.
	os.WriteFile(filepath.Join(dir, "queue.txt"), []byte("101 3 RUNNING\n102 2 PENDING\n"), 0o644)
	sub3, err := SubmitSlurm(ctx, p, SlurmOptions{Config: s.Slurm, Resume: true})
	if err != nil || len(sub3.Jobs) != 0 || sub3.Dir != "" {
		t.Errorf("nothing to submit: %+v %v", sub3, err)
	}
}

func TestSlurmHelpers(t *testing.T) {
	for _, tt := range []struct {
		in   []int
		want string
	}{{[]int{1, 2, 3, 4}, "1-4"}, {[]int{7, 1, 2, 9, 10}, "1-2,7,9-10"}, {[]int{5}, "5"}} {
		if got := arraySpec(tt.in); got != tt.want {
			t.Errorf("arraySpec(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := slurmTime(61 * time.Second); got != "2" {
		t.Errorf("slurmTime(61s) = %s", got)
	}
	if got := shellQuote("it's"); got != `'it'\''s'` {
		t.Errorf("shellQuote = %s", got)
	}
	q := SlurmQueue{State: map[int]string{}, Job: map[int]string{}}
	parseQueue("200 3 RUNNING\n200 4 PENDING\ngarbage\n", &q)
	if q.State[3] != "RUNNING" || q.State[4] != "PENDING" || q.Job[4] != "200" || len(q.State) != 2 {
		t.Errorf("parseQueue: %+v", q)
	}
	for _, bad := range []string{`partition = "a b"`, `mem = "lots"`, `sbatch_args = ["constraint=x"]`, `time = "-1s"`} {
		_, err := ParseStudy(`name = "x"
[trace]
path = "t.bin"
[run]
rates = [1]
duration = "1s"
[[models]]
name = "m"
variants = ["sim-paged"]
[slurm]
` + bad + "\n")
		if err == nil || !strings.Contains(err.Error(), "slurm.") {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

// TestSubmitSlurmNeedsSbatch: without sbatch the error says where to
// submit from; the results are not touched.
func TestSubmitSlurmNeedsSbatch(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	s := slurmStudy(t, dir, "")
	s.GPU.MemoryGiB = 80
	p, _ := MakePlan(context.Background(), s)
	t.Setenv("PATH", t.TempDir())
	_, err := SubmitSlurm(context.Background(), p, SlurmOptions{})
	if err == nil || !strings.Contains(err.Error(), "sbatch not found") || !strings.Contains(err.Error(), "--dry-run") {
		t.Errorf("err = %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "results")); !os.IsNotExist(err) {
		t.Error("results written without sbatch")
	}
}

// TestSlurmDocs: the [slurm] table docs/vbbench.md shows is valid and
// reaches the batch script; examples/scale-100.toml submits (dry run) as
// the three arrays docs/scaling.md lays out.
func TestSlurmDocs(t *testing.T) {
	doc, err := os.ReadFile("../docs/vbbench.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "```toml\n[slurm]\n")
	table, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("docs/vbbench.md has no ```toml [slurm] block")
	}
	scale, err := os.ReadFile("../examples/scale-100.toml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	t.Chdir(dir)
	writeTrace(t, "trace.bin", 1500)
	text := strings.Replace(string(scale), `path = "traces/sharegpt-25m.bin"`, `path = "trace.bin"`, 1) + "\n[slurm]\n" + table
	os.WriteFile("scale.toml", []byte(text), 0o644)
	s, err := LoadStudy("scale.toml")
	if err != nil {
		t.Fatalf("the documented [slurm] table: %v", err)
	}
	p, err := MakePlan(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := SubmitSlurm(context.Background(), p, SlurmOptions{DryRun: true, Config: s.Slurm})
	if err != nil {
		t.Fatal(err)
	}
	var arrays []string
	for _, j := range sub.Jobs {
		arrays = append(arrays, fmt.Sprintf("%s:%d", j.Array, j.GPUs))
	}
	if !slices.Equal(arrays, []string{"1-80:1", "81-95:4", "96-100:8"}) {
		t.Errorf("arrays %v", arrays)
	}
	script, _ := os.ReadFile(sub.Jobs[2].Script)
	for _, want := range []string{"#SBATCH --array=96-100%16\n", "#SBATCH --gres=gpu:8\n", "#SBATCH --time=120\n", "#SBATCH --qos=normal\n",
		"#SBATCH --cpus-per-task=8\n", "#SBATCH --exclusive\n", "module load cuda/12.4\n", "exec '/shared/vbench/bin/vbbench' run"} {
		if !strings.Contains(string(script), want) {
			t.Errorf("script lacks %q:\n%s", want, script)
		}
	}
	// Without a time in the table: 1.5 × the array's worst trial + 10 min:
	// 31 min for the one-GPU array (the MoE model's vllm-all-opt, 14 min
	// in the worst case), 26 for the 70B arrays.
	cfg := s.Slurm
	cfg.Time = 0
	sub, _ = SubmitSlurm(context.Background(), p, SlurmOptions{DryRun: true, Config: cfg})
	for i, j := range sub.Jobs {
		want := []string{"31", "26", "26"}[min(i, 2)]
		if b, _ := os.ReadFile(j.Script); !bytes.Contains(b, []byte("#SBATCH --time="+want+"\n")) {
			t.Errorf("%s: default time %s min wanted:\n%s", j.Script, want, b)
		}
	}
}
