package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vbench/vbench/analyze"
	"github.com/vbench/vbench/backends"
	"github.com/vbench/vbench/internal/progress"
	"github.com/vbench/vbench/metric"
	"github.com/vbench/vbench/replay"
	"github.com/vbench/vbench/trace"
)

// A probe answers "which rates should I run?" by measurement. For each
// model × variant it starts the server exactly as a trial does, then plays
// the study's trace closed loop (replay.Config.Concurrency) at rising
// concurrency — 1, 2, 4, … — one short step each, until the output
// throughput stops growing (less than ProbeGrowth for ProbeFlatSteps steps
// in a row), the normalized latency passes the study's early-stop limit,
// or MaxConcurrency is reached. The highest completed-request rate seen is
// the variant's saturation; an open-loop study should run rates on both
// sides of it, so the suggested ladders go from ProbeLow to ProbeHigh
// times it.

// Probe defaults.
const (
	DefaultProbeLevel          = 15 * time.Second
	DefaultProbeMaxConcurrency = 256
	DefaultProbePoints         = 6
	// ProbeGrowth is the least relative growth of output throughput from
	// one step to the next that counts as still growing.
	ProbeGrowth = 0.10
	// ProbeFlatSteps is how many steps in a row must grow less than
	// ProbeGrowth before the probe calls the plateau.
	ProbeFlatSteps = 2
	// ProbeLow and ProbeHigh place a variant's ladder around its
	// saturation rate: from 20% to 150% of it.
	ProbeLow  = 0.2
	ProbeHigh = 1.5
)

// ProbeOptions are the settings of one `vbbench probe`.
type ProbeOptions struct {
	// Variants limits the probe to these variant names (empty: all).
	Variants []string `json:"variants,omitempty"`
	// Level is each step's sending window (default 15s).
	Level time.Duration `json:"level_ns"`
	// MinConcurrency is the first step (default 1); steps double from it.
	// Starting higher skips the low steps, whose tails (each step waits
	// for its last request) cost most of a slow server's probe.
	MinConcurrency int `json:"min_concurrency,omitempty"`
	// MaxConcurrency is the highest step (default 256).
	MaxConcurrency int `json:"max_concurrency"`
	// Points is the number of rates of a variant's ladder (default 6).
	Points int `json:"points"`
	// Out is where probe.json, probe.md and the captures go (default
	// <reports_dir>/probe-<UTC time>).
	Out string `json:"out"`
	// Progress receives the live view (nil: none).
	Progress io.Writer `json:"-"`
	// Warnings receives the probe's warnings, one "warning: …" line each,
	// as they arise (nil: Progress); they are in probe.json and probe.md
	// too.
	Warnings io.Writer `json:"-"`
	// SearchDirs are searched for vbsim before PATH.
	SearchDirs []string `json:"-"`
	// ToolVersion is recorded in probe.json.
	ToolVersion string `json:"tool_version,omitempty"`
	// Now is the clock (default time.Now).
	Now func() time.Time `json:"-"`
}

// ProbeStep is one closed-loop step of a probe.
type ProbeStep struct {
	// Concurrency is the number of requests kept in flight.
	Concurrency int `json:"concurrency"`
	// Capture is the step's capture directory, relative to the variant's.
	Capture string `json:"capture"`
	// Sent, OK and Failed count the step's requests.
	Sent   int `json:"sent"`
	OK     int `json:"ok"`
	Failed int `json:"failed"`
	// ReqPerS and OutputTokPerS are the work done inside the step's
	// window: each request counts by the fraction of its lifetime (its
	// tokens by the fraction of its decode time) that fell inside.
	ReqPerS       float64 `json:"req_per_s"`
	OutputTokPerS float64 `json:"output_tok_per_s"`
	// TPOT is the mean time per output token after the first (s), TTFTP50
	// the median time to first token (s), E2EMean the mean latency (s):
	// the step capture's analysis figures.
	TPOT    float64 `json:"tpot_s"`
	TTFTP50 float64 `json:"ttft_p50_s"`
	E2EMean float64 `json:"e2e_mean_s"`
	// NormLatency is the normalized latency (s/token; requests cut at the
	// step's end counted at their lower bound), the quantity
	// run.early_stop.normalized_latency limits.
	NormLatency float64 `json:"norm_latency_s"`
	// Exhausted: the trace ran out before the window ended.
	Exhausted bool `json:"exhausted,omitempty"`

	tokens int64 // output tokens of the OK requests
}

// VariantProbe is what the probe measured for one model × variant.
type VariantProbe struct {
	Model   string `json:"model"`
	Variant string `json:"variant"`
	// Dir holds the variant's captures, backend.log and config.json.
	Dir   string      `json:"dir"`
	Steps []ProbeStep `json:"steps"`
	// SaturationTokPerS is the highest output throughput of any step, and
	// Saturation the request rate that carries it: SaturationTokPerS ÷ the
	// mean output length of the trace's requests (ProbeResult.MeanOutput).
	// Output throughput is what plateaus cleanly; a step's own req/s
	// depends on which requests its short window happened to complete.
	// KneeConcurrency is the lowest step within ProbeGrowth of the plateau.
	Saturation        float64 `json:"saturation_req_per_s"`
	SaturationTokPerS float64 `json:"saturation_output_tok_per_s"`
	KneeConcurrency   int     `json:"knee_concurrency"`
	// Plateau is set when throughput stopped growing or latency passed the
	// limit; unset, Saturation is only a lower bound.
	Plateau bool `json:"plateau"`
	// StopCause says why the steps ended.
	StopCause string `json:"stop_cause"`
	// StartupSeconds is the server's launch to healthy (0: it did not
	// start), as a trial's meta.json records it.
	StartupSeconds float64 `json:"startup_seconds,omitempty"`
	// SingleStream is the 1-request step (zero when it failed).
	SingleStream ProbeStep `json:"single_stream"`
	// Ladder is the suggested rates for this variant alone.
	Ladder []float64 `json:"ladder,omitempty"`
	// EngineWarmup is the study's [run.engine_warmup], run before the
	// first step at the higher of its concurrency and the top step (nil
	// when the study has none): a step must not pay for compiling the
	// kernels of its batch sizes, or the plateau reads low.
	EngineWarmup *EngineWarmupStatus `json:"engine_warmup,omitempty"`
	Error        string              `json:"error,omitempty"`
}

// ProbeResult is probe.json.
type ProbeResult struct {
	Tool      string       `json:"tool"`
	Study     string       `json:"study"`
	StudyFile string       `json:"study_file,omitempty"`
	Created   time.Time    `json:"created"`
	Options   ProbeOptions `json:"options"`
	TraceHash string       `json:"trace_hash"`
	// MeanOutput is the mean output length of the trace's requests
	// (tokens), which turns output throughput into a request rate; when
	// the trace has no lengths (or run.exact_output is off) it is the
	// mean measured over each variant's completed requests instead.
	MeanOutput float64        `json:"mean_output_tokens"`
	Variants   []VariantProbe `json:"variants"`
	// Ladder is one set of rates covering every probed variant's knee.
	Ladder []float64 `json:"ladder"`
	// VariantLadders are the ladders by variant name (a variant probed
	// under several models gets one covering all of them).
	VariantLadders map[string][]float64 `json:"variant_ladders"`
	// Snippet is TOML to paste into the study file.
	Snippet string `json:"snippet"`
	// Trace is what the study's trace allows: the open-loop rates it fills
	// for warm-up + run.duration and, when a suggested rate is past them,
	// the fix (ProbeTrace.Fix).
	Trace ProbeTrace `json:"trace"`
	// Warnings are every warning of the probe, in order.
	Warnings []string `json:"warnings,omitempty"`
	// Dir is where probe.json and probe.md were written.
	Dir string `json:"dir"`
}

// Probe measures the knee of each selected model × variant of the study
// and suggests rate ladders; it writes probe.json and probe.md under
// opt.Out and never touches the study file. A variant that fails is
// recorded and the probe goes on; a cancelled ctx stops the current server
// and returns what finished with ctx's error.
func Probe(ctx context.Context, s *Study, opt ProbeOptions) (*ProbeResult, error) {
	if opt.Level == 0 {
		opt.Level = DefaultProbeLevel
	}
	if opt.MaxConcurrency == 0 {
		opt.MaxConcurrency = DefaultProbeMaxConcurrency
	}
	if opt.MinConcurrency == 0 {
		opt.MinConcurrency = 1
	}
	if opt.Points == 0 {
		opt.Points = DefaultProbePoints
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Progress == nil {
		opt.Progress = io.Discard
	}
	disp := progress.New(opt.Progress)
	defer disp.Close()
	if opt.Warnings == nil || opt.Warnings == opt.Progress {
		opt.Warnings = disp
	}
	opt.Progress = disp
	var errs []error
	if opt.Level < 0 {
		errs = append(errs, fmt.Errorf("--duration %v: want a positive duration", opt.Level))
	}
	if opt.MaxConcurrency < 1 {
		errs = append(errs, fmt.Errorf("--max-concurrency %d: want 1 or more", opt.MaxConcurrency))
	}
	if opt.MinConcurrency < 1 || opt.MinConcurrency > opt.MaxConcurrency {
		errs = append(errs, fmt.Errorf("--min-concurrency %d: want 1 to --max-concurrency (%d)", opt.MinConcurrency, opt.MaxConcurrency))
	}
	if opt.Points < 2 {
		errs = append(errs, fmt.Errorf("--points %d: want 2 or more", opt.Points))
	}
	resolved, err := s.Resolve()
	if err != nil {
		errs = append(errs, err)
	}
	type cell struct {
		m ModelConfig
		v Variant
	}
	var cells []cell
	known := map[string]bool{}
	for mi, m := range s.Models {
		if mi >= len(resolved) {
			break
		}
		for _, v := range resolved[mi] {
			known[v.Name] = true
			if len(opt.Variants) == 0 || slices.Contains(opt.Variants, v.Name) {
				cells = append(cells, cell{m, v})
			}
		}
	}
	for _, name := range opt.Variants {
		if !known[name] {
			errs = append(errs, fmt.Errorf("--variants: %q is not a variant of any model of the study (it has %s)", name, strings.Join(sortedKeys(known), ", ")))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("bench: probe: %w", err)
	}

	hdr, reqs, _, err := prepareTrace(ctx, s, opt.SearchDirs)
	if err != nil {
		return nil, err
	}
	now := opt.Now().UTC()
	stamp := now.Format("20060102T150405Z")
	if opt.Out == "" {
		opt.Out = filepath.Join(s.ReportsDir, "probe-"+stamp)
	}
	if err := os.MkdirAll(opt.Out, 0o755); err != nil {
		return nil, fmt.Errorf("bench: probe: %w", err)
	}
	res := &ProbeResult{Tool: "vbbench probe", Study: s.Name, StudyFile: s.Path(), Created: now, Options: opt,
		TraceHash: hdr.HashHex(), Dir: opt.Out}
	if s.Run.ExactOutput == nil || *s.Run.ExactOutput {
		res.MeanOutput = meanOutput(reqs)
	}
	warn := func(msg string) {
		res.Warnings = append(res.Warnings, msg)
		fmt.Fprintf(opt.Warnings, "warning: %s\n", msg)
	}
	res.Trace = newProbeTrace(s, hdr, opt.Level)
	info, warns := res.Trace.preflight(opt.Level, opt.MaxConcurrency)
	fmt.Fprintln(opt.Progress, info)
	for _, w := range warns {
		warn(w)
	}
	pr := &prober{study: s, opt: opt, hdr: hdr, reqs: reqs, runID: "probe-" + stamp, meanOut: res.MeanOutput, warn: warn, disp: disp}
	for i, c := range cells {
		if ctx.Err() != nil {
			break
		}
		fmt.Fprintf(opt.Progress, "[%d/%d] probe %s/%s\n", i+1, len(cells), c.m.Name, c.v.Name)
		vp := pr.variant(ctx, c.m, c.v)
		res.Variants = append(res.Variants, vp)
		writeJSON(filepath.Join(opt.Out, "probe.json"), res)
	}
	res.suggest(opt.Points)
	res.Trace.check(s, hdr, res.allRates())
	if res.Trace.Fix != "" {
		warn(res.Trace.Fix)
	}
	res.Snippet = snippet(s, res)
	writeJSON(filepath.Join(opt.Out, "probe.json"), res)
	if err := os.WriteFile(filepath.Join(opt.Out, "probe.md"), []byte(res.Markdown()), 0o644); err != nil {
		return res, fmt.Errorf("bench: probe: %w", err)
	}
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	return res, nil
}

type prober struct {
	study   *Study
	opt     ProbeOptions
	hdr     trace.Header
	reqs    []trace.Request
	runID   string
	meanOut float64
	warn    func(string)
	// measured is the current variant's TTFT and TPOT so far (its steps):
	// the drain policy of the next step starts from it.
	measured replay.Measured
	disp     *progress.Display
}

// meanOutput is the mean asked output length of the trace's requests, 0
// when fewer than half of them say.
func meanOutput(reqs []trace.Request) float64 {
	var sum float64
	n := 0
	for i := range reqs {
		if o := reqs[i].OutputTokens; o > 0 {
			sum += float64(o)
			n++
		}
	}
	if n == 0 || 2*n < len(reqs) {
		return 0
	}
	return sum / float64(n)
}

// ProbeConfig is config.json of a probed variant: everything that made it.
type ProbeConfig struct {
	Study     string           `json:"study"`
	StudyFile string           `json:"study_file,omitempty"`
	RunID     string           `json:"run_id"`
	Model     ModelConfig      `json:"model"`
	Variant   Variant          `json:"variant"`
	Run       RunConfig        `json:"run"`
	Probe     ProbeOptions     `json:"probe"`
	TraceHash string           `json:"trace_hash"`
	Command   backends.Command `json:"command"`
	BaseURL   string           `json:"base_url"`
}

// variant starts the server, runs the steps and stops it.
func (pr *prober) variant(ctx context.Context, m ModelConfig, v Variant) (vp VariantProbe) {
	s := pr.study
	vp = VariantProbe{Model: m.Name, Variant: v.Name}
	pr.measured = replay.Measured{}
	dir, err := under(pr.opt.Out, SanitizeName(m.Name), SanitizeName(v.Name))
	if err == nil {
		err = os.MkdirAll(dir, 0o755)
	}
	if err != nil {
		vp.Error = err.Error()
		return vp
	}
	vp.Dir = dir
	logf, err := os.Create(filepath.Join(dir, "backend.log"))
	if err != nil {
		vp.Error = fmt.Sprintf("bench: backend log: %v", err)
		return vp
	}
	defer logf.Close()
	cfg := ProbeConfig{Study: s.Name, StudyFile: s.Path(), RunID: pr.runID, Model: m, Variant: v, Run: s.Run, Probe: pr.opt,
		TraceHash: pr.hdr.HashHex()}
	launched := pr.opt.Now()
	b, warns, err := launch(ctx, v.Spec.Clone(), s.Run, pr.opt.SearchDirs, logf, func(b backends.Backend, _ error) {
		cfg.BaseURL, cfg.Command = b.BaseURL(), b.Command()
		writeJSON(filepath.Join(dir, "config.json"), cfg)
	})
	for _, w := range warns {
		fmt.Fprintf(pr.opt.Progress, "  warning: %s\n", w)
	}
	if err != nil {
		vp.Error = err.Error()
		return vp
	}
	defer func() {
		if err := stopBackend(ctx, b, s.Run.StopGrace.D()); err != nil {
			fmt.Fprintf(pr.opt.Progress, "  warning: stop: %v\n", err)
		}
	}()
	vp.StartupSeconds = pr.opt.Now().Sub(launched).Seconds()
	fmt.Fprintf(pr.opt.Progress, "  backend healthy at %s after %.0fs\n", b.BaseURL(), vp.StartupSeconds)
	if s.Run.EngineWarmup.On() && ctx.Err() == nil {
		ws, err := pr.engineWarmup(ctx, m, v, b, dir)
		vp.EngineWarmup = ws
		if err != nil {
			vp.Error = err.Error()
			vp.StopCause = "engine warm-up failed"
			return vp
		}
		fmt.Fprintf(pr.opt.Progress, "  engine warm-up: %s\n", ws.line())
	}

	limit := s.Run.EarlyStop.NormalizedLatency.D().Seconds()
	flat := 0
	warned := false
	for n := pr.opt.MinConcurrency; ; n *= 2 {
		if k := len(vp.Steps); k > 0 && !warned {
			if msg, out := runsOut(vp.Steps[k-1], n, pr.opt.Level, int64(len(pr.reqs))); out {
				pr.warn(fmt.Sprintf("%s/%s: %s", m.Name, v.Name, msg))
				warned = true
			}
		}
		st, err := pr.step(ctx, m, v, b, dir, n)
		if err != nil {
			vp.Error = err.Error()
			vp.StopCause = fmt.Sprintf("concurrency %d failed", n)
			break
		}
		vp.Steps = append(vp.Steps, st)
		short := ""
		if st.Exhausted {
			short = "  (the trace ran out: a longer trace measures better)"
		}
		fmt.Fprintf(pr.opt.Progress, "  concurrency %4d: %8.3g req/s %9.4g tok/s  TPOT %s  TTFT p50 %s  %.4f s/token%s\n",
			n, st.ReqPerS, st.OutputTokPerS, secs(st.TPOT), secs(st.TTFTP50), st.NormLatency, short)
		if st.OK == 0 {
			vp.StopCause = fmt.Sprintf("no request completed at concurrency %d", n)
			break
		}
		if k := len(vp.Steps); k > 1 && st.OutputTokPerS < (1+ProbeGrowth)*vp.Steps[k-2].OutputTokPerS {
			flat++
		} else {
			flat = 0
		}
		if flat >= ProbeFlatSteps {
			vp.Plateau = true
			vp.StopCause = fmt.Sprintf("output throughput grew < %.0f%% for %d steps", 100*ProbeGrowth, ProbeFlatSteps)
			break
		}
		if limit > 0 && st.NormLatency > limit {
			vp.Plateau = true
			vp.StopCause = fmt.Sprintf("normalized latency %.3f s/token > %s (run.early_stop)", st.NormLatency, s.Run.EarlyStop.NormalizedLatency.D())
			break
		}
		if 2*n > pr.opt.MaxConcurrency {
			vp.StopCause = fmt.Sprintf("reached --max-concurrency %d while throughput still grew", pr.opt.MaxConcurrency)
			break
		}
		if ctx.Err() != nil {
			vp.StopCause = "interrupted"
			break
		}
	}
	vp.saturation(pr.meanOut)
	if len(vp.Steps) > 0 && vp.Steps[0].Concurrency == 1 && vp.Steps[0].OK > 0 {
		vp.SingleStream = vp.Steps[0]
	}
	return vp
}

// saturation finds the plateau of the steps (see VariantProbe).
func (vp *VariantProbe) saturation(meanOut float64) {
	var toks, ok float64
	for _, st := range vp.Steps {
		vp.SaturationTokPerS = max(vp.SaturationTokPerS, st.OutputTokPerS)
		toks += float64(st.tokens)
		ok += float64(st.OK)
	}
	if meanOut <= 0 && ok > 0 {
		meanOut = toks / ok
	}
	if vp.SaturationTokPerS <= 0 || meanOut <= 0 {
		return
	}
	vp.Saturation = vp.SaturationTokPerS / meanOut
	for _, st := range vp.Steps {
		if st.OutputTokPerS >= (1-ProbeGrowth)*vp.SaturationTokPerS {
			vp.KneeConcurrency = st.Concurrency
			break
		}
	}
}

// step runs one closed-loop step at concurrency n into capture/c<n>.
func (pr *prober) step(ctx context.Context, m ModelConfig, v Variant, b backends.Backend, dir string, n int) (ProbeStep, error) {
	s := pr.study
	label := replay.ClosedLabel(n)
	st := ProbeStep{Concurrency: n, Capture: filepath.Join("capture", label)}
	ls := levelConfig(s, m, v, "probe", b, filepath.Join(dir, st.Capture), pr.runID, filepath.Base(pr.opt.Out), pr.disp)
	ls.replay.Concurrency = []int{n}
	ls.replay.MaxConcurrency = 0
	ls.replay.Duration = pr.opt.Level
	ls.replay.Labels["phase"] = "probe"
	ls.replay.Measured = pr.measured
	if n == pr.opt.MinConcurrency && s.Run.Warmup > 0 {
		ls.replay.WarmupDuration = s.Run.Warmup.D()
		ls.replay.WarmupMode = replay.WarmupRun
	}
	lctx, cancel := whileAlive(ctx, b)
	defer cancel()
	res, err := ls.run(lctx, pr.hdr, pr.reqs)
	select {
	case <-b.Exited():
		err = fmt.Errorf("backend crashed at concurrency %d (%v); last log lines:\n%s", n, b.ExitErr(), b.LogTail(15))
	default:
	}
	if res != nil && len(res.Levels) > 0 {
		lr := &res.Levels[0]
		st.Exhausted = lr.Exhausted
		writeJSON(filepath.Join(dir, "replay-"+label+".json"), res)
	}
	if ares, g, ferr := levelGroup(context.WithoutCancel(ctx), filepath.Join(dir, st.Capture)); ferr == nil {
		st.measure(ares.Requests, g, pr.opt.Level)
		pr.measured = pr.measured.Merge(replay.MeasuredOf(metric.Summary{TTFT: g.TTFT, TPOT: g.TPOT}))
	} else if err == nil {
		err = fmt.Errorf("bench: probe: the capture of concurrency %d: %w", n, ferr)
	}
	return st, err
}

// engineWarmup runs the study's engine warm-up on a probed server: closed
// loop at the higher of run.engine_warmup.concurrency and the probe's top
// step, for its duration, then drained, into capture/engine-warmup (tagged
// phase=engine-warmup, never a step), the trace sent backwards as in a
// trial's engine warm-up.
func (pr *prober) engineWarmup(ctx context.Context, m ModelConfig, v Variant, b backends.Backend, dir string) (*EngineWarmupStatus, error) {
	ew := pr.study.Run.EngineWarmup
	ls := levelConfig(pr.study, m, v, "probe", b, "", pr.runID, filepath.Base(pr.opt.Out), pr.disp)
	return runEngineWarmup(ctx, ls, b, dir, max(ew.Concurrency, pr.opt.MaxConcurrency), ew.Duration.D(), pr.hdr, pr.reqs, time.Now)
}

// measure fills the step's figures from its capture's analysis: the counts
// and latencies of its group (the metric package's, as in a trial's
// status and the report), and the work done inside the step's window
// (metric.WorkIn). The window runs from the first measured request's
// start for the level's duration (or to the last one's start, when the
// trace ran out first).
func (st *ProbeStep) measure(reqs []metric.Request, g *analyze.Group, level time.Duration) {
	st.Sent, st.OK = g.Count, g.Completed
	st.Failed = g.Count - g.Completed
	st.TTFTP50, st.TPOT, st.E2EMean = orZero(g.TTFT.P50), orZero(g.TPOT.Mean), orZero(g.E2E.Mean)
	st.NormLatency = orZero(g.NormLatencyWithCut.Mean)
	var measured []metric.Request
	var from, to int64 = math.MaxInt64, 0
	for i := range reqs {
		q := &reqs[i]
		if !q.Measured() {
			continue
		}
		measured = append(measured, *q)
		from, to = min(from, q.Start), max(to, q.Start)
		if q.Completed() {
			st.tokens += int64(max(q.OutputTokens, 0))
		}
	}
	if from == math.MaxInt64 {
		return
	}
	end := from + int64(level)
	if st.Exhausted {
		end = to
	}
	st.ReqPerS, st.OutputTokPerS = metric.WorkIn(measured, from, end)
}

// orZero is v, or 0 for NaN (a step's figure when nothing completed:
// probe.json and probe.md show it as "-").
func orZero(v float64) float64 {
	if math.IsNaN(v) {
		return 0
	}
	return v
}

// suggest computes the ladders: each variant's linear from ProbeLow to
// ProbeHigh times its saturation; the combined one from ProbeLow times the
// lowest saturation to ProbeHigh times the highest, linear when the knees
// are within 1.5× of each other, else geometric with a point more per
// doubling of their spread, so every knee has rates on both sides.
func (r *ProbeResult) suggest(points int) {
	r.VariantLadders = map[string][]float64{}
	lo, hi := math.Inf(1), 0.0
	byVariant := map[string][2]float64{}
	for i := range r.Variants {
		vp := &r.Variants[i]
		if vp.Saturation <= 0 {
			continue
		}
		vp.Ladder = Ladder(ProbeLow*vp.Saturation, ProbeHigh*vp.Saturation, points, false)
		lo, hi = min(lo, vp.Saturation), max(hi, vp.Saturation)
		span, ok := byVariant[vp.Variant]
		if !ok {
			span = [2]float64{vp.Saturation, vp.Saturation}
		}
		byVariant[vp.Variant] = [2]float64{min(span[0], vp.Saturation), max(span[1], vp.Saturation)}
	}
	spanLadder := func(lo, hi float64) []float64 {
		if hi <= 1.5*lo {
			return Ladder(ProbeLow*lo, ProbeHigh*hi, points, false)
		}
		return Ladder(ProbeLow*lo, ProbeHigh*hi, points+int(math.Ceil(math.Log2(hi/lo))), true)
	}
	for name, span := range byVariant {
		r.VariantLadders[name] = spanLadder(span[0], span[1])
	}
	if hi > 0 {
		r.Ladder = spanLadder(lo, hi)
	}
}

// allRates is every rate of every suggested ladder.
func (r *ProbeResult) allRates() []float64 {
	out := slices.Clone(r.Ladder)
	for _, l := range r.VariantLadders {
		out = append(out, l...)
	}
	for _, vp := range r.Variants {
		out = append(out, vp.Ladder...)
	}
	return out
}

// Ladder returns n rates from lo to hi (linear steps, or geometric ones),
// each rounded to two significant digits, rising, without repeats.
func Ladder(lo, hi float64, n int, geometric bool) []float64 {
	if !(lo > 0) || hi < lo || n < 1 {
		return nil
	}
	out := make([]float64, 0, n)
	for i := range n {
		f := 0.0
		if n > 1 {
			f = float64(i) / float64(n-1)
		}
		x := lo + f*(hi-lo)
		if geometric {
			x = lo * math.Pow(hi/lo, f)
		}
		x = round2(x)
		if len(out) == 0 || x > out[len(out)-1] {
			out = append(out, x)
		}
	}
	return out
}

// round2 rounds x to two significant digits (57.3 → 57, 0.456 → 0.46).
func round2(x float64) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'g', 2, 64), 64)
	return v
}

func fmtRates(r []float64) string {
	parts := make([]string, len(r))
	for i, x := range r {
		parts[i] = strconv.FormatFloat(x, 'g', -1, 64)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// snippet is the TOML a user pastes into the study: the combined ladder as
// run.rates, and each variant's own ladder.
func snippet(s *Study, r *ProbeResult) string {
	if len(r.Ladder) == 0 {
		return ""
	}
	var b strings.Builder
	if t := r.Trace; len(t.ShortRates) > 0 {
		fmt.Fprintf(&b, "# The trace is too short for rates %s: make one of ≥ %d requests first:\n#   %s\n", fmtRates(t.ShortRates), t.WantRequests, t.Command)
		if t.MaxDuration > 0 {
			fmt.Fprintf(&b, "# or set run.duration = %q.\n", t.MaxDuration.String())
		}
	}
	fmt.Fprintf(&b, "# One ladder for every probed variant (covers each knee):\n[run]\nrates = %s\n", fmtRates(r.Ladder))
	names := sortedKeys(r.VariantLadders)
	if len(names) > 1 {
		b.WriteString("\n# Or each variant its own ladder (these win over run.rates):\n")
	} else if len(names) == 1 {
		b.WriteString("\n# Or the variant's own ladder:\n")
	}
	// A variant's saturation lets the plan estimate how long its levels past
	// it drain; probed under several models, the lowest counts.
	sat := map[string]float64{}
	bound := map[string]bool{}
	for _, vp := range r.Variants {
		if vp.Saturation > 0 && (sat[vp.Variant] == 0 || vp.Saturation < sat[vp.Variant]) {
			sat[vp.Variant], bound[vp.Variant] = vp.Saturation, !vp.Plateau
		}
	}
	for _, name := range names {
		if _, defined := s.Variants[name]; defined {
			fmt.Fprintf(&b, "[variants.%s]  # add to the existing table\nrates = %s\n", tomlKey(name), fmtRates(r.VariantLadders[name]))
		} else {
			fmt.Fprintf(&b, "[variants.%s]\npreset = %q\nrates = %s\n", tomlKey(name), name, fmtRates(r.VariantLadders[name]))
		}
		if x := sat[name]; x > 0 {
			note := "req/s, this probe's (the plan's drain estimate for the levels past it)"
			if bound[name] {
				note = "req/s, at least: the probe's top step still grew (the plan's drain estimate)"
			}
			fmt.Fprintf(&b, "saturation = %.3g  # %s\n", x, note)
		}
	}
	return b.String()
}

// tomlKey quotes a table key that is not a bare key.
func tomlKey(k string) string {
	for _, c := range k {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return strconv.Quote(k)
		}
	}
	return k
}

func secs(s float64) string {
	switch {
	case s == 0:
		return "-"
	case s < 1:
		return fmt.Sprintf("%.1fms", s*1e3)
	default:
		return fmt.Sprintf("%.2fs", s)
	}
}

// Markdown is probe.md: a table per variant, the saturations, the ladders
// and the TOML to paste.
func (r *ProbeResult) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# vbbench probe: %s\n\n", r.Study)
	fmt.Fprintf(&b, "Closed loop, %s per step, trace %s; %s.\n", r.Options.Level, shortHex(r.TraceHash), r.Created.Format("2006-01-02 15:04:05Z"))
	if t := r.Trace; t.Requests > 0 {
		fmt.Fprintf(&b, "The trace's %d requests last warm-up + run.duration = %s at rates up to %.3g req/s.\n", t.Requests, t.Need, t.MaxRate)
	}
	for _, vp := range r.Variants {
		fmt.Fprintf(&b, "\n## %s / %s\n\n", vp.Model, vp.Variant)
		if vp.StartupSeconds > 0 {
			fmt.Fprintf(&b, "Server start-up (launch to healthy): %.0f s.\n\n", vp.StartupSeconds)
		}
		if ws := vp.EngineWarmup; ws != nil {
			fmt.Fprintf(&b, "Engine warm-up before the steps (not measured): closed loop at %d for %s: %s.\n\n", ws.Concurrency, ws.Duration, ws.line())
		}
		if len(vp.Steps) > 0 {
			b.WriteString("| concurrency | req/s | output tok/s | TPOT | TTFT p50 | s/token | ok | failed |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n")
			short := false
			for _, st := range vp.Steps {
				mark, ran := "", ""
				if st.Concurrency == vp.KneeConcurrency {
					mark = " ◀"
				}
				if st.Exhausted {
					ran, short = " †", true
				}
				fmt.Fprintf(&b, "| %d%s | %.3g | %.4g | %s | %s | %.4f | %d%s | %d |\n", st.Concurrency, mark, st.ReqPerS, st.OutputTokPerS,
					secs(st.TPOT), secs(st.TTFTP50), st.NormLatency, st.OK, ran, st.Failed)
			}
			b.WriteString("\n")
			if short {
				b.WriteString("† the trace ran out before the step's window ended (measured up to its last send; a longer trace measures better).\n\n")
			}
		}
		if vp.Saturation > 0 {
			bound := ""
			if !vp.Plateau {
				bound = "at least "
			}
			fmt.Fprintf(&b, "Saturation %s%.3g req/s (%.4g output tok/s ÷ %.0f tokens per request), reached at concurrency %d; stopped: %s.",
				bound, vp.Saturation, vp.SaturationTokPerS, r.meanOut(vp), vp.KneeConcurrency, vp.StopCause)
			if ss := vp.SingleStream; ss.OK > 0 {
				fmt.Fprintf(&b, " Single stream: TPOT %s, TTFT p50 %s.", secs(ss.TPOT), secs(ss.TTFTP50))
			}
			fmt.Fprintf(&b, "\nLadder: %s req/s\n", fmtRates(vp.Ladder))
		}
		if vp.Error != "" {
			fmt.Fprintf(&b, "Error: %s\n", firstLine(vp.Error))
		}
	}
	if len(r.Ladder) > 0 {
		fmt.Fprintf(&b, "\n## Suggested rates\n\nAll variants: %s req/s\n\n", fmtRates(r.Ladder))
		if r.Trace.Fix != "" {
			fmt.Fprintf(&b, "**Trace too short:** %s\n\n", r.Trace.Fix)
		}
		fmt.Fprintf(&b, "```toml\n%s```\n", r.Snippet)
	} else {
		b.WriteString("\nNo variant completed a step: no rates to suggest.\n")
	}
	if len(r.Warnings) > 0 && (r.Trace.Fix == "" || len(r.Warnings) > 1) {
		b.WriteString("\n## Warnings\n\n")
		for _, w := range r.Warnings {
			if w != r.Trace.Fix { // shown above
				fmt.Fprintf(&b, "- %s\n", w)
			}
		}
	}
	return b.String()
}

// meanOut is the tokens per request that turned vp's throughput into a rate.
func (r *ProbeResult) meanOut(vp VariantProbe) float64 {
	if r.MeanOutput > 0 || vp.Saturation <= 0 {
		return r.MeanOutput
	}
	return vp.SaturationTokPerS / vp.Saturation
}

func shortHex(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}
