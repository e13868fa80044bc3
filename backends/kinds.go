package backends

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// AttentionFlagSince is the first vLLM release that gets its attention
// backend from --attention-backend under AttentionAuto. Older releases read
// the VLLM_ATTENTION_BACKEND variable (deprecated by vLLM PR #26315 "to be
// removed in v0.14.0", silently ignored by 0.26: vllm#50292); every release
// from 0.14.0 on has the flag.
const AttentionFlagSince = "0.14.0"

func vllmCommand(ctx context.Context, s Spec, o Options) (Command, error) {
	exe, err := findScript(s, o, "vllm")
	if err != nil {
		return Command{}, err
	}
	version := s.VLLMVersion
	if version == "" {
		v, err := detectVersion(ctx, exe, "--version")
		if err != nil {
			return Command{}, fmt.Errorf("backends: vllm: detect the installed version with '%s --version': %w (set vllm_version in the variant to skip detection)", exe, err)
		}
		version = v
	}
	argv := []string{exe, "serve", s.Model, "--host", o.Host, "--port", strconv.Itoa(o.Port)}
	add := func(a ...string) { argv = append(argv, a...) }
	if s.ServedModelName != "" {
		add("--served-model-name", s.ServedModelName)
	}
	if s.Dtype != "" {
		add("--dtype", s.Dtype)
	}
	if s.MaxModelLen > 0 {
		add("--max-model-len", strconv.Itoa(s.MaxModelLen))
	}
	if s.GPUMemoryUtilization > 0 {
		add("--gpu-memory-utilization", strconv.FormatFloat(s.GPUMemoryUtilization, 'f', -1, 64))
	}
	if s.MaxNumSeqs > 0 {
		add("--max-num-seqs", strconv.Itoa(s.MaxNumSeqs))
	}
	if s.MaxNumBatchedTokens > 0 {
		add("--max-num-batched-tokens", strconv.Itoa(s.MaxNumBatchedTokens))
	}
	if s.LoadFormat != "" {
		add("--load-format", s.LoadFormat)
	}
	if s.TensorParallelSize > 0 {
		add("--tensor-parallel-size", strconv.Itoa(s.TensorParallelSize))
	}
	if s.EnforceEager != nil && *s.EnforceEager {
		add("--enforce-eager")
	}
	if s.OptimizationLevel != nil {
		add("-O" + strconv.Itoa(*s.OptimizationLevel))
	}
	if s.PrefixCaching != nil {
		add(boolFlag("enable-prefix-caching", *s.PrefixCaching))
	}
	if s.ChunkedPrefill != nil {
		add(boolFlag("enable-chunked-prefill", *s.ChunkedPrefill))
	}
	if s.KVCacheDtype != "" {
		add("--kv-cache-dtype", s.KVCacheDtype)
	}
	if blocks, bs := s.VLLMBlocks(); blocks > 0 {
		add("--block-size", strconv.Itoa(bs), "--num-gpu-blocks-override", strconv.Itoa(blocks))
	} else if s.BlockSize > 0 {
		add("--block-size", strconv.Itoa(s.BlockSize))
	}
	if s.SpeculativeConfig != "" {
		add("--speculative-config", s.SpeculativeConfig)
	}
	var env []string
	if s.AttentionBackend != "" {
		via := s.AttentionVia
		if via == "" || via == AttentionAuto {
			via = AttentionEnv
			if versionAtLeast(version, AttentionFlagSince) {
				via = AttentionFlag
			}
		}
		if via == AttentionFlag {
			add("--attention-backend", s.AttentionBackend)
		} else {
			env = append(env, "VLLM_ATTENTION_BACKEND="+s.AttentionBackend)
		}
	}
	add(s.ExtraArgs...)
	return Command{Argv: argv, Env: env, Version: version}, nil
}

func boolFlag(name string, on bool) string {
	if on {
		return "--" + name
	}
	return "--no-" + name
}

func torchCommand(ctx context.Context, s Spec, o Options) (Command, error) {
	py, err := findPython(s, o)
	if err != nil {
		return Command{}, err
	}
	if s.Attn == "flash" {
		if err := pythonImports(ctx, py, "flash_attn"); err != nil {
			return Command{}, fmt.Errorf("backends: torch --attn flash: %w: flash_attn does not import in %s (%v); install a wheel that matches torch, CUDA, Python and the C++ ABI (docs/backends.md: installing flash-attn), or use attn = \"sdpa\"", ErrUnsupported, py, err)
		}
	}
	argv := []string{py, "-m", "vbtorch.server", "--model", s.Model, "--host", o.Host, "--port", strconv.Itoa(o.Port)}
	add := func(a ...string) { argv = append(argv, a...) }
	if s.ServedModelName != "" {
		add("--served-model-name", s.ServedModelName)
	}
	if s.Dtype != "" {
		add("--dtype", s.Dtype)
	}
	if s.MaxModelLen > 0 {
		add("--max-model-len", strconv.Itoa(s.MaxModelLen))
	}
	if s.LoadFormat != "" {
		add("--load-format", s.LoadFormat)
	}
	if s.KVPolicy != "" {
		add("--kv-policy", s.KVPolicy)
	}
	if s.KVBudgetGiB > 0 {
		add("--kv-budget-gib", strconv.FormatFloat(s.KVBudgetGiB, 'f', -1, 64))
	}
	if s.KVCacheTokens > 0 {
		add("--kv-budget-tokens", strconv.Itoa(s.KVCacheTokens))
	}
	if s.MaxNumSeqs > 0 {
		add("--max-num-seqs", strconv.Itoa(s.MaxNumSeqs))
	}
	if s.MaxNumBatchedTokens > 0 {
		add("--max-batch-tokens", strconv.Itoa(s.MaxNumBatchedTokens))
	}
	if s.Attn != "" {
		add("--attn", s.Attn)
	}
	if s.EngineProcess != nil && *s.EngineProcess {
		add("--engine-process")
	}
	add(s.ExtraArgs...)
	var env []string
	if dir := torchSourceDir(o); dir != "" {
		env = append(env, "PYTHONPATH="+joinPath(dir, os.Getenv("PYTHONPATH")))
	}
	return Command{Argv: argv, Env: env}, nil
}

// torchSourceDir finds backends/torch of the project (for PYTHONPATH) when
// vbtorch is not installed into the environment.
func torchSourceDir(o Options) string {
	base := o.Dir
	if base == "" {
		base, _ = os.Getwd()
	}
	for d := base; ; d = filepath.Dir(d) {
		cand := filepath.Join(d, "backends", "torch")
		if fi, err := os.Stat(filepath.Join(cand, "vbtorch")); err == nil && fi.IsDir() {
			return cand
		}
		if filepath.Dir(d) == d {
			return ""
		}
	}
}

func joinPath(a, b string) string {
	if b == "" {
		return a
	}
	return a + string(os.PathListSeparator) + b
}

func transformersCommand(ctx context.Context, s Spec, o Options) (Command, error) {
	exe, err := findScript(s, o, "transformers")
	if err != nil {
		return Command{}, err
	}
	if strings.HasPrefix(s.AttnImplementation, "flash_attention") {
		py, perr := findPython(s, o)
		if perr == nil {
			perr = pythonImports(ctx, py, "flash_attn")
		}
		if perr != nil {
			return Command{}, fmt.Errorf("backends: transformers --attn-implementation %s: %w: %v; install a matching flash-attn wheel or use sdpa", s.AttnImplementation, ErrUnsupported, perr)
		}
	}
	// transformers 5.x: the model to preload is the positional argument
	// (force_model); continuous batching is tuned with --cb-* options.
	argv := []string{exe, "serve", s.Model, "--host", o.Host, "--port", strconv.Itoa(o.Port)}
	add := func(a ...string) { argv = append(argv, a...) }
	if s.ContinuousBatching != nil && *s.ContinuousBatching {
		add("--continuous-batching")
	}
	if s.AttnImplementation != "" {
		add("--attn-implementation", s.AttnImplementation)
	}
	if s.Dtype != "" {
		add("--dtype", s.Dtype)
	}
	if s.Compile != nil && *s.Compile {
		add("--compile")
	}
	if s.CUDAGraphs != nil {
		add(boolFlag("cb-use-cuda-graph", *s.CUDAGraphs))
	}
	if s.MaxNumBatchedTokens > 0 {
		add("--cb-max-batch-tokens", strconv.Itoa(s.MaxNumBatchedTokens))
	}
	if s.BlockSize > 0 {
		add("--cb-block-size", strconv.Itoa(s.BlockSize))
	}
	if s.GPUMemoryUtilization > 0 {
		add("--cb-max-memory-percent", strconv.FormatFloat(s.GPUMemoryUtilization, 'f', -1, 64))
	}
	add(s.ExtraArgs...)
	// /v1/models of transformers serve scans the Hugging Face cache and
	// answers 500 when the cache directory is missing; /health is enough.
	return Command{Argv: argv, HealthPaths: []string{"/health"}}, nil
}

func simCommand(ctx context.Context, s Spec, o Options) (Command, error) {
	exe := s.Executable
	if exe == "" {
		exe = "vbsim"
	}
	path, err := lookExecutable(exe, o.SearchDirs)
	if err != nil {
		return Command{}, fmt.Errorf("backends: sim: %w: %s not found next to vbbench or on PATH (make build puts it in bin/)", ErrNotInstalled, exe)
	}
	argv := []string{path, "--port", strconv.Itoa(o.Port)}
	add := func(a ...string) { argv = append(argv, a...) }
	if s.ServedModelName != "" {
		add("--model", s.ServedModelName)
	}
	if s.MaxModelLen > 0 {
		add("--max-model-len", strconv.Itoa(s.MaxModelLen))
	}
	if s.BlockSize > 0 {
		add("--block-size", strconv.Itoa(s.BlockSize))
	}
	if s.SimPolicy != "" {
		add("--policy", s.SimPolicy)
	}
	if s.SimReservation != "" {
		add("--reservation", s.SimReservation)
	}
	if s.SimKVTokens > 0 {
		add("--kv-tokens", strconv.Itoa(s.SimKVTokens))
	} else if s.KVCacheTokens > 0 {
		add("--kv-tokens", strconv.Itoa(s.KVCacheTokens))
	}
	if s.MaxNumSeqs > 0 {
		add("--max-num-seqs", strconv.Itoa(s.MaxNumSeqs))
	}
	if s.SimMaxBatchTokens > 0 {
		add("--max-batch-tokens", strconv.Itoa(s.SimMaxBatchTokens))
	} else if s.MaxNumBatchedTokens > 0 {
		add("--max-batch-tokens", strconv.Itoa(s.MaxNumBatchedTokens))
	}
	if s.SimPreset != "" {
		add("--preset", s.SimPreset)
	}
	if s.SimSpeed > 0 {
		add("--speed", strconv.FormatFloat(s.SimSpeed, 'f', -1, 64))
	}
	add(s.ExtraArgs...)
	return Command{Argv: argv}, nil
}

func execCommand(ctx context.Context, s Spec, o Options) (Command, error) {
	r := strings.NewReplacer("{port}", strconv.Itoa(o.Port), "{host}", o.Host, "{model}", s.Model)
	argv := make([]string, len(s.Command))
	for i, a := range s.Command {
		argv[i] = r.Replace(a)
	}
	path, err := lookExecutable(argv[0], o.SearchDirs)
	if err != nil {
		return Command{}, fmt.Errorf("backends: exec: %w: %s: %v", ErrNotInstalled, argv[0], err)
	}
	argv[0] = path
	argv = append(argv, s.ExtraArgs...)
	var health []string
	for _, h := range s.HealthPaths {
		health = append(health, r.Replace(h))
	}
	return Command{Argv: argv, HealthPaths: health}, nil
}

// findScript resolves a Python console script (vllm, transformers): the
// variant's executable, else next to the variant's python, else in the
// project's .venv, else on PATH.
func findScript(s Spec, o Options, name string) (string, error) {
	if s.Executable != "" {
		p, err := lookExecutable(s.Executable, nil)
		if err != nil {
			return "", fmt.Errorf("backends: %s: %w: %v", name, ErrNotInstalled, err)
		}
		return p, nil
	}
	var dirs []string
	if s.Python != "" {
		dirs = append(dirs, filepath.Dir(s.Python))
	}
	if v := venvBin(o); v != "" {
		dirs = append(dirs, v)
	}
	p, err := lookExecutable(name, dirs)
	if err != nil {
		return "", fmt.Errorf("backends: %w: %s not found (install it with 'make setup-gpu VLLM=1' / 'uv sync --extra %s', or set executable or python in the variant)", ErrNotInstalled, name, name)
	}
	return p, nil
}

func findPython(s Spec, o Options) (string, error) {
	if s.Python != "" {
		return lookExecutable(s.Python, nil)
	}
	if v := venvBin(o); v != "" {
		if p, err := lookExecutable("python", []string{v}); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath("python3")
	if err != nil {
		return "", fmt.Errorf("backends: %w: no python3 on PATH and no .venv (run 'make setup-gpu' or set python in the variant)", ErrNotInstalled)
	}
	return p, nil
}

func venvBin(o Options) string {
	base := o.Dir
	if base == "" {
		base, _ = os.Getwd()
	}
	d := filepath.Join(base, ".venv", "bin")
	if fi, err := os.Stat(d); err == nil && fi.IsDir() {
		return d
	}
	return ""
}

// lookExecutable finds name in dirs first, then on PATH; a name with a slash
// is taken as a path.
func lookExecutable(name string, dirs []string) (string, error) {
	if strings.Contains(name, "/") {
		return exec.LookPath(name)
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return exec.LookPath(name)
}

func pythonImports(ctx context.Context, py, module string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, "-c", "import "+module).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, lastLine(string(out)))
	}
	return nil
}

var versionRE = regexp.MustCompile(`\d+\.\d+(\.\d+)?([A-Za-z0-9.+-]*)?`)

// versionLineRE is a line that is a version and nothing else, as
// `vllm --version` prints it ("0.26.0").
var versionLineRE = regexp.MustCompile(`^v?\d+\.\d+(\.\d+)?[A-Za-z0-9.+-]*$`)

// detectVersion runs exe with args and returns its version: the last line
// that is only a version (warnings that an import prints, naming other
// packages' versions, are skipped), else the last version-looking token.
func detectVersion(ctx context.Context, exe string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, exe, args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%v: %s", err, lastLine(string(out)))
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); versionLineRE.MatchString(l) {
			return strings.TrimPrefix(l, "v"), nil
		}
	}
	all := versionRE.FindAllString(string(out), -1)
	if len(all) == 0 {
		return "", fmt.Errorf("no version in output %q", lastLine(string(out)))
	}
	return all[len(all)-1], nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// versionAtLeast compares dotted release numbers; pre-release and local
// suffixes (0.14.0rc1, 0.11.1+cu129) count as their base release.
func versionAtLeast(v, min string) bool {
	a, b := versionParts(v), versionParts(min)
	for i := range 3 {
		if a[i] != b[i] {
			return a[i] > b[i]
		}
	}
	return true
}

func versionParts(v string) [3]int {
	var out [3]int
	v = strings.TrimPrefix(strings.TrimSpace(v), "v")
	for i, part := range strings.SplitN(v, ".", 3) {
		n := 0
		for _, c := range part {
			if c < '0' || c > '9' {
				break
			}
			n = n*10 + int(c-'0')
		}
		out[i] = n
	}
	return out
}
