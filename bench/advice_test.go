package bench

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vbench/vbench/backends"
)

// TestBudgetAdvice: one workload of the seed's dense study — 6 variants, 6 rates, 60-s
// levels, 2 repetitions, ≈1h56m — is over 1h30m (its share of the budget); each piece of
// advice names a knob and an estimate under the budget, computed by the
// plan's own estimate.
func TestBudgetAdvice(t *testing.T) {
	text := `
name = "dense"
budget = "1h30m"
[gpu]
memory_gib = 141
[trace]
path = "missing.bin"
generate = ["vbsynth"]
[run]
rates = [1, 2, 4, 8, 16, 32]
duration = "60s"
warmup = "10s"
drain = "60s"
repetitions = 2
[[models]]
name = "m"
model = "meta-llama/Llama-3.1-8B-Instruct"
max_model_len = 2048
variants = ["torch-max", "torch-pow2", "torch-oracle", "vllm-page", "vllm-page+flash", "vllm-all-opt"]
[variants.torch-max]
preset = "torch-baseline"
[variants.torch-pow2]
preset = "torch-baseline"
kv_policy = "pow2"
[variants.torch-oracle]
preset = "torch-baseline"
kv_policy = "oracle"
`
	s, err := ParseStudy(text)
	if err != nil {
		t.Fatal(err)
	}
	p, err := MakePlan(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	if p.Estimate <= s.Budget.D() {
		t.Fatalf("estimate %s fits the budget; the test needs a plan over it", p.Estimate)
	}
	advice := p.BudgetAdvice()
	if len(advice) != 3 {
		t.Fatalf("advice %q; want ladders, repetitions and lanes", advice)
	}
	for i, prefix := range []string{"trim the ladders by ", "repetitions = 1 ", "--gpus 0,1 "} {
		if !strings.HasPrefix(advice[i], prefix) {
			t.Errorf("advice[%d] = %q; want it to start with %q", i, advice[i], prefix)
		}
		m := regexp.MustCompile(`→ ≈(\S+?)[ :(]`).FindStringSubmatch(advice[i] + " ")
		if m == nil {
			t.Errorf("advice %q names no estimate", advice[i])
			continue
		}
		d, err := time.ParseDuration(m[1])
		if err != nil || d > s.Budget.D() {
			t.Errorf("advice %q: estimate %s (%v) not under the budget", advice[i], m[1], err)
		}
	}
	// Only the top rates go, and the level length is kept.
	if strings.Contains(advice[0], "[1]") || !strings.Contains(advice[0], "32") || !strings.Contains(advice[0], "level length stays 1m0s") {
		t.Errorf("ladder advice %q", advice[0])
	}
	if err := p.Err(); err == nil || !strings.Contains(err.Error(), "any one of these brings it under") {
		t.Errorf("plan error %v; want the advice in it", err)
	}
	// A plan within its budget gets none.
	s.Budget = Duration(100 * time.Hour)
	p, _ = MakePlan(context.Background(), s)
	if a := p.BudgetAdvice(); a != nil {
		t.Errorf("advice %q for a plan within budget", a)
	}
}

// TestFitFixedKV: a fixed kv_cache_tokens is checked against the memory
// left after the weights: 32,768 tokens of Llama-3.1-8B (128 KiB each,
// 4 GiB) fit a 24 GiB card; 100,000 (≈12.2 GiB) do not.
func TestFitFixedKV(t *testing.T) {
	m := ModelConfig{Name: "m", Model: "meta-llama/Llama-3.1-8B-Instruct", MaxModelLen: 2048}
	for _, c := range []struct {
		tokens int
		fits   bool
	}{{32768, true}, {100000, false}} {
		f := checkFit(m, Variant{Name: "v", Spec: backends.Spec{Kind: backends.KindVLLM, KVCacheTokens: c.tokens}}, 24, 1)
		if f.Fits != c.fits || f.FixedKVTokens != c.tokens || (!c.fits && !strings.Contains(f.Reason, "kv_cache_tokens 100000 need ≈12.2 GiB")) {
			t.Errorf("kv_cache_tokens %d on 24 GiB: %+v", c.tokens, f)
		}
	}
}
