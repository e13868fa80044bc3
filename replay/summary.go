package replay

import (
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vbench/vbench/internal/units"
	"github.com/vbench/vbench/metric"
)

// fmtDur prints seconds as every command does (units.Seconds): "3.52ms",
// "20.1s"; "-" for NaN, nothing measured.
func fmtDur(s float64) string { return units.Seconds(s) }

// LevelLine is the one-line account of a finished phase (a second line,
// "WARNING: ...", when its schedule lag p99 exceeded threshold).
func LevelLine(lr *LevelResult, threshold time.Duration) string {
	kind := "level"
	if lr.Warmup {
		kind = "warm-up"
	}
	var b strings.Builder
	if lr.Concurrency > 0 {
		fmt.Fprintf(&b, "%s %s (closed loop, %d in flight) done: sent %d ok %d", kind, lr.Label, lr.Concurrency, lr.Sent, lr.OK)
		if lr.Cut > 0 {
			fmt.Fprintf(&b, " cut %d", lr.Cut)
		}
		fmt.Fprintf(&b, " | %s", levelNorm(lr))
		if len(lr.Errors) > 0 {
			fmt.Fprintf(&b, " | errors %s", errorList(lr.Errors))
		}
		if lr.Exhausted {
			b.WriteString(" | the trace ran out before the duration")
		}
		if lr.Interrupted {
			b.WriteString(" | INTERRUPTED")
		}
		return b.String()
	}
	fmt.Fprintf(&b, "%s %s req/s done: sent %d/%d ok %d", kind, lr.Label, lr.Sent, lr.Planned, lr.OK)
	if note := sampleNote(lr); note != "" {
		b.WriteString(" (" + note + ")")
	}
	if lr.Dropped > 0 {
		fmt.Fprintf(&b, " dropped %d", lr.Dropped)
	}
	if lr.Cut > 0 {
		fmt.Fprintf(&b, " cut %d (after a %v drain)", lr.Cut, lr.Drain)
	}
	fmt.Fprintf(&b, " | achieved %.2f req/s (scheduled %.2f) | lag p50 %s p99 %s max %s | %s",
		lr.AchievedRate, lr.ScheduledRate, fmtDur(lr.Lag.P50), fmtDur(lr.Lag.P99), fmtDur(lr.Lag.Max), levelNorm(lr))
	if len(lr.Errors) > 0 {
		fmt.Fprintf(&b, " | errors %s", errorList(lr.Errors))
	}
	if lr.LagExceeded {
		fmt.Fprintf(&b, "\nWARNING: %s %s req/s: schedule lag p99 %s exceeds %s: the replayer could not keep the schedule (%d of %d requests late); this level's latencies are suspect",
			kind, lr.Label, fmtDur(lr.Lag.P99), fmtDur(threshold.Seconds()), lr.Late, lr.Sent)
	}
	if lr.Interrupted {
		b.WriteString(" | INTERRUPTED")
	}
	return b.String()
}

// sampleNote explains a level that plans noticeably fewer (or more)
// requests than rate × window: its window holds that many of the trace's
// arrivals. A synthesized trace's arrivals are a random (Poisson) sample,
// and every level plays the same stretch from the trace's start, so a
// stretch that runs slow makes every level send less than nominal — by
// design: each level replays the same requests.
func sampleNote(lr *LevelResult) string {
	if lr.Warmup || lr.Window <= 0 || lr.Rate <= 0 {
		return ""
	}
	nominal := lr.Rate * lr.Window.Seconds()
	if nominal < 1 || lr.Scale <= 0 || math.Abs(float64(lr.Planned)-nominal) < 0.05*nominal {
		return ""
	}
	return fmt.Sprintf("%d of the trace's arrivals fall in this window, not %.0f: its own random sample", lr.Planned, nominal)
}

// levelNorm is a finished level's normalized latency as the replayer saw
// it (client side).
func levelNorm(lr *LevelResult) string {
	return NormLatencyText(metric.Summary{Cut: lr.Cut, NormLatency: lr.NormLatency, NormLatencyWithCut: lr.NormLatencyWithCut})
}

func errorList(m map[string]int) string {
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, ",")
}

// WriteSummary prints the result as a table, one row per measured level,
// followed by warnings.
func WriteSummary(w io.Writer, res *Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "level\trate\tsent\tok\tcut\tdropped\terrors\tscheduled/s\tachieved/s\tlag p50\tlag p99\tlate\tttft p50\tttft p99\ttpot mean\te2e p50\te2e p99\tnorm s/tok\ttokens\t\n")
	for i := range res.Levels {
		lr := &res.Levels[i]
		errs := "0"
		if len(lr.Errors) > 0 {
			errs = errorList(lr.Errors)
		}
		norm := "-"
		if lr.NormLatency.N > 0 {
			norm = fmt.Sprintf("%.4f", lr.NormLatency.Mean)
		}
		fmt.Fprintf(tw, "%s\t%g\t%d\t%d\t%d\t%d\t%s\t%.2f\t%.2f\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t\n",
			lr.Label, lr.Rate, lr.Sent, lr.OK, lr.Cut, lr.Dropped, errs, lr.ScheduledRate, lr.AchievedRate,
			fmtDur(lr.Lag.P50), fmtDur(lr.Lag.P99), lr.Late, fmtDur(lr.TTFT.P50), fmtDur(lr.TTFT.P99), fmtDur(lr.TPOT.Mean),
			fmtDur(lr.E2E.P50), fmtDur(lr.E2E.P99), norm, lr.OutputTokens)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "run %s, trace %s (%d requests), model %q, target %s\n", res.Config.Run, shortHash(res.TraceHash), res.TraceLen, res.Model, res.Config.Target)
	if res.LagExceeded {
		fmt.Fprintf(w, "WARNING: schedule lag p99 exceeded %s in some level: the load was not delivered as scheduled; treat those levels' latencies as suspect\n", fmtDur(res.Config.LagThreshold.Seconds()))
	}
	if res.Interrupted {
		fmt.Fprintln(w, "INTERRUPTED: the summary covers what ran before the stop")
	}
	return nil
}

func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}
