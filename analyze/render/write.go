package render

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/vbench/vbench/analyze"
)

// Run analyses the captures of cfg (analyze.Analyze: the compute side)
// and writes what it asks (Write: this package): the terminal summary to
// cfg.Stdout, warnings to cfg.Stderr, and under cfg.Out summary.csv,
// summary.json, aggregates.csv, requests.csv, server_metrics.csv, charts/,
// vllm/ and report.md. It is what `vbanalyze` runs; the orchestrator and
// the demo call it directly.
func Run(ctx context.Context, cfg analyze.Config) error {
	res, err := analyze.Analyze(ctx, cfg)
	if err != nil {
		return err
	}
	if err := Write(ctx, res, cfg); err != nil {
		return err
	}
	return res.DamageError()
}

// Write writes the outputs of an analysis (see Run). cfg must be the
// configuration the result was computed with.
func Write(ctx context.Context, res *analyze.Result, cfg analyze.Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg.Stdout != nil {
		var err error
		switch cfg.Format {
		case analyze.FormatCSV:
			err = WriteSummaryCSV(res, cfg.Stdout)
		case analyze.FormatJSON:
			err = WriteSummaryJSON(res, cfg.Stdout)
		default:
			err = WriteTable(res, cfg.Stdout)
		}
		if err != nil {
			return fmt.Errorf("analyze: summary: %w", err)
		}
	}
	if cfg.Stderr != nil && (cfg.Format != analyze.FormatTable || cfg.Stdout == nil) {
		for _, w := range res.AllWarnings() {
			fmt.Fprintln(cfg.Stderr, "warning: "+w)
		}
	}
	var charts []ChartFile
	if cfg.Out != "" {
		if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
			return fmt.Errorf("analyze: %w", err)
		}
		files := []struct {
			name string
			fn   func(io.Writer) error
		}{
			{"summary.csv", func(w io.Writer) error { return WriteSummaryCSV(res, w) }},
			{"summary.json", func(w io.Writer) error { return WriteSummaryJSON(res, w) }},
			{"aggregates.csv", func(w io.Writer) error { return WriteAggregatesCSV(res, w) }},
			{"requests.csv", func(w io.Writer) error { return WriteRequestsCSV(res, w) }},
			{"server_metrics.csv", func(w io.Writer) error { return WriteServerMetricsCSV(res, w) }},
		}
		for _, f := range files {
			if err := writeFile(filepath.Join(cfg.Out, f.name), f.fn); err != nil {
				return err
			}
		}
		if cfg.VLLMJSON {
			dir := filepath.Join(cfg.Out, "vllm")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("analyze: %w", err)
			}
			for _, g := range res.Groups {
				err := writeFile(filepath.Join(dir, vllmFileName(g.Key)), func(w io.Writer) error { return writeVLLM(res, w, g) })
				if err != nil {
					return err
				}
			}
		}
		if cfg.Chart {
			if err := ctx.Err(); err != nil {
				return err
			}
			var skipped []string
			var err error
			charts, skipped, err = WriteCharts(res, &cfg, filepath.Join(cfg.Out, "charts"))
			if err != nil {
				return err
			}
			res.Warnings = append(res.Warnings, skipped...)
		}
	}
	if cfg.Report != "" {
		dir := filepath.Dir(cfg.Report)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("analyze: report: %w", err)
		}
		err := writeFile(cfg.Report, func(w io.Writer) error { return WriteReport(res, w, &cfg, charts, dir) })
		if err != nil {
			return err
		}
	}
	return nil
}

// writeFile writes path through a buffer and renames it into place, so a
// failed run never leaves half a file.
func writeFile(path string, fn func(io.Writer) error) error {
	var buf bytes.Buffer
	if err := fn(&buf); err != nil {
		return fmt.Errorf("analyze: %s: %w", path, err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return errors.Join(fmt.Errorf("analyze: %w", err), os.Remove(tmp))
	}
	return nil
}
