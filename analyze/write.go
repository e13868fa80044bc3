package analyze

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/vbench/vbench/capture"
)

// Run analyses the captures of cfg and writes what it asks: the terminal
// summary to cfg.Stdout, warnings to cfg.Stderr, and under cfg.Out
// summary.csv, summary.json, aggregates.csv, requests.csv,
// server_metrics.csv, charts/,
// vllm/ and report.md. It is what `vbanalyze` runs; the orchestrator and
// the demo call it directly.
func Run(ctx context.Context, cfg Config) error {
	res, err := Analyze(ctx, cfg)
	if err != nil {
		return err
	}
	if err := res.Write(ctx, cfg); err != nil {
		return err
	}
	if len(res.Damaged) > 0 {
		return fmt.Errorf("analyze: %w: %s; the results cover what could be read", capture.ErrDamaged, strings.Join(res.damage, "; "))
	}
	return nil
}

// Write writes the outputs of an analysis (see Run). cfg must be the
// configuration the result was computed with.
func (res *Result) Write(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg.Stdout != nil {
		var err error
		switch cfg.Format {
		case FormatCSV:
			err = res.WriteSummaryCSV(cfg.Stdout)
		case FormatJSON:
			err = res.WriteSummaryJSON(cfg.Stdout)
		default:
			err = res.WriteTable(cfg.Stdout)
		}
		if err != nil {
			return fmt.Errorf("analyze: summary: %w", err)
		}
	}
	if cfg.Stderr != nil && (cfg.Format != FormatTable || cfg.Stdout == nil) {
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
			{"summary.csv", res.WriteSummaryCSV},
			{"summary.json", res.WriteSummaryJSON},
			{"aggregates.csv", res.WriteAggregatesCSV},
			{"requests.csv", res.WriteRequestsCSV},
			{"server_metrics.csv", res.WriteServerMetricsCSV},
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
				err := writeFile(filepath.Join(dir, vllmFileName(g.Key)), func(w io.Writer) error { return res.writeVLLM(w, g) })
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
			charts, skipped, err = res.WriteCharts(&cfg, filepath.Join(cfg.Out, "charts"))
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
		err := writeFile(cfg.Report, func(w io.Writer) error { return res.WriteReport(w, &cfg, charts, dir) })
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
