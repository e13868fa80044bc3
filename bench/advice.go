package bench

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// BudgetAdvice says, for a plan whose estimate is over its budget, which
// knob alone brings it under, each with the estimate it gives:
//
//   - trim the ladders: drop the highest rates, one level at a time, from
//     the trials with the most levels (level length is never cut: it is what
//     makes levels comparable; `vbbench probe` finds the rates worth keeping);
//   - fewer repetitions;
//   - GPU lanes, when the study runs serially.
//
// Every estimate comes from the same per-trial estimate and lane placement
// as the plan's own. It returns nil when the plan fits.
func (p *Plan) BudgetAdvice() []string {
	budget := p.Study.Budget.D()
	if p.Estimate <= budget || len(p.Trials) == 0 {
		return nil
	}
	var out []string

	// Trim ladders.
	if a := ladderAdvice(p.Trials, p.GPUs, p.Study.Run, budget, p.measured); a != "" {
		out = append(out, a)
	}

	// Fewer repetitions.
	if reps := p.Study.Run.Repetitions; reps > 1 {
		// The wall time grows with the repetitions kept: the most that fit
		// is found by bisection, a few projections even for many repetitions.
		withReps := func(r int) time.Duration {
			return wall(slices.DeleteFunc(slices.Clone(p.Trials), func(t Trial) bool { return t.Rep > r }), p.GPUs)
		}
		if r := sort.Search(reps-1, func(i int) bool { return withReps(i+1) > budget }); r >= 1 {
			out = append(out, fmt.Sprintf("repetitions = %d → ≈%s (fewer repetitions widen the confidence intervals)", r, roundDur(withReps(r))))
		}
	}

	// GPU lanes.
	if len(p.GPUs) == 0 {
		for n := 2; n <= 8; n *= 2 {
			gpus := make([]string, n)
			for i := range gpus {
				gpus[i] = fmt.Sprint(i)
			}
			if est := wall(p.Trials, gpus); est <= budget {
				out = append(out, fmt.Sprintf("--gpus %s (%d GPU lanes, if the host has them) → ≈%s", strings.Join(gpus, ","), n, roundDur(est)))
				break
			}
		}
	}
	if len(out) == 0 {
		out = append(out, "no single knob brings it under: split the matrix into several studies (one per workload or model) or raise budget")
	}
	return out
}

// LadderAdvice says which top rates to drop from the plan's ladders for
// its estimate to fit budget (see BudgetAdvice), "" when it fits already
// or when even one level per trial does not.
func (p *Plan) LadderAdvice(budget time.Duration) string {
	return ladderAdvice(p.Trials, p.GPUs, p.Study.Run, budget, p.measured)
}

// wall is the wall time of trials on gpus by their estimates and the lane
// placement of the plan's own projection.
func wall(trials []Trial, gpus []string) time.Duration {
	return project(trials, gpus, nil, func(t Trial) time.Duration { return t.Estimate }).Wall
}

// ladderAdvice says which top rates to drop from trials' ladders for their
// wall time on gpus to fit budget: the top rate of the trial with the most
// levels left (the highest top rate among equals), from every repetition of
// its model × variant, one at a time; each trial keeps at least one rate.
// The estimate it names comes from the plan's estimate (m's measurements,
// else trialEstimate) and the lane placement, as the plan's own. It returns "" when nothing needs to go or when even one
// level per trial does not fit.
func ladderAdvice(trials []Trial, gpus []string, run RunConfig, budget time.Duration, m *Measured) string {
	trials = slices.Clone(trials)
	for i := range trials {
		trials[i].Rates = slices.Clone(trials[i].Rates)
	}
	dropped := map[string][]float64{}
	levels := 0
	for est := wall(trials, gpus); est > budget; est = wall(trials, gpus) {
		best := -1
		for i, t := range trials {
			if len(t.Rates) <= 1 {
				continue
			}
			if best < 0 || len(t.Rates) > len(trials[best].Rates) ||
				len(t.Rates) == len(trials[best].Rates) && t.Rates[len(t.Rates)-1] > trials[best].Rates[len(trials[best].Rates)-1] {
				best = i
			}
		}
		if best < 0 {
			return ""
		}
		t := &trials[best]
		top := t.Rates[len(t.Rates)-1]
		// Drop the same rate from every repetition of this model × variant.
		for i := range trials {
			u := &trials[i]
			if u.Model.Name == t.Model.Name && u.Variant.Name == t.Variant.Name && len(u.Rates) > 1 && u.Rates[len(u.Rates)-1] == top {
				u.Rates = u.Rates[:len(u.Rates)-1]
				u.Estimate, u.Measured = m.estimate(*u, run)
				levels++
			}
		}
		key := t.Model.Name + "/" + t.Variant.Name
		dropped[key] = append(dropped[key], top)
	}
	if levels == 0 {
		return ""
	}
	keys := make([]string, 0, len(dropped))
	for k := range dropped {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var what []string
	rates := 0
	for _, k := range keys {
		rates += len(dropped[k])
		rs := dropped[k]
		slices.SortFunc(rs, cmp.Compare)
		what = append(what, fmt.Sprintf("%s %v", k, rs))
	}
	n := fmt.Sprintf("%d rates", rates)
	if rates == 1 {
		n = "1 rate"
	}
	if levels != rates {
		n += fmt.Sprintf(" (%d levels with the repetitions)", levels)
	}
	return fmt.Sprintf("trim the ladders by %s → ≈%s: drop %s (level length stays %s; `vbbench probe` shows which rates bracket each knee)",
		n, roundDur(wall(trials, gpus)), strings.Join(what, ", "), run.Duration.D())
}
