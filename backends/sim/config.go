// Package sim is vbench's simulated LLM inference server: an
// OpenAI-compatible HTTP front end (the vLLM chunk shape, vLLM metric names)
// over a discrete-time model of an engine with iteration-level (continuous)
// batching, a step-time model and a KV-cache memory managed either in pages
// (vLLM's PagedAttention) or as contiguous per-request reservations (the
// Orca baselines of the vLLM paper).
//
// The engine computes every step's duration from the model and sleeps it in
// real time, divided by Config.Speed, so a client sees tokens arrive when the
// simulated GPU would produce them. Nothing depends on a GPU, Python or the
// network: the simulator is what `make demo` and the end-to-end tests run.
package sim

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// KV policies.
const (
	// PolicyPaged allocates KV memory in blocks of BlockSize tokens on
	// demand and preempts the newest sequence (recompute) when it runs out.
	PolicyPaged = "paged"
	// PolicyContiguous reserves one contiguous slab per request at
	// admission, sized by the Reservation rule; it never preempts.
	PolicyContiguous = "contiguous"
)

// Reservation rules of the contiguous policy (the Orca baselines).
const (
	// ReserveMax reserves MaxModelLen tokens: the longest the sequence could
	// ever become (Orca (Max)).
	ReserveMax = "max"
	// ReservePow2 reserves prompt + the next power of two ≥ max_tokens,
	// capped at MaxModelLen (Orca (Pow2)).
	ReservePow2 = "pow2"
	// ReserveOracle reserves prompt + the true output length (Orca (Oracle)).
	ReserveOracle = "oracle"
)

// DefaultBlockSize is the paged policy's block size in tokens (vLLM's default).
const DefaultBlockSize = 16

// StepModel is the cost model of one engine iteration. A step that prefills
// P prompt tokens (new sequences, or preempted ones recomputing their
// context), decodes D sequences, and attends over C context tokens in total
// lasts
//
//	Fixed + P·PerPrefillToken + D·PerDecodeSeq + C·PerContextToken
//
// Fixed is the weight-read floor of a memory-bound decode step; the
// per-prefill-token term is the compute-bound prompt pass; the
// per-decode-sequence term is the per-row work of sampling and the linear
// layers; the context term is attention reading the KV cache.
type StepModel struct {
	Fixed           time.Duration `json:"fixed"`
	PerPrefillToken time.Duration `json:"per_prefill_token"`
	PerDecodeSeq    time.Duration `json:"per_decode_seq"`
	PerContextToken time.Duration `json:"per_context_token"`
}

// Duration returns the simulated length of a step.
func (m StepModel) Duration(prefillTokens, decodeSeqs, contextTokens int) time.Duration {
	return m.Fixed +
		time.Duration(prefillTokens)*m.PerPrefillToken +
		time.Duration(decodeSeqs)*m.PerDecodeSeq +
		time.Duration(contextTokens)*m.PerContextToken
}

// Config configures a simulated server. Zero fields take the preset's (or
// the defaults') values in Resolve.
type Config struct {
	// Model is the served model name; requests naming another get a 404.
	Model string `json:"model"`
	// Preset names the hardware/model preset (see Presets).
	Preset string `json:"preset"`
	// Policy is PolicyPaged or PolicyContiguous.
	Policy string `json:"policy"`
	// Reservation is the contiguous policy's rule (ReserveMax, ...).
	Reservation string `json:"reservation"`
	// KVTokens is the KV-cache capacity in tokens.
	KVTokens int `json:"kv_tokens"`
	// BlockSize is the paged policy's block size in tokens.
	BlockSize int `json:"block_size"`
	// MaxNumSeqs caps the sequences in one batch.
	MaxNumSeqs int `json:"max_num_seqs"`
	// MaxBatchTokens caps the tokens processed in one step (decode tokens
	// count 1 each, a prefill its whole context). A prefill longer than the
	// budget runs alone in its step.
	MaxBatchTokens int `json:"max_batch_tokens"`
	// MaxModelLen caps prompt + output tokens of a request.
	MaxModelLen int `json:"max_model_len"`
	// Step is the step-time model.
	Step StepModel `json:"step"`
	// Speed divides every simulated duration: 10 runs ten times faster
	// than real time.
	Speed float64 `json:"speed"`
	// Seed makes the simulated EOS points (and output text) reproducible.
	Seed int64 `json:"seed"`
}

// Preset is a named set of engine parameters, roughly calibrated to one
// model on one GPU.
type Preset struct {
	// Name is how --preset selects it.
	Name string
	// About says what it models and where the numbers come from.
	About string
	// KVTokens, MaxNumSeqs, MaxBatchTokens and MaxModelLen are the defaults
	// the preset gives to the Config fields of the same name.
	KVTokens, MaxNumSeqs, MaxBatchTokens, MaxModelLen int
	// Step is the step-time model.
	Step StepModel
}

// DefaultPreset is the preset used when Config.Preset is empty.
const DefaultPreset = "opt-13b-a100"

// Presets lists the built-in presets, by name.
//
// opt-13b-a100 follows the vLLM paper's OPT-13B server (Table 1: one
// A100-40GB, 26 GB of weights, 12 GB of KV cache = 15.7 K token slots,
// max sequence length 2048). Its step model puts a decode step of the
// paper's ShareGPT batch (≈30 sequences, ≈10 K context tokens) at ≈45 ms,
// which, with the KV limit of ≈30 running sequences, places the paged
// variant's saturation near the paper's ≈1.9 req/s and the Orca (Max)
// reservation (15.7 K / 2048 = 7 sequences, the paper's Fig. 13 value
// 7.00) near 0.5 req/s. Fixed 25 ms ≈ the 26 GB weight read at ~1.5 TB/s
// plus launch overhead; 0.2 ms per prompt token ≈ 26 GFLOP/token at ~130
// TFLOP/s effective; 0.5 µs per context token ≈ 800 KB of KV per token at
// ~1.5 TB/s.
//
// llama-7b-a100 is a Llama-2-7B on an A100-40GB (13.5 GB of weights, 512 KB
// of KV per token, ≈ 23 GB of KV at 0.9 memory utilisation ≈ 45 K slots).
//
// tiny is a fast, small engine for tests: steps of a few milliseconds and
// a KV cache of 2048 tokens.
//
// Presets returns a new map each call: the table itself is not package
// state anyone can change.
func Presets() map[string]Preset {
	return map[string]Preset{
		"opt-13b-a100": {
			Name:     "opt-13b-a100",
			About:    "OPT-13B on one A100-40GB, the vLLM paper's Table 1 server (15.7 K KV slots)",
			KVTokens: 15696, MaxNumSeqs: 256, MaxBatchTokens: 2560, MaxModelLen: 2048,
			Step: StepModel{Fixed: 25 * time.Millisecond, PerPrefillToken: 200 * time.Microsecond,
				PerDecodeSeq: 500 * time.Microsecond, PerContextToken: 500 * time.Nanosecond},
		},
		"llama-7b-a100": {
			Name:     "llama-7b-a100",
			About:    "Llama-2-7B on one A100-40GB (≈45 K KV slots)",
			KVTokens: 44992, MaxNumSeqs: 256, MaxBatchTokens: 4096, MaxModelLen: 4096,
			Step: StepModel{Fixed: 14 * time.Millisecond, PerPrefillToken: 100 * time.Microsecond,
				PerDecodeSeq: 300 * time.Microsecond, PerContextToken: 300 * time.Nanosecond},
		},
		"tiny": {
			Name:     "tiny",
			About:    "a small fast engine for tests (2048 KV slots, ~2 ms steps)",
			KVTokens: 2048, MaxNumSeqs: 64, MaxBatchTokens: 1024, MaxModelLen: 512,
			Step: StepModel{Fixed: 2 * time.Millisecond, PerPrefillToken: 2 * time.Microsecond,
				PerDecodeSeq: 20 * time.Microsecond, PerContextToken: 0},
		},
	}
}

// PresetNames returns the preset names in order.
func PresetNames() []string {
	ps := Presets()
	names := make([]string, 0, len(ps))
	for n := range ps {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Resolve fills zero fields from the preset and the defaults and validates
// the result, returning every problem at once.
func (c Config) Resolve() (Config, error) {
	if c.Preset == "" {
		c.Preset = DefaultPreset
	}
	p, ok := Presets()[c.Preset]
	if !ok {
		return c, fmt.Errorf("sim: unknown preset %q (have %s)", c.Preset, strings.Join(PresetNames(), ", "))
	}
	if c.Model == "" {
		c.Model = "sim-" + p.Name
	}
	if c.Policy == "" {
		c.Policy = PolicyPaged
	}
	if c.Reservation == "" {
		c.Reservation = ReserveMax
	}
	if c.KVTokens == 0 {
		c.KVTokens = p.KVTokens
	}
	if c.BlockSize == 0 {
		c.BlockSize = DefaultBlockSize
	}
	if c.MaxNumSeqs == 0 {
		c.MaxNumSeqs = p.MaxNumSeqs
	}
	if c.MaxBatchTokens == 0 {
		c.MaxBatchTokens = p.MaxBatchTokens
	}
	if c.MaxModelLen == 0 {
		c.MaxModelLen = p.MaxModelLen
	}
	if c.Step == (StepModel{}) {
		c.Step = p.Step
	}
	if c.Speed == 0 {
		c.Speed = 1
	}
	return c, c.Validate()
}

// Validate reports every problem of a resolved config.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("sim: "+format, args...)) }
	switch c.Policy {
	case PolicyPaged, PolicyContiguous:
	default:
		bad("policy %q: want %s or %s", c.Policy, PolicyPaged, PolicyContiguous)
	}
	switch c.Reservation {
	case ReserveMax, ReservePow2, ReserveOracle:
	default:
		bad("reservation %q: want %s, %s or %s", c.Reservation, ReserveMax, ReservePow2, ReserveOracle)
	}
	if c.BlockSize <= 0 {
		bad("block size %d: want > 0", c.BlockSize)
	}
	if c.KVTokens <= 0 {
		bad("kv tokens %d: want > 0", c.KVTokens)
	} else if c.BlockSize > 0 && c.Policy == PolicyPaged && c.KVTokens < c.BlockSize {
		bad("kv tokens %d is less than one block of %d", c.KVTokens, c.BlockSize)
	}
	if c.MaxNumSeqs <= 0 {
		bad("max num seqs %d: want > 0", c.MaxNumSeqs)
	}
	if c.MaxBatchTokens <= 0 {
		bad("max batch tokens %d: want > 0", c.MaxBatchTokens)
	}
	if c.MaxModelLen <= 1 {
		bad("max model len %d: want > 1", c.MaxModelLen)
	}
	if c.Policy == PolicyContiguous && c.Reservation == ReserveMax && c.MaxModelLen > c.KVTokens {
		bad("contiguous/max reserves max model len %d tokens per request but the KV cache holds only %d", c.MaxModelLen, c.KVTokens)
	}
	if !(c.Speed > 0) || c.Speed > 1e6 {
		bad("speed %v: want > 0 and ≤ 1e6", c.Speed)
	}
	s := c.Step
	if s.Fixed < 0 || s.PerPrefillToken < 0 || s.PerDecodeSeq < 0 || s.PerContextToken < 0 {
		bad("step model %+v has a negative term", s)
	}
	if s.Duration(1, 1, 1) <= 0 {
		bad("step model %+v gives steps of zero length", s)
	}
	return errors.Join(errs...)
}
