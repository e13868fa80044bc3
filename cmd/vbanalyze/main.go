// Command vbanalyze turns vbench captures into metrics, CSV/JSON files,
// vLLM-compatible results, charts and a Markdown report.
//
//	vbanalyze CAPTURE... [--by variant,rate,trial] [--out DIR] [--chart]
//	          [--format table|csv|json] [--slo ttft=1s,tpot=100ms]
//	          [--window skip-warmup|all] [--vllm-json] [--allow-mixed]
//	          [--saturation 0.2s] [--dump] [--recover]
//	vbanalyze export-trace CAPTURE -o TRACE [filters] [--anonymize]
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/vbench/vbench/analyze"
	"github.com/vbench/vbench/analyze/render"
	"github.com/vbench/vbench/capture"
	"github.com/vbench/vbench/internal/cli"
)

func main() { os.Exit(cli.Main("vbanalyze", run)) }

const usage = `vbanalyze CAPTURE... [flags]

Analyse captures (capture directories written by vbproxy/vbreplay, or their
JSON Lines dumps; "-" reads a dump from stdin): per-request metrics, one
summary row per group (variant × rate × trial by default), cross-trial
confidence intervals, charts and a Markdown report.

  vbanalyze export-trace CAPTURE -o TRACE [filters]   captured traffic → trace`

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "export-trace" {
		return runExport(ctx, args[1:], stdout, stderr)
	}
	fs := cli.NewFlagSet("vbanalyze", usage, stderr)
	by := fs.StringSlice("by", []string{"variant", "rate", "trial"}, "group by these fields: variant, rate, trial, run, model, capture or any label (default: model first too when the captures hold several models)")
	out := fs.StringP("out", "o", "", "write summary.csv, summary.json, aggregates.csv, requests.csv, report.md (and charts/, vllm/) to this directory")
	chart := fs.Bool("chart", false, "draw the charts (PNG and SVG) under OUT/charts (needs --out)")
	format := fs.String("format", "table", "terminal summary format: table, csv or json")
	slo := fs.String("slo", "", "goodput objectives, e.g. ttft=1s,tpot=100ms (also ttft_sched, e2e, norm)")
	window := fs.String("window", "skip-warmup", "measurement window: skip-warmup (warm-up excluded, ends at the last measured end or the deadline), steady (ends at the last measured start) or all")
	vllmJSON := fs.Bool("vllm-json", false, "write OUT/vllm/<group>.json in the result format of `vllm bench serve` (needs --out)")
	allowMixed := fs.Bool("allow-mixed", false, "compare trials that replayed different traces (different trace hashes)")
	saturation := fs.Duration("saturation", 0, "normalized-latency threshold (per token) under which a rate is sustained (default 200ms)")
	lagWarn := fs.Duration("lag-warn", 0, "warn when the replayer's schedule-lag p99 exceeds this (default 10ms)")
	cdfRate := fs.String("cdf-rate", "", "rate level of the CDF charts (default: the highest level every variant sustains)")
	timeline := fs.String("timeline", "", "group key of the timeline chart, e.g. vllm-page/10/1 (default: the first variant at the CDF rate)")
	report := fs.String("report", "", "path of the Markdown report (default OUT/report.md)")
	title := fs.String("title", "", "title of the report")
	dump := fs.Bool("dump", false, "print the captures as JSON Lines (meta, records, samples) instead of analysing them")
	recoverCaps := fs.Bool("recover", false, "repair, in place, captures whose writer was killed (replay and truncate its logs; files owner-only), then exit; reading never needs it: it reads such a capture from a private copy")
	noBodies := fs.Bool("no-bodies", false, "with --dump: leave request and response bodies out")
	if err := cli.Parse(fs, args); err != nil {
		return cli.Exit(stderr, "vbanalyze", err)
	}
	if fs.NArg() == 0 {
		return cli.Exit(stderr, "vbanalyze", cli.Usagef("give at least one capture directory or dump file"))
	}
	if *recoverCaps {
		return cli.Exit(stderr, "vbanalyze", recoverAll(fs.Args(), stdout))
	}
	if *dump {
		return cli.Exit(stderr, "vbanalyze", dumpAll(fs.Args(), stdin, stdout, stderr, capture.DumpOptions{NoBodies: *noBodies}))
	}
	sl, err := analyze.ParseSLO(*slo)
	if err != nil {
		return cli.Exit(stderr, "vbanalyze", cli.Usagef("%v", err))
	}
	cfg := analyze.Config{
		Captures:   fs.Args(),
		Stdin:      stdin,
		Out:        *out,
		Report:     *report,
		Chart:      *chart,
		Format:     *format,
		Stdout:     stdout,
		Stderr:     stderr,
		SLO:        sl,
		Window:     *window,
		VLLMJSON:   *vllmJSON,
		AllowMixed: *allowMixed,
		Saturation: *saturation,
		LagWarn:    *lagWarn,
		CDFRate:    *cdfRate,
		Timeline:   *timeline,
		Title:      *title,
	}
	if fs.Changed("by") {
		cfg.By = *by // else the default, with model first when the captures hold several models
	}
	if err := cfg.Validate(); err != nil {
		return cli.Exit(stderr, "vbanalyze", cli.Usagef("%v", err))
	}
	err = render.Run(ctx, cfg)
	if errors.Is(err, analyze.ErrMixedTraces) {
		return cli.Exit(stderr, "vbanalyze", cli.Usagef("%v", err))
	}
	if errors.Is(err, capture.ErrDamaged) {
		err = cli.Damaged(err)
	}
	return cli.Exit(stderr, "vbanalyze", err)
}

// recoverAll repairs each capture in place (capture.Recover).
func recoverAll(paths []string, stdout io.Writer) error {
	for _, p := range paths {
		notes, err := capture.Recover(p, capture.Options{})
		if err != nil {
			return err
		}
		if len(notes) == 0 {
			fmt.Fprintf(stdout, "%s: closed cleanly; nothing to recover\n", p)
			continue
		}
		fmt.Fprintf(stdout, "%s: recovered in place (%s)\n", p, strings.Join(notes, "; "))
	}
	return nil
}

// dumpAll prints every capture as JSON Lines: capture directories through
// capture.Dump, dump files as they are.
func dumpAll(paths []string, stdin io.Reader, stdout, stderr io.Writer, opt capture.DumpOptions) error {
	var damaged []error
	for _, p := range paths {
		if p == "-" {
			if _, err := io.Copy(stdout, stdin); err != nil {
				return fmt.Errorf("dump stdin: %w", err)
			}
			continue
		}
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("dump: %w", err)
		}
		if fi.IsDir() {
			h, err := capture.DumpDir(p, stdout, opt)
			for _, n := range h.Notes {
				fmt.Fprintf(stderr, "vbanalyze: note: %s: %s\n", p, n)
			}
			if errors.Is(err, capture.ErrDamaged) {
				damaged = append(damaged, err)
				continue
			}
			if err != nil {
				return fmt.Errorf("dump %s: %w", p, err)
			}
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			return fmt.Errorf("dump: %w", err)
		}
		_, err = io.Copy(stdout, f)
		f.Close()
		if err != nil {
			return fmt.Errorf("dump %s: %w", p, err)
		}
	}
	return cli.Damaged(errors.Join(damaged...))
}
