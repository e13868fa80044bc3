package backends

import (
	"fmt"
	"sort"
	"strings"
)

// Preset names of the study's variants.
const (
	PresetTorchBaseline  = "torch-baseline"
	PresetVLLMPage       = "vllm-page"
	PresetVLLMPageFlash  = "vllm-page+flash"
	PresetVLLMAllOpt     = "vllm-all-opt"
	PresetTransformersCB = "transformers-cb"
	PresetSimPaged       = "sim-paged"
	PresetSimContiguous  = "sim-contiguous"
)

// vllmScrape are the vLLM metrics the vLLM presets store besides the four
// gauges: iteration_tokens_total's count and sum (engine steps, tokens per
// step) and the prefix-cache counters (hit rate). Preset clones copy it.
var vllmScrape = []string{"vllm:iteration_tokens_total", "vllm:prefix_cache_queries", "vllm:prefix_cache_hits"}

// presets is the single table of variant presets. Each entry states only
// what differs from the server's defaults; the orchestrator fills model,
// max_model_len, port and host.
var presets = map[string]Spec{
	PresetTorchBaseline: {
		Kind:          KindTorch,
		Description:   "PyTorch baseline: contiguous per-request KV (max reservation), iteration-level batching, SDPA",
		KVPolicy:      "max",
		Attn:          "sdpa",
		EngineProcess: ptr(true),
		// per-step time, batch per step, reserved vs filled KV, largest hole
		ScrapeMetrics: []string{"vbtorch:*"},
	},
	PresetVLLMPage: {
		Kind:             KindVLLM,
		Description:      "vLLM paged attention, Triton backend, eager (no CUDA graphs/compile), no prefix caching",
		AttentionBackend: "TRITON_ATTN",
		EnforceEager:     ptr(true),
		PrefixCaching:    ptr(false),
		ScrapeMetrics:    vllmScrape,
	},
	PresetVLLMPageFlash: {
		Kind:             KindVLLM,
		Description:      "vLLM paged attention, FlashAttention backend, eager, no prefix caching",
		AttentionBackend: "FLASH_ATTN",
		EnforceEager:     ptr(true),
		PrefixCaching:    ptr(false),
		ScrapeMetrics:    vllmScrape,
	},
	PresetVLLMAllOpt: {
		Kind:          KindVLLM,
		Description:   "vLLM defaults: CUDA graphs, torch.compile, prefix caching, chunked prefill",
		ScrapeMetrics: vllmScrape,
	},
	PresetTransformersCB: {
		Kind:               KindTransformers,
		Description:        "transformers serve with continuous batching and paged attention",
		ContinuousBatching: ptr(true),
		// transformers serve accepts only eager, sdpa, flash_attention_2/3,
		// flex_attention or a hub kernel here ("sdpa_paged" is refused at
		// start-up); --continuous-batching runs the chosen kernel over its
		// paged cache.
		AttnImplementation: "sdpa",
	},
	PresetSimPaged: {
		Kind:        KindSim,
		Description: "built-in simulator, paged KV (vLLM-like)",
		SimPolicy:   "paged",
		// steps, step-time and batch histograms' totals, allocated vs stored KV
		ScrapeMetrics: []string{"vbsim:*"},
	},
	PresetSimContiguous: {
		Kind:           KindSim,
		Description:    "built-in simulator, contiguous KV with max reservation (Orca-Max-like)",
		SimPolicy:      "contiguous",
		SimReservation: "max",
		ScrapeMetrics:  []string{"vbsim:*"},
	},
}

// Preset returns a copy of the named preset.
func Preset(name string) (Spec, error) {
	p, ok := presets[name]
	if !ok {
		return Spec{}, fmt.Errorf("backends: no preset %q (known: %s)", name, strings.Join(PresetNames(), ", "))
	}
	return p.Clone(), nil
}

// PresetNames lists the presets in order.
func PresetNames() []string {
	names := make([]string, 0, len(presets))
	for n := range presets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
