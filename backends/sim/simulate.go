package sim

import (
	"fmt"
	"sort"
	"time"
)

// VirtualRequest is one request of an offline (virtual-time) simulation.
type VirtualRequest struct {
	// Arrival is when the request reaches the engine.
	Arrival time.Duration
	// Prompt and Output are its prompt and generated tokens; MaxTokens is
	// what it asked for (0 means Output).
	Prompt, Output, MaxTokens int
}

// VirtualResult is the timeline of one request in an offline simulation.
type VirtualResult struct {
	// Tokens are the simulated times at which each output token was emitted.
	Tokens []time.Duration
	// Preempted counts how often the request was preempted.
	Preempted int
}

// VirtualStats summarizes an offline simulation.
type VirtualStats struct {
	// End is the simulated time of the last step.
	End time.Duration
	// MeanBatch is the time-weighted mean number of running sequences over
	// [0, End] (idle time counts as 0) — the paper's "batched requests".
	MeanBatch float64
	// MaxBatch is the largest batch of a step.
	MaxBatch int
	// Preemptions counts preemptions.
	Preemptions uint64
	// Steps counts engine iterations.
	Steps int
	// MaxKVUsed is the most KV tokens allocated at any step.
	MaxKVUsed int
}

// Simulate runs reqs through the engine model in virtual time, with no
// clock and no server: the same scheduler and step model the live engine
// uses, so a trace's saturation behaviour can be predicted (and tested)
// exactly. reqs must be in arrival order. cfg is resolved first.
func Simulate(cfg Config, reqs []VirtualRequest) ([]VirtualResult, VirtualStats, error) {
	cfg, err := cfg.Resolve()
	if err != nil {
		return nil, VirtualStats{}, err
	}
	if !sort.SliceIsSorted(reqs, func(i, j int) bool { return reqs[i].Arrival < reqs[j].Arrival }) {
		return nil, VirtualStats{}, fmt.Errorf("sim: simulate: requests are not in arrival order")
	}
	s := newScheduler(cfg)
	res := make([]VirtualResult, len(reqs))
	seqs := make([]*seq, len(reqs))
	for i, r := range reqs {
		mt := r.MaxTokens
		if mt == 0 {
			mt = r.Output
		}
		if r.Output < 1 || r.Prompt < 1 {
			return nil, VirtualStats{}, fmt.Errorf("sim: simulate: request %d: prompt %d / output %d tokens, want ≥ 1", i, r.Prompt, r.Output)
		}
		if !s.fits(r.Prompt, mt, r.Output) {
			return nil, VirtualStats{}, fmt.Errorf("sim: simulate: request %d (prompt %d + output %d) can never fit the KV cache of %d tokens", i, r.Prompt, r.Output, cfg.KVTokens)
		}
		seqs[i] = &seq{id: uint64(i), prompt: r.Prompt, maxTokens: mt, target: r.Output}
		res[i].Tokens = make([]time.Duration, 0, r.Output)
	}
	var st VirtualStats
	var clock time.Duration
	var weighted float64
	next := 0
	for {
		for next < len(reqs) && reqs[next].Arrival <= clock {
			s.add(seqs[next])
			next++
		}
		step := s.schedule()
		if step == nil && len(s.waiting) > 0 {
			continue // every runner was preempted: admit from the queue
		}
		if step == nil {
			if next == len(reqs) {
				break
			}
			clock = reqs[next].Arrival
			continue
		}
		dur := cfg.Step.Duration(step.prefillTokens, step.decodeSeqs, step.contextTokens)
		clock += dur
		n := len(step.seqs)
		weighted += float64(n) * dur.Seconds()
		st.MaxBatch = max(st.MaxBatch, n)
		st.Steps++
		used, _ := s.usage()
		st.MaxKVUsed = max(st.MaxKVUsed, used)
		for _, q := range step.seqs {
			if q.prefill && q.generated > 0 {
				res[q.id].Preempted++
			}
		}
		s.commit(step)
		for _, q := range step.seqs {
			res[q.id].Tokens = append(res[q.id].Tokens, clock)
		}
	}
	st.End = clock
	st.Preemptions = s.preemptions
	if clock > 0 {
		st.MeanBatch = weighted / clock.Seconds()
	}
	return res, st, nil
}
