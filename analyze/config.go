package analyze

import (
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/vbench/vbench/metric"
)

// Output formats of the terminal summary (Config.Format).
const (
	FormatTable = "table"
	FormatCSV   = "csv"
	FormatJSON  = "json"
)

// Measurement windows (Config.Window).
const (
	// WindowSkipWarmup excludes warm-up requests (Tags.Warmup) and the
	// drain after the replayer's deadline. The default.
	WindowSkipWarmup = "skip-warmup"
	// WindowAll measures every request, warm-up included.
	WindowAll = "all"
	// WindowSteady is skip-warmup with the window ending at the last
	// measured request's start: the drain after the last send is left out
	// of throughput (the steady-state rate under overload).
	WindowSteady = "steady"
)

// DefaultBy is the grouping when Config.By is empty (Analyze puts model
// first when the captures hold several models).
var DefaultBy = []string{"variant", "rate", "trial"}

// Config says what to analyse and what to write. The zero value plus
// Captures is valid; see Validate.
type Config struct {
	// Captures are capture directories or JSON Lines dumps (the output of
	// --dump / capture.Dump; "-" is stdin).
	Captures []string
	// Stdin is read for a capture named "-".
	Stdin io.Reader
	// By lists the grouping fields (default variant, rate, trial): variant,
	// rate (the level label), trial, run, model, capture, or any label.
	By []string
	// Out is the directory for summary.csv, summary.json, requests.csv,
	// report.md, charts/ and vllm/ ("" writes no files).
	Out string
	// Report is the Markdown report's path (default Out/report.md; "" with
	// no Out writes none).
	Report string
	// Chart draws the charts (PNG and SVG) under Out/charts.
	Chart bool
	// Format is the terminal summary format: table, csv or json.
	Format string
	// Stdout receives the terminal summary (nil: none); Stderr receives
	// warnings (nil: none).
	Stdout, Stderr io.Writer
	// SLO holds the goodput limits (zero: no goodput).
	SLO SLO
	// Window is skip-warmup (default), steady or all.
	Window string
	// VLLMJSON writes Out/vllm/<group>.json in `vllm bench serve` format.
	VLLMJSON bool
	// AllowMixed compares trials that replayed different traces.
	AllowMixed bool
	// Saturation is the normalized latency (s/token) under which a rate is
	// sustained (default 200ms).
	Saturation time.Duration
	// LagWarn is the schedule-lag p99 above which the replayer is reported
	// as the bottleneck (default 10ms).
	LagWarn time.Duration
	// CDFRate picks the rate level of the CDF charts (default: the highest
	// level every variant sustains, else the lowest level).
	CDFRate string
	// Timeline picks the group key of the timeline chart (default: the
	// first variant's group at the CDF rate).
	Timeline string
	// Title heads the report (default "vbench report").
	Title string
}

// Validate fills defaults and reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Captures) == 0 {
		errs = append(errs, errors.New("no capture given"))
	}
	if len(c.By) == 0 {
		c.By = slices.Clone(DefaultBy)
	}
	for _, b := range c.By {
		if strings.TrimSpace(b) == "" {
			errs = append(errs, fmt.Errorf("--by: empty field in %q", strings.Join(c.By, ",")))
		}
	}
	switch c.Format {
	case "":
		c.Format = FormatTable
	case FormatTable, FormatCSV, FormatJSON:
	default:
		errs = append(errs, fmt.Errorf("--format %q: want table, csv or json", c.Format))
	}
	switch c.Window {
	case "":
		c.Window = WindowSkipWarmup
	case WindowSkipWarmup, WindowAll, WindowSteady:
	default:
		errs = append(errs, fmt.Errorf("--window %q: want skip-warmup, steady or all", c.Window))
	}
	if c.Saturation == 0 {
		c.Saturation = 200 * time.Millisecond
	}
	if c.Saturation < 0 {
		errs = append(errs, fmt.Errorf("--saturation %s: must be positive", c.Saturation))
	}
	if c.LagWarn < 0 {
		errs = append(errs, fmt.Errorf("--lag-warn %v: must be positive", c.LagWarn))
	}
	if c.LagWarn == 0 {
		c.LagWarn = 10 * time.Millisecond
	}
	if (c.Chart || c.VLLMJSON) && c.Out == "" {
		errs = append(errs, errors.New("--chart and --vllm-json write files: give --out DIR"))
	}
	if c.Report == "" && c.Out != "" {
		c.Report = filepath.Join(c.Out, "report.md")
	}
	if c.Title == "" {
		c.Title = "vbench report"
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return nil
}

// SLO holds per-request service-level objectives for goodput; a zero limit
// is not checked. A request is good when it completed and every set limit
// holds (value ≤ limit). As in `vllm bench serve`, a request with one
// output token (no TPOT) meets any TPOT limit.
type SLO struct {
	TTFT      time.Duration `json:"ttft,omitempty"`
	TTFTSched time.Duration `json:"ttft_sched,omitempty"`
	TPOT      time.Duration `json:"tpot,omitempty"`
	E2E       time.Duration `json:"e2e,omitempty"`
	// Norm limits the normalized latency (E2E per output token).
	Norm time.Duration `json:"norm,omitempty"`
}

// Empty reports whether no limit is set.
func (s SLO) Empty() bool { return s == SLO{} }

// String formats s the way ParseSLO reads it.
func (s SLO) String() string {
	var parts []string
	add := func(k string, d time.Duration) {
		if d > 0 {
			parts = append(parts, k+"="+d.String())
		}
	}
	add("ttft", s.TTFT)
	add("ttft_sched", s.TTFTSched)
	add("tpot", s.TPOT)
	add("e2e", s.E2E)
	add("norm", s.Norm)
	return strings.Join(parts, ",")
}

// ParseSLO reads "ttft=1s,tpot=100ms,e2e=10s,norm=200ms,ttft_sched=2s"
// (e2el is accepted for e2e).
func ParseSLO(text string) (SLO, error) {
	var s SLO
	if strings.TrimSpace(text) == "" {
		return s, nil
	}
	for _, part := range strings.Split(text, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return SLO{}, fmt.Errorf("--slo %q: want name=duration, e.g. ttft=1s", part)
		}
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil || d <= 0 {
			return SLO{}, fmt.Errorf("--slo %s: %q is not a positive duration such as 500ms", k, v)
		}
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "ttft":
			s.TTFT = d
		case "ttft_sched", "ttft-sched":
			s.TTFTSched = d
		case "tpot":
			s.TPOT = d
		case "e2e", "e2el":
			s.E2E = d
		case "norm", "normalized":
			s.Norm = d
		default:
			return SLO{}, fmt.Errorf("--slo %q: unknown objective; want ttft, ttft_sched, tpot, e2e or norm", k)
		}
	}
	return s, nil
}

// Meets reports whether a request is good under s.
func (s SLO) Meets(r *metric.Request) bool {
	if !r.Completed() {
		return false
	}
	le := func(v float64, lim time.Duration) bool {
		return lim <= 0 || (!math.IsNaN(v) && v <= lim.Seconds())
	}
	tpot := r.TPOT()
	tpotOK := s.TPOT <= 0 || math.IsNaN(tpot) && r.OutputTokens <= 1 || le(tpot, s.TPOT)
	return le(r.TTFT(), s.TTFT) && le(r.TTFTScheduled(), s.TTFTSched) && tpotOK && le(r.E2E(), s.E2E) && le(r.NormLatency(), s.Norm)
}
