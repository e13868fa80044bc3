package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vbench/vbench/backends"
	"github.com/vbench/vbench/internal/stats"
	"github.com/vbench/vbench/replay"
	"github.com/vbench/vbench/trace"
)

// Trial is one model × variant × repetition: one backend start, every rate.
type Trial struct {
	// Index is the trial's place in the run order (0-based).
	Index int `json:"index"`
	// Model and Variant name the cell; Rep counts from 1.
	Model   ModelConfig `json:"model"`
	Variant Variant     `json:"variant"`
	Rep     int         `json:"rep"`
	// Rates are the trial's rate levels (Study.RatesFor), low to high.
	Rates []float64 `json:"rates"`
	// Estimate is the expected wall time of the trial; Measured says it
	// comes from earlier trials of its model × variant (MakePlanMeasured)
	// rather than the plan's model.
	Estimate time.Duration `json:"estimate_ns"`
	Measured bool          `json:"measured,omitempty"`
	// Start is when the plan expects the trial to start, from the start of
	// the run; GPUs are the GPU lanes it is expected on (none without
	// lanes). The run places trials by the same policy with the real
	// durations, so a trial may start elsewhere.
	Start time.Duration `json:"start_ns"`
	GPUs  []string      `json:"gpus,omitempty"`
}

// Key identifies a trial across runs of the same study (for --resume).
func (t Trial) Key() string {
	return fmt.Sprintf("%s/%s/rep%d", t.Model.Name, t.Variant.Name, t.Rep)
}

// Plan is the resolved matrix of a study and its checks.
type Plan struct {
	Study  *Study  `json:"-"`
	Trials []Trial `json:"trials"`
	// GPU is what nvidia-smi said (zero when absent); GPUGiB the memory the
	// checks used (the study's [gpu] wins).
	GPU    backends.GPU `json:"gpu"`
	GPUGiB float64      `json:"gpu_gib"`
	// Fits holds the memory check of every GPU model × variant.
	Fits []Fit `json:"fits"`
	// Trace is the trace header (zero when the trace will be generated).
	Trace      trace.Header `json:"trace"`
	TraceReady bool         `json:"trace_ready"`
	// GPUs are the GPU lanes (run.gpus or --gpus; empty: one trial at a
	// time).
	GPUs []string `json:"gpus,omitempty"`
	// Estimate is the expected wall time of the whole matrix (drain of a
	// saturated level not counted), the trials placed on the lanes; Worst
	// counts every drain in full. TrialTime is the sum of the trials'
	// estimates: the wall time of the matrix run serially.
	Estimate  time.Duration `json:"estimate_ns"`
	Worst     time.Duration `json:"worst_ns"`
	TrialTime time.Duration `json:"trial_time_ns"`
	// Errors stop a run; Warnings do not.
	Errors   []string `json:"errors,omitempty"`
	Warnings []string `json:"warnings,omitempty"`

	budgetErr string // the entry of Errors that says the estimate is over budget
	// measured is the evidence the estimates use (nil: the model alone).
	measured *Measured
}

// startupEstimate is the expected start-up of each kind (model load, graph
// capture, compile). Measured launch → healthy on an H200 with a dummy 8B
// model (docs/results/h200-vllm-smoke-2026-12-03): vLLM 0.26.0 eager 85 s
// (129 s for the first start on a machine, Triton's cache cold), compile +
// CUDA graphs 117 s; vbtorch 29 s. vLLM with compile and CUDA graphs takes
// the longest.
//
// A mixture-of-experts model starts much slower on vLLM: the FP8
// Qwen3-30B-A3B took 263 s eager (docs/results/h200-moe-smoke-2026-12-03),
// 137 s of it in warm-up, which fits Triton compiling the fused-MoE kernels.
// Compiled, it has not been measured yet (its start was cut at 115 s); 330
// s is the eager figure plus the minute compile and CUDA graphs added to
// the dense model, a guess until the MoE study measures it.
func startupEstimate(spec backends.Spec) time.Duration {
	switch spec.Kind {
	case backends.KindVLLM:
		eager := spec.EnforceEager != nil && *spec.EnforceEager
		if a, ok, _ := LookupArch(spec.Model); ok && a.Experts > 0 {
			if eager {
				return 270 * time.Second
			}
			return 330 * time.Second
		}
		if eager {
			return 100 * time.Second
		}
		return 2 * time.Minute
	case backends.KindTorch:
		return 45 * time.Second
	case backends.KindTransformers:
		return 2 * time.Minute
	case backends.KindSim:
		return time.Second
	default:
		return 30 * time.Second
	}
}

// typicalDrain is the drain counted per level by the estimate: a level
// below saturation empties within seconds.
const typicalDrain = 15 * time.Second

// stopEstimate covers SIGTERM, the port and GPU checks.
const stopEstimate = 15 * time.Second

// MakePlan resolves the study, checks the models against the GPU and the
// trace against the rates, and estimates the duration. It reads the trace
// header and asks nvidia-smi; it writes nothing.
func MakePlan(ctx context.Context, s *Study) (*Plan, error) {
	return MakePlanMeasured(ctx, s, nil)
}

// MakePlanMeasured is MakePlan with each trial whose model × variant m has
// measured estimated from those measurements (Measured); nil m is MakePlan.
func MakePlanMeasured(ctx context.Context, s *Study, m *Measured) (*Plan, error) {
	resolved, err := s.Resolve()
	if err != nil {
		return nil, err
	}
	p := &Plan{Study: s, GPUs: slices.Clone(s.Run.GPUs)}
	if g, err := backends.DetectGPU(ctx); err == nil {
		p.GPU = g
		p.GPUGiB = float64(g.MemoryMiB) / 1024
	}
	if s.GPU.MemoryGiB > 0 {
		p.GPUGiB = s.GPU.MemoryGiB
	}
	gpuName := s.GPU.Name
	if gpuName == "" {
		gpuName = p.GPU.Name
	}

	// The trace.
	if f, err := trace.Open(s.Trace.Path); err == nil {
		p.Trace = f.Header()
		p.TraceReady = true
		f.Close()
	} else if errors.Is(err, os.ErrNotExist) && len(s.Trace.Generate) > 0 {
		p.Warnings = append(p.Warnings, fmt.Sprintf("trace %s does not exist yet; run will make it with: %s (its length is checked then)",
			s.Trace.Path, strings.ReplaceAll(strings.Join(s.Trace.Generate, " "), "{path}", s.Trace.Path)))
	} else {
		p.Errors = append(p.Errors, fmt.Sprintf("trace: %v", err))
	}
	if p.TraceReady {
		p.Errors = append(p.Errors, checkTrace(p.Trace, s.Run, allRates(s, resolved))...)
	}
	if m != nil {
		hash := ""
		if p.TraceReady {
			hash = p.Trace.HashHex()
		}
		var notes []string
		p.measured, notes = m.forTrace(hash)
		if p.TraceReady {
			out, err := outputP99(s.Trace.Path)
			if err != nil {
				notes = append(notes, fmt.Sprintf("--measured: the trace's output lengths: %v (a level's tail is the model's)", err))
			}
			p.measured.outTokens = out
		}
		notes = append(slices.Clone(m.Notes), notes...)
		if m.Trials == 0 && m.Probes == 0 {
			notes = append(notes, "--measured: no finished trial or probed variant under the folders given: every estimate is the model's")
		}
		p.Warnings = append(p.Warnings, notes...)
	}

	// The matrix, in run order: model → variant → repetition.
	usesGPU := false
	var noFit, unchecked grouped
	for mi, m := range s.Models {
		for _, v := range resolved[mi] {
			if v.Spec.Kind == backends.KindVLLM || v.Spec.Kind == backends.KindTorch || v.Spec.Kind == backends.KindTransformers {
				usesGPU = true
				f := checkFit(m, v, p.GPUGiB, v.Spec.TensorParallelSize)
				p.Fits = append(p.Fits, f)
				if f.Known && !f.Fits {
					noFit.add(fmt.Sprintf("model %s does not fit %s: %s. Suggestion: %s",
						m.Name, gpuLabel(gpuName, p.GPUGiB), f.Reason, f.Suggest), v.Name)
				} else if !f.Known && p.GPUGiB > 0 {
					unchecked.add(fmt.Sprintf("model %s: fit not checked: %s", m.Name, f.Reason), v.Name)
				}
			}
			for rep := 1; rep <= s.Run.Repetitions; rep++ {
				t := Trial{Index: len(p.Trials), Model: m, Variant: v, Rep: rep, Rates: s.RatesFor(m, v)}
				t.Estimate, t.Measured = p.measured.estimate(t, s.Run)
				p.Trials = append(p.Trials, t)
				p.TrialTime += t.Estimate
			}
		}
	}
	p.Errors = append(p.Errors, p.placeOnLanes()...)
	var noRates grouped
	for _, t := range p.Trials {
		if len(t.Rates) == 0 && t.Rep == 1 {
			noRates.add("no rates: give run.rates (or rates in [variants.NAME] or [[models]]), e.g. [1, 5, 10, 20]; `vbbench probe` measures the knees and suggests them", t.Model.Name+"/"+t.Variant.Name)
		}
	}
	p.Errors = append(p.Errors, noRates.lines("trials")...)
	for _, t := range p.Trials {
		if t.Rep == 1 {
			p.Warnings = append(p.Warnings, backlogWarnings(t, s.Run)...)
		}
	}
	p.Errors = append(p.Errors, noFit.lines("variants")...)
	p.Warnings = append(p.Warnings, unchecked.lines("variants")...)
	if usesGPU && p.GPUGiB == 0 {
		p.Warnings = append(p.Warnings, "no GPU found (nvidia-smi) and no [gpu] memory_gib in the study: memory fit not checked")
	}
	if p.Estimate > s.Budget.D() {
		p.budgetErr = fmt.Sprintf("the matrix needs ≈%s, over the budget of %s; any one of these brings it under: %s",
			roundDur(p.Estimate), roundDur(s.Budget.D()), strings.Join(p.BudgetAdvice(), "; or "))
		p.Errors = append(p.Errors, p.budgetErr)
	} else if p.Worst > s.Budget.D() {
		p.Warnings = append(p.Warnings, fmt.Sprintf("if every level drains for the full %s the matrix takes ≈%s, over the budget of %s",
			s.Run.DrainBound(), roundDur(p.Worst), roundDur(s.Budget.D())))
	}
	if s.Run.EarlyStop.CutFraction > 0 {
		p.Warnings = append(p.Warnings, "run.early_stop.cut_fraction is no longer used: requests cut at the drain deadline are counted at their partial latency, and saturation is decided from run.early_stop.normalized_latency alone")
	}
	dedupe(&p.Warnings)
	return p, nil
}

// placeOnLanes projects the trials onto the GPU lanes (Start, GPUs,
// Estimate, Worst) and returns what keeps a trial off them.
func (p *Plan) placeOnLanes() []string {
	var errs grouped
	if len(p.GPUs) > 0 {
		for _, t := range p.Trials {
			if t.Rep != 1 {
				continue
			}
			if n := t.Variant.Spec.GPUs(); n > len(p.GPUs) {
				errs.add(fmt.Sprintf("a trial takes %d GPUs but the lanes have %d (%s): list more GPUs in --gpus or run.gpus, or lower gpu_count / tensor_parallel_size",
					n, len(p.GPUs), strings.Join(p.GPUs, ",")), t.Model.Name+"/"+t.Variant.Name)
			}
			if _, ok := t.Variant.Spec.Env["CUDA_VISIBLE_DEVICES"]; ok {
				errs.add("the variant sets env CUDA_VISIBLE_DEVICES, but with GPU lanes vbbench pins each trial to its GPUs: drop it from env, or run without --gpus / run.gpus", t.Model.Name+"/"+t.Variant.Name)
			}
		}
	}
	pr := project(p.Trials, p.GPUs, nil, func(t Trial) time.Duration { return t.Estimate })
	for i := range p.Trials {
		p.Trials[i].Start, p.Trials[i].GPUs = pr.Start[i], pr.GPUs[i]
	}
	p.Estimate = pr.Wall
	p.Worst = project(p.Trials, p.GPUs, nil, func(t Trial) time.Duration {
		return max(t.Estimate, trialEstimate(t.Variant.Spec, p.Study.Run, t.Rates, p.Study.Run.DrainBound(), 0))
	}).Wall
	return errs.lines("variants")
}

// grouped collects messages that repeat for several variants.
type grouped struct {
	order []string
	who   map[string][]string
}

func (g *grouped) add(msg, who string) {
	if g.who == nil {
		g.who = map[string][]string{}
	}
	if _, ok := g.who[msg]; !ok {
		g.order = append(g.order, msg)
	}
	g.who[msg] = append(g.who[msg], who)
}

func (g *grouped) lines(noun string) []string {
	out := make([]string, 0, len(g.order))
	for _, m := range g.order {
		out = append(out, fmt.Sprintf("%s [%s: %s]", m, noun, strings.Join(g.who[m], ", ")))
	}
	return out
}

func gpuLabel(name string, gib float64) string {
	if name == "" {
		return fmt.Sprintf("a %.0f GiB GPU", gib)
	}
	return fmt.Sprintf("%s (%.0f GiB)", name, gib)
}

func dedupe(s *[]string) {
	seen := map[string]bool{}
	out := (*s)[:0]
	for _, v := range *s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	*s = out
}

// trialEstimate is the expected wall time of a trial of spec at these
// rates, each level draining for drain (at most the study's bound): the
// start-up, the engine warm-up (its window and a level's drain for its
// tail), the warm-up (once, or before every level), the levels, the stop
// and the analysis.
//
// sat is the variant's saturation (req/s; 0: unknown). A level past it
// drains longer than drain: its backlog (kneeBacklog), at most the study's
// bound.
func trialEstimate(spec backends.Spec, r RunConfig, rates []float64, drain time.Duration, sat float64) time.Duration {
	drain = min(drain, r.DrainBound())
	d := startupEstimate(spec) + tailEstimate(spec) + engineWarmupEstimate(r, drain)
	if r.WarmupMode == replay.WarmupLevel {
		d += time.Duration(len(rates)) * r.Warmup.D()
	} else {
		d += r.Warmup.D()
	}
	for _, rate := range rates {
		d += r.Duration.D() + min(r.DrainBound(), drain+kneeBacklog(spec, rate, sat, r))
	}
	return d
}

// outputP99 is the 99th percentile of the expected output lengths of the
// trace at path (tokens; 0 when it has none).
func outputP99(path string) (int32, error) {
	f, err := trace.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var outs []int32
	for {
		var r trace.Request
		err := f.Read(&r)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("%s: %w", path, err)
		}
		if n := r.OutputTokens; n > 0 {
			outs = append(outs, n)
		} else if n := r.Sampling.MaxTokens; n > 0 {
			outs = append(outs, n)
		}
	}
	if len(outs) == 0 {
		return 0, nil
	}
	slices.Sort(outs)
	return int32(math.Ceil(stats.Percentile(outs, 99))), nil
}

// pastKneeVLLM is how much longer than its probed saturation says a vLLM
// level past the knee drains: measured on the H200 (2026-12-03, ShareGPT,
// five levels of three vLLM variants past their knees), the drains past the
// first 15 s were 1.3–2.5× the backlog served at the probed rate, about 2×:
// past its knee vLLM preempts and recomputes, and serves below the rate a
// closed-loop probe measured (vllm-page's steps/s fell from 37 to 29). A
// server that reserves before it admits (vbtorch) does not preempt: its
// factor is 1 until a measurement says otherwise.
const pastKneeVLLM = 2

// kneeBacklog is the plan's estimate of how long the queue of a level at
// rate, past the variant's saturation sat (req/s; 0: unknown), takes to
// drain beyond a level's usual tail: replay.Backlog over the time the level
// sends, × pastKneeVLLM for vLLM. Zero at or below the saturation.
func kneeBacklog(spec backends.Spec, rate, sat float64, r RunConfig) time.Duration {
	b := replay.Backlog(rate, sat, r.sending())
	if spec.Kind == backends.KindVLLM {
		b *= pastKneeVLLM
	}
	return b
}

// sending is how long one level sends at its rate: its window, and its
// warm-up when every level has one (the queue past the saturation builds
// over both).
func (r RunConfig) sending() time.Duration {
	if r.WarmupMode == replay.WarmupLevel {
		return r.Duration.D() + r.Warmup.D()
	}
	return r.Duration.D()
}

// backlogWarnings names the levels of a trial whose queue, by the
// variant's saturation, outlasts the drain bound: (rate − saturation) × the
// time the level sends, served at the saturation, plus a level's typical
// tail. Their last requests would be cut by the drain alone (censored in
// the latency figures), which a study that wants none avoids with a longer
// run.drain or a lower rate.
func backlogWarnings(t Trial, r RunConfig) []string {
	sat := t.Variant.Saturation
	var out []string
	for _, rate := range t.Rates {
		backlog := kneeBacklog(t.Variant.Spec, rate, sat, r)
		if backlog == 0 {
			continue
		}
		if need := typicalDrainFor(t.Variant.Spec) + backlog; need > r.DrainBound() {
			out = append(out, fmt.Sprintf("%s/%s at %s req/s: its queue past the saturation (%s req/s) needs ≈%s to drain, more than the drain bound %s: its last requests would be cut (censored); raise run.drain or lower the rate",
				t.Model.Name, t.Variant.Name, strconv.FormatFloat(rate, 'g', -1, 64), strconv.FormatFloat(sat, 'g', -1, 64), roundDur(need), r.DrainBound()))
		}
	}
	return out
}

// engineWarmupEstimate is the expected time of a trial's engine warm-up:
// its window, then its last requests' tail, which drains as a level's does
// (0 when there is none).
func engineWarmupEstimate(r RunConfig, drain time.Duration) time.Duration {
	if !r.EngineWarmup.On() {
		return 0
	}
	return r.EngineWarmup.Duration.D() + drain
}

// typicalDrainFor is the drain the estimate counts per level: typicalDrain,
// or for the simulator, which runs many times faster than a GPU and whose
// levels below saturation empty in a few seconds, 3 s (the demo's levels:
// 2.5–3 s of drain and set-up each).
func typicalDrainFor(spec backends.Spec) time.Duration {
	if spec.Kind == backends.KindSim {
		return 3 * time.Second
	}
	return typicalDrain
}

// tailEstimate is what a trial takes after its last level: the server's
// stop and the trial's analysis (a simulator stops at once).
func tailEstimate(spec backends.Spec) time.Duration {
	if spec.Kind == backends.KindSim {
		return 3 * time.Second
	}
	return stopEstimate
}

// allRates returns every rate some trial of the study runs, rising.
func allRates(s *Study, resolved [][]Variant) []float64 {
	seen := map[float64]bool{}
	var out []float64
	for mi, m := range s.Models {
		if mi >= len(resolved) {
			break
		}
		for _, v := range resolved[mi] {
			for _, r := range s.RatesFor(m, v) {
				if !seen[r] {
					seen[r] = true
					out = append(out, r)
				}
			}
		}
	}
	sort.Float64s(out)
	return out
}

// checkTrace verifies that every level has enough requests: at rate R a
// trace of native mean rate M spans Span×M/R, which must cover the warm-up
// and the level's duration.
func checkTrace(h trace.Header, r RunConfig, rates []float64) []string {
	var errs []string
	if h.Count == 0 {
		return []string{"trace: it holds no requests"}
	}
	need := traceNeed(r)
	for _, rate := range rates {
		if span := traceSpanAt(h, r, rate); span < need {
			errs = append(errs, fmt.Sprintf("trace: at %g req/s its %d requests span %s, shorter than warm-up + duration = %s; make a trace of ≥ %d requests (vbsynth --requests or --span) or shorten run.duration",
				rate, h.Count, roundDur(span), need, traceRequestsFor(h, span, need)))
		}
	}
	return errs
}

// traceNeed is how long a trial's trace must last at its rate: warm-up +
// run.duration.
func traceNeed(r RunConfig) time.Duration { return r.Duration.D() + r.Warmup.D() }

// traceSpanAt is how long the trace lasts played at rate req/s (and
// run.speed).
func traceSpanAt(h trace.Header, r RunConfig, rate float64) time.Duration {
	native := h.MeanRate
	if native <= 0 {
		native = 1
	}
	speed := r.Speed
	if speed == 0 {
		speed = 1
	}
	return time.Duration(float64(h.Span) * native / (rate * speed))
}

// traceRequestsFor is the least request count of a trace like h that lasts
// need where h lasts span.
func traceRequestsFor(h trace.Header, span, need time.Duration) int64 {
	return int64(float64(h.Count)*float64(need)/float64(max(span, 1))) + 1
}

func roundDur(d time.Duration) time.Duration {
	if d > 10*time.Minute {
		return d.Round(time.Minute)
	}
	return d.Round(time.Second)
}

// Print writes the plan for people: checks, run order, time against budget.
func (p *Plan) Print(w io.Writer) {
	s := p.Study
	rates := fmt.Sprintf("rates %s req/s", fmtRates(s.Run.Rates))
	if len(s.Run.Rates) == 0 {
		rates = "rates per variant"
	}
	fmt.Fprintf(w, "study %q: %d models, %d trials, %s × %s (%s, drain ≤ %s)\n",
		s.Name, len(s.Models), len(p.Trials), rates, s.Run.Duration.D(), warmupNote(s.Run), s.Run.DrainBound())
	if p.TraceReady {
		fmt.Fprintf(w, "trace %s: %d requests over %s at %g req/s native, hash %s\n",
			s.Trace.Path, p.Trace.Count, roundDur(p.Trace.Span), p.Trace.MeanRate, p.Trace.ShortHash())
	}
	switch {
	case p.GPU.Name != "":
		fmt.Fprintf(w, "GPU: %s, %d MiB, driver %s, CUDA %s\n", p.GPU.Name, p.GPU.MemoryMiB, p.GPU.Driver, p.GPU.CUDA)
	case p.GPUGiB > 0:
		fmt.Fprintf(w, "GPU: %s (from the study file)\n", gpuLabel(s.GPU.Name, p.GPUGiB))
	}
	if len(p.Fits) > 0 {
		fmt.Fprintln(w, "\nmemory:")
		for _, f := range p.Fits {
			switch {
			case f.Fits && f.FixedKVTokens > 0:
				fmt.Fprintf(w, "  ok    %-24s %-18s weights ≈%.1f GiB, KV fixed at %d tokens (≈%.1f GiB; room for ≈%d in %.1f GiB usable)\n",
					f.Model, f.Variant, f.WeightsGiB, f.FixedKVTokens, float64(f.FixedKVTokens)*f.KVPerTokenKiB/(1<<20), f.KVTokens, f.UsableGiB)
			case f.Fits:
				fmt.Fprintf(w, "  ok    %-24s %-18s weights ≈%.1f GiB, KV %.0f KiB/token → ≈%d tokens of KV in %.1f GiB usable\n",
					f.Model, f.Variant, f.WeightsGiB, f.KVPerTokenKiB, f.KVTokens, f.UsableGiB)
			case f.Known:
				fmt.Fprintf(w, "  NO    %-24s %-18s %s\n", f.Model, f.Variant, f.Reason)
			default:
				fmt.Fprintf(w, "  ?     %-24s %-18s %s\n", f.Model, f.Variant, f.Reason)
			}
		}
	}
	if len(p.GPUs) > 0 {
		fmt.Fprintf(w, "\nrun order: %d GPU lanes (%s); a trial starts when the GPUs it takes are free\n", len(p.GPUs), strings.Join(p.GPUs, ","))
	} else {
		fmt.Fprintln(w, "\nrun order:")
	}
	for _, t := range p.Trials {
		own := ""
		if !slices.Equal(t.Rates, s.Run.Rates) {
			own = fmt.Sprintf("  rates %s", fmtRates(t.Rates))
		}
		lane := ""
		if len(p.GPUs) > 0 {
			on := "-"
			if t.GPUs != nil {
				on = strings.Join(t.GPUs, ",")
			}
			lane = fmt.Sprintf("gpu %-7s start ≈%-7s ", on, roundDur(max(t.Start, 0)))
		}
		if t.Measured {
			own += "  (measured)"
		}
		fmt.Fprintf(w, "  %3d  %-24s %-18s rep %d  %-13s %s≈%-8s (done at ≈%s)%s\n", t.Index+1, t.Model.Name, t.Variant.Name, t.Rep,
			t.Variant.Spec.Kind, lane, roundDur(t.Estimate), roundDur(max(t.Start, 0)+t.Estimate), own)
	}
	if p.measured != nil {
		fmt.Fprintf(w, "\nmeasured (--measured: %d finished trials, %d probed variants; a \"(measured)\" trial's estimate uses these means, and the model where they say nothing):\n%s",
			p.measured.Trials, p.measured.Probes, p.measured)
	}
	pct := 100 * float64(p.Estimate) / float64(s.Budget.D())
	lanes := ""
	if len(p.GPUs) > 0 {
		lanes = fmt.Sprintf(" on %d GPU lanes (serially ≈%s, %.1f× longer)", len(p.GPUs), roundDur(p.TrialTime), float64(p.TrialTime)/float64(max(p.Estimate, 1)))
	}
	fmt.Fprintf(w, "\nestimate: ≈%s%s of the %s budget (%.0f%%); ≈%s if every level drains fully\n",
		roundDur(p.Estimate), lanes, roundDur(s.Budget.D()), pct, roundDur(p.Worst))
	for _, m := range p.Warnings {
		fmt.Fprintf(w, "warning: %s\n", m)
	}
	for _, m := range p.Errors {
		fmt.Fprintf(w, "error: %s\n", m)
	}
	if len(p.Errors) == 0 {
		fmt.Fprintln(w, "plan ok")
	}
}

// warmupNote says what the trials send before they measure, for the
// plan's header: "warm-up 10s", "warm-up 10s before every level", and the
// engine warm-up when there is one.
func warmupNote(r RunConfig) string {
	note := fmt.Sprintf("warm-up %s", r.Warmup.D())
	if r.WarmupMode == replay.WarmupLevel && r.Warmup > 0 {
		note += " before every level"
	}
	if ew := r.EngineWarmup; ew.On() {
		note += fmt.Sprintf(", engine warm-up %s at concurrency %d", ew.Duration.D(), ew.Concurrency)
	}
	return note
}

// Select returns the trials of the plan with these indexes (0-based, in
// plan order; none: every trial).
func (p *Plan) Select(indexes []int) ([]Trial, error) {
	if len(indexes) == 0 {
		return p.Trials, nil
	}
	var out []Trial
	for _, t := range p.Trials {
		if slices.Contains(indexes, t.Index) {
			out = append(out, t)
		}
	}
	for _, i := range indexes {
		if i < 0 || i >= len(p.Trials) {
			return nil, fmt.Errorf("bench: trial %d: the plan has trials 1 to %d", i+1, len(p.Trials))
		}
	}
	return out, nil
}

// TrialID finds a trial by its number in the run order (1-based, as plan
// prints it and as a Slurm array task gets it) or by its key
// (model/variant/repN).
func (p *Plan) TrialID(id string) (Trial, error) {
	if n, err := strconv.Atoi(id); err == nil {
		if n < 1 || n > len(p.Trials) {
			return Trial{}, fmt.Errorf("bench: trial %d: the plan has trials 1 to %d (vbbench plan lists them)", n, len(p.Trials))
		}
		return p.Trials[n-1], nil
	}
	for _, t := range p.Trials {
		if t.Key() == id {
			return t, nil
		}
	}
	return Trial{}, fmt.Errorf("bench: no trial %q: give its number in the run order or its key model/variant/repN (vbbench plan lists them)", id)
}

// Err joins the plan's errors.
func (p *Plan) Err() error { return p.errs(true) }

// errs joins the plan's errors, the budget's only if budget is set (a
// cluster's wall time depends on its free GPUs, not on the plan's lanes).
func (p *Plan) errs(budget bool) error {
	var errs []error
	for _, e := range p.Errors {
		if budget || e != p.budgetErr {
			errs = append(errs, errors.New(e))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("bench: plan: %w", errors.Join(errs...))
}
