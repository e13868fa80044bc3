package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Slurm: a study's trials as a job array. vbbench does not schedule
// across hosts itself; Slurm, the workload manager of most research GPU
// clusters, does. Submit writes one batch script per GPU count (an array
// has one --gres for all its tasks) and submits it with sbatch --array,
// one task per trial, the array index being the trial's number in the
// plan's run order; each task runs `vbbench run --trial $SLURM_ARRAY_TASK_ID
// --resume --gpus none STUDY.toml` into the study's results directory,
// which every node must see (a shared filesystem). vbbench status and
// vbbench report read what the tasks wrote; Submit with Resume submits
// again the trials not finished and not queued.

// SlurmConfig is the [slurm] table of a study: how its trials are
// submitted. vbbench slurm's flags override it key by key.
type SlurmConfig struct {
	// Partition, Account and QOS are sbatch's --partition, --account and
	// --qos (empty: the cluster's defaults).
	Partition string `toml:"partition" json:"partition,omitempty"`
	Account   string `toml:"account" json:"account,omitempty"`
	QOS       string `toml:"qos" json:"qos,omitempty"`
	// Time is each task's limit (--time); 0: 1.5 × the plan's worst case of
	// the longest trial of the array, plus 10 minutes.
	Time Duration `toml:"time" json:"time,omitempty"`
	// GRES is the generic resource a GPU trial asks for, N times its
	// variant's GPUs: "gpu" (default: --gres=gpu:N), a typed one such as
	// "gpu:a100" (--gres=gpu:a100:N), or "none" (ask for no GRES; select
	// GPUs with sbatch_args, e.g. --gpus-per-task, or a GPU partition).
	GRES string `toml:"gres" json:"gres,omitempty"`
	// CPUsPerTask and Mem are --cpus-per-task and --mem (e.g. "64G").
	CPUsPerTask int    `toml:"cpus_per_task" json:"cpus_per_task,omitempty"`
	Mem         string `toml:"mem" json:"mem,omitempty"`
	// MaxParallel caps the array's tasks running at once (--array=…%N; 0:
	// no cap).
	MaxParallel int `toml:"max_parallel" json:"max_parallel,omitempty"`
	// Vbbench is the vbbench program as the compute nodes see it (default:
	// the running executable; vbsim is looked for next to it).
	Vbbench string `toml:"vbbench" json:"vbbench,omitempty"`
	// Setup are shell lines each task runs before vbbench (module load,
	// activating the environment of vLLM).
	Setup []string `toml:"setup" json:"setup,omitempty"`
	// SbatchArgs are further sbatch options, each a whole "--opt=value".
	SbatchArgs []string `toml:"sbatch_args" json:"sbatch_args,omitempty"`
}

var memRE = regexp.MustCompile(`^[0-9]+[KMGT]?$`)

func (c SlurmConfig) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	for name, v := range map[string]string{"partition": c.Partition, "account": c.Account, "qos": c.QOS, "gres": c.GRES} {
		if strings.ContainsAny(v, " \t\n'\"\\$`;") {
			bad("slurm.%s %q: one name, without spaces or quotes", name, v)
		}
	}
	if c.Time < 0 {
		bad("slurm.time must not be negative")
	}
	if c.CPUsPerTask < 0 || c.MaxParallel < 0 {
		bad("slurm.cpus_per_task and slurm.max_parallel must not be negative")
	}
	if c.Mem != "" && !memRE.MatchString(c.Mem) {
		bad("slurm.mem %q: want a size such as 64G or 8000M", c.Mem)
	}
	for _, a := range c.SbatchArgs {
		if !strings.HasPrefix(a, "-") || strings.ContainsAny(a, "\n") {
			bad("slurm.sbatch_args %q: want one sbatch option such as --constraint=h100", a)
		}
	}
	for _, l := range c.Setup {
		if strings.Contains(l, "\n") {
			bad("slurm.setup: one shell line per entry (%q)", l)
		}
	}
	return errors.Join(errs...)
}

// SlurmOptions are the settings of one submission.
type SlurmOptions struct {
	// Config is the study's [slurm] with the command line's overrides.
	Config SlurmConfig
	// Resume submits only the trials that did not finish before and are
	// not pending or running in an earlier submission of the study.
	Resume bool
	// Force submits despite plan errors.
	Force bool
	// DryRun writes the batch scripts without submitting them.
	DryRun bool
	// SearchDirs are searched for vbsynth when the trace must be made.
	SearchDirs []string
	// Progress receives what is done (nil: nothing).
	Progress io.Writer
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Submission is results/slurm/<time>/submission.json: what one vbbench
// slurm submitted.
type Submission struct {
	Study string    `json:"study"`
	Time  time.Time `json:"time"`
	// Dir holds the batch scripts, the tasks' output and this record.
	Dir  string     `json:"dir"`
	Jobs []SlurmJob `json:"jobs"`
	// Skipped are trials left out: finished before, or still queued.
	Skipped []string `json:"skipped,omitempty"`
}

// SlurmJob is one submitted job array.
type SlurmJob struct {
	// ID is the job id sbatch answered ("" on a dry run).
	ID string `json:"id"`
	// Script is the batch script; Array its --array value.
	Script string `json:"script"`
	Array  string `json:"array"`
	// Trials are the trials' numbers in the run order (= array indexes).
	Trials []int `json:"trials"`
	// GPUs is the GPUs each task asked for (--gres; 0: none).
	GPUs int `json:"gpus"`
}

// SubmitSlurm submits the plan's trials to Slurm as job arrays. It makes
// and stores the trace first, so that no task has to.
func SubmitSlurm(ctx context.Context, p *Plan, opt SlurmOptions) (*Submission, error) {
	if err := p.errs(false); err != nil && !opt.Force {
		return nil, fmt.Errorf("%w (fix the study, or pass --force to submit anyway)", err)
	}
	if err := opt.Config.validate(); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Progress == nil {
		opt.Progress = io.Discard
	}
	if p.budgetErr != "" {
		fmt.Fprintf(opt.Progress, "note: serially the study needs ≈%s, over its budget of %s; on the cluster its wall time depends on the GPUs Slurm gives it (vbbench plan --gpus with their ids projects it)\n",
			roundDur(p.Estimate), roundDur(p.Study.Budget.D()))
	}
	s := p.Study
	if s.Path() == "" {
		return nil, errors.New("bench: slurm: the study must come from a file (the tasks read a copy of it)")
	}
	studyPath := s.Path()
	// The tasks work where the submitter does (--chdir): the study's
	// relative paths resolve alike for both.
	workDir, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	exe := opt.Config.Vbbench
	if exe == "" {
		if exe, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("bench: slurm: the vbbench program: %w (set slurm.vbbench)", err)
		}
	}
	sbatch := "sbatch"
	if !opt.DryRun {
		if sbatch, err = exec.LookPath("sbatch"); err != nil {
			return nil, errors.New("bench: slurm: sbatch not found: submit from a host of the Slurm cluster (a login node), or pass --dry-run to write the scripts only")
		}
	}

	// The trace, once, before any task starts.
	if _, _, _, err := readyTrace(ctx, p, opt.SearchDirs, opt.Force); err != nil {
		return nil, err
	}

	sub := &Submission{Study: s.Name, Time: opt.Now().UTC()}
	todo := p.Trials
	if opt.Resume {
		finished, err := scanFinished(s.ResultsDir, s.Name)
		if err != nil {
			return nil, err
		}
		q := ReadSlurmQueue(ctx, s)
		if q.Err != "" {
			return nil, fmt.Errorf("bench: slurm: %s; cannot tell which trials are still queued (wait, or cancel the study's jobs, before --resume)", q.Err)
		}
		todo = nil
		for _, t := range p.Trials {
			switch {
			case finished[t.Key()].Key != "":
				sub.Skipped = append(sub.Skipped, fmt.Sprintf("%d %s: finished (%s)", t.Index+1, t.Key(), finished[t.Key()].Status))
			case q.State[t.Index+1] != "":
				sub.Skipped = append(sub.Skipped, fmt.Sprintf("%d %s: %s in Slurm job %s", t.Index+1, t.Key(), strings.ToLower(q.State[t.Index+1]), q.Job[t.Index+1]))
			default:
				todo = append(todo, t)
			}
		}
	}
	for _, line := range sub.Skipped {
		fmt.Fprintf(opt.Progress, "skipped: %s\n", line)
	}
	if len(todo) == 0 {
		fmt.Fprintln(opt.Progress, "nothing to submit: every trial finished or is queued")
		return sub, nil
	}
	if sub.Dir, err = submissionDir(s.ResultsDir, sub.Time); err != nil {
		return nil, err
	}
	// The tasks read a copy of the study: editing the file while they
	// wait in the queue must not renumber their trials.
	frozen := filepath.Join(sub.Dir, "study.toml")
	if err := copyFile(studyPath, frozen); err != nil {
		return nil, err
	}

	// One array per GPU count: --gres holds for every task of an array.
	groups := map[int][]Trial{}
	for _, t := range todo {
		n := slurmGPUs(t, opt.Config)
		groups[n] = append(groups[n], t)
	}
	counts := make([]int, 0, len(groups))
	for n := range groups {
		counts = append(counts, n)
	}
	sort.Ints(counts)
	for _, n := range counts {
		job := SlurmJob{GPUs: n}
		var worst time.Duration
		for _, t := range groups[n] {
			job.Trials = append(job.Trials, t.Index+1)
			worst = max(worst, trialEstimate(t.Variant.Spec, s.Run, t.Rates, s.Run.DrainBound(), 0))
		}
		job.Array = arraySpec(job.Trials)
		limit := opt.Config.Time.D()
		if limit == 0 {
			limit = worst*3/2 + 10*time.Minute
		}
		job.Script = filepath.Join(sub.Dir, fmt.Sprintf("array-%dgpu.sh", n))
		text := batchScript(s, frozen, workDir, exe, sub.Dir, job, limit, opt)
		if err := os.WriteFile(job.Script, []byte(text), 0o755); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		if !opt.DryRun {
			out, err := exec.CommandContext(ctx, sbatch, "--parsable", job.Script).CombinedOutput()
			if err != nil {
				writeJSON(filepath.Join(sub.Dir, "submission.json"), sub)
				return sub, fmt.Errorf("bench: sbatch %s: %v\n%s", job.Script, err, lastLines(string(out), 10))
			}
			// --parsable answers "jobid" or "jobid;cluster".
			job.ID, _, _ = strings.Cut(strings.TrimSpace(lastLine(string(out))), ";")
		}
		sub.Jobs = append(sub.Jobs, job)
		what := "submitted as job " + job.ID
		if opt.DryRun {
			what = "written (dry run, not submitted)"
		}
		gres := "no GRES"
		if n > 0 {
			gres = fmt.Sprintf("%d GPU(s) each", n)
		}
		fmt.Fprintf(opt.Progress, "trials %s (%s, --time %s): %s: %s\n", job.Array, gres, slurmTime(limit), job.Script, what)
	}
	if err := writeJSON(filepath.Join(sub.Dir, "submission.json"), sub); err != nil {
		return sub, err
	}
	return sub, nil
}

// slurmGPUs is the GPUs a trial's task asks Slurm for: its variant's when
// it uses GPUs (Spec.UsesGPU), none for the simulator, or none at all with
// gres = "none".
func slurmGPUs(t Trial, c SlurmConfig) int {
	if c.GRES == "none" || !t.Variant.Spec.UsesGPU() {
		return 0
	}
	return t.Variant.Spec.GPUs()
}

// arraySpec writes rising numbers as sbatch's --array list: "1-4,7,9-10".
func arraySpec(nums []int) string {
	nums = slices.Clone(nums)
	slices.Sort(nums)
	var parts []string
	for i := 0; i < len(nums); {
		j := i
		for j+1 < len(nums) && nums[j+1] == nums[j]+1 {
			j++
		}
		if j > i {
			parts = append(parts, fmt.Sprintf("%d-%d", nums[i], nums[j]))
		} else {
			parts = append(parts, strconv.Itoa(nums[i]))
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}

// slurmTime writes a limit as sbatch's --time in whole minutes, rounded up.
func slurmTime(d time.Duration) string {
	return strconv.Itoa(int((d + time.Minute - 1) / time.Minute))
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// ShellWord is s as one word of a POSIX shell command: as it is when it
// has no character the shell treats specially, else quoted (shellQuote).
func ShellWord(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.,/+:=@%") == "" {
		return s
	}
	return shellQuote(s)
}

func batchScript(s *Study, studyPath, workDir, exe, subDir string, job SlurmJob, limit time.Duration, opt SlurmOptions) string {
	c := opt.Config
	var b strings.Builder
	fmt.Fprintf(&b, "#!/bin/bash\n# Written by vbbench slurm for study %q: trials %s, one per array task (the index is the\n# trial's number in `vbbench plan`'s run order). Submit again with: vbbench slurm --resume STUDY.toml\n", s.Name, job.Array)
	opts := []string{
		"--job-name=vbbench-" + SanitizeName(s.Name),
		"--array=" + job.Array,
		"--output=" + filepath.Join(subDir, "task-%A_%a.out"),
		"--chdir=" + workDir,
		"--ntasks=1",
		"--time=" + slurmTime(limit),
	}
	if c.MaxParallel > 0 {
		opts[1] += "%" + strconv.Itoa(c.MaxParallel)
	}
	add := func(flag, v string) {
		if v != "" {
			opts = append(opts, flag+"="+v)
		}
	}
	add("--partition", c.Partition)
	add("--account", c.Account)
	add("--qos", c.QOS)
	if job.GPUs > 0 {
		gres := c.GRES
		if gres == "" {
			gres = "gpu"
		}
		add("--gres", fmt.Sprintf("%s:%d", gres, job.GPUs))
	}
	if c.CPUsPerTask > 0 {
		add("--cpus-per-task", strconv.Itoa(c.CPUsPerTask))
	}
	add("--mem", c.Mem)
	opts = append(opts, c.SbatchArgs...)
	for _, o := range opts {
		fmt.Fprintf(&b, "#SBATCH %s\n", o)
	}
	b.WriteString("set -eu\n")
	for _, l := range c.Setup {
		b.WriteString(l + "\n")
	}
	argv := []string{shellQuote(exe), "run", "--trial", `"$SLURM_ARRAY_TASK_ID"`, "--resume", "--gpus", "none"}
	argv = append(argv, shellQuote(studyPath))
	fmt.Fprintf(&b, "exec %s\n", strings.Join(argv, " "))
	return b.String()
}

// Submissions reads the study's earlier submissions, oldest first.
func Submissions(s *Study) ([]Submission, error) {
	paths, err := filepath.Glob(filepath.Join(s.ResultsDir, "slurm", "*", "submission.json"))
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	var out []Submission
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		var sub Submission
		if err := json.Unmarshal(b, &sub); err != nil {
			return nil, fmt.Errorf("bench: %s: %w", p, err)
		}
		if sub.Study == s.Name {
			out = append(out, sub)
		}
	}
	return out, nil
}

// SlurmQueue is what squeue says about the study's submitted arrays: per
// trial number, the state of its task (PENDING, RUNNING, …) and its job.
type SlurmQueue struct {
	State map[int]string
	Job   map[int]string
	// Err says why the queue could not be read ("" when it was, or when
	// nothing was submitted).
	Err string
}

// ReadSlurmQueue asks squeue about every job array the study submitted. A
// task that left the queue (finished, failed, cancelled) is absent.
func ReadSlurmQueue(ctx context.Context, s *Study) SlurmQueue {
	q := SlurmQueue{State: map[int]string{}, Job: map[int]string{}}
	subs, err := Submissions(s)
	if err != nil {
		q.Err = err.Error()
		return q
	}
	// Trial numbers by job id: a later submission's job wins.
	var ids []string
	for _, sub := range subs {
		for _, j := range sub.Jobs {
			if j.ID != "" {
				ids = append(ids, j.ID)
			}
		}
	}
	if len(ids) == 0 {
		return q
	}
	squeue, err := exec.LookPath("squeue")
	if err != nil {
		q.Err = "squeue not found (not on a Slurm host): queue states unknown"
		return q
	}
	out, invalid, err := squeueJobs(ctx, squeue, ids)
	if invalid && len(ids) > 1 {
		// squeue refuses the whole list when the controller has forgotten
		// one job (ended more than MinJobAge ago): ask one by one.
		var b strings.Builder
		for _, id := range ids {
			o, invalid, err := squeueJobs(ctx, squeue, []string{id})
			if err != nil && !invalid {
				q.Err = err.Error()
				return q
			}
			b.WriteString(o)
		}
		out, err = b.String(), nil
	}
	if err != nil && !invalid {
		q.Err = err.Error()
		return q
	}
	parseQueue(out, &q)
	return q
}

// squeueJobs lists the tasks of the jobs ids (-r: every task of an array,
// pending ones too) as "ARRAY_JOB_ID TASK_ID STATE" lines. invalid is set
// when squeue refused an id it no longer knows.
func squeueJobs(ctx context.Context, squeue string, ids []string) (string, bool, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, squeue, "-h", "-r", "-j", strings.Join(ids, ","), "-o", "%F %K %T")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		return "", strings.Contains(msg, "Invalid job id"), fmt.Errorf("squeue: %v: %s", err, msg)
	}
	return stdout.String(), false, nil
}

// parseQueue reads squeue -o "%F %K %T" lines: array job id, task id,
// state.
func parseQueue(out string, q *SlurmQueue) {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		n, err := strconv.Atoi(f[1])
		if err != nil {
			continue
		}
		q.State[n], q.Job[n] = f[2], f[0]
	}
}

// WaitSlurm polls the queue every poll until none of the study's submitted
// tasks is pending or running, or ctx ends.
func WaitSlurm(ctx context.Context, s *Study, poll time.Duration, progress io.Writer) error {
	if progress == nil {
		progress = io.Discard
	}
	last := ""
	for {
		q := ReadSlurmQueue(ctx, s)
		if q.Err != "" {
			return fmt.Errorf("bench: %s", q.Err)
		}
		if len(q.State) == 0 {
			return nil
		}
		counts := map[string]int{}
		for _, st := range q.State {
			counts[strings.ToLower(st)]++
		}
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(counts)) {
			parts = append(parts, fmt.Sprintf("%d %s", counts[k], k))
		}
		if line := strings.Join(parts, ", "); line != last {
			fmt.Fprintf(progress, "slurm: %s\n", line)
			last = line
		}
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// copyFile copies src to dst (created or truncated).
func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}

// submissionDir makes results/slurm/<time>[-N], a new directory even for
// two submissions in one second.
func submissionDir(results string, t time.Time) (string, error) {
	base, err := filepath.Abs(filepath.Join(results, "slurm", t.Format("20060102T150405Z")))
	if err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(base), 0o755); err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	for i := 1; ; i++ {
		dir := base
		if i > 1 {
			dir = fmt.Sprintf("%s-%d", base, i)
		}
		err := os.Mkdir(dir, 0o755)
		if err == nil {
			return dir, nil
		}
		if !errors.Is(err, os.ErrExist) || i > 1000 {
			return "", fmt.Errorf("bench: %w", err)
		}
	}
}
