// Package bench runs the experiment matrix of a study: models × variants ×
// repetitions, each trial replaying the same trace at rising request rates
// against a freshly started backend, recording through the embedded proxy,
// then analysing and indexing the results.
//
// A study is a TOML file (see examples/*.toml and docs/vbbench.md).
// Decoding is strict: an unknown key is an error, and every problem of the
// file is reported at once before anything touches the disk or a GPU.
package bench

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/vbench/vbench/backends"
	"github.com/vbench/vbench/proxy"

	"github.com/vbench/vbench/replay"
)

// Duration is a TOML duration string ("60s", "4h").
type Duration = backends.Duration

// Study is a decoded study file.
type Study struct {
	// Name identifies the study in the results index and in resume.
	Name string `toml:"name" json:"name"`
	// Description is free text for the report.
	Description string `toml:"description" json:"description,omitempty"`
	// ResultsDir is where trial directories go (default "results"),
	// ReportsDir where reports go (default "reports"). Relative paths, here
	// and everywhere in the file, are relative to the working directory.
	ResultsDir string `toml:"results_dir" json:"results_dir"`
	ReportsDir string `toml:"reports_dir" json:"reports_dir"`
	// Budget is the time the whole matrix should fit in (default 4h).
	Budget Duration `toml:"budget" json:"budget"`
	// GPU describes the card when nvidia-smi cannot (planning on a laptop).
	GPU GPUConfig `toml:"gpu" json:"gpu"`
	// Trace is the one trace every trial replays.
	Trace TraceConfig `toml:"trace" json:"trace"`
	// Run holds the load settings shared by every trial.
	Run RunConfig `toml:"run" json:"run"`
	// Models are run in order; each lists its variants.
	Models []ModelConfig `toml:"models" json:"models"`
	// Slurm says how vbbench slurm submits the trials to a cluster.
	Slurm SlurmConfig `toml:"slurm" json:"slurm"`
	// Variants defines or overrides variants by name; a name not defined
	// here must be a preset.
	Variants map[string]toml.Primitive `toml:"variants" json:"-"`

	path string
	md   toml.MetaData
	raw  map[string]any // the file as decoded without a schema (SplitHolds writes from it)
}

// GPUConfig names the card a plan checks against.
type GPUConfig struct {
	// Name is e.g. "RTX 4090" (informative).
	Name string `toml:"name" json:"name,omitempty"`
	// MemoryGiB is the card's memory; 0 asks nvidia-smi.
	MemoryGiB float64 `toml:"memory_gib" json:"memory_gib,omitempty"`
}

// TraceConfig says where the trace is and how to make it when missing.
type TraceConfig struct {
	// Path is the trace file (trace.bin or .jsonl).
	Path string `toml:"path" json:"path"`
	// Generate is a command run when Path does not exist ("{path}" is
	// replaced), e.g. ["vbsynth", "--dataset", "sharegpt", "--out", "{path}"].
	Generate []string `toml:"generate" json:"generate,omitempty"`
}

// RunConfig holds the load settings of every trial.
type RunConfig struct {
	// Rates are the request rates in req/s, run from low to high. A model's
	// or a variant's own rates replace them for its trials (see
	// Study.RatesFor); they may be left out when every trial has its own.
	Rates []float64 `toml:"rates" json:"rates"`
	// Duration is each level's sending window.
	Duration Duration `toml:"duration" json:"duration"`
	// Warmup is sent before the first level of a trial, or before every
	// level (WarmupMode), at that level's rate; it is not measured.
	Warmup Duration `toml:"warmup" json:"warmup"`
	// WarmupMode says which levels Warmup precedes: replay.WarmupRun (the
	// default, "run") the first level of each trial only, replay.WarmupLevel
	// ("level") every level.
	WarmupMode string `toml:"warmup_mode" json:"warmup_mode,omitempty"`
	// EngineWarmup loads each freshly started server closed loop before its
	// first level, unmeasured (off when its Duration is 0).
	EngineWarmup EngineWarmup `toml:"engine_warmup" json:"engine_warmup,omitzero"`
	// Drain is how long in-flight requests may finish after a level; 0
	// (the default) chooses it per level by the replayer's cut policy:
	// long enough for the level's longest expected request at the TPOT
	// measured on the trial's earlier levels, at most MaxDrain.
	Drain Duration `toml:"drain" json:"drain"`
	// MaxDrain caps the automatic drain (default 5m).
	MaxDrain Duration `toml:"max_drain" json:"max_drain"`
	// Repetitions is the number of trials per model × variant (default 1).
	Repetitions int `toml:"repetitions" json:"repetitions"`
	// StartupTimeout bounds a backend's start (default 15m).
	StartupTimeout Duration `toml:"startup_timeout" json:"startup_timeout"`
	// StopGrace is the wait between SIGTERM and SIGKILL (default 30s).
	StopGrace Duration `toml:"stop_grace" json:"stop_grace"`
	// MaxConcurrency caps requests in flight (0: open loop).
	MaxConcurrency int `toml:"max_concurrency" json:"max_concurrency,omitempty"`
	// ExactOutput asks every request for exactly its trace output length.
	ExactOutput *bool `toml:"exact_output" json:"exact_output,omitempty"`
	// EarlyStop skips higher rates once a variant is clearly saturated.
	EarlyStop EarlyStop `toml:"early_stop" json:"early_stop"`
	// Chart draws charts in each trial's analysis and in the report.
	Chart *bool `toml:"chart" json:"chart,omitempty"`
	// Speed multiplies the pace of the trace on top of the rate (rarely
	// needed; 0 = 1).
	Speed float64 `toml:"speed" json:"speed,omitempty"`
	// GPUs are the GPU lanes of one host (vbbench run --gpus wins): trials
	// run at the same time, each pinned to as many of these GPUs as its
	// variant takes (Spec.GPUs) with CUDA_VISIBLE_DEVICES. Empty: one trial
	// at a time, the environment's GPUs.
	GPUs GPUList `toml:"gpus" json:"gpus,omitempty"`
}

// GPUList is a list of GPU ids as CUDA_VISIBLE_DEVICES takes them: indexes
// or UUIDs. TOML gives it as a list of numbers or strings, or as one string
// "0,1,2,3"; ParseGPUList reads the flag form.
type GPUList []string

// UnmarshalTOML reads [0, 1], ["GPU-…", …] or "0,1".
func (g *GPUList) UnmarshalTOML(v any) error {
	var ids []string
	switch v := v.(type) {
	case string:
		ids = splitIDs(v)
	case []any:
		for _, e := range v {
			switch e := e.(type) {
			case int64:
				ids = append(ids, fmt.Sprint(e))
			case string:
				ids = append(ids, strings.TrimSpace(e))
			default:
				return fmt.Errorf("run.gpus: %v is neither a GPU index nor an id string", e)
			}
		}
	default:
		return fmt.Errorf("run.gpus: want a list such as [0, 1, 2, 3] or a string \"0,1,2,3\", got %v", v)
	}
	*g = ids
	return nil
}

// ParseGPUList reads "0,1,2,3" (the --gpus flag) and checks each id.
func ParseGPUList(s string) (GPUList, error) {
	g := GPUList(splitIDs(s))
	if len(g) == 0 {
		return nil, fmt.Errorf("--gpus %q: want GPU ids such as 0,1,2,3", s)
	}
	return g, g.check("--gpus")
}

func splitIDs(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// check reports empty, malformed or repeated ids.
func (g GPUList) check(where string) error {
	var errs []error
	seen := map[string]bool{}
	for _, id := range g {
		ok := id != ""
		for _, r := range id {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_:./", r)) {
				ok = false
			}
		}
		if !ok {
			errs = append(errs, fmt.Errorf("%s: %q is not a GPU id (an index such as 0 or a UUID such as GPU-5a1c…)", where, id))
		}
		if seen[id] {
			errs = append(errs, fmt.Errorf("%s: GPU %s is listed twice (a GPU is one lane's at a time)", where, id))
		}
		seen[id] = true
	}
	return errors.Join(errs...)
}

// EngineWarmup is [run.engine_warmup]: once per trial, after the server is
// healthy and before the first level, the trace is played closed loop at
// Concurrency requests in flight for Duration, then its requests finish
// (the drain policy of a level). The engine so compiles its kernels for
// every batch size from Concurrency down to 1 (the tail drains one request
// at a time) before anything is measured: vLLM compiles Triton kernels per
// batch shape, and its first level after a start paid for it (TPOT 31.8 ms
// against 19–21 ms once warm on an H200). Its capture is
// capture/engine-warmup, tagged phase=engine-warmup; it is never a level.
type EngineWarmup struct {
	// Duration is the sending window; 0 turns the engine warm-up off.
	Duration Duration `toml:"duration" json:"duration,omitempty"`
	// Concurrency is the number of requests kept in flight (required with a
	// Duration, e.g. 64).
	Concurrency int `toml:"concurrency" json:"concurrency,omitempty"`
}

// On reports whether the engine warm-up runs.
func (e EngineWarmup) On() bool { return e.Duration > 0 }

// EarlyStop holds the saturation rules.
type EarlyStop struct {
	// NormalizedLatency stops when a level's normalized latency (mean E2E
	// per output token, its requests cut at the drain deadline counted at
	// their lower bound: metric.Summary.NormLatencyWithCut) exceeds it
	// (e.g. "1s"); 0 disables.
	NormalizedLatency Duration `toml:"normalized_latency" json:"normalized_latency,omitempty"`
	// CutFraction is no longer used (the plan says so): the share of cut
	// requests alone called levels saturated whose longest requests merely
	// outlasted the drain. It is still read so older study files load.
	CutFraction float64 `toml:"cut_fraction" json:"cut_fraction,omitempty"`
}

// ModelConfig is one model of the matrix.
type ModelConfig struct {
	// Name names the model in paths and reports (default: Model).
	Name string `toml:"name" json:"name"`
	// Model is the local directory or hub id given to the servers.
	Model string `toml:"model" json:"model"`
	// ServedModelName is what clients send (default: the server's choice).
	ServedModelName string `toml:"served_model_name" json:"served_model_name,omitempty"`
	// MaxModelLen bounds prompt + output (required for GPU kinds on a 24 GB
	// card: native lengths do not fit).
	MaxModelLen int `toml:"max_model_len" json:"max_model_len,omitempty"`
	// Dtype is the weights' dtype (default from config.json).
	Dtype string `toml:"dtype" json:"dtype,omitempty"`
	// LoadFormat "dummy" uses random weights of the real shapes.
	LoadFormat string `toml:"load_format" json:"load_format,omitempty"`
	// ParamsB overrides the parameter count (billions) when no config.json
	// is at hand; WeightsGiB overrides the weight bytes outright.
	ParamsB    float64 `toml:"params_b" json:"params_b,omitempty"`
	WeightsGiB float64 `toml:"weights_gib" json:"weights_gib,omitempty"`
	// KVCacheTokens, MaxNumSeqs and MaxNumBatchedTokens are one budget for
	// every variant of this model — the same KV capacity in tokens and the
	// same batch limits, for a fair comparison (backends.Spec's keys of the
	// same names; a variant's own key wins; transformers serve, which
	// cannot fix its KV capacity in tokens, gets only the batch limits).
	KVCacheTokens       int `toml:"kv_cache_tokens" json:"kv_cache_tokens,omitempty"`
	MaxNumSeqs          int `toml:"max_num_seqs" json:"max_num_seqs,omitempty"`
	MaxNumBatchedTokens int `toml:"max_num_batched_tokens" json:"max_num_batched_tokens,omitempty"`
	// Variants are the variant names to run, in order.
	Variants []string `toml:"variants" json:"variants"`
	// Rates, when set, replace run.rates for this model's trials (a
	// variant's own rates win over them).
	Rates []float64 `toml:"rates" json:"rates,omitempty"`
}

// Defaults of a study.
const (
	DefaultBudget         = 4 * time.Hour
	DefaultStartupTimeout = 15 * time.Minute
	DefaultStopGrace      = 30 * time.Second
)

// LoadStudy reads and validates a study file. Nothing else is touched.
func LoadStudy(path string) (*Study, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("study: %w", err) // "study: open PATH: ..."
	}
	s, err := parseStudy(string(b))
	if err != nil {
		return nil, fmt.Errorf("study %s: %w", path, err)
	}
	s.path = path
	return s, nil
}

// ParseStudy decodes and validates a study from TOML text.
func ParseStudy(text string) (*Study, error) {
	s, err := parseStudy(text)
	if err != nil {
		return nil, fmt.Errorf("bench: study: %w", err)
	}
	return s, nil
}

func parseStudy(text string) (*Study, error) {
	var s Study
	md, err := toml.Decode(text, &s)
	if err != nil {
		return nil, err
	}
	s.md = md
	if _, err := toml.Decode(text, &s.raw); err != nil {
		return nil, err
	}
	s.defaults()
	errs := []error{}
	// Resolve every variant of every model now: that decodes the variant
	// tables, so undecoded keys left afterwards are unknown keys.
	if _, err := s.Resolve(); err != nil {
		errs = append(errs, err)
	}
	used := map[string]bool{}
	for _, m := range s.Models {
		for _, v := range m.Variants {
			used[v] = true
		}
	}
	for _, name := range sortedKeys(s.Variants) {
		// A defined variant that no model uses is still checked (one that
		// a model uses was, by Resolve).
		if used[name] {
			continue
		}
		if _, err := s.decodeVariant(name, s.Variants[name], ModelConfig{Model: "m"}); err != nil {
			errs = append(errs, err)
		}
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		sort.Strings(keys)
		errs = append(errs, fmt.Errorf("unknown keys: %s", strings.Join(keys, ", ")))
	}
	if err := s.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &s, nil
}

func (s *Study) defaults() {
	if s.ResultsDir == "" {
		s.ResultsDir = "results"
	}
	if s.ReportsDir == "" {
		s.ReportsDir = "reports"
	}
	if s.Budget == 0 {
		s.Budget = Duration(DefaultBudget)
	}
	if s.Run.Repetitions == 0 {
		s.Run.Repetitions = 1
	}
	if s.Run.StartupTimeout == 0 {
		s.Run.StartupTimeout = Duration(DefaultStartupTimeout)
	}
	if s.Run.StopGrace == 0 {
		s.Run.StopGrace = Duration(DefaultStopGrace)
	}
	if s.Run.MaxDrain == 0 {
		s.Run.MaxDrain = Duration(replay.DefaultMaxDrain)
	}
	if s.Run.WarmupMode == "" {
		s.Run.WarmupMode = replay.WarmupRun
	}
	for i := range s.Models {
		if s.Models[i].Name == "" {
			s.Models[i].Name = s.Models[i].Model
		}
	}
}

// checkRates reports what is wrong with a list of rates named where.
func checkRates(where string, rates []float64) []error {
	var errs []error
	for i, r := range rates {
		if math.IsNaN(r) || math.IsInf(r, 0) || r <= 0 {
			errs = append(errs, fmt.Errorf("%s[%d] = %v: want a positive rate in req/s", where, i, r))
		}
		if i > 0 && r <= rates[i-1] {
			errs = append(errs, fmt.Errorf("%s must rise: %v after %v (rates run from low to high)", where, r, rates[i-1]))
		}
	}
	return errs
}

// RatesFor returns the rates of model m's trials of variant v: the
// variant's own ([variants.NAME] rates), else the model's ([[models]]
// rates), else run.rates.
func (s *Study) RatesFor(m ModelConfig, v Variant) []float64 {
	switch {
	case len(v.Rates) > 0:
		return v.Rates
	case len(m.Rates) > 0:
		return m.Rates
	}
	return s.Run.Rates
}

func (s *Study) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if strings.TrimSpace(s.Name) == "" {
		bad("name is missing (it identifies the study in the index and for --resume)")
	}
	if s.Trace.Path == "" {
		bad("trace.path is missing")
	}
	// Missing rates are a plan error, not a file error: `vbbench probe`
	// runs a study that has none yet and suggests them.
	errs = append(errs, checkRates("run.rates", s.Run.Rates)...)
	if s.Run.Duration <= 0 {
		bad("run.duration is missing: the sending window of each level, e.g. \"60s\"")
	}
	if s.Run.Warmup < 0 || s.Run.Drain < 0 || s.Run.MaxDrain < 0 || s.Run.StartupTimeout < 0 || s.Run.StopGrace < 0 || s.Budget < 0 {
		bad("durations must not be negative")
	}
	switch s.Run.WarmupMode {
	case replay.WarmupRun, replay.WarmupLevel:
	default:
		bad("run.warmup_mode %q: want \"run\" (warm-up before the first level of a trial) or \"level\" (before every level, at its rate)", s.Run.WarmupMode)
	}
	if ew := s.Run.EngineWarmup; ew.Duration < 0 {
		bad("run.engine_warmup.duration %s: must not be negative (0 or absent: no engine warm-up)", ew.Duration.D())
	} else if ew.On() && ew.Concurrency < 1 {
		bad("run.engine_warmup.concurrency %d: want 1 or more requests in flight with run.engine_warmup.duration %s (e.g. 64: the engine then runs every batch size from 64 down to 1)", ew.Concurrency, ew.Duration.D())
	} else if ew.Concurrency < 0 {
		bad("run.engine_warmup.concurrency %d: must not be negative", ew.Concurrency)
	}
	if s.Run.Repetitions < 1 {
		bad("run.repetitions %d: want 1 or more", s.Run.Repetitions)
	}
	if s.Run.MaxConcurrency < 0 {
		bad("run.max_concurrency %d: want 0 (open loop) or more", s.Run.MaxConcurrency)
	}
	if s.Run.EarlyStop.CutFraction < 0 || s.Run.EarlyStop.CutFraction > 1 {
		bad("run.early_stop.cut_fraction %v: want a fraction in [0, 1]", s.Run.EarlyStop.CutFraction)
	}
	if err := s.Run.GPUs.check("run.gpus"); err != nil {
		errs = append(errs, err)
	}
	if err := s.Slurm.validate(); err != nil {
		errs = append(errs, err)
	}
	if s.Run.Speed < 0 {
		bad("run.speed %v: want a positive factor", s.Run.Speed)
	}
	if s.GPU.MemoryGiB < 0 {
		bad("gpu.memory_gib %v: must not be negative", s.GPU.MemoryGiB)
	}
	if len(s.Models) == 0 {
		bad("no [[models]]: a study needs at least one model")
	}
	seen := map[string]bool{}
	for i, m := range s.Models {
		where := fmt.Sprintf("models[%d]", i)
		if m.Name != "" {
			where = fmt.Sprintf("model %q", m.Name)
		}
		if m.Name == "" {
			bad("%s: give model (a directory or hub id) or name", where)
		}
		if seen[m.Name] {
			bad("%s appears twice", where)
		}
		seen[m.Name] = true
		if len(m.Variants) == 0 {
			bad("%s: variants is empty", where)
		}
		if m.MaxModelLen < 0 || m.ParamsB < 0 || m.WeightsGiB < 0 {
			bad("%s: max_model_len, params_b and weights_gib must not be negative", where)
		}
		errs = append(errs, checkRates(where+": rates", m.Rates)...)
		vs := map[string]bool{}
		for _, v := range m.Variants {
			if vs[v] {
				bad("%s: variant %q listed twice", where, v)
			}
			vs[v] = true
		}
	}
	return errors.Join(errs...)
}

// Variant is one resolved variant of one model.
type Variant struct {
	// Name is the variant's name in the study.
	Name string `json:"name"`
	// Preset is the preset it started from.
	Preset string `json:"preset"`
	// Spec is the resolved backend spec.
	Spec backends.Spec `json:"spec"`
	// Rates are the variant's own rates ([variants.NAME] rates; empty:
	// the model's or run.rates).
	Rates []float64 `json:"rates,omitempty"`
	// Saturation is the request rate the variant sustains, as vbbench
	// probe measured it ([variants.NAME] saturation; 0: unknown). The plan
	// uses it to estimate how long a level past it drains.
	Saturation float64 `json:"saturation,omitempty"`
}

// Resolve returns, for every model in order, its variants in order.
func (s *Study) Resolve() ([][]Variant, error) {
	var errs []error
	out := make([][]Variant, len(s.Models))
	for i, m := range s.Models {
		for _, name := range m.Variants {
			prim, defined := s.Variants[name]
			var v Variant
			var err error
			if defined {
				v, err = s.decodeVariant(name, prim, m)
			} else {
				v, err = presetVariant(name, name, m)
				applyBudget(&v.Spec, m)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("model %q: %w", m.Name, err))
				continue
			}
			out[i] = append(out[i], v)
		}
	}
	return out, errors.Join(errs...)
}

// presetVariant starts from a preset and applies the model's settings.
func presetVariant(name, preset string, m ModelConfig) (Variant, error) {
	spec, err := backends.Preset(preset)
	if err != nil {
		return Variant{}, fmt.Errorf("variant %q: not defined in [variants] and %w", name, err)
	}
	applyModel(&spec, m)
	return Variant{Name: name, Preset: preset, Spec: spec}, nil
}

func applyModel(spec *backends.Spec, m ModelConfig) {
	if spec.Kind != backends.KindSim && spec.Kind != backends.KindExec {
		spec.Model = m.Model
		spec.Dtype = m.Dtype
		spec.LoadFormat = m.LoadFormat
	} else if spec.Kind == backends.KindExec {
		spec.Model = m.Model
	}
	spec.MaxModelLen = m.MaxModelLen
	spec.ServedModelName = m.ServedModelName
}

// applyBudget fills the model's budget (kv_cache_tokens, max_num_seqs,
// max_num_batched_tokens) into the keys a variant left unset. The KV
// capacity goes only to kinds that can fix it in tokens, and not to a
// variant that sizes its KV cache another way (kv_budget_gib,
// sim_kv_tokens, extra_args).
func applyBudget(spec *backends.Spec, m ModelConfig) {
	if m.KVCacheTokens > 0 && spec.KVCacheTokens == 0 && !spec.SizesKVOtherwise() {
		switch spec.Kind {
		case backends.KindVLLM, backends.KindTorch, backends.KindSim:
			spec.KVCacheTokens = m.KVCacheTokens
		}
	}
	if m.MaxNumSeqs > 0 && spec.MaxNumSeqs == 0 {
		spec.MaxNumSeqs = m.MaxNumSeqs
	}
	if m.MaxNumBatchedTokens > 0 && spec.MaxNumBatchedTokens == 0 {
		spec.MaxNumBatchedTokens = m.MaxNumBatchedTokens
	}
}

// decodeVariant applies [variants.NAME] over its preset and the model.
func (s *Study) decodeVariant(name string, prim toml.Primitive, m ModelConfig) (Variant, error) {
	var head struct {
		Preset string `toml:"preset"`
	}
	if err := s.md.PrimitiveDecode(prim, &head); err != nil {
		return Variant{}, fmt.Errorf("variant %q: %w", name, err)
	}
	var spec backends.Spec
	if head.Preset != "" {
		v, err := presetVariant(name, head.Preset, m)
		if err != nil {
			return Variant{}, err
		}
		spec = v.Spec
	} else {
		applyModel(&spec, m)
	}
	var over struct {
		Preset     string    `toml:"preset"`
		Rates      []float64 `toml:"rates"`
		Saturation float64   `toml:"saturation"`
		backends.Spec
	}
	over.Spec = spec
	if err := s.md.PrimitiveDecode(prim, &over); err != nil {
		return Variant{}, fmt.Errorf("variant %q: %w", name, err)
	}
	spec = over.Spec
	applyBudget(&spec, m)
	errs := checkRates("rates", over.Rates)
	if over.Saturation < 0 || math.IsNaN(over.Saturation) || math.IsInf(over.Saturation, 0) {
		errs = append(errs, fmt.Errorf("saturation %v: want the variant's saturation in req/s (vbbench probe prints it), or leave it out", over.Saturation))
	}
	if err := spec.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := proxy.ValidateScrapeMetrics(spec.ScrapeMetrics); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return Variant{}, fmt.Errorf("variant %q: %w", name, err)
	}
	return Variant{Name: name, Preset: head.Preset, Spec: spec, Rates: over.Rates, Saturation: over.Saturation}, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Path returns the study file's path ("" when parsed from text).
func (s *Study) Path() string { return s.path }

// SanitizeName turns a model or variant name into one safe path element:
// letters, digits and . _ + - are kept, anything else (slashes included)
// becomes _, and a name made only of dots is escaped.
func SanitizeName(name string) string {
	var b strings.Builder
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '+', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	out := strings.TrimLeft(b.String(), ".")
	if out == "" {
		out = "_"
	}
	if len(out) > 100 {
		out = out[:100]
	}
	return out
}

// under joins elem to dir and refuses anything that escapes dir.
func under(dir string, elem ...string) (string, error) {
	p := filepath.Join(append([]string{dir}, elem...)...)
	rel, err := filepath.Rel(dir, p)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", fmt.Errorf("bench: path %q escapes %s", p, dir)
	}
	return p, nil
}

// DrainBound is the longest a level may drain: Drain when set, else
// MaxDrain (the automatic drain's cap).
func (r RunConfig) DrainBound() time.Duration {
	if r.Drain > 0 {
		return r.Drain.D()
	}
	return r.MaxDrain.D()
}

// OrderVariants reorders each model's variants: those named come first, in
// the order given, then the rest in the study's order. The run order, and
// so a split into holds (Plan.SplitHolds keeps runs of consecutive trials),
// follows; e.g. two variants named last share the last hold. Every name
// must be a variant of some model, and none may repeat.
func (s *Study) OrderVariants(names []string) error {
	rank := map[string]int{}
	for i, n := range names {
		if _, dup := rank[n]; dup {
			return fmt.Errorf("variant %q is named twice in the order", n)
		}
		rank[n] = i
	}
	seen := map[string]bool{}
	for i := range s.Models {
		vs := s.Models[i].Variants
		for _, v := range vs {
			seen[v] = true
		}
		slices.SortStableFunc(vs, func(a, b string) int {
			ra, oka := rank[a]
			rb, okb := rank[b]
			switch {
			case oka && okb:
				return ra - rb
			case oka:
				return -1
			case okb:
				return 1
			}
			return 0
		})
	}
	for _, n := range names {
		if !seen[n] {
			return fmt.Errorf("variant %q in the order is not a variant of any model in the study", n)
		}
	}
	return nil
}
