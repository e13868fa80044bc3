// Command vbbench runs a benchmark study: `vbbench probe study.toml`
// measures each variant's knee closed loop and suggests the rates to run;
// `vbbench plan study.toml` checks it and prints the run order with a time
// estimate (with --hold, split into GPU holds of that length, one study
// file each with --split-holds); `vbbench run study.toml` runs the whole matrix of models ×
// variants × rates, each trial against a freshly started backend (several
// at once on GPU lanes with --gpus), and writes results/ and a report;
// `vbbench slurm study.toml` submits the trials to a Slurm cluster as a job
// array, `vbbench status` and `vbbench report` gather what finished;
// `vbbench presets` lists the variant presets.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/vbench/vbench/backends"
	"github.com/vbench/vbench/bench"
	"github.com/vbench/vbench/internal/cli"
)

func main() { os.Exit(cli.Main("vbbench", run)) }

const usage = `vbbench <command> [flags]

Commands:
  probe STUDY.toml     measure each variant's knee (closed loop at rising
                       concurrency) and suggest the rates to run
  plan STUDY.toml      validate the study, check models against the GPU and the
                       trace against the rates, print the run order and estimate;
                       --hold 27m splits it into GPU holds sharing an anchor
  run STUDY.toml       run the study (see 'vbbench run --help'); --gpus 0,1,2,3
                       runs trials side by side on GPU lanes
  slurm STUDY.toml     submit the trials to Slurm as a job array (one task per
                       trial into the shared results); --resume submits again
                       what did not finish
  status STUDY.toml    what each trial of the study did: finished, failed,
                       running, queued in Slurm, not started
  report STUDY.toml    the study report from every finished trial
  presets              list the variant presets and what they set`

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) == 0 {
			fmt.Fprintf(stderr, "%s\n\nRun 'vbbench --help' for every command's flags.\n", usage)
			return cli.ExitUsage
		}
		fmt.Fprintln(stderr, usage)
		// Each command's own --help, so that one page lists every flag.
		for _, c := range []string{"probe", "plan", "run", "presets"} {
			fmt.Fprintln(stderr)
			run(ctx, []string{c, "--help"}, stdin, io.Discard, stderr)
		}
		return cli.ExitOK
	}
	switch args[0] {
	case "probe":
		return cli.Exit(stderr, "vbbench probe", probeCmd(ctx, args[1:], stdout, stderr))
	case "plan":
		return cli.Exit(stderr, "vbbench plan", planCmd(ctx, args[1:], stdout, stderr))
	case "run":
		return runCmd(ctx, args[1:], stdout, stderr)
	case "slurm":
		return cli.Exit(stderr, "vbbench slurm", slurmCmd(ctx, args[1:], stdout, stderr))
	case "status":
		return cli.Exit(stderr, "vbbench status", statusCmd(ctx, args[1:], stdout, stderr))
	case "report":
		return cli.Exit(stderr, "vbbench report", reportCmd(ctx, args[1:], stdout, stderr))
	case "presets":
		return cli.Exit(stderr, "vbbench presets", presetsCmd(args[1:], stdout, stderr))
	default:
		fmt.Fprintf(stderr, "vbbench: unknown command %q\n\n%s\n", args[0], usage)
		return cli.ExitUsage
	}
}

func loadStudy(fsArgs []string) (*bench.Study, error) {
	if len(fsArgs) != 1 {
		return nil, cli.Usagef("want exactly one study file, got %d arguments", len(fsArgs))
	}
	return bench.LoadStudy(fsArgs[0])
}

// gpusFlag adds --gpus to fs; apply sets the study's lanes from it.
func gpusFlag(fs *pflag.FlagSet) (apply func(*bench.Study) error) {
	gpus := fs.String("gpus", "", "GPU lanes: run trials at the same time, each pinned to its GPUs with CUDA_VISIBLE_DEVICES, e.g. 0,1,2,3 (overrides run.gpus; none: no lanes, the GPUs the environment gives)")
	return func(s *bench.Study) error {
		if !fs.Changed("gpus") {
			return nil
		}
		if *gpus == "none" {
			s.Run.GPUs = nil
			return nil
		}
		g, err := bench.ParseGPUList(*gpus)
		if err != nil {
			return cli.Usagef("%v", err)
		}
		s.Run.GPUs = g
		return nil
	}
}

func planCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("vbbench plan", "vbbench plan [--json] [--gpus IDS] [--measured DIR]... [--order V,V...] [--hold D [--anchor VARIANT] [--anchor-rates R,R] [--split-holds DIR]] STUDY.toml\n       vbbench plan [--json] [--gpus IDS] [--measured DIR]... [--order V,V...] [--total-budget D] STUDY.toml...", stderr)
	totalBudget := fs.Duration("total-budget", 0, "with one study or several (each workload's): their budget together, run one after another (e.g. 4h); over it is an error that says which ladders to trim")
	measuredDirs := fs.StringArray("measured", nil, "estimate each model × variant that finished trials under DIR (a results tree, or a folder above several) from what they took: start-up, engine warm-up and each rate's drain; a probe.json there gives a probed variant's start-up and TPOT; repeatable")
	asJSON := fs.Bool("json", false, "print the plan as JSON (with --hold: {\"plan\": …, \"holds\": …})")
	lanes := gpusFlag(fs)
	hold := fs.Duration("hold", 0, "split the study into holds of this length (a GPU lent for a fixed time, e.g. 27m), each trial whole, sharing an anchor variant")
	anchor := fs.String("anchor", "", "with --hold: the anchor variant, run in every hold (default: the first torch-baseline variant with kv_policy oracle, else the first variant)")
	anchorRates := fs.Float64Slice("anchor-rates", nil, "with --hold: the anchor's rates in the holds without its whole ladder, each one of its ladder's, e.g. 5.2,11 (default: its lowest and the one at index len/2)")
	splitDir := fs.String("split-holds", "", "with --hold: write one study file per hold into this directory, DIR/<study name>-holdN.toml")
	order := fs.StringSlice("order", nil, "run these variants first, in this order, then the others in the study's (comma-separated); a split keeps consecutive trials together, so variants named side by side share a hold where they fit")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	setup := lanes
	if len(*order) > 0 {
		setup = func(s *bench.Study) error {
			if err := s.OrderVariants(*order); err != nil {
				return cli.Usagef("--order: %v", err)
			}
			return lanes(s)
		}
	}
	var measured *bench.Measured
	if len(*measuredDirs) > 0 {
		var err error
		if measured, err = bench.LoadMeasured(*measuredDirs...); err != nil {
			return err
		}
	}
	if fs.NArg() > 1 || fs.Changed("total-budget") {
		if *hold != 0 {
			return cli.Usagef("--hold splits one study: give one study file, without --total-budget")
		}
		if *totalBudget < 0 {
			return cli.Usagef("--total-budget %v: want a positive duration", *totalBudget)
		}
		return planMany(ctx, fs.Args(), setup, measured, *totalBudget, *asJSON, stdout)
	}
	if *hold == 0 {
		for _, f := range []string{"anchor", "anchor-rates", "split-holds"} {
			if fs.Changed(f) {
				return cli.Usagef("--%s needs --hold", f)
			}
		}
	} else if *hold < 0 {
		return cli.Usagef("--hold %v: want a positive duration", *hold)
	}
	if fs.NArg() != 1 {
		return cli.Usagef("want exactly one study file, got %d arguments", fs.NArg())
	}
	p, err := planStudy(ctx, fs.Arg(0), setup, measured)
	if err != nil {
		return err
	}
	var split *bench.HoldSplit
	if *hold > 0 {
		var rates []float64
		if fs.Changed("anchor-rates") {
			rates = append([]float64{}, *anchorRates...) // given: checked even when empty
		}
		if split, err = p.SplitHolds(*hold, *anchor, rates); err != nil {
			if !*asJSON {
				p.Print(stdout)
			}
			return err
		}
	}
	if *asJSON {
		var v any = p
		if split != nil {
			v = struct {
				Plan  *bench.Plan      `json:"plan"`
				Holds *bench.HoldSplit `json:"holds"`
			}{p, split}
		}
		if err := printJSON(stdout, v); err != nil {
			return err
		}
	} else {
		p.Print(stdout) // lists every error
		if split != nil {
			split.Print(stdout)
		}
	}
	if split != nil && *splitDir != "" {
		if split.OneHold {
			fmt.Fprintf(stderr, "no hold files written: the study fits one hold\n")
		} else {
			paths, err := split.WriteStudies(*splitDir, holdCommand(fs, split, *splitDir, fs.Arg(0)))
			if err != nil {
				return err
			}
			w := stdout
			if *asJSON {
				w = stderr // stdout is the JSON
			}
			fmt.Fprintf(w, "hold files (each a study for one hold: vbbench run FILE), written or already identical:\n")
			for _, f := range paths {
				fmt.Fprintf(w, "  %s\n", f)
			}
		}
	}
	if !*asJSON && len(p.Errors) > 0 {
		return fmt.Errorf("the plan has %d errors (above)", len(p.Errors))
	}
	return p.Err()
}

// planStudy loads the study file, applies --gpus and plans it with the
// measurements (nil: none).
func planStudy(ctx context.Context, file string, lanes func(*bench.Study) error, measured *bench.Measured) (*bench.Plan, error) {
	s, err := bench.LoadStudy(file)
	if err != nil {
		return nil, err
	}
	if err := lanes(s); err != nil {
		return nil, err
	}
	p, err := bench.MakePlanMeasured(ctx, s, measured)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return p, nil
}

// planMany plans several studies (each workload's), one after another,
// and sums their estimates against total (0: no total budget): over it is
// an error with, per study, the ladder trim that alone brings the sum
// under. Each study's own errors are listed as plan lists them.
func planMany(ctx context.Context, files []string, lanes func(*bench.Study) error, measured *bench.Measured, total time.Duration, asJSON bool, stdout io.Writer) error {
	if len(files) == 0 {
		return cli.Usagef("want one or more study files")
	}
	var plans []*bench.Plan
	var sum time.Duration
	var parts []string
	failed := 0
	for _, f := range files {
		p, err := planStudy(ctx, f, lanes, measured)
		if err != nil {
			return err
		}
		s := p.Study
		if !asJSON {
			fmt.Fprintf(stdout, "== %s\n", f)
			p.Print(stdout)
			fmt.Fprintln(stdout)
		}
		if len(p.Errors) > 0 {
			failed++
		}
		plans = append(plans, p)
		sum += p.Estimate
		parts = append(parts, fmt.Sprintf("%s ≈%s", s.Name, p.Estimate.Round(time.Minute)))
	}
	var advice []string
	if total > 0 && sum > total {
		for _, p := range plans {
			others := sum - p.Estimate // this study must fit what the others leave
			if others >= total {
				continue
			}
			if a := p.LadderAdvice(total - others); a != "" {
				advice = append(advice, p.Study.Name+": "+a)
			}
		}
		if len(advice) == 0 {
			advice = append(advice, "no one study's ladders bring it under: trim several, run on GPU lanes (--gpus), or raise the total budget")
		}
	}
	if asJSON {
		return printJSON(stdout, struct {
			Studies []*bench.Plan `json:"studies"`
			Total   time.Duration `json:"total_ns"`
			Budget  time.Duration `json:"total_budget_ns,omitempty"`
			Advice  []string      `json:"advice,omitempty"`
		}{plans, sum, total, advice})
	}
	fmt.Fprintf(stdout, "all %d studies, one after another: ≈%s (%s)", len(plans), sum.Round(time.Minute), strings.Join(parts, ", "))
	if total > 0 {
		fmt.Fprintf(stdout, " of the total budget %s (%.0f%%)", total, 100*sum.Seconds()/total.Seconds())
	}
	fmt.Fprintln(stdout)
	switch {
	case len(advice) > 0:
		return fmt.Errorf("the studies need ≈%s together, over the total budget of %s; any one of these brings them under: %s",
			sum.Round(time.Minute), total, strings.Join(advice, "; or "))
	case failed > 0:
		return fmt.Errorf("%d of the %d plans have errors (above)", failed, len(plans))
	}
	return nil
}

// holdCommand is the plan command that makes split's hold files, written
// into their header: every choice spelled out (the anchor and its rates
// too when they were the defaults) in a fixed order, so that the same
// split gives the same bytes however its flags were typed.
func holdCommand(fs *pflag.FlagSet, split *bench.HoldSplit, dir, study string) string {
	rates := make([]string, len(split.AnchorRates))
	for i, r := range split.AnchorRates {
		rates[i] = strconv.FormatFloat(r, 'g', -1, 64)
	}
	args := []string{"vbbench", "plan"}
	if fs.Changed("gpus") {
		args = append(args, "--gpus", fs.Lookup("gpus").Value.String())
	}
	if dirs, err := fs.GetStringArray("measured"); err == nil {
		for _, d := range dirs {
			args = append(args, "--measured", filepath.Clean(d))
		}
	}
	if o, err := fs.GetStringSlice("order"); err == nil && len(o) > 0 {
		args = append(args, "--order", strings.Join(o, ","))
	}
	args = append(args, "--hold", split.Hold.String(), "--anchor", split.Anchor, "--anchor-rates", strings.Join(rates, ","),
		"--split-holds", filepath.Clean(dir), study)
	for i, a := range args {
		args[i] = bench.ShellWord(a)
	}
	return strings.Join(args, " ")
}

func runCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := cli.NewFlagSet("vbbench run", "vbbench run [flags] STUDY.toml", stderr)
	resume := fs.Bool("resume", false, "skip trials of this study that finished before; re-run missing and failed ones")
	archive := fs.Bool("archive", false, "compress each trial's raw captures to capture.tar.gz after analysis")
	force := fs.Bool("force", false, "run despite plan errors (a model that seems not to fit, a short trace)")
	quiet := fs.BoolP("quiet", "q", false, "no live progress on stderr")
	lanes := gpusFlag(fs)
	trials := fs.StringSlice("trial", nil, "run only these trials (number in the run order, or key model/variant/repN; comma-separated) into the results, without the study report (a Slurm task does this)")
	executor := fs.String("executor", "local", "local: run here; slurm: submit the trials as a Slurm job array with the study's [slurm] settings (vbbench slurm has flags for them)")
	if err := cli.Parse(fs, args); err != nil {
		return cli.Exit(stderr, "vbbench run", err)
	}
	switch *executor {
	case "local":
	case "slurm":
		for _, f := range []string{"gpus", "trial", "archive"} {
			if fs.Changed(f) {
				return cli.Exit(stderr, "vbbench run", cli.Usagef("--%s does not apply with --executor slurm (Slurm gives each task its GPUs)", f))
			}
		}
		return cli.Exit(stderr, "vbbench run", submit(ctx, fs.Args(), bench.SlurmOptions{Resume: *resume, Force: *force}, nil, stdout, stderr, *quiet))
	default:
		return cli.Exit(stderr, "vbbench run", cli.Usagef("--executor %q: want local or slurm", *executor))
	}
	s, err := loadStudy(fs.Args())
	if err == nil {
		err = lanes(s)
	}
	if err != nil {
		return cli.Exit(stderr, "vbbench run", err)
	}
	p, err := bench.MakePlan(ctx, s)
	if err != nil {
		return cli.Exit(stderr, "vbbench run", err)
	}
	var progress io.Writer = stderr
	if *quiet {
		progress = nil
	}
	opt := bench.RunOptions{Resume: *resume, Archive: *archive, Force: *force, Progress: progress, SearchDirs: exeDirs()}
	for _, id := range *trials {
		t, err := p.TrialID(id)
		if err != nil {
			return cli.Exit(stderr, "vbbench run", cli.Usagef("--trial: %v", err))
		}
		opt.Trials = append(opt.Trials, t.Index)
	}
	res, err := bench.Run(ctx, p, opt)
	if res != nil {
		fmt.Fprintf(stdout, "%d trials: %d finished, %d not\n", len(res.Trials), len(res.Trials)-res.Failed(), res.Failed())
		for _, t := range res.Trials {
			line := fmt.Sprintf("  %-40s %s", t.Key, t.Status)
			if t.Error != "" {
				line += ": " + strings.SplitN(t.Error, "\n", 2)[0]
			}
			fmt.Fprintln(stdout, line)
		}
		if res.Report != "" {
			fmt.Fprintf(stdout, "report: %s\n", res.Report)
		}
	}
	if err != nil {
		return cli.Exit(stderr, "vbbench run", err)
	}
	if res.Failed() > 0 {
		fmt.Fprintf(stderr, "vbbench run: %d trials did not finish; see results/README.md, fix, and run again with --resume\n", res.Failed())
		return cli.ExitFailure
	}
	return cli.ExitOK
}

func probeCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("vbbench probe", "vbbench probe [flags] STUDY.toml", stderr)
	variants := fs.StringSlice("variants", nil, "probe only these variants (comma-separated names; default all)")
	level := fs.Duration("duration", bench.DefaultProbeLevel, "sending window of each concurrency step (as vbreplay --duration; --level is its old name)")
	fs.SetNormalizeFunc(func(_ *pflag.FlagSet, name string) pflag.NormalizedName {
		if name == "level" {
			name = "duration"
		}
		return pflag.NormalizedName(name)
	})
	minConc := fs.Int("min-concurrency", 1, "first concurrency step (steps double from it)")
	maxConc := fs.Int("max-concurrency", bench.DefaultProbeMaxConcurrency, "highest concurrency step (steps double from --min-concurrency)")
	points := fs.Int("points", bench.DefaultProbePoints, "rates in each variant's suggested ladder")
	out := fs.String("out", "", "directory for probe.json, probe.md and the captures (default <reports_dir>/probe-<time>)")
	quiet := fs.BoolP("quiet", "q", false, "no live progress on stderr")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if *level <= 0 {
		return cli.Usagef("--duration %v: want a positive duration", *level)
	}
	if *maxConc < 1 || *points < 2 {
		return cli.Usagef("--max-concurrency wants 1 or more and --points 2 or more")
	}
	if *minConc < 1 || *minConc > *maxConc {
		return cli.Usagef("--min-concurrency %d: want 1 to --max-concurrency (%d)", *minConc, *maxConc)
	}
	s, err := loadStudy(fs.Args())
	if err != nil {
		return err
	}
	var progress io.Writer = stderr
	if *quiet {
		progress = nil
	}
	res, err := bench.Probe(ctx, s, bench.ProbeOptions{Variants: *variants, Level: *level, MinConcurrency: *minConc, MaxConcurrency: *maxConc, Points: *points,
		Out: *out, Progress: progress, Warnings: stderr, SearchDirs: exeDirs(), ToolVersion: "vbbench"})
	if res != nil {
		fmt.Fprint(stdout, res.Markdown())
		fmt.Fprintf(stdout, "\nwritten: %s, %s\n", filepath.Join(res.Dir, "probe.json"), filepath.Join(res.Dir, "probe.md"))
	}
	if err != nil {
		return err
	}
	failed := 0
	for _, v := range res.Variants {
		if v.Error != "" {
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d variants failed (see above and their backend.log)", failed, len(res.Variants))
	}
	return nil
}

// exeDirs is where vbsim is looked for first: next to vbbench.
func exeDirs() []string {
	exe, err := os.Executable()
	if err != nil {
		return nil
	}
	return []string{filepath.Dir(exe)}
}

func presetsCmd(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("vbbench presets", "vbbench presets", stderr)
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return cli.Usagef("unexpected arguments %q (presets takes none)", fs.Args())
	}
	for _, name := range backends.PresetNames() {
		p, _ := backends.Preset(name)
		b, _ := json.Marshal(p)
		fmt.Fprintf(stdout, "%-18s %s\n%-18s %s\n", name, p.Description, "", b)
	}
	return nil
}

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
