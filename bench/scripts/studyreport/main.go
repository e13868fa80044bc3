// Command studyreport writes the report of a study that ran as several GPU
// holds (issue #16: a GPU lent 30 minutes at a time runs each workload as
// holds that share an anchor variant at two rates). It reads each hold's
// study file and results tree, analyses every measured level of every
// finished trial together (the analyze package: the same definitions as
// vbanalyze and vbbench), and writes DIR/report.md beside DIR/analysis/
// (vbanalyze's report, summary CSVs and charts, Fig. 12 among them):
//
//   - each hold's planned wall time (vbbench plan's estimate) against the
//     actual one (its first trial's start to its last trial's end);
//   - normalized latency against rate, with 95% CIs across holds;
//   - batched requests at the equal-rate operating point, with CIs, beside
//     the vLLM paper's Fig. 13;
//   - sustainable rates and their ratios beside the paper's;
//   - the paper's ordering (paged > oracle > pow2 > max), reproduced or not;
//   - the anchor's drift between holds.
//
// Usage:
//
//	go run ./bench/scripts/studyreport -out DIR -workload sharegpt \
//	    [-paper ../shared/data/vllm-paper/published_stats.json] [-anchor torch-oracle] \
//	    [-equal-rate 12] [-saturation 200ms] [-also-saturation 0] [-title T] HOLD.toml=RESULTS_DIR ...
//
// A HOLD.toml may appear several times (its repetitions), each with the
// results tree that run wrote.
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vbench/vbench/analyze"
	"github.com/vbench/vbench/analyze/render"
	"github.com/vbench/vbench/backends"
	"github.com/vbench/vbench/bench"
	"github.com/vbench/vbench/metric"
)

func main() {
	if err := run(context.Background(), os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "studyreport:", err)
		os.Exit(1)
	}
}

// hold is one run of one hold's study file.
type hold struct {
	n       int // 1-based, in argument order
	file    string
	results string
	trials  []trial
	// asRun says the planned times are those of the plan.txt the hold ran
	// with (else vbbench plan's of now).
	asRun bool
	// notRun are the planned trials (model/variant rep N) with no finished
	// attempt; superseded the earlier finished attempts of a trial that
	// finished again (a resumed or repeated run), left out of the report.
	notRun, superseded []string
	// gpu is the GPU's UUID from device.txt beside the study file, and
	// fingerprints the machine's speed before each trial from
	// fingerprint.jsonl there (none before session 5).
	gpu          string
	fingerprints []fingerprint
}

// trial is one finished trial of a hold: its latest finished attempt.
type trial struct {
	bench.TrialStatus
	dir string
	// planned is vbbench plan's estimate of the trial (0: not in the
	// plan); startup the server's start-up from its meta.json (0: not
	// recorded).
	planned, startup time.Duration
}

// options are the flags.
type options struct {
	out, workload, paper, anchor, title string
	equalRate                           float64
	saturation, alsoSaturation          time.Duration
}

func run(ctx context.Context, args []string) error {
	fl := flag.NewFlagSet("studyreport", flag.ContinueOnError)
	var o options
	fl.StringVar(&o.out, "out", "", "output directory (required)")
	fl.StringVar(&o.workload, "workload", "", "sharegpt or alpaca: which of the paper's figures stand beside ours (required)")
	fl.StringVar(&o.paper, "paper", "", "the vLLM paper's published_stats.json (optional)")
	fl.StringVar(&o.anchor, "anchor", "torch-oracle", "the variant every hold shares")
	fl.Float64Var(&o.equalRate, "equal-rate", 0, "the rate (req/s) every variant ran, for the batched-requests comparison")
	fl.DurationVar(&o.saturation, "saturation", 200*time.Millisecond, "normalized latency (per token) under which a rate is sustained")
	fl.DurationVar(&o.alsoSaturation, "also-saturation", 0, "a second threshold whose sustained rates the report gives beside the first's (0: none)")
	fl.StringVar(&o.title, "title", "", "report title")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if o.out == "" || (o.workload != "sharegpt" && o.workload != "alpaca") || fl.NArg() == 0 {
		return errors.New("want -out DIR, -workload sharegpt|alpaca and at least one HOLD.toml=RESULTS_DIR")
	}
	var holds []*hold
	for i, a := range fl.Args() {
		file, results, ok := strings.Cut(a, "=")
		if !ok || file == "" || results == "" {
			return fmt.Errorf("%q: want HOLD.toml=RESULTS_DIR", a)
		}
		h, err := loadHold(ctx, i+1, file, results)
		if err != nil {
			return err
		}
		holds = append(holds, h)
	}
	var caps []string
	seen := map[string]int{} // trial (its label: the directory's name) → the run that listed it
	for _, h := range holds {
		for _, t := range h.trials {
			id := filepath.Base(t.dir) // however the path was spelled
			if n, dup := seen[id]; dup {
				return fmt.Errorf("trial %s is in run %d and run %d: give each run of a hold its own results tree, or its trials count twice", id, n, h.n)
			}
			seen[id] = h.n
			for _, l := range t.Levels {
				caps = append(caps, filepath.Join(t.dir, l.Capture))
			}
		}
	}
	if len(caps) == 0 {
		return errors.New("no finished trial with a measured level in any results tree")
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	title := o.title
	if title == "" {
		title = "Study across " + plural(len(holds), "hold run")
	}
	cfg := analyze.Config{Captures: caps, Out: filepath.Join(o.out, "analysis"), Chart: true,
		Saturation: o.saturation, Title: title + " — all holds", Stdout: io.Discard, Stderr: os.Stderr}
	res, err := analyze.Analyze(ctx, cfg)
	if err == nil {
		err = render.Write(ctx, res, cfg)
	}
	if err != nil {
		return fmt.Errorf("analysis: %w", err)
	}
	var paper *paperStats
	if o.paper != "" {
		if paper, err = loadPaper(o.paper); err != nil {
			return err
		}
	}
	md := report(title, o, holds, res, paper)
	if err := os.WriteFile(filepath.Join(o.out, "report.md"), []byte(md), 0o644); err != nil {
		return err
	}
	// As vbanalyze: everything is written, then a damaged capture is the
	// error (the report says what it lost).
	return res.DamageError()
}

// loadHold reads a hold's study (for its name and its trials' planned
// times) and the finished trials of that study under results: of a trial
// that finished more than once, the latest attempt.
func loadHold(ctx context.Context, n int, file, results string) (*hold, error) {
	s, err := bench.LoadStudy(file)
	if err != nil {
		return nil, err
	}
	h := &hold{n: n, file: file, results: results, gpu: gpuOf(filepath.Join(filepath.Dir(file), "device.txt"))}
	if h.fingerprints, err = readFingerprints(filepath.Join(filepath.Dir(file), "fingerprint.jsonl")); err != nil {
		return nil, err
	}
	planned := map[string]bench.Trial{}
	var order []string
	if p, err := bench.MakePlan(ctx, s); err == nil {
		for _, t := range p.Trials {
			planned[t.Key()] = t
			order = append(order, t.Key())
		}
	}
	// The estimates the hold ran with, when its plan.txt is kept beside
	// the study file (the driver writes it): the plan's model may have
	// changed since.
	if b, err := os.ReadFile(filepath.Join(filepath.Dir(file), "plan.txt")); err == nil {
		for k, d := range plannedFromText(string(b)) {
			if t, ok := planned[k]; ok {
				t.Estimate = d
				planned[k] = t
				h.asRun = true
			}
		}
	}
	attempts, err := bench.ScanAttempts(results, s.Name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", results, err)
	}
	latest := map[string]bool{} // trial keys with a finished attempt
	for key, as := range attempts {
		var finished []bench.TrialStatus // oldest first, as ScanAttempts gives them
		for _, a := range as {
			if a.Status == bench.StatusOK || a.Status == bench.StatusEarlyStopped {
				finished = append(finished, a)
			}
		}
		if len(finished) == 0 {
			continue
		}
		latest[key] = true
		for _, a := range finished[:len(finished)-1] {
			h.superseded = append(h.superseded, a.Dir)
		}
		t := trial{TrialStatus: finished[len(finished)-1], dir: finished[len(finished)-1].Dir}
		t.planned = planned[key].Estimate
		t.startup = startupOf(t.dir)
		h.trials = append(h.trials, t)
	}
	// The results tree's order (model, variant, trial folder).
	slices.SortFunc(h.trials, func(a, b trial) int { return strings.Compare(a.dir, b.dir) })
	slices.Sort(h.superseded)
	if len(h.trials) == 0 {
		return nil, fmt.Errorf("%s: no finished trial of study %q (from %s)", results, s.Name, file)
	}
	for _, k := range order {
		if !latest[k] {
			t := planned[k]
			h.notRun = append(h.notRun, fmt.Sprintf("%s/%s rep %d", t.Model.Name, t.Variant.Name, t.Rep))
		}
	}
	sort.Strings(h.superseded)
	sort.Slice(h.trials, func(i, j int) bool { return h.trials[i].Started.Before(h.trials[j].Started) })
	return h, nil
}

// planLine is a trial's line in vbbench plan's run order: its number,
// model, variant, rep, kind, optional lane and start, and estimate.
var planLine = regexp.MustCompile(`^\s+\d+\s+(\S+)\s+(\S+)\s+rep (\d+)\s+\S+\s+(?:gpu \S+\s+start ≈\S+\s+)?≈(\S+)\s+\(done at`)

// plannedFromText reads the trials' estimates from vbbench plan's printed
// plan, by trial key (model/variant/repN).
func plannedFromText(text string) map[string]time.Duration {
	out := map[string]time.Duration{}
	for _, line := range strings.Split(text, "\n") {
		m := planLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if d, err := time.ParseDuration(m[4]); err == nil {
			out[m[1]+"/"+m[2]+"/rep"+m[3]] = d
		}
	}
	return out
}

// startupOf is the server's start-up that a trial's meta.json recorded (0
// when it has none).
func startupOf(dir string) time.Duration {
	var m bench.Meta
	if readJSON(filepath.Join(dir, "meta.json"), &m) != nil {
		return 0
	}
	return time.Duration(m.StartupSeconds * float64(time.Second))
}

// readJSON decodes the JSON file at path into v.
func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// planned is the sum of the plan's estimates of the trials that finished:
// what the hold's actual time is compared with.
func (h *hold) planned() time.Duration {
	var d time.Duration
	for _, t := range h.trials {
		d += t.planned
	}
	return d
}

// actual is the hold's wall time: its first trial's start to its last
// trial's end.
func (h *hold) actual() time.Duration {
	var first, last time.Time
	for _, t := range h.trials {
		if first.IsZero() || t.Started.Before(first) {
			first = t.Started
		}
		if t.Ended.After(last) {
			last = t.Ended
		}
	}
	return last.Sub(first)
}

// allocation is what a trial's server said it allocated (meta.json's
// server_allocated) and the limits it was started with (config.json's
// variant spec), as table cells ("-": not recorded or not exported).
type allocation struct {
	kvTokens, blocks, maxSeqs, maxBatched, attention, eager, prefix string
}

func allocationOf(dir string) allocation {
	a := allocation{"-", "-", "-", "-", "-", "-", "-"}
	num := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	var meta bench.Meta
	if readJSON(filepath.Join(dir, "meta.json"), &meta) == nil {
		if kv, ok := bench.KVAllocation(meta.Allocated); ok {
			a.kvTokens = num(kv.Tokens)
			if kv.Blocks > 0 {
				a.blocks = num(kv.Blocks) + " × " + num(kv.BlockSize)
			}
		}
	}
	var cfg bench.TrialConfig
	if readJSON(filepath.Join(dir, "config.json"), &cfg) == nil {
		sp := cfg.Variant.Spec
		if sp.MaxNumSeqs > 0 {
			a.maxSeqs = strconv.Itoa(sp.MaxNumSeqs)
		}
		if sp.MaxNumBatchedTokens > 0 {
			a.maxBatched = strconv.Itoa(sp.MaxNumBatchedTokens)
		}
		yes := func(p *bool, dflt string) string {
			switch {
			case p == nil:
				return dflt
			case *p:
				return "yes"
			}
			return "no"
		}
		switch sp.Kind {
		case backends.KindVLLM:
			a.attention = cmp.Or(sp.AttentionBackend, "vLLM's default")
			a.eager = yes(sp.EnforceEager, "no (compile, CUDA graphs)")
			a.prefix = yes(sp.PrefixCaching, "vLLM's default (on)")
		case backends.KindTorch:
			a.attention = cmp.Or(sp.Attn, "-")
			a.eager, a.prefix = "yes", "no"
		}
	}
	return a
}

// offGoal marks a hold whose actual time is off its plan by more than the
// study's goal, ±10 % (issue #16).
func offGoal(actual, planned time.Duration) string {
	// In whole percent, as the table prints it (110/100 − 1 is not 0.1 in
	// floating point).
	if planned > 0 && math.Abs(math.Round(100*(actual.Seconds()/planned.Seconds()-1))) > 10 {
		return " (outside ±10 %)"
	}
	return ""
}

// vsPlanned is actual against planned, as a signed percentage ("-" when
// nothing was planned).
func vsPlanned(actual, planned time.Duration) string {
	if planned <= 0 {
		return "-"
	}
	return fmt.Sprintf("%+.0f%%", 100*(actual.Seconds()/planned.Seconds()-1))
}

// paperStats is the part of published_stats.json the report uses.
type paperStats struct {
	Paper string `json:"paper"`
	Knees struct {
		ShareGPT map[string]map[string]float64 `json:"sharegpt"`
		Alpaca   map[string]map[string]float64 `json:"alpaca"`
	} `json:"fig12_knee_request_rates_APPROX_third_party_visual_reading"`
	Fig13 map[string]map[string]float64 `json:"fig13_avg_batched_requests_OPT13B"`
}

func loadPaper(path string) (*paperStats, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var p paperStats
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &p, nil
}

// paperName is the paper's system that a variant stands for.
func paperName(variant string) (fig13, knee string) {
	switch {
	case strings.HasSuffix(variant, "-max"):
		return "Orca (Max)", "OrcaMax"
	case strings.HasSuffix(variant, "-pow2"):
		return "Orca (Pow2)", "OrcaPow2"
	case strings.HasSuffix(variant, "-oracle"):
		return "Orca (Oracle)", "OrcaOracle"
	case strings.HasPrefix(variant, "vllm"):
		return "vLLM", "vLLM"
	}
	return "", ""
}

// variantOrder puts the paper's systems first (max, pow2, oracle), then
// the vLLM presets, then the rest by name.
func variantOrder(vs []string) []string {
	rank := func(v string) int {
		switch {
		case strings.HasSuffix(v, "-max"):
			return 0
		case strings.HasSuffix(v, "-pow2"):
			return 1
		case strings.HasSuffix(v, "-oracle"):
			return 2
		case v == "vllm-page":
			return 3
		case v == "vllm-page+flash":
			return 4
		case v == "vllm-all-opt":
			return 5
		}
		return 6
	}
	out := slices.Clone(vs)
	sort.SliceStable(out, func(i, j int) bool {
		if a, b := rank(out[i]), rank(out[j]); a != b {
			return a < b
		}
		return out[i] < out[j]
	})
	return out
}

func report(title string, o options, holds []*hold, res *analyze.Result, paper *paperStats) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n", title)
	fmt.Fprintf(&b, "Generated by `go run ./bench/scripts/studyreport` from %s; every figure comes from their captures through the analyze package (the definitions of `vbanalyze`, whose full report, CSVs and charts are in [`analysis/`](analysis/report.md)). Rates sustained at normalized latency ≤ %s/token.\n\n", plural(len(holds), "hold run"), o.saturation)

	// Holds: planned vs actual.
	b.WriteString("## Holds: planned and actual wall time\n\n| run | study file | results | trials | planned | actual | actual vs planned | not run |\n|---|---|---|---:|---:|---:|---:|---|\n")
	for _, h := range holds {
		notRun := "-"
		if len(h.notRun) > 0 {
			notRun = strings.Join(h.notRun, ", ")
		}
		fmt.Fprintf(&b, "| %d | `%s` | `%s` | %d | %s | %s | %s | %s |\n", h.n, h.file, h.results, len(h.trials), fmtDur(h.planned()), fmtDur(h.actual()), vsPlanned(h.actual(), h.planned())+offGoal(h.actual(), h.planned()), notRun)
	}
	b.WriteString("\nPlanned: `vbbench plan`'s estimates of the trials that finished: those of the `plan.txt` the hold ran with, kept beside its study file, else the plan's of now (its model of a level's drain is in docs/vbbench.md). Actual: the first of them's start to the last one's end; the goal is within ±10 %. Not run: planned trials with no finished attempt (the hold's time ran out, or they failed).\n\n")
	b.WriteString("| run | trial | rates | start-up | planned | actual | actual vs planned |\n|---|---|---|---:|---:|---:|---:|\n")
	for _, h := range holds {
		for _, t := range h.trials {
			rates := make([]string, len(t.Levels))
			for i, l := range t.Levels {
				rates[i] = strconv.FormatFloat(l.Rate, 'g', -1, 64)
			}
			startup := "-"
			if t.startup > 0 {
				startup = fmt.Sprintf("%.0f s", t.startup.Seconds())
			}
			d := t.Ended.Sub(t.Started)
			fmt.Fprintf(&b, "| %d | %s/%s rep %d | %s | %s | %s | %s | %s |\n", h.n, t.Model, t.Variant, t.Rep, strings.Join(rates, ", "), startup, fmtDur(t.planned), fmtDur(d), vsPlanned(d, t.planned))
		}
	}
	b.WriteString("\nStart-up: the server's launch to healthy, from the trial's `meta.json`.\n\n")
	var superseded []string
	for _, h := range holds {
		superseded = append(superseded, h.superseded...)
	}
	if len(superseded) > 0 {
		fmt.Fprintf(&b, "Left out, an earlier finished attempt of a trial that finished again: %s.\n\n", strings.Join(superseded, ", "))
	}

	// Fig. 12.
	variants := map[string]bool{}
	for _, a := range res.Aggregates {
		variants[a.Variant] = true
	}
	var vs []string
	for v := range variants {
		vs = append(vs, v)
	}
	vs = variantOrder(vs)
	b.WriteString("## Normalized latency vs request rate (the paper's Fig. 12)\n\n![normalized latency vs rate](analysis/charts/norm_latency_vs_rate.png)\n\n")
	b.WriteString("Mean normalized latency (s/token, cut requests at their lower bound) ± the 95% CI across hold runs (n = runs that measured the rate); batched = the server's running requests, time-weighted.\n\n| variant | rate | n | norm latency (s/token) | TPOT mean (ms) | batched | cut |\n|---|---:|---:|---:|---:|---:|---:|\n")
	// The aggregates in variant order, each variant's by rate.
	var ordered []*analyze.Aggregate
	for _, v := range vs {
		for _, a := range res.Aggregates {
			if a.Variant == v {
				ordered = append(ordered, a)
			}
		}
	}
	for _, a := range ordered {
		fmt.Fprintf(&b, "| %s | %g | %d | %s | %s | %s | %d |\n", a.Variant, a.Rate, a.Trials, fmtCI(a.NormLatencyWithCut, 4, 1), fmtCI(a.TPOTMean, 1, 1000), fmtCI(a.Running, 1, 1), a.Cut)
	}

	// What each server says it allocated, and the limits it was given.
	b.WriteString("\n## What each server allocated\n\n")
	b.WriteString("Per variant, over its trials in every hold run (values that differ between trials are listed with `/`): the KV cache the server reported at start-up (vLLM's `cache_config_info`: blocks × block size; vbtorch's `kv_capacity_tokens`), and the limits and kernels it was started with (the trial's `config.json`).\n\n")
	b.WriteString("| variant | trials | KV tokens (server) | KV blocks × size | max seqs | max batched tokens | attention | eager | prefix caching |\n|---|---:|---:|---:|---:|---:|---|---|---|\n")
	for _, v := range vs {
		var al []allocation
		for _, h := range holds {
			for _, t := range h.trials {
				if t.Variant == v {
					al = append(al, allocationOf(t.dir))
				}
			}
		}
		if len(al) == 0 {
			continue
		}
		col := func(f func(allocation) string) string {
			var seen []string
			for _, a := range al {
				if x := f(a); !slices.Contains(seen, x) {
					seen = append(seen, x)
				}
			}
			return strings.Join(seen, " / ")
		}
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %s | %s | %s |\n", v, len(al),
			col(func(a allocation) string { return a.kvTokens }), col(func(a allocation) string { return a.blocks }),
			col(func(a allocation) string { return a.maxSeqs }), col(func(a allocation) string { return a.maxBatched }),
			col(func(a allocation) string { return a.attention }), col(func(a allocation) string { return a.eager }),
			col(func(a allocation) string { return a.prefix }))
	}

	// The servers' own figures, which explain the curves.
	b.WriteString("\n## The servers' own figures\n\n")
	b.WriteString("What each server reported over each level's window (the analyze package's server figures, the mean across hold runs): engine steps per second and the mean step time (vbtorch exports its step time; for vLLM, which exports only its step count, the client-side TPOT above stands for it), requests waiting, KV tokens reserved for running requests (vLLM: its KV usage × capacity) and, for vbtorch, those filled and the largest free hole, and vLLM's preemptions. `-`: the server does not export it.\n\n")
	b.WriteString("| variant | rate | steps/s | step time (ms) | waiting | KV reserved | KV filled | largest hole | preemptions |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, a := range ordered {
		fmt.Fprintf(&b, "| %s | %g | %s | %s | %s | %s | %s | %s | %s |\n", a.Variant, a.Rate, fmtCI(a.StepsPerS, 0, 1), fmtCI(a.StepTime, 1, 1000),
			fmtCI(a.Waiting, 1, 1), fmtCI(a.KVReserved, 0, 1), fmtCI(a.KVFilled, 0, 1), fmtCI(a.KVLargestHole, 0, 1), fmtCI(a.Preemptions, 0, 1))
	}

	// Batched at the equal rate (Fig. 13).
	if o.equalRate > 0 {
		fmt.Fprintf(&b, "\n## Batched requests at %g req/s (the paper's Fig. 13)\n\n", o.equalRate)
		key := map[string]string{"sharegpt": "sharegpt_at_2_rps", "alpaca": "alpaca_at_30_rps"}[o.workload]
		b.WriteString("| variant | batched (ours, ± 95% CI) | n | the paper (OPT-13B, " + key + ") |\n|---|---:|---:|---:|\n")
		for _, v := range vs {
			a := findAgg(res, v, o.equalRate)
			if a == nil {
				fmt.Fprintf(&b, "| %s | not run at %g | - | - |\n", v, o.equalRate)
				continue
			}
			pp := "-"
			if name, _ := paperName(v); paper != nil && name != "" {
				if x, ok := paper.Fig13[key][name]; ok {
					pp = fmt.Sprintf("%.2f (%s)", x, name)
				}
			}
			fmt.Fprintf(&b, "| %s | %s | %d | %s |\n", v, fmtCI(a.Running, 1, 1), a.Trials, pp)
		}
	}

	// Sustainable rates and ratios.
	sat := map[string]analyze.Saturation{}
	for _, s := range res.Saturation {
		sat[s.Variant] = s
	}
	b.WriteString("\n## Sustainable rates\n\n| variant | sustained (req/s) | the paper's knee (OPT-13B, read off Fig. 12) |\n|---|---:|---:|\n")
	for _, v := range vs {
		s, ok := sat[v]
		if !ok {
			continue
		}
		pk := "-"
		if _, k := paperName(v); paper != nil && k != "" {
			if x, ok := paper.knees(o.workload)[k]; ok {
				pk = fmt.Sprintf("%g", x)
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", v, fmtSat(s), pk)
	}
	if o.alsoSaturation > 0 {
		also := map[string]analyze.Saturation{}
		for _, s := range analyze.SaturationAt(res.Aggregates, o.alsoSaturation.Seconds()) {
			also[s.Variant] = s
		}
		fmt.Fprintf(&b, "\nThe same rule at %s/token, each variant's sustained rate (req/s): ", o.alsoSaturation)
		var parts []string
		for _, v := range vs {
			if s, ok := also[v]; ok {
				parts = append(parts, fmt.Sprintf("%s %s", v, fmtSat(s)))
			}
		}
		b.WriteString(strings.Join(parts, ", ") + ".\n")
	}
	b.WriteString("\n| ratio | ours | the paper |\n|---|---:|---:|\n")
	for _, r := range ratioPairs {
		if row, ok := ratioRow(r, sat, o.workload, paper); ok {
			fmt.Fprintf(&b, "| %s / %s | %s |\n", r[0], r[1], row)
		}
	}
	b.WriteString("\n\"≥\": the numerator never crossed the threshold (its highest rate sustained), so the ratio is a lower bound; \"≤\": the denominator never did, an upper bound. Pairs where neither crossed it, or either sustained none of its rates, have no row.\n")
	b.WriteString(withinHolds(o, holds, res, paper))

	// The paper's ordering.
	b.WriteString(orderingSection(o, sat, res))

	// Anchor drift.
	b.WriteString(anchorDrift(o.anchor, holds, res))
	b.WriteString(machines(holds))
	if ws := res.AllWarnings(); len(ws) > 0 {
		b.WriteString("\n## Warnings\n\n")
		for _, w := range ws {
			fmt.Fprintf(&b, "- %s\n", w)
		}
	}
	return b.String()
}

// orderingSection is the paper's ordering, paged > oracle > pow2 > max:
// each measure's verdict, and each step explained by the servers' figures.
// A study without the baseline's policies (the MoE study) gets one line.
func orderingSection(o options, sat map[string]analyze.Saturation, res *analyze.Result) string {
	var b strings.Builder
	order := []string{"torch-max", "torch-pow2", "torch-oracle", "vllm-page"}
	if !slices.ContainsFunc(order[:3], func(v string) bool { _, ok := sat[v]; return ok }) {
		return "\n## The paper's ordering: paged > oracle > pow2 > max\n\nThis study runs none of the PyTorch baseline's reservation policies (torch-max, torch-pow2, torch-oracle): no ordering to check.\n"
	}
	b.WriteString("\n## The paper's ordering: paged > oracle > pow2 > max\n\n| measure | max | pow2 | oracle | paged (vllm-page) | reproduced |\n|---|---:|---:|---:|---:|---|\n")
	var rates []interval
	var cells []string
	for _, v := range order {
		s, ok := sat[v]
		if !ok {
			cells = append(cells, "-")
			rates = append(rates, interval{math.NaN(), math.NaN()})
			continue
		}
		cells = append(cells, fmtSat(s))
		rates = append(rates, satInterval(s))
	}
	fmt.Fprintf(&b, "| sustained rate (req/s) | %s | %s |\n", strings.Join(cells, " | "), verdict(rates))
	if o.equalRate > 0 {
		var bs []interval
		cells = cells[:0]
		for _, v := range order {
			if a := findAgg(res, v, o.equalRate); a != nil {
				bs = append(bs, ciInterval(a.Running))
				cells = append(cells, fmtCI(a.Running, 1, 1))
			} else {
				bs = append(bs, interval{math.NaN(), math.NaN()})
				cells = append(cells, "-")
			}
		}
		fmt.Fprintf(&b, "| batched at %g req/s | %s | %s |\n", o.equalRate, strings.Join(cells, " | "), verdict(bs))
	}
	b.WriteString(orderingFigures(order, res))
	return b.String()
}

// orderingFigures explains the ordering with the servers' own figures:
// for each neighbouring pair of the paper's order, at every rate both ran,
// what each batched, its TPOT (the step cost: vLLM exports no step time),
// the KV tokens its running requests reserved, the requests waiting and
// vLLM's preemptions. "" when no pair shares a rate.
func orderingFigures(order []string, res *analyze.Result) string {
	var rows []string
	for i := 1; i < len(order); i++ {
		lo, hi := order[i-1], order[i]
		for _, a := range res.Aggregates {
			if a.Variant != lo {
				continue
			}
			h := findAgg(res, hi, a.Rate)
			if h == nil {
				continue
			}
			pair := func(f func(*analyze.Aggregate) metric.CI, prec int, scale float64) string {
				return fmtCI(f(a), prec, scale) + " → " + fmtCI(f(h), prec, scale)
			}
			rows = append(rows, fmt.Sprintf("| %s → %s | %g | %s | %s | %s | %s | %s | %s |", lo, hi, a.Rate,
				pair(func(x *analyze.Aggregate) metric.CI { return x.NormLatencyWithCut }, 4, 1),
				pair(func(x *analyze.Aggregate) metric.CI { return x.Running }, 1, 1),
				pair(func(x *analyze.Aggregate) metric.CI { return x.TPOTMean }, 1, 1000),
				pair(func(x *analyze.Aggregate) metric.CI { return x.KVReserved }, 0, 1),
				pair(func(x *analyze.Aggregate) metric.CI { return x.Waiting }, 1, 1),
				pair(func(x *analyze.Aggregate) metric.CI { return x.Preemptions }, 0, 1)))
		}
	}
	if len(rows) == 0 {
		return ""
	}
	return "\nWhat the servers say, for each step of the order at every rate both variants ran (the lower variant → the higher): a higher variant should batch more requests in the same KV budget; its TPOT says what each step costs, which the paper's systems shared and these do not.\n\n" +
		"| step | rate | norm. latency (s/token) | batched | TPOT (ms) | KV reserved | waiting | preemptions |\n|---|---:|---|---|---|---|---|---|\n" +
		strings.Join(rows, "\n") + "\n"
}

func (p *paperStats) knees(workload string) map[string]float64 {
	m := p.Knees.ShareGPT
	if workload == "alpaca" {
		m = p.Knees.Alpaca
	}
	return m["OPT-13B"]
}

// interval is what a figure is known to lie in: [lo, hi] (a CI, or a
// sustained rate that is only a bound).
type interval struct{ lo, hi float64 }

// satInterval: a sustained rate is exact, at least it (the highest rate
// never crossed the threshold) or below it (even the lowest did).
func satInterval(s analyze.Saturation) interval {
	switch {
	case s.Never:
		return interval{s.Rate, math.Inf(1)}
	case s.Over:
		return interval{0, s.Next} // Rate is NaN: none was sustained
	}
	return interval{s.Rate, s.Next} // the knee lies before the next measured rate
}

// ciInterval is mean ± the 95% half-width (the mean alone for one run).
func ciInterval(c metric.CI) interval {
	h := c.Half
	if c.N < 2 || math.IsNaN(h) {
		h = 0
	}
	return interval{c.Mean - h, c.Mean + h}
}

// verdict says whether the figures (max, pow2, oracle, paged) rise in
// that order: "yes" when each one's interval lies wholly above the one
// before, "**no**" when some lies wholly at or below it, otherwise
// "undecided" (bounds or CIs overlap).
func verdict(xs []interval) string {
	for _, x := range xs {
		if math.IsNaN(x.lo) {
			return "not all measured"
		}
	}
	out := "yes"
	for i := 1; i < len(xs); i++ {
		switch {
		case xs[i].hi <= xs[i-1].lo:
			return "**no**"
		case !(xs[i].lo >= xs[i-1].hi): // a knee's interval [rate, next rate) excludes its end
			out = "undecided (bounds or CIs overlap)"
		}
	}
	return out
}

func findAgg(res *analyze.Result, variant string, rate float64) *analyze.Aggregate {
	for _, a := range res.Aggregates {
		if a.Variant == variant && math.Abs(a.Rate-rate) < 1e-9 {
			return a
		}
	}
	return nil
}

// anchorDrift compares the anchor variant's groups at the rates that more
// than one hold run measured: each run's figures and their change from the
// first run's.
func anchorDrift(anchor string, holds []*hold, res *analyze.Result) string {
	runOf := map[string]int{}
	for _, h := range holds {
		for _, t := range h.trials {
			runOf[filepath.Base(t.dir)] = h.n
		}
	}
	byLevel := map[string][]*analyze.Group{}
	var levels []string
	for _, g := range res.Groups {
		if g.Variant == anchor {
			if _, ok := byLevel[g.Level]; !ok {
				levels = append(levels, g.Level)
			}
			byLevel[g.Level] = append(byLevel[g.Level], g)
		}
	}
	// Only the levels that two hold runs measured (repetitions inside one
	// run are not drift between holds).
	levels = slices.DeleteFunc(levels, func(l string) bool {
		runs := map[int]bool{}
		for _, g := range byLevel[l] {
			runs[runOf[g.Trial]] = true
		}
		return len(runs) < 2
	})
	slices.SortFunc(levels, func(x, y string) int {
		return analyze.CompareLevels(x, byLevel[x][0].Rate, y, byLevel[y][0].Rate)
	})
	var b strings.Builder
	fmt.Fprintf(&b, "\n## Drift between holds: the anchor %s\n\n", anchor)
	if len(levels) == 0 {
		b.WriteString("No rate of the anchor was measured by more than one hold run.\n")
		return b.String()
	}
	num := func(v float64, prec int, scale float64, unit string) string {
		if math.IsNaN(v) {
			return "-"
		}
		return fmt.Sprintf("%.*f%s", prec, v*scale, unit)
	}
	b.WriteString("| rate | run | norm latency | Δ | TPOT mean | Δ | batched | Δ | step time | Δ | requests per step |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, l := range levels {
		gs := byLevel[l]
		slices.SortStableFunc(gs, func(x, y *analyze.Group) int {
			return cmp.Or(cmp.Compare(runOf[x.Trial], runOf[y.Trial]), cmp.Compare(x.Trial, y.Trial))
		})
		base := gs[0]
		for _, g := range gs {
			fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", l, runOf[g.Trial], num(g.NormLatencyWithCut.Mean, 4, 1, ""), delta(g.NormLatencyWithCut.Mean, base.NormLatencyWithCut.Mean),
				num(g.TPOT.Mean, 1, 1000, " ms"), delta(g.TPOT.Mean, base.TPOT.Mean), num(g.Running, 1, 1, ""), delta(g.Running, base.Running),
				num(g.StepTime, 1, 1000, " ms"), delta(g.StepTime, base.StepTime), num(g.BatchPerStep, 1, 1, ""))
		}
	}
	b.WriteString("\nΔ: the change from the first run (in argument order) that measured the rate. Step time and requests per step are the server's own (`-` where it does not export them). A slower machine steps slower at the same requests per step; the same arrivals then pile more requests into each step, which slows it further. So compare step times at similar requests per step (a run's other rates give them), not only at one rate. The machines are below.\n")
	return b.String()
}

// fingerprint is one line of a hold run's fingerprint.jsonl
// (bench/scripts/fingerprint.py, run by the driver before each trial).
type fingerprint struct {
	Label string `json:"label"`
	CPU   struct {
		Model string   `json:"model"`
		Count int      `json:"count"`
		MHz   *float64 `json:"mhz"`
	} `json:"cpu"`
	Load1      *float64          `json:"load1"`
	Busiest    []string          `json:"busiest"`
	PyLoopNS   *float64          `json:"py_loop_ns"`
	LaunchUS   *float64          `json:"launch_us"`
	SyncUS     *float64          `json:"sync_us"`
	HBMGBs     *float64          `json:"hbm_gbs"`
	BF16TFLOPs *float64          `json:"bf16_tflops"`
	GPU        map[string]string `json:"gpu"`
}

// readFingerprints reads a fingerprint.jsonl (nil, nil when there is none).
func readFingerprints(path string) ([]fingerprint, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var fs []fingerprint
	for i, line := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var f fingerprint
		if err := json.Unmarshal([]byte(line), &f); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, i+1, err)
		}
		fs = append(fs, f)
	}
	return fs, nil
}

// gpuOf is the GPU's UUID from a hold run's device.txt (its second line is
// nvidia-smi's name, memory, driver, UUID, PCI bus), "" when not recorded.
func gpuOf(deviceTxt string) string {
	b, err := os.ReadFile(deviceTxt)
	if err != nil {
		return ""
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 2 {
		return ""
	}
	for _, f := range strings.Split(lines[1], ",") {
		if f = strings.TrimSpace(f); strings.HasPrefix(f, "GPU-") {
			return f
		}
	}
	return ""
}

// machines lists each hold run's machine: its GPU, and the fingerprints
// the driver took before its trials.
func machines(holds []*hold) string {
	var b strings.Builder
	b.WriteString("\n## The machines\n\n")
	b.WriteString("Each hold run's GPU (`device.txt` beside its study file) and the machine's speed before each trial (`fingerprint.jsonl`, `bench/scripts/fingerprint.py`): a plain Python loop's ns per iteration and a tiny CUDA kernel's launch cost (µs) and launch-and-wait round trip, the host work of an eager step; a 1-GiB device copy (GB/s) and an 8192³ bf16 matmul (TFLOP/s), the GPU's; its SM clock (now/max, MHz) and temperature; the load average and the processes busiest then. `-`: not measured (the fingerprints began with session 5).\n\n")
	b.WriteString("| run | GPU | before | CPU | Python (ns/iter) | launch (µs) | round trip (µs) | copy (GB/s) | bf16 (TFLOP/s) | SM (MHz) | °C | load | busiest |\n|---:|---|---|---|---:|---:|---:|---:|---:|---|---:|---:|---|\n")
	val := func(p *float64, prec int) string {
		if p == nil {
			return "-"
		}
		return strconv.FormatFloat(*p, 'f', prec, 64)
	}
	for _, h := range holds {
		gpu, fps := cmp.Or(h.gpu, "-"), h.fingerprints
		if len(fps) == 0 {
			fmt.Fprintf(&b, "| %d | %s | - | - | - | - | - | - | - | - | - | - | - |\n", h.n, gpu)
			continue
		}
		for _, f := range fps {
			sm, temp := "-", "-"
			if f.GPU != nil {
				sm = f.GPU["sm_mhz"] + "/" + f.GPU["max_sm_mhz"]
				temp = cmp.Or(f.GPU["temp_c"], "-")
			}
			cpu := "-"
			if f.CPU.Model != "" {
				cpu = fmt.Sprintf("%s ×%d", f.CPU.Model, f.CPU.Count)
				if f.CPU.MHz != nil {
					cpu += fmt.Sprintf(" at %.0f MHz", *f.CPU.MHz)
				}
			}
			busy := "-"
			if len(f.Busiest) > 0 {
				busy = strings.Join(f.Busiest, "; ")
			}
			fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", h.n, gpu, cmp.Or(f.Label, "-"), cpu,
				val(f.PyLoopNS, 1), val(f.LaunchUS, 2), val(f.SyncUS, 1), val(f.HBMGBs, 0), val(f.BF16TFLOPs, 0), sm, temp, val(f.Load1, 2), busy)
		}
	}
	return b.String()
}

func delta(x, base float64) string {
	if base == 0 || math.IsNaN(x) || math.IsNaN(base) {
		return "-"
	}
	return fmt.Sprintf("%+.1f%%", 100*(x/base-1))
}

// fmtCI is mean ± half-width (the half-width left out for a single
// run), scaled and with prec decimals.
func fmtCI(c metric.CI, prec int, scale float64) string { return c.Text(prec, scale) }

func fmtSat(s analyze.Saturation) string {
	switch {
	case s.Over:
		return "below its lowest rate" // its Rate is NaN: no level was sustained
	case s.Never:
		return fmt.Sprintf("≥ %g", s.Rate)
	}
	return fmt.Sprintf("%g", s.Rate)
}

func fmtDur(d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return d.Round(time.Second).String()
}

// ratioPairs are the sustained-rate ratios the report gives (numerator,
// denominator): the paper's, and each vLLM preset's step over the last.
var ratioPairs = [][2]string{{"vllm-page", "torch-max"}, {"vllm-page+flash", "torch-max"}, {"vllm-all-opt", "torch-max"},
	{"torch-oracle", "torch-max"}, {"torch-pow2", "torch-max"}, {"vllm-page", "torch-oracle"},
	{"vllm-page+flash", "torch-oracle"}, {"vllm-all-opt", "torch-oracle"},
	{"vllm-page+flash", "vllm-page"}, {"vllm-all-opt", "vllm-page+flash"}}

// ratioRow is the ratio of r's sustained rates in sat ("≥ 1.70×" with its
// bound) and the paper's from its knees ("-" when it has none); false when
// either is missing or the ratio says nothing (analyze.RateRatio).
func ratioRow(r [2]string, sat map[string]analyze.Saturation, workload string, paper *paperStats) (string, bool) {
	x, okx := sat[r[0]]
	y, oky := sat[r[1]]
	ratio, bound, ok := analyze.RateRatio(x, y)
	if !okx || !oky || !ok {
		return "", false
	}
	pr := "-"
	if paper != nil {
		_, kx := paperName(r[0])
		_, ky := paperName(r[1])
		kn := paper.knees(workload)
		if a, b := kn[kx], kn[ky]; kx != ky && a > 0 && b > 0 {
			pr = fmt.Sprintf("%.1f×", a/b)
		}
	}
	if bound != "" {
		bound += " "
	}
	return fmt.Sprintf("%s%.2f× | %s", bound, ratio, pr), true
}

// withinHolds gives each hold run's sustained rates and ratios from its
// own trials alone: one machine, which the drift between machines does
// not touch.
func withinHolds(o options, holds []*hold, res *analyze.Result, paper *paperStats) string {
	var b strings.Builder
	b.WriteString("\n## Within one hold: one machine\n\n")
	b.WriteString("The same rule and ratios, each hold run's trials alone: variants that ran on one machine, compared without the drift between machines (the anchor's drift, below). Rows only where a run holds both variants of a ratio.\n\n")
	b.WriteString("| run | sustained (req/s) | ratio | ours | the paper |\n|---:|---|---|---:|---:|\n")
	rows := 0
	for _, h := range holds {
		in := map[string]bool{}
		for _, t := range h.trials {
			in[filepath.Base(t.dir)] = true
		}
		sat := map[string]analyze.Saturation{}
		var names []string
		for _, s := range analyze.SaturationAt(res.AggregatesOf(func(g *analyze.Group) bool { return in[g.Trial] }), o.saturation.Seconds()) {
			sat[s.Variant] = s
			names = append(names, s.Variant)
		}
		var rates []string
		for _, v := range variantOrder(names) {
			rates = append(rates, v+" "+fmtSat(sat[v]))
		}
		for _, r := range ratioPairs {
			if row, ok := ratioRow(r, sat, o.workload, paper); ok {
				fmt.Fprintf(&b, "| %d | %s | %s / %s | %s |\n", h.n, strings.Join(rates, ", "), r[0], r[1], row)
				rows++
			}
		}
	}
	if rows == 0 {
		b.WriteString("| - | - | no hold run holds both variants of a ratio | - | - |\n")
	}
	return b.String()
}

// plural is "1 hold run" or "3 hold runs".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
