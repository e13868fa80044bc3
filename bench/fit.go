package bench

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Arch is what a memory estimate needs from a model's config.json.
type Arch struct {
	// Source says where the numbers came from (a config.json path, the
	// built-in table, or the study's params_b).
	Source          string  `json:"source"`
	Layers          int     `json:"num_hidden_layers"`
	Hidden          int     `json:"hidden_size"`
	Intermediate    int     `json:"intermediate_size"`
	Heads           int     `json:"num_attention_heads"`
	KVHeads         int     `json:"num_key_value_heads"`
	HeadDim         int     `json:"head_dim"`
	Vocab           int     `json:"vocab_size"`
	Tied            bool    `json:"tie_word_embeddings"`
	Experts         int     `json:"num_experts"`
	MoEIntermediate int     `json:"moe_intermediate_size"`
	Dtype           string  `json:"torch_dtype"`
	Quant           string  `json:"quant_method,omitempty"`
	QuantBits       float64 `json:"bits,omitempty"`
	MaxPositions    int     `json:"max_position_embeddings"`
}

// knownArchs holds the configs of the plan's models, for planning on a
// machine that has not downloaded them (numbers from each model's
// config.json on the Hugging Face hub).
var knownArchs = map[string]Arch{
	"Qwen/Qwen3-8B": {Layers: 36, Hidden: 4096, Intermediate: 12288, Heads: 32, KVHeads: 8, HeadDim: 128,
		Vocab: 151936, Dtype: "bfloat16", MaxPositions: 40960},
	"Qwen/Qwen3-4B-Instruct-2507": {Layers: 36, Hidden: 2560, Intermediate: 9728, Heads: 32, KVHeads: 8, HeadDim: 128,
		Vocab: 151936, Tied: true, Dtype: "bfloat16", MaxPositions: 262144},
	"meta-llama/Llama-3.1-8B-Instruct": {Layers: 32, Hidden: 4096, Intermediate: 14336, Heads: 32, KVHeads: 8, HeadDim: 128,
		Vocab: 128256, Dtype: "bfloat16", MaxPositions: 131072},
	"Qwen/Qwen3-30B-A3B-Instruct-2507": {Layers: 48, Hidden: 2048, Intermediate: 6144, Heads: 32, KVHeads: 4, HeadDim: 128,
		Vocab: 151936, Experts: 128, MoEIntermediate: 768, Dtype: "bfloat16", MaxPositions: 262144},
	"Qwen/Qwen3-30B-A3B-Instruct-2507-FP8": {Layers: 48, Hidden: 2048, Intermediate: 6144, Heads: 32, KVHeads: 4, HeadDim: 128,
		Vocab: 151936, Experts: 128, MoEIntermediate: 768, Dtype: "bfloat16", Quant: "fp8", QuantBits: 8, MaxPositions: 262144},
	"meta-llama/Meta-Llama-3-8B": {Layers: 32, Hidden: 4096, Intermediate: 14336, Heads: 32, KVHeads: 8, HeadDim: 128,
		Vocab: 128256, Dtype: "bfloat16", MaxPositions: 8192},
	"meta-llama/Llama-3.3-70B-Instruct": {Layers: 80, Hidden: 8192, Intermediate: 28672, Heads: 64, KVHeads: 8, HeadDim: 128,
		Vocab: 128256, Dtype: "bfloat16", MaxPositions: 131072},
	"facebook/opt-13b": {Layers: 40, Hidden: 5120, Intermediate: 20480, Heads: 40, KVHeads: 40, HeadDim: 128,
		Vocab: 50272, Tied: true, Dtype: "float16", MaxPositions: 2048},
}

// bundleShapes maps the model folders of the offline bundle (make
// dummy-model, vbtorch.tokbuild's shapes) to the hub config they copy, so a
// plan made away from the GPU host knows them.
var bundleShapes = map[string]string{
	"llama3-8b": "meta-llama/Meta-Llama-3-8B",
}

// LookupArch finds the architecture of model: its config.json (a local
// directory or the Hugging Face cache), else the built-in table (by hub id
// or by the directory's base name). ok is false when nothing is known.
func LookupArch(model string) (Arch, bool, error) {
	for _, p := range configCandidates(model) {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		a, err := ParseConfigJSON(b)
		if err != nil {
			return Arch{}, false, fmt.Errorf("bench: %s: %w", p, err)
		}
		a.Source = p
		return a, true, nil
	}
	if a, ok := knownArchs[model]; ok {
		a.Source = "built-in table (" + model + ")"
		return a, true, nil
	}
	base := filepath.Base(strings.TrimRight(model, "/"))
	if k, ok := bundleShapes[strings.ToLower(base)]; ok {
		a := knownArchs[k]
		a.Source = "built-in table (" + k + ", the offline bundle's " + base + " shape)"
		return a, true, nil
	}
	keys := make([]string, 0, len(knownArchs))
	for k := range knownArchs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if strings.EqualFold(filepath.Base(k), base) {
			a := knownArchs[k]
			a.Source = "built-in table (" + k + ", matched by name)"
			return a, true, nil
		}
	}
	return Arch{}, false, nil
}

func configCandidates(model string) []string {
	out := []string{filepath.Join(model, "config.json")}
	if strings.Count(model, "/") != 1 || strings.HasPrefix(model, "/") || strings.HasPrefix(model, ".") {
		return out
	}
	var hubs []string
	if v := os.Getenv("HF_HUB_CACHE"); v != "" {
		hubs = append(hubs, v)
	}
	if v := os.Getenv("HF_HOME"); v != "" {
		hubs = append(hubs, filepath.Join(v, "hub"))
	}
	if home, err := os.UserHomeDir(); err == nil {
		hubs = append(hubs, filepath.Join(home, ".cache", "huggingface", "hub"))
	}
	repo := "models--" + strings.ReplaceAll(model, "/", "--")
	for _, h := range hubs {
		snaps, _ := filepath.Glob(filepath.Join(h, repo, "snapshots", "*", "config.json"))
		sort.Strings(snaps)
		out = append(out, snaps...)
	}
	return out
}

// ParseConfigJSON reads the fields of a Hugging Face config.json that size
// a model (a text_config inside a multimodal config is used when present).
func ParseConfigJSON(b []byte) (Arch, error) {
	var raw struct {
		Arch
		NumLocalExperts int             `json:"num_local_experts"`
		NRoutedExperts  int             `json:"n_routed_experts"`
		DtypeNew        string          `json:"dtype"`
		Quantization    *quantConfig    `json:"quantization_config"`
		TextConfig      json.RawMessage `json:"text_config"`
		FFNDim          int             `json:"ffn_dim"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return Arch{}, fmt.Errorf("config.json: %w", err)
	}
	a := raw.Arch
	if a.Layers == 0 && len(raw.TextConfig) > 0 {
		inner, err := ParseConfigJSON(raw.TextConfig)
		if err == nil {
			if raw.Quantization != nil && inner.Quant == "" {
				inner.Quant, inner.QuantBits = raw.Quantization.method()
			}
			return inner, nil
		}
	}
	if a.Experts == 0 {
		a.Experts = max(raw.NumLocalExperts, raw.NRoutedExperts)
	}
	if a.Intermediate == 0 {
		a.Intermediate = raw.FFNDim
	}
	if a.Dtype == "" {
		a.Dtype = raw.DtypeNew
	}
	if a.KVHeads == 0 {
		a.KVHeads = a.Heads
	}
	if a.HeadDim == 0 && a.Heads > 0 {
		a.HeadDim = a.Hidden / a.Heads
	}
	if raw.Quantization != nil {
		a.Quant, a.QuantBits = raw.Quantization.method()
	}
	if a.Layers <= 0 || a.Hidden <= 0 || a.Heads <= 0 || a.Vocab <= 0 {
		return Arch{}, fmt.Errorf("config.json lacks num_hidden_layers, hidden_size, num_attention_heads or vocab_size")
	}
	if a.Intermediate < 0 || a.KVHeads < 0 || a.HeadDim <= 0 || a.Experts < 0 || a.MoEIntermediate < 0 || a.QuantBits < 0 || a.QuantBits > 32 {
		return Arch{}, fmt.Errorf("config.json has a negative or zero size (intermediate %d, kv heads %d, head_dim %d, experts %d, bits %v)",
			a.Intermediate, a.KVHeads, a.HeadDim, a.Experts, a.QuantBits)
	}
	return a, nil
}

type quantConfig struct {
	QuantMethod string  `json:"quant_method"`
	Bits        float64 `json:"bits"`
	WBits       float64 `json:"w_bit"`
	Fmt         string  `json:"fmt"`
}

func (q *quantConfig) method() (string, float64) {
	m := strings.ToLower(q.QuantMethod)
	bits := q.Bits
	if bits == 0 {
		bits = q.WBits
	}
	if bits == 0 {
		switch {
		case strings.Contains(m, "fp8"), strings.Contains(strings.ToLower(q.Fmt), "e4m3"):
			bits = 8
		case m == "awq", m == "gptq", strings.Contains(m, "int4"), m == "mxfp4", strings.Contains(m, "nvfp4"):
			bits = 4
		case m == "compressed-tensors":
			bits = 8
		}
	}
	return m, bits
}

// DtypeBytes is the size of one weight element of the model's dtype.
func DtypeBytes(dtype string) float64 {
	switch strings.ToLower(dtype) {
	case "float32", "fp32":
		return 4
	case "float8", "fp8", "float8_e4m3fn":
		return 1
	default: // bfloat16, float16, auto
		return 2
	}
}

// Params returns the parameter count: embeddings (+ an untied LM head) and
// the linear layers of every block (attention, dense MLP or experts).
func (a Arch) Params() (linear, embed float64) {
	h := float64(a.Hidden)
	qDim := float64(a.Heads * a.HeadDim)
	kvDim := float64(a.KVHeads * a.HeadDim)
	attn := h*qDim + 2*h*kvDim + qDim*h
	var mlp float64
	if a.Experts > 0 {
		inter := a.MoEIntermediate
		if inter == 0 {
			inter = a.Intermediate
		}
		mlp = float64(a.Experts)*3*h*float64(inter) + h*float64(a.Experts)
	} else {
		mlp = 3 * h * float64(a.Intermediate)
	}
	linear = float64(a.Layers) * (attn + mlp)
	embed = float64(a.Vocab) * h
	if !a.Tied {
		embed *= 2
	}
	return linear, embed
}

// WeightBytes estimates the bytes of the weights: quantized linear layers
// at their bit width, embeddings and LM head at the model dtype.
func (a Arch) WeightBytes(dtype string) float64 {
	if dtype == "" || dtype == "auto" {
		dtype = a.Dtype
	}
	linear, embed := a.Params()
	eb := DtypeBytes(dtype)
	lb := eb
	if a.QuantBits > 0 {
		lb = a.QuantBits / 8
	}
	return linear*lb + embed*eb
}

// KVBytesPerToken is the KV-cache size of one token at the given element
// size (2 for bf16/fp16 caches, 1 for fp8).
func (a Arch) KVBytesPerToken(elem float64) float64 {
	return float64(a.Layers) * 2 * float64(a.KVHeads*a.HeadDim) * elem
}

const gib = 1 << 30

// Fit is the memory check of one model × variant on one GPU.
type Fit struct {
	Model, Variant string
	// Known is false when the architecture or the GPU size is unknown.
	Known bool
	// Fits is the verdict; Reason explains a no; Suggest says what fits.
	Fits    bool
	Reason  string
	Suggest string
	// WeightsGiB, KVPerTokenKiB, UsableGiB and KVTokens are the estimate's
	// terms: KVTokens is the KV capacity left after weights and overhead.
	WeightsGiB    float64
	KVPerTokenKiB float64
	UsableGiB     float64
	KVTokens      int
	// FixedKVTokens is the variant's kv_cache_tokens (0: the server sizes
	// its KV cache from the memory left).
	FixedKVTokens int
	Source        string
}

// runtimeOverheadGiB is reserved for the CUDA context, activations and
// graphs of one model on one card (vLLM's profiling typically finds 1–2 GiB
// for 7–8B models).
const runtimeOverheadGiB = 1.5

// checkFit checks m under v against gpus cards of gpuGiB each (a
// tensor-parallel variant spreads weights and KV cache over its GPUs; each
// GPU pays the runtime overhead).
func checkFit(m ModelConfig, v Variant, gpuGiB float64, gpus int) Fit {
	gpus = max(gpus, 1)
	f := Fit{Model: m.Name, Variant: v.Name, FixedKVTokens: v.Spec.KVCacheTokens}
	arch, ok, err := LookupArch(m.Model)
	if err != nil {
		f.Reason = err.Error()
		return f
	}
	var weights float64
	switch {
	case m.WeightsGiB > 0:
		weights = m.WeightsGiB * gib
		f.Source = "study weights_gib"
	case m.ParamsB > 0:
		dtype := m.Dtype
		if dtype == "" && ok {
			dtype = arch.Dtype
		}
		weights = m.ParamsB * 1e9 * DtypeBytes(dtype)
		f.Source = "study params_b"
	case ok:
		weights = arch.WeightBytes(m.Dtype)
		f.Source = arch.Source
	default:
		f.Reason = fmt.Sprintf("no config.json for %q (not a local directory, not in the Hugging Face cache, not in the built-in table); set params_b or weights_gib in the model to check the fit", m.Model)
		return f
	}
	if gpuGiB <= 0 {
		f.Reason = "GPU memory unknown (no nvidia-smi); set [gpu] memory_gib to check the fit"
		f.WeightsGiB = weights / gib
		return f
	}
	f.Known = true
	f.WeightsGiB = weights / gib
	util := v.Spec.GPUMemoryUtilization
	if util == 0 {
		util = 0.92 // vLLM's default; the baseline server sizes its KV the same way
	}
	f.UsableGiB = gpuGiB * util * float64(gpus)
	elem := 2.0
	if strings.HasPrefix(v.Spec.KVCacheDtype, "fp8") {
		elem = 1
	}
	if ok {
		f.KVPerTokenKiB = arch.KVBytesPerToken(elem) / 1024
	}
	free := f.UsableGiB - f.WeightsGiB - runtimeOverheadGiB*float64(gpus)
	maxLen := m.MaxModelLen
	if maxLen == 0 && ok {
		maxLen = arch.MaxPositions
	}
	needKV := float64(maxLen) * f.KVPerTokenKiB / (1 << 20)
	if f.KVPerTokenKiB > 0 {
		f.KVTokens = int(math.Max(0, free) * (1 << 20) / f.KVPerTokenKiB)
	}
	switch {
	case free <= 0:
		card := fmt.Sprintf("the %.0f GiB card", gpuGiB)
		if gpus > 1 {
			card = fmt.Sprintf("%d × %.0f GiB cards (tensor_parallel_size %d)", gpus, gpuGiB, gpus)
		}
		f.Reason = fmt.Sprintf("weights need ≈%.1f GiB (%.1f GB) but only %.1f GiB of %s are usable at gpu_memory_utilization %.2f, less %.1f GiB runtime overhead",
			f.WeightsGiB, weights/1e9, f.UsableGiB, card, util, runtimeOverheadGiB*float64(gpus))
	case needKV > free:
		f.Reason = fmt.Sprintf("after ≈%.1f GiB of weights, %.1f GiB remain for the KV cache: %d tokens, less than one sequence of max_model_len %d (%.1f GiB); lower max_model_len",
			f.WeightsGiB, free, f.KVTokens, maxLen, needKV)
	case v.Spec.KVCacheTokens > 0 && f.KVPerTokenKiB > 0 && v.Spec.KVCacheTokens > f.KVTokens:
		f.Reason = fmt.Sprintf("kv_cache_tokens %d need ≈%.1f GiB of KV cache, but after ≈%.1f GiB of weights only %.1f GiB (%d tokens) remain; lower kv_cache_tokens or raise gpu_memory_utilization",
			v.Spec.KVCacheTokens, float64(v.Spec.KVCacheTokens)*f.KVPerTokenKiB/(1<<20), f.WeightsGiB, free, f.KVTokens)
	default:
		f.Fits = true
		return f
	}
	f.Suggest = suggest(f, gpuGiB, util, arch, ok)
	return f
}

func suggest(f Fit, gpuGiB, util float64, arch Arch, known bool) string {
	need := (f.WeightsGiB + runtimeOverheadGiB + 4) / util // 4 GiB of KV at least
	var parts []string
	parts = append(parts, fmt.Sprintf("it needs a card of ≥ %.0f GiB (e.g. an H100 80 GB)", math.Ceil(need)))
	if known && arch.QuantBits != 4 {
		linear, embed := arch.Params()
		w4 := (linear*0.5 + embed*2) / gib
		if w4+runtimeOverheadGiB+2 < gpuGiB*util {
			parts = append(parts, fmt.Sprintf("a 4-bit (AWQ/GPTQ) checkpoint of it weighs ≈%.1f GiB and fits this card", w4))
		}
	}
	maxParams := (gpuGiB*util - runtimeOverheadGiB - 4) * gib / 2 / 1e9
	if maxParams > 0 {
		parts = append(parts, fmt.Sprintf("a dense bf16 model up to ≈%.0fB parameters fits with ≈4 GiB of KV cache (e.g. Qwen/Qwen3-8B, meta-llama/Llama-3.1-8B-Instruct)", math.Floor(maxParams)))
	}
	return strings.Join(parts, "; ")
}
