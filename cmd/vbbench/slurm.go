package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/vbench/vbench/bench"
	"github.com/vbench/vbench/internal/cli"
)

func slurmCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("vbbench slurm", "vbbench slurm [flags] STUDY.toml", stderr)
	var c bench.SlurmConfig
	fs.StringVar(&c.Partition, "partition", "", "sbatch --partition (overrides slurm.partition)")
	fs.StringVar(&c.Account, "account", "", "sbatch --account (overrides slurm.account)")
	fs.StringVar(&c.QOS, "qos", "", "sbatch --qos (overrides slurm.qos)")
	limit := fs.Duration("time", 0, "each task's time limit (overrides slurm.time; default 1.5 × the plan's worst trial + 10m)")
	fs.StringVar(&c.GRES, "gres", "", `GPU trials ask for --gres=GRES:N: "gpu" (default), a typed "gpu:a100", or "none" (overrides slurm.gres)`)
	fs.IntVar(&c.CPUsPerTask, "cpus-per-task", 0, "sbatch --cpus-per-task (overrides slurm.cpus_per_task)")
	fs.StringVar(&c.Mem, "mem", "", "sbatch --mem, e.g. 64G (overrides slurm.mem)")
	fs.IntVar(&c.MaxParallel, "max-parallel", 0, "at most this many tasks at once (--array=…%N; overrides slurm.max_parallel)")
	fs.StringVar(&c.Vbbench, "vbbench", "", "the vbbench program as the compute nodes see it (overrides slurm.vbbench; default: this one)")
	fs.StringArrayVar(&c.SbatchArgs, "sbatch-arg", nil, "a further sbatch option, e.g. --sbatch-arg=--constraint=h100 (repeatable; added to slurm.sbatch_args)")
	resume := fs.Bool("resume", false, "submit only the trials that did not finish and are not queued")
	force := fs.Bool("force", false, "submit despite plan errors")
	dryRun := fs.Bool("dry-run", false, "write the batch scripts under results/slurm/ without submitting them")
	wait := fs.Bool("wait", false, "wait until the submitted tasks leave the queue, then print the status and write the report")
	poll := fs.Duration("poll", 30*time.Second, "how often --wait asks squeue")
	quiet := fs.Bool("quiet", false, "no progress on stderr")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if *poll <= 0 || *limit < 0 {
		return cli.Usagef("--poll wants a positive duration and --time one not negative")
	}
	if *wait && *dryRun {
		return cli.Usagef("--wait and --dry-run exclude each other")
	}
	c.Time = bench.Duration(*limit)
	override := func(base *bench.SlurmConfig) {
		for _, f := range []struct {
			name string
			dst  *string
			v    string
		}{{"partition", &base.Partition, c.Partition}, {"account", &base.Account, c.Account}, {"qos", &base.QOS, c.QOS},
			{"gres", &base.GRES, c.GRES}, {"mem", &base.Mem, c.Mem}, {"vbbench", &base.Vbbench, c.Vbbench}} {
			if fs.Changed(f.name) {
				*f.dst = f.v
			}
		}
		if fs.Changed("time") {
			base.Time = c.Time
		}
		if fs.Changed("cpus-per-task") {
			base.CPUsPerTask = c.CPUsPerTask
		}
		if fs.Changed("max-parallel") {
			base.MaxParallel = c.MaxParallel
		}
		base.SbatchArgs = append(base.SbatchArgs, c.SbatchArgs...)
	}
	opt := bench.SlurmOptions{Resume: *resume, Force: *force, DryRun: *dryRun}
	if err := submit(ctx, fs.Args(), opt, override, stdout, stderr, *quiet); err != nil || !*wait {
		return err
	}
	s, err := loadStudy(fs.Args())
	if err != nil {
		return err
	}
	var progress io.Writer = stderr
	if *quiet {
		progress = nil
	}
	if err := bench.WaitSlurm(ctx, s, *poll, progress); err != nil {
		return err
	}
	p, err := studyPlan(ctx, fs.Args())
	if err != nil {
		return err
	}
	st, err := bench.Status(ctx, p)
	if err != nil {
		return err
	}
	st.Print(stdout, s.ResultsDir)
	if st.Finished() > 0 {
		path, err := bench.Report(ctx, p, time.Now())
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "report: %s\n", path)
	}
	if n := len(st.Trials) - st.Finished(); n > 0 {
		return fmt.Errorf("%d trials did not finish (above; each task's output is in results/slurm/); fix, then vbbench slurm --resume submits them again", n)
	}
	return nil
}

// submit loads the study, applies override to its [slurm] table and
// submits its trials.
func submit(ctx context.Context, fsArgs []string, opt bench.SlurmOptions, override func(*bench.SlurmConfig), stdout, stderr io.Writer, quiet bool) error {
	s, err := loadStudy(fsArgs)
	if err != nil {
		return err
	}
	s.Run.GPUs = nil // Slurm gives each task its GPUs
	opt.Config = s.Slurm
	if override != nil {
		override(&opt.Config)
	}
	p, err := bench.MakePlan(ctx, s)
	if err != nil {
		return err
	}
	opt.SearchDirs = exeDirs()
	if !quiet {
		opt.Progress = stderr
	}
	sub, err := bench.SubmitSlurm(ctx, p, opt)
	if sub != nil {
		n := 0
		for _, j := range sub.Jobs {
			n += len(j.Trials)
			fmt.Fprintf(stdout, "job %s: trials %s (%d GPU per task), script %s\n", orDash(j.ID), j.Array, j.GPUs, j.Script)
		}
		fmt.Fprintf(stdout, "%d of %d trials submitted", n, len(p.Trials))
		if len(sub.Skipped) > 0 {
			fmt.Fprintf(stdout, ", %d skipped (finished or queued)", len(sub.Skipped))
		}
		fmt.Fprintln(stdout)
		if sub.Dir != "" {
			fmt.Fprintf(stdout, "tasks' output: %s/task-JOB_TRIAL.out; follow with: vbbench status %s\n", sub.Dir, fsArgs[0])
		}
	}
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func statusCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("vbbench status", "vbbench status [--json] STUDY.toml", stderr)
	asJSON := fs.Bool("json", false, "print the state as JSON")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	p, err := studyPlan(ctx, fs.Args())
	if err != nil {
		return err
	}
	st, err := bench.Status(ctx, p)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, st)
	}
	st.Print(stdout, p.Study.ResultsDir)
	return nil
}

func reportCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("vbbench report", "vbbench report STUDY.toml", stderr)
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	p, err := studyPlan(ctx, fs.Args())
	if err != nil {
		return err
	}
	path, err := bench.Report(ctx, p, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "report: %s\n", path)
	return nil
}

// studyPlan loads the study file and makes its plan (status and report
// read the results through it).
func studyPlan(ctx context.Context, fsArgs []string) (*bench.Plan, error) {
	s, err := loadStudy(fsArgs)
	if err != nil {
		return nil, err
	}
	return bench.MakePlan(ctx, s)
}
