package backends

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Kinds of backend.
const (
	KindVLLM         = "vllm"
	KindTorch        = "torch"
	KindTransformers = "transformers"
	KindSim          = "sim"
	KindExec         = "exec"
)

// Kinds lists every kind, in the order documentation shows them (a new
// slice each call).
func Kinds() []string {
	return []string{KindVLLM, KindTorch, KindTransformers, KindSim, KindExec}
}

// Ways to give vLLM its attention backend (Spec.AttentionVia).
const (
	// AttentionAuto picks the flag or the variable from the installed
	// version (AttentionFlagSince).
	AttentionAuto = "auto"
	// AttentionFlag passes --attention-backend NAME.
	AttentionFlag = "flag"
	// AttentionEnv sets VLLM_ATTENTION_BACKEND=NAME.
	AttentionEnv = "env"
)

// Duration is a time.Duration that TOML and JSON read and write as "90s".
type Duration time.Duration

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration %q: want a value like 90s, 10m or 1h30m", b)
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the duration as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Spec is a resolved variant: which server to run and how. Field names follow
// the server flags they set; unset pointer fields leave the server's default.
// TOML keys are the snake_case names in the tags; a study's [variants.NAME]
// table sets any of them on top of a preset.
type Spec struct {
	// Kind is vllm, torch, transformers, sim or exec.
	Kind string `toml:"kind" json:"kind"`
	// Description says what the variant stands for in reports.
	Description string `toml:"description" json:"description,omitempty"`

	// Model is the model directory or hub id (vllm, torch, transformers).
	// The orchestrator fills it from the study's model; a variant rarely sets it.
	Model string `toml:"model" json:"model,omitempty"`
	// ServedModelName is the name clients send (--served-model-name).
	ServedModelName string `toml:"served_model_name" json:"served_model_name,omitempty"`
	// MaxModelLen is --max-model-len (0: the model's default).
	MaxModelLen int `toml:"max_model_len" json:"max_model_len,omitempty"`
	// Dtype is --dtype (auto, bfloat16, float16).
	Dtype string `toml:"dtype" json:"dtype,omitempty"`
	// GPUMemoryUtilization is --gpu-memory-utilization (0: default).
	GPUMemoryUtilization float64 `toml:"gpu_memory_utilization" json:"gpu_memory_utilization,omitempty"`
	// MaxNumSeqs is --max-num-seqs (0: default).
	MaxNumSeqs int `toml:"max_num_seqs" json:"max_num_seqs,omitempty"`
	// MaxNumBatchedTokens is --max-num-batched-tokens (0: default).
	MaxNumBatchedTokens int `toml:"max_num_batched_tokens" json:"max_num_batched_tokens,omitempty"`
	// LoadFormat is --load-format, e.g. "dummy" for random weights of the
	// real shapes (vllm, torch).
	LoadFormat string `toml:"load_format" json:"load_format,omitempty"`
	// KVCacheTokens fixes the KV-cache capacity in tokens, so that servers
	// compared in one study get the same budget whatever their memory
	// accounting: vLLM --num-gpu-blocks-override ⌈tokens / block size⌉
	// with an explicit --block-size (16 unless block_size says otherwise),
	// vbtorch --kv-budget-tokens, vbsim --kv-tokens. 0 leaves each server's
	// own sizing (from GPU memory). transformers serve has no such knob.
	KVCacheTokens int `toml:"kv_cache_tokens" json:"kv_cache_tokens,omitempty"`

	// TensorParallelSize is vLLM's --tensor-parallel-size (0: vLLM's
	// default, 1). A trial of the variant takes that many GPUs (GPUs).
	TensorParallelSize int `toml:"tensor_parallel_size" json:"tensor_parallel_size,omitempty"`
	// GPUCount is how many GPUs a trial of the variant takes: its lane's
	// share under vbbench run --gpus and its --gres=gpu:N under Slurm.
	// 0: tensor_parallel_size, else 1 (see Spec.GPUs).
	GPUCount int `toml:"gpu_count" json:"gpu_count,omitempty"`

	// EnforceEager is vLLM's --enforce-eager (no CUDA graphs, no compile).
	EnforceEager *bool `toml:"enforce_eager" json:"enforce_eager,omitempty"`
	// OptimizationLevel is vLLM's -O level (0–3); nil leaves the default.
	OptimizationLevel *int `toml:"optimization_level" json:"optimization_level,omitempty"`
	// PrefixCaching is --enable-prefix-caching / --no-enable-prefix-caching.
	PrefixCaching *bool `toml:"prefix_caching" json:"prefix_caching,omitempty"`
	// ChunkedPrefill is --enable-chunked-prefill / --no-enable-chunked-prefill.
	ChunkedPrefill *bool `toml:"chunked_prefill" json:"chunked_prefill,omitempty"`
	// KVCacheDtype is --kv-cache-dtype (auto, fp8, ...).
	KVCacheDtype string `toml:"kv_cache_dtype" json:"kv_cache_dtype,omitempty"`
	// BlockSize is --block-size (0: default).
	BlockSize int `toml:"block_size" json:"block_size,omitempty"`
	// SpeculativeConfig is the JSON of --speculative-config.
	SpeculativeConfig string `toml:"speculative_config" json:"speculative_config,omitempty"`
	// AttentionBackend is vLLM's attention backend name (TRITON_ATTN,
	// FLASH_ATTN, FLASHINFER, FLEX_ATTENTION); empty: vLLM chooses.
	AttentionBackend string `toml:"attention_backend" json:"attention_backend,omitempty"`
	// AttentionVia is how the attention backend is passed: auto (by the
	// installed version), flag or env.
	AttentionVia string `toml:"attention_via" json:"attention_via,omitempty"`
	// VLLMVersion skips version detection when set (e.g. "0.11.0").
	VLLMVersion string `toml:"vllm_version" json:"vllm_version,omitempty"`

	// KVPolicy is the baseline server's reservation policy: max, pow2 or oracle.
	KVPolicy string `toml:"kv_policy" json:"kv_policy,omitempty"`
	// KVBudgetGiB is the baseline server's KV-cache budget in GiB.
	KVBudgetGiB float64 `toml:"kv_budget_gib" json:"kv_budget_gib,omitempty"`
	// Attn is the baseline server's attention kernel: sdpa or flash.
	Attn string `toml:"attn" json:"attn,omitempty"`
	// EngineProcess runs the baseline's engine in a process of its own
	// (vbtorch --engine-process), as vLLM runs its engine core, so HTTP and
	// the engine loop do not share one GIL. The preset turns it on.
	EngineProcess *bool `toml:"engine_process" json:"engine_process,omitempty"`

	// ContinuousBatching is transformers serve --continuous-batching.
	ContinuousBatching *bool `toml:"continuous_batching" json:"continuous_batching,omitempty"`
	// AttnImplementation is transformers serve --attn-implementation
	// (eager, sdpa, flash_attention_2, flash_attention_3, flex_attention
	// or a hub kernel; continuous batching makes any of them paged).
	AttnImplementation string `toml:"attn_implementation" json:"attn_implementation,omitempty"`
	// Compile turns on transformers serve --compile.
	Compile *bool `toml:"compile" json:"compile,omitempty"`
	// CUDAGraphs is transformers serve --cb-use-cuda-graph /
	// --no-cb-use-cuda-graph (continuous batching's CUDA graphs).
	CUDAGraphs *bool `toml:"cuda_graphs" json:"cuda_graphs,omitempty"`
	// EOSFields says whether the replayer may send ignore_eos and min_tokens
	// (exact output lengths). nil: yes, except for the transformers kind,
	// whose server rejects unknown request fields with HTTP 422.
	EOSFields *bool `toml:"eos_fields" json:"eos_fields,omitempty"`

	// SimPolicy is vbsim --policy: paged or contiguous.
	SimPolicy string `toml:"sim_policy" json:"sim_policy,omitempty"`
	// SimReservation is vbsim --reservation: max, pow2 or oracle.
	SimReservation string `toml:"sim_reservation" json:"sim_reservation,omitempty"`
	// SimKVTokens is vbsim --kv-tokens.
	SimKVTokens int `toml:"sim_kv_tokens" json:"sim_kv_tokens,omitempty"`
	// SimMaxBatchTokens is vbsim --max-batch-tokens.
	SimMaxBatchTokens int `toml:"sim_max_batch_tokens" json:"sim_max_batch_tokens,omitempty"`
	// SimPreset is vbsim --preset (a named speed profile).
	SimPreset string `toml:"sim_preset" json:"sim_preset,omitempty"`
	// SimSpeed is vbsim --speed (time compression; 1 = real time).
	SimSpeed float64 `toml:"sim_speed" json:"sim_speed,omitempty"`

	// Command is the exec kind's command line; "{port}", "{host}" and
	// "{model}" are replaced. Only a study file can set it.
	Command []string `toml:"command" json:"command,omitempty"`
	// HealthPaths overrides the polled paths (default /health and /v1/models).
	HealthPaths []string `toml:"health_paths" json:"health_paths,omitempty"`

	// Executable overrides the program (vllm, transformers, vbsim).
	Executable string `toml:"executable" json:"executable,omitempty"`
	// Python is the interpreter of the backend's environment (torch; vllm
	// and transformers look for their script next to it). Default: the
	// project's uv environment .venv/bin/python when present, else python3.
	Python string `toml:"python" json:"python,omitempty"`
	// ExtraArgs are appended to the command line as given.
	ExtraArgs []string `toml:"extra_args" json:"extra_args,omitempty"`
	// Env adds environment variables.
	Env map[string]string `toml:"env" json:"env,omitempty"`
	// ScrapeMetrics are further server metrics the proxy stores besides the
	// four vLLM gauges (proxy.Config.ScrapeMetrics: a NAME or a PREFIX*,
	// e.g. "vbtorch:*"); presets name their server's own.
	ScrapeMetrics []string `toml:"scrape_metrics" json:"scrape_metrics,omitempty"`
	// StartupTimeout bounds WaitHealthy for this variant (0: the study's).
	StartupTimeout Duration `toml:"startup_timeout" json:"startup_timeout,omitempty"`
}

// Clone returns a deep copy, so that overriding a copy never touches a preset.
func (s Spec) Clone() Spec {
	c := s
	c.EnforceEager = clonePtr(s.EnforceEager)
	c.OptimizationLevel = clonePtr(s.OptimizationLevel)
	c.PrefixCaching = clonePtr(s.PrefixCaching)
	c.ChunkedPrefill = clonePtr(s.ChunkedPrefill)
	c.ContinuousBatching = clonePtr(s.ContinuousBatching)
	c.Compile = clonePtr(s.Compile)
	c.EngineProcess = clonePtr(s.EngineProcess)
	c.CUDAGraphs = clonePtr(s.CUDAGraphs)
	c.EOSFields = clonePtr(s.EOSFields)
	c.Command = append([]string(nil), s.Command...)
	c.HealthPaths = append([]string(nil), s.HealthPaths...)
	c.ExtraArgs = append([]string(nil), s.ExtraArgs...)
	c.ScrapeMetrics = append([]string(nil), s.ScrapeMetrics...)
	if s.Env != nil {
		c.Env = make(map[string]string, len(s.Env))
		for k, v := range s.Env {
			c.Env[k] = v
		}
	}
	return c
}

// GPUs is how many GPUs a trial of the variant takes: gpu_count, else
// tensor_parallel_size, else 1. The sim and exec kinds take simulated GPUs
// the same way (lanes pin them; they ask Slurm for none unless gpu_count is
// set).
func (s Spec) GPUs() int {
	switch {
	case s.GPUCount > 0:
		return s.GPUCount
	case s.TensorParallelSize > 0:
		return s.TensorParallelSize
	}
	return 1
}

// UsesGPU reports whether the kind runs on a GPU (vllm, torch,
// transformers) or the variant asks for GPUs with gpu_count.
func (s Spec) UsesGPU() bool {
	return s.Kind == KindVLLM || s.Kind == KindTorch || s.Kind == KindTransformers || s.GPUCount > 0
}

// SendsEOSFields reports whether requests to this variant may carry
// ignore_eos and min_tokens (EOSFields, defaulting to false for the
// transformers kind and true otherwise).
func (s Spec) SendsEOSFields() bool {
	if s.EOSFields != nil {
		return *s.EOSFields
	}
	return s.Kind != KindTransformers
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

func ptr[T any](v T) *T { return &v }

// Validate collects every problem of the spec.
func (s *Spec) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	switch s.Kind {
	case KindVLLM, KindTorch, KindTransformers:
		if s.Model == "" {
			bad("kind %s needs a model", s.Kind)
		}
	case KindSim:
	case KindExec:
		if len(s.Command) == 0 {
			bad("kind exec needs command = [\"program\", \"arg\", ...]")
		}
	case "":
		bad("kind is missing (one of %s)", strings.Join(Kinds(), ", "))
	default:
		bad("kind %q is unknown (one of %s)", s.Kind, strings.Join(Kinds(), ", "))
	}
	if s.GPUMemoryUtilization < 0 || s.GPUMemoryUtilization > 1 {
		bad("gpu_memory_utilization %v: want a fraction in (0, 1]", s.GPUMemoryUtilization)
	}
	if s.TensorParallelSize != 0 && s.Kind != KindVLLM {
		bad("tensor_parallel_size is a vllm setting (kind %s); give gpu_count for the GPUs a trial takes", s.Kind)
	}
	if s.GPUCount > 0 && s.TensorParallelSize > s.GPUCount {
		bad("tensor_parallel_size %d needs gpu_count ≥ %d (gpu_count %d)", s.TensorParallelSize, s.TensorParallelSize, s.GPUCount)
	}
	for name, v := range map[string]int{"max_model_len": s.MaxModelLen, "tensor_parallel_size": s.TensorParallelSize, "gpu_count": s.GPUCount, "max_num_seqs": s.MaxNumSeqs,
		"max_num_batched_tokens": s.MaxNumBatchedTokens, "block_size": s.BlockSize,
		"sim_kv_tokens": s.SimKVTokens, "sim_max_batch_tokens": s.SimMaxBatchTokens, "kv_cache_tokens": s.KVCacheTokens} {
		if v < 0 {
			bad("%s %d: must not be negative", name, v)
		}
	}
	if s.OptimizationLevel != nil && (*s.OptimizationLevel < 0 || *s.OptimizationLevel > 3) {
		bad("optimization_level %d: want 0..3", *s.OptimizationLevel)
	}
	switch s.AttentionVia {
	case "", AttentionAuto, AttentionFlag, AttentionEnv:
	default:
		bad("attention_via %q: want auto, flag or env", s.AttentionVia)
	}
	if s.SpeculativeConfig != "" && !json.Valid([]byte(s.SpeculativeConfig)) {
		bad("speculative_config is not valid JSON: %s", s.SpeculativeConfig)
	}
	switch s.KVPolicy {
	case "", "max", "pow2", "oracle":
	default:
		bad("kv_policy %q: want max, pow2 or oracle", s.KVPolicy)
	}
	switch s.Attn {
	case "", "sdpa", "flash":
	default:
		bad("attn %q: want sdpa or flash", s.Attn)
	}
	switch s.SimPolicy {
	case "", "paged", "contiguous":
	default:
		bad("sim_policy %q: want paged or contiguous", s.SimPolicy)
	}
	switch s.SimReservation {
	case "", "max", "pow2", "oracle":
	default:
		bad("sim_reservation %q: want max, pow2 or oracle", s.SimReservation)
	}
	if s.KVCacheTokens > 0 {
		switch {
		case s.Kind == KindTransformers:
			bad("kv_cache_tokens: transformers serve cannot fix its KV capacity in tokens; use gpu_memory_utilization (its --cb-max-memory-percent)")
		case s.Kind == KindTorch && s.KVBudgetGiB > 0:
			bad("kv_cache_tokens and kv_budget_gib both size the baseline's KV cache; keep one")
		case s.Kind == KindSim && s.SimKVTokens > 0 && s.SimKVTokens != s.KVCacheTokens:
			bad("kv_cache_tokens %d and sim_kv_tokens %d disagree; keep one", s.KVCacheTokens, s.SimKVTokens)
		case s.kvSizingArg() != "":
			bad("kv_cache_tokens and extra_args %s both size the KV cache; keep one", s.kvSizingArg())
		}
	}
	if s.KVBudgetGiB < 0 || s.SimSpeed < 0 {
		bad("kv_budget_gib and sim_speed must not be negative")
	}
	for _, p := range s.HealthPaths {
		if !strings.HasPrefix(p, "/") && !strings.HasPrefix(p, "http://") {
			bad("health path %q: want /path or http://host:port/path", p)
		}
	}
	for k := range s.Env {
		if k == "" || strings.ContainsAny(k, "= \t") {
			bad("env key %q is not a variable name", k)
		}
	}
	return errors.Join(errs...)
}

// kvSizingFlags are the server flags that size a KV cache besides what
// kv_cache_tokens sets: vLLM's, vbtorch's and vbsim's.
var kvSizingFlags = []string{"--num-gpu-blocks-override", "--kv-cache-memory-bytes", "--kv-cache-memory",
	"--kv-budget-tokens", "--kv-budget-gib", "--kv-budget-frac", "--kv-tokens"}

// kvSizingArg returns the first of ExtraArgs that sizes the KV cache (alone
// or as flag=value), or "".
func (s Spec) kvSizingArg() string {
	for _, a := range s.ExtraArgs {
		for _, f := range kvSizingFlags {
			if a == f || strings.HasPrefix(a, f+"=") {
				return f
			}
		}
	}
	return ""
}

// SizesKVOtherwise reports whether the variant fixes its KV capacity by
// another key than kv_cache_tokens (kv_budget_gib, sim_kv_tokens, or a KV
// sizing flag in extra_args), so a study-wide kv_cache_tokens must leave it.
func (s Spec) SizesKVOtherwise() bool {
	return s.KVBudgetGiB > 0 || s.SimKVTokens > 0 || s.kvSizingArg() != ""
}

// DefaultVLLMBlockSize is the KV block size, in tokens, that kv_cache_tokens
// assumes for vLLM when the variant sets no block_size: vLLM's default on
// CUDA, passed explicitly so that the block count is exact.
const DefaultVLLMBlockSize = 16

// VLLMBlocks returns the --num-gpu-blocks-override and --block-size that
// hold at least KVCacheTokens tokens (0, 0 when KVCacheTokens is unset).
func (s Spec) VLLMBlocks() (blocks, blockSize int) {
	if s.KVCacheTokens <= 0 {
		return 0, 0
	}
	blockSize = s.BlockSize
	if blockSize <= 0 {
		blockSize = DefaultVLLMBlockSize
	}
	return (s.KVCacheTokens + blockSize - 1) / blockSize, blockSize
}
