package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/pflag"

	"github.com/vbench/vbench/capture"
	"github.com/vbench/vbench/internal/cli"
	"github.com/vbench/vbench/synth/importer"
	"github.com/vbench/vbench/trace"
)

const exportUsage = `vbanalyze export-trace CAPTURE -o TRACE [filters] [--anonymize]

Turn the requests recorded in a capture into a trace (binary, or JSON Lines
when TRACE ends in .jsonl) that vbreplay can play against any server: the
original arrival offsets, endpoints and request bodies (headers are never
exported).`

// runExport is `vbanalyze export-trace`, a front end to the capture import
// format (importer.FromCapture).
func runExport(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	const name = "vbanalyze export-trace"
	fs := cli.NewFlagSet(name, exportUsage, stderr)
	out := fs.StringP("output", "o", "", "trace file to write (required; .jsonl for JSON Lines; --out also works)")
	fs.SetNormalizeFunc(func(_ *pflag.FlagSet, name string) pflag.NormalizedName {
		if name == "out" {
			name = "output" // as vbsynth -o
		}
		return pflag.NormalizedName(name)
	})
	labels := fs.StringArray("label", nil, "keep records with this label, key=value (repeatable)")
	paths := fs.StringArray("path", nil, "keep records of this path, e.g. /v1/chat/completions (repeatable)")
	since := fs.String("since", "", "keep records received at or after this time (RFC 3339)")
	until := fs.String("until", "", "keep records received before this time (RFC 3339)")
	from := fs.Duration("from", 0, "keep records received at least this long after the capture's first record")
	to := fs.Duration("to", 0, "keep records received less than this long after the capture's first record (0: no limit)")
	statuses := fs.IntSlice("status", nil, "keep records with these HTTP statuses (e.g. 200)")
	outcomes := fs.StringSlice("outcome", nil, "keep records with these outcomes (ok, client_aborted, upstream_error, ...)")
	skipWarmup := fs.Bool("skip-warmup", false, "leave out requests the replayer tagged as warm-up")
	anonymize := fs.Bool("anonymize", false, "replace prompt text with synthetic prompts of the same length in tokens")
	seed := fs.Int64("seed", 0, "seed of the synthetic prompts (--anonymize)")
	if err := cli.Parse(fs, args); err != nil {
		return cli.Exit(stderr, name, err)
	}
	if fs.NArg() != 1 {
		return cli.Exit(stderr, name, cli.Usagef("give exactly one capture directory"))
	}
	if *out == "" {
		return cli.Exit(stderr, name, cli.Usagef("give the trace file to write with -o"))
	}
	opt := importer.CaptureOptions{From: *from, To: *to, Statuses: *statuses, SkipWarmup: *skipWarmup, Anonymize: *anonymize, Seed: *seed, Paths: *paths}
	var err error
	if opt.Labels, err = cli.ParseKV("label", *labels); err != nil {
		return cli.Exit(stderr, name, err)
	}
	for _, o := range *outcomes {
		opt.Outcomes = append(opt.Outcomes, capture.Outcome(o))
	}
	parseTime := func(flag, v string) (time.Time, error) {
		if v == "" {
			return time.Time{}, nil
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return t, cli.Usagef("--%s %q: want an RFC 3339 time such as 2026-11-26T18:00:00Z", flag, v)
		}
		return t, nil
	}
	if opt.Since, err = parseTime("since", *since); err != nil {
		return cli.Exit(stderr, name, err)
	}
	if opt.Until, err = parseTime("until", *until); err != nil {
		return cli.Exit(stderr, name, err)
	}
	if err := ctx.Err(); err != nil {
		return cli.Exit(stderr, name, err)
	}
	st, err := capture.Open(fs.Arg(0), capture.Options{ReadOnly: true})
	if err != nil {
		return cli.Exit(stderr, name, err) // "capture: open DIR: ..."
	}
	hdr, reqs, err := importer.FromCapture(st, opt)
	health := st.Health()
	err = errors.Join(err, st.Close())
	if err != nil {
		return cli.Exit(stderr, name, err)
	}
	for _, n := range health.Notes {
		fmt.Fprintf(stderr, "%s: note: %s: %s\n", name, fs.Arg(0), n)
	}
	if len(reqs) == 0 {
		return cli.Exit(stderr, name, fmt.Errorf("no request of %s matches the filters (or none has a complete recorded body: record bodies with the proxy's --record-request-body)", fs.Arg(0)))
	}
	hdr, err = trace.WriteFile(*out, hdr, reqs)
	if err != nil {
		return cli.Exit(stderr, name, err)
	}
	fmt.Fprintf(stdout, "wrote %s: %s requests, trace hash %s\n", *out, strconv.FormatInt(hdr.Count, 10), hdr.ShortHash())
	if health.Damaged() {
		return cli.Exit(stderr, name, cli.Damaged(fmt.Errorf("%w: %s: %s: the trace holds what could be read", capture.ErrDamaged, fs.Arg(0), health)))
	}
	return cli.ExitOK
}
