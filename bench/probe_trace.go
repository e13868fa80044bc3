package bench

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vbench/vbench/trace"
)

// A probe's ladder is only useful if `vbbench plan` accepts it, and plan
// refuses a rate at which the trace lasts less than warm-up + run.duration
// (checkTrace). The probe knows both, so it says before the first step how
// far the trace reaches (open-loop rates it fills, closed-loop throughput a
// step can draw before the trace runs out), warns before a step that will
// likely run out, and, when a suggested rate is past the trace's reach,
// says by how much and what to run (ProbeTrace.Fix), still printing the
// ladder.

// ProbeTraceMargin is the headroom of a suggested longer trace over the
// least that fits: a new Poisson trace of N requests spans N/rate ± √N/rate,
// so exactly the least count would fail plan half of the time.
const ProbeTraceMargin = 0.05

// ProbeTrace is what the study's trace allows (probe.json "trace").
type ProbeTrace struct {
	// Path is the study's trace file; Requests its request count.
	Path     string `json:"path"`
	Requests int64  `json:"requests"`
	// Need is warm-up + run.duration: how long the trace must last at a
	// study rate.
	Need time.Duration `json:"need_ns"`
	// MaxRate is the highest open-loop rate (req/s) at which the trace
	// lasts Need.
	MaxRate float64 `json:"max_rate"`
	// StepMaxReqPerS is the completed-request rate above which a probe step
	// of --level runs out of the trace (Requests ÷ level).
	StepMaxReqPerS float64 `json:"step_max_req_per_s"`
	// ShortRates are the suggested rates (of any ladder) the trace cannot
	// fill for Need; empty when every one fits. The fields below are set
	// only then, for the highest of them.
	ShortRates []float64 `json:"short_rates,omitempty"`
	// SpanAtTop is how long the trace lasts at the highest suggested rate.
	SpanAtTop time.Duration `json:"span_at_top_ns,omitempty"`
	// LeastRequests is the least request count plan accepts for that rate
	// (as plan's error says); WantRequests adds ProbeTraceMargin and rounds
	// up, and WantSpan is the same as vbsynth --span (set for traces of
	// native rate 1 req/s, as vbsynth makes them).
	LeastRequests int64         `json:"least_requests,omitempty"`
	WantRequests  int64         `json:"want_requests,omitempty"`
	WantSpan      time.Duration `json:"want_span_ns,omitempty"`
	// MaxDuration is the longest run.duration the present trace fills at
	// the highest suggested rate (0: not even the warm-up fits).
	MaxDuration time.Duration `json:"max_duration_ns,omitempty"`
	// Command makes a long enough trace: trace.generate (or the trace's
	// own header) with --requests WantRequests.
	Command string `json:"command,omitempty"`
	// Fix is the one-paragraph message: what is short and how to fix it.
	Fix string `json:"fix,omitempty"`
}

// newProbeTrace says what the trace allows before any step.
func newProbeTrace(s *Study, h trace.Header, level time.Duration) ProbeTrace {
	pt := ProbeTrace{Path: s.Trace.Path, Requests: h.Count, Need: traceNeed(s.Run)}
	if level > 0 {
		pt.StepMaxReqPerS = float64(h.Count) / level.Seconds()
	}
	if h.Count > 0 && pt.Need > 0 {
		// traceSpanAt is inversely proportional to the rate.
		pt.MaxRate = float64(traceSpanAt(h, s.Run, 1)) / float64(pt.Need)
	}
	return pt
}

// check fills the shortfall fields for the suggested rates.
func (pt *ProbeTrace) check(s *Study, h trace.Header, rates []float64) {
	pt.ShortRates, pt.Fix, pt.Command = nil, "", ""
	if h.Count == 0 || len(rates) == 0 {
		return
	}
	rates = slices.Clone(rates)
	slices.Sort(rates)
	rates = slices.Compact(rates)
	for _, r := range rates {
		if traceSpanAt(h, s.Run, r) < pt.Need { // exactly plan's test
			pt.ShortRates = append(pt.ShortRates, r)
		}
	}
	if len(pt.ShortRates) == 0 {
		return
	}
	top := rates[len(rates)-1]
	pt.SpanAtTop = traceSpanAt(h, s.Run, top)
	pt.LeastRequests = traceRequestsFor(h, pt.SpanAtTop, pt.Need)
	pt.WantRequests = int64(roundUp2(float64(pt.LeastRequests) * (1 + ProbeTraceMargin)))
	if h.MeanRate == 1 {
		span := time.Duration(float64(h.Span) * float64(pt.WantRequests) / float64(h.Count))
		pt.WantSpan = span.Truncate(time.Minute)
		if pt.WantSpan < span {
			pt.WantSpan += time.Minute
		}
	}
	if d := (pt.SpanAtTop - s.Run.Warmup.D()).Truncate(time.Second); d >= time.Second {
		pt.MaxDuration = d
	}
	pt.Command = synthCommand(s, h, pt.WantRequests)

	var b strings.Builder
	fmt.Fprintf(&b, "the trace is too short for the suggested rates %s req/s: there its %d requests last less than warm-up + run.duration = %s (%s at %g req/s), so vbbench plan and run would refuse them; the trace fills rates up to %.3g req/s. ",
		fmtRates(pt.ShortRates), h.Count, pt.Need, spanString(pt.SpanAtTop), top, pt.MaxRate)
	fmt.Fprintf(&b, "Fix: make a trace of ≥ %d requests", pt.WantRequests)
	if pt.WantSpan > 0 {
		fmt.Fprintf(&b, " (vbsynth --span %s)", fmtSpan(pt.WantSpan))
	}
	fmt.Fprintf(&b, ": `%s`", pt.Command)
	if len(s.Trace.Generate) > 0 {
		b.WriteString(" (and put the same count in trace.generate)")
	}
	if pt.MaxDuration > 0 {
		fmt.Fprintf(&b, "; or shorten run.duration to %q", pt.MaxDuration.String())
	}
	b.WriteString(".")
	pt.Fix = b.String()
}

// synthCommand is the vbsynth command that remakes the study's trace with
// n requests: trace.generate with its --requests/--span replaced, else one
// built from the trace header ("..." standing for flags it cannot know).
func synthCommand(s *Study, h trace.Header, n int64) string {
	count := strconv.FormatInt(n, 10)
	if len(s.Trace.Generate) > 0 {
		var argv []string
		replaced := false
		gen := s.Trace.Generate
		for i := 0; i < len(gen); i++ {
			a := strings.ReplaceAll(gen[i], "{path}", s.Trace.Path)
			name, _, hasValue := strings.Cut(a, "=")
			if name == "--requests" || name == "--span" {
				if !hasValue {
					i++ // skip its value
				}
				if !replaced {
					argv = append(argv, "--requests", count)
					replaced = true
				}
				continue
			}
			argv = append(argv, a)
		}
		if !replaced {
			argv = append(argv[:1:1], append([]string{"--requests", count}, argv[1:]...)...)
		}
		return shellJoin(argv)
	}
	argv := []string{"vbsynth"}
	if strings.HasPrefix(h.Generator, "vbsynth") && h.Dataset != "" && !strings.ContainsAny(h.Dataset, ":,/") && len(h.Params) == 0 {
		argv = append(argv, "--dataset", h.Dataset, "--seed", strconv.FormatInt(h.Seed, 10))
	} else {
		argv = append(argv, "...")
	}
	argv = append(argv, "--requests", count, "-o", s.Trace.Path)
	return shellJoin(argv)
}

// shellJoin quotes the arguments that a shell would split or expand.
func shellJoin(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		out[i] = a
		if a == "" || strings.IndexFunc(a, func(c rune) bool {
			return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_./:=,@%+", c))
		}) >= 0 {
			out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(out, " ")
}

// roundUp2 rounds x up to two significant digits (4373 → 4400).
func roundUp2(x float64) float64 {
	if x <= 0 {
		return 0
	}
	unit := math.Pow(10, math.Floor(math.Log10(x))-1)
	return math.Ceil(x/unit-1e-9) * unit
}

// spanString rounds a span for reading: to the second from 10 s up (as
// plan does), else to 10 ms.
func spanString(d time.Duration) string {
	if d >= 10*time.Second {
		return roundDur(d).String()
	}
	return d.Round(10 * time.Millisecond).String()
}

// fmtSpan writes whole minutes as "74m", else the duration.
func fmtSpan(d time.Duration) string {
	if d%time.Minute == 0 {
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	}
	return d.String()
}

// preflight is the probe's look at the trace before the first step: a line
// of what it allows, and warnings for steps it cannot feed.
func (pt *ProbeTrace) preflight(level time.Duration, maxConc int) (info string, warns []string) {
	info = fmt.Sprintf("trace %s: %d requests; it lasts warm-up + run.duration = %s at rates up to %.3g req/s, and a %s step runs out of it above %.3g completed req/s",
		pt.Path, pt.Requests, pt.Need, pt.MaxRate, level, pt.StepMaxReqPerS)
	top := 1
	for 2*top <= maxConc {
		top *= 2
	}
	// A step needs a round of requests to fill its slots and at least one
	// more to measure: 2n requests at concurrency n.
	if 2*int64(top) > pt.Requests {
		fit := 0
		for n := 1; n <= top && 2*int64(n) <= pt.Requests; n *= 2 {
			fit = n
		}
		var too []string
		for n := max(fit*2, 1); n <= top; n *= 2 {
			too = append(too, strconv.Itoa(n))
		}
		w := fmt.Sprintf("the trace's %d requests are too few for concurrency %s (a step needs 2 requests per slot): ", pt.Requests, strings.Join(too, ", "))
		if fit > 0 {
			w += fmt.Sprintf("pass --max-concurrency %d or ", fit)
		}
		w += fmt.Sprintf("make a trace of ≥ %d requests", 2*top)
		warns = append(warns, w)
	}
	return info, warns
}

// runsOut predicts, before the step at concurrency n, whether it will run
// out of the trace: the previous step already completed prev.ReqPerS, and
// throughput does not fall as concurrency rises, so the step draws at least
// that × level, plus the n requests in flight at its end.
func runsOut(prev ProbeStep, n int, level time.Duration, requests int64) (string, bool) {
	if prev.Exhausted {
		return fmt.Sprintf("concurrency %d will run out of the trace, as concurrency %d did (†)", n, prev.Concurrency), true
	}
	draw := prev.ReqPerS*level.Seconds() + float64(n)
	if draw <= float64(requests) {
		return "", false
	}
	return fmt.Sprintf("concurrency %d will likely run out of the trace's %d requests: concurrency %d already completed %.3g req/s, so a %s step draws at least that × %s + %d in flight ≈ %.0f (a longer trace or a shorter --level measures better)",
		n, requests, prev.Concurrency, prev.ReqPerS, level, level, n, draw), true
}
