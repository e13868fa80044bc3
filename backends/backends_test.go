package backends

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

var fakeBin string // directory holding the fake server under several names

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vbbackends")
	if err != nil {
		panic(err)
	}
	out := filepath.Join(dir, "fakeserver")
	cmd := exec.Command("go", "build", "-o", out, "./testdata/fakeserver")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		os.RemoveAll(dir)
		panic("build fake server: " + err.Error())
	}
	for _, name := range []string{"vllm", "transformers", "vbsim", "python3"} {
		if err := os.Link(out, filepath.Join(dir, name)); err != nil {
			panic(err)
		}
	}
	fakeBin = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type recorded struct {
	Argv []string          `json:"argv"`
	Env  map[string]string `json:"env"`
}

// fakeEnv puts the fake server first on PATH and returns the record path.
func fakeEnv(t *testing.T, version, mode string) string {
	t.Helper()
	rec := filepath.Join(t.TempDir(), "argv.json")
	t.Setenv("PATH", fakeBin+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("FAKE_RECORD", rec)
	t.Setenv("FAKE_VERSION", version)
	t.Setenv("FAKE_MODE", mode)
	t.Setenv("VLLM_ATTENTION_BACKEND", "") // the test's own environment must not leak in
	return rec
}

func readRecord(t *testing.T, path string) recorded {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the fake server left no record: %v", err)
	}
	var r recorded
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	r.Argv[0] = filepath.Base(r.Argv[0])
	return r
}

func quickOpts(port int) Options {
	return Options{Port: port, StopGrace: 2 * time.Second, PortFreeTimeout: 3 * time.Second, PollInterval: 20 * time.Millisecond, Dir: os.TempDir()}
}

// startStop runs the whole lifecycle of spec against the fake server and
// returns what the server saw.
func startStop(t *testing.T, spec Spec, rec string) (recorded, Backend) {
	t.Helper()
	port, err := FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(spec, quickOpts(port))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := b.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	if err := b.Start(ctx, &syncWriter{w: &log}); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitHealthy(ctx, 20*time.Second); err != nil {
		b.Stop(ctx)
		t.Fatal(err)
	}
	if err := b.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if !portFree("127.0.0.1", port) {
		t.Errorf("port %d still in use after Stop", port)
	}
	return readRecord(t, rec), b
}

func TestPresetCommandLines(t *testing.T) {
	const model = "/models/Qwen3-8B"
	tests := []struct {
		preset  string
		version string
		want    string // argv after "<exe>", with PORT standing for the port
		wantEnv string // VLLM_ATTENTION_BACKEND seen by the server
	}{
		{PresetVLLMPage, "0.33.0", "vllm serve /models/Qwen3-8B --host 127.0.0.1 --port PORT --max-model-len 4096 --enforce-eager --no-enable-prefix-caching --attention-backend TRITON_ATTN", ""},
		{PresetVLLMPage, "0.11.0", "vllm serve /models/Qwen3-8B --host 127.0.0.1 --port PORT --max-model-len 4096 --enforce-eager --no-enable-prefix-caching", "TRITON_ATTN"},
		{PresetVLLMPageFlash, "0.14.0", "vllm serve /models/Qwen3-8B --host 127.0.0.1 --port PORT --max-model-len 4096 --enforce-eager --no-enable-prefix-caching --attention-backend FLASH_ATTN", ""},
		{PresetVLLMPageFlash, "0.13.2", "vllm serve /models/Qwen3-8B --host 127.0.0.1 --port PORT --max-model-len 4096 --enforce-eager --no-enable-prefix-caching", "FLASH_ATTN"},
		{PresetVLLMAllOpt, "0.33.0", "vllm serve /models/Qwen3-8B --host 127.0.0.1 --port PORT --max-model-len 4096", ""},
		{PresetTransformersCB, "5.23.0", "transformers serve /models/Qwen3-8B --host 127.0.0.1 --port PORT --continuous-batching --attn-implementation sdpa", ""},
		{PresetTorchBaseline, "", "python3 -m vbtorch.server --model /models/Qwen3-8B --host 127.0.0.1 --port PORT --max-model-len 4096 --kv-policy max --attn sdpa --engine-process", ""},
		{PresetSimPaged, "", "vbsim --port PORT --policy paged", ""},
		{PresetSimContiguous, "", "vbsim --port PORT --policy contiguous --reservation max", ""},
	}
	for _, tt := range tests {
		t.Run(tt.preset+"@"+tt.version, func(t *testing.T) {
			rec := fakeEnv(t, tt.version, "")
			spec, err := Preset(tt.preset)
			if err != nil {
				t.Fatal(err)
			}
			if spec.Kind != KindSim {
				spec.Model = model
				spec.MaxModelLen = 4096
			}
			if spec.Kind == KindTorch {
				spec.Python = filepath.Join(fakeBin, "python3")
			}
			got, b := startStop(t, spec, rec)
			port := strings.TrimPrefix(b.BaseURL(), "http://127.0.0.1:")
			want := strings.ReplaceAll(tt.want, "PORT", port)
			if g := strings.Join(got.Argv, " "); g != want {
				t.Errorf("argv\n got %s\nwant %s", g, want)
			}
			if g := got.Env["VLLM_ATTENTION_BACKEND"]; g != tt.wantEnv {
				t.Errorf("VLLM_ATTENTION_BACKEND = %q, want %q", g, tt.wantEnv)
			}
			if tt.version != "" && tt.preset != PresetTransformersCB && b.Command().Version != tt.version {
				t.Errorf("detected version %q, want %q", b.Command().Version, tt.version)
			}
		})
	}
}

// TestEqualBudgetCommandLines pins the command line of every study preset
// on vLLM 0.26.0 (the release the offline bundle carries) and of the
// baseline and simulator when a study gives them one budget: the same KV
// capacity in tokens, batch limits and model length. 32,768 tokens are
// 2,048 vLLM blocks of 16; the attention backend goes by flag (0.26.0 no
// longer reads VLLM_ATTENTION_BACKEND), and no VLLM_* variable is set.
func TestEqualBudgetCommandLines(t *testing.T) {
	const vllmCommon = "serve /m --host 127.0.0.1 --port PORT --served-model-name llama-8b --dtype bfloat16 --max-model-len 2048 --max-num-seqs 256 --max-num-batched-tokens 8192 --load-format dummy"
	tests := []struct{ preset, want string }{
		{PresetVLLMPage, "vllm " + vllmCommon + " --enforce-eager --no-enable-prefix-caching --block-size 16 --num-gpu-blocks-override 2048 --attention-backend TRITON_ATTN"},
		{PresetVLLMPageFlash, "vllm " + vllmCommon + " --enforce-eager --no-enable-prefix-caching --block-size 16 --num-gpu-blocks-override 2048 --attention-backend FLASH_ATTN"},
		{PresetVLLMAllOpt, "vllm " + vllmCommon + " --block-size 16 --num-gpu-blocks-override 2048"},
		{PresetTorchBaseline, "python3 -m vbtorch.server --model /m --host 127.0.0.1 --port PORT --served-model-name llama-8b --dtype bfloat16 --max-model-len 2048 --load-format dummy --kv-policy max --kv-budget-tokens 32768 --max-num-seqs 256 --max-batch-tokens 8192 --attn sdpa --engine-process"},
		{PresetSimPaged, "vbsim --port PORT --model llama-8b --max-model-len 2048 --policy paged --kv-tokens 32768 --max-num-seqs 256 --max-batch-tokens 8192"},
	}
	for _, tt := range tests {
		t.Run(tt.preset, func(t *testing.T) {
			rec := fakeEnv(t, "0.26.0", "")
			spec, err := Preset(tt.preset)
			if err != nil {
				t.Fatal(err)
			}
			spec.Model, spec.ServedModelName, spec.Dtype, spec.LoadFormat = "/m", "llama-8b", "bfloat16", "dummy"
			spec.MaxModelLen, spec.MaxNumSeqs, spec.MaxNumBatchedTokens, spec.KVCacheTokens = 2048, 256, 8192, 32768
			if spec.Kind == KindSim {
				spec.Model, spec.Dtype, spec.LoadFormat = "", "", ""
			}
			if spec.Kind == KindTorch {
				spec.Python = filepath.Join(fakeBin, "python3")
			}
			if err := spec.Validate(); err != nil {
				t.Fatal(err)
			}
			got, b := startStop(t, spec, rec)
			port := strings.TrimPrefix(b.BaseURL(), "http://127.0.0.1:")
			if g, w := strings.Join(got.Argv, " "), strings.ReplaceAll(tt.want, "PORT", port); g != w {
				t.Errorf("argv\n got %s\nwant %s", g, w)
			}
			for k, v := range got.Env {
				if strings.HasPrefix(k, "VLLM_") && v != "" {
					t.Errorf("environment %s=%s; want no VLLM_* variable from the preset", k, v)
				}
			}
			if spec.Kind == KindVLLM && b.Command().Version != "0.26.0" {
				t.Errorf("detected version %q; want 0.26.0", b.Command().Version)
			}
		})
	}
}

// TestKVCacheTokensBlocks: the block count rounds up, and a variant's
// block size is kept.
func TestKVCacheTokensBlocks(t *testing.T) {
	for _, c := range []struct{ tokens, bs, blocks, wantBS int }{
		{32768, 0, 2048, 16}, {32769, 0, 2049, 16}, {1000, 32, 32, 32}, {0, 16, 0, 0},
	} {
		s := Spec{KVCacheTokens: c.tokens, BlockSize: c.bs}
		if b, bs := s.VLLMBlocks(); b != c.blocks || bs != c.wantBS {
			t.Errorf("VLLMBlocks(%d tokens, block %d) = %d, %d; want %d, %d", c.tokens, c.bs, b, bs, c.blocks, c.wantBS)
		}
	}
}

func TestVLLMEveryKnob(t *testing.T) {
	rec := fakeEnv(t, "0.33.0", "")
	spec, _ := Preset(PresetVLLMAllOpt)
	spec.Model = "m"
	spec.ServedModelName = "qwen"
	spec.Dtype = "bfloat16"
	spec.MaxModelLen = 8192
	spec.GPUMemoryUtilization = 0.9
	spec.MaxNumSeqs = 128
	spec.MaxNumBatchedTokens = 4096
	spec.LoadFormat = "dummy"
	spec.TensorParallelSize = 2
	spec.OptimizationLevel = ptr(0)
	spec.PrefixCaching = ptr(true)
	spec.ChunkedPrefill = ptr(false)
	spec.KVCacheDtype = "fp8"
	spec.BlockSize = 32
	spec.SpeculativeConfig = `{"method":"ngram","num_speculative_tokens":3}`
	spec.AttentionBackend = "FLASHINFER"
	spec.AttentionVia = AttentionEnv // forced despite the new version
	spec.ExtraArgs = []string{"--seed", "7"}
	spec.Env = map[string]string{"VLLM_USE_FLASHINFER_SAMPLER": "0"}
	got, b := startStop(t, spec, rec)
	port := strings.TrimPrefix(b.BaseURL(), "http://127.0.0.1:")
	want := []string{"vllm", "serve", "m", "--host", "127.0.0.1", "--port", port, "--served-model-name", "qwen", "--dtype", "bfloat16",
		"--max-model-len", "8192", "--gpu-memory-utilization", "0.9", "--max-num-seqs", "128", "--max-num-batched-tokens", "4096",
		"--load-format", "dummy", "--tensor-parallel-size", "2", "-O0", "--enable-prefix-caching", "--no-enable-chunked-prefill", "--kv-cache-dtype", "fp8",
		"--block-size", "32", "--speculative-config", `{"method":"ngram","num_speculative_tokens":3}`, "--seed", "7"}
	if !reflect.DeepEqual(got.Argv, want) {
		t.Errorf("argv\n got %q\nwant %q", got.Argv, want)
	}
	if got.Env["VLLM_ATTENTION_BACKEND"] != "FLASHINFER" || got.Env["VLLM_USE_FLASHINFER_SAMPLER"] != "0" {
		t.Errorf("env = %v", got.Env)
	}
}

func TestTransformersEveryKnob(t *testing.T) {
	rec := fakeEnv(t, "", "")
	spec, _ := Preset(PresetTransformersCB)
	spec.Model = "/m"
	spec.Dtype = "bfloat16"
	spec.Compile = ptr(true)
	spec.CUDAGraphs = ptr(false)
	spec.MaxNumBatchedTokens = 2048
	spec.BlockSize = 32
	spec.GPUMemoryUtilization = 0.8
	got, b := startStop(t, spec, rec)
	port := strings.TrimPrefix(b.BaseURL(), "http://127.0.0.1:")
	want := "transformers serve /m --host 127.0.0.1 --port " + port + " --continuous-batching --attn-implementation sdpa --dtype bfloat16 --compile --no-cb-use-cuda-graph --cb-max-batch-tokens 2048 --cb-block-size 32 --cb-max-memory-percent 0.8"
	if g := strings.Join(got.Argv, " "); g != want {
		t.Errorf("argv\n got %s\nwant %s", g, want)
	}
	if hp := b.Command().HealthPaths; len(hp) != 1 || hp[0] != "/health" {
		t.Errorf("health paths %v", hp)
	}
}

func TestVersionAtLeast(t *testing.T) {
	tests := []struct {
		v, min string
		want   bool
	}{
		{"0.14.0", "0.14.0", true},
		{"0.13.9", "0.14.0", false},
		{"0.33.0", "0.14.0", true},
		{"1.0.0", "0.14.0", true},
		{"0.14.0rc1", "0.14.0", true},
		{"0.11.1+cu129", "0.14.0", false},
		{"v0.20", "0.14.0", true},
	}
	for _, tt := range tests {
		if got := versionAtLeast(tt.v, tt.min); got != tt.want {
			t.Errorf("versionAtLeast(%q, %q) = %v, want %v", tt.v, tt.min, got, tt.want)
		}
	}
}

func TestStartupTimeoutShowsLog(t *testing.T) {
	fakeEnv(t, "0.33.0", "never-ready")
	spec, _ := Preset(PresetVLLMAllOpt)
	spec.Model = "m"
	b, err := New(spec, quickOpts(0))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := b.Start(ctx, nil); err != nil {
		t.Fatal(err)
	}
	defer b.Stop(ctx)
	err = b.WaitHealthy(ctx, 500*time.Millisecond)
	if !errors.Is(err, ErrStartTimeout) {
		t.Fatalf("err = %v, want ErrStartTimeout", err)
	}
	if !strings.Contains(err.Error(), "fake server: still loading") {
		t.Errorf("error lacks the log's last lines: %v", err)
	}
}

func TestCrashIsReported(t *testing.T) {
	fakeEnv(t, "0.33.0", "crash-after")
	t.Setenv("FAKE_CRASH_AFTER", "300ms")
	spec, _ := Preset(PresetVLLMPage)
	spec.Model = "m"
	b, err := New(spec, quickOpts(0))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := b.Start(ctx, nil); err != nil {
		t.Fatal(err)
	}
	defer b.Stop(ctx)
	if err := b.WaitHealthy(ctx, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case <-b.Exited():
	case <-time.After(10 * time.Second):
		t.Fatal("crash not seen")
	}
	if err := b.ExitErr(); !errors.Is(err, ErrExited) || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("ExitErr = %v", err)
	}
	if !strings.Contains(b.LogTail(1), "out of memory") {
		t.Errorf("LogTail(1) = %q", b.LogTail(1))
	}
}

func TestExitBeforeHealthy(t *testing.T) {
	fakeEnv(t, "0.33.0", "")
	spec := Spec{Kind: KindExec, Command: []string{"vbsim", "--port", "not-a-port"}}
	b, err := New(spec, quickOpts(0))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := b.Start(ctx, nil); err != nil {
		t.Fatal(err)
	}
	defer b.Stop(ctx)
	err = b.WaitHealthy(ctx, 10*time.Second)
	if err == nil || !strings.Contains(err.Error(), "exited before it became healthy") || !strings.Contains(err.Error(), "fake server:") {
		t.Fatalf("err = %v", err)
	}
}

// TestStopLeavesNoOrphans: a server that ignores SIGTERM and a child that
// outlives its parent both end with the group; no member survives.
func TestStopLeavesNoOrphans(t *testing.T) {
	for _, mode := range []string{"stubborn", "child"} {
		t.Run(mode, func(t *testing.T) {
			fakeEnv(t, "", mode)
			spec := Spec{Kind: KindExec, Command: []string{"vbsim", "--port", "{port}", "--host", "{host}"}}
			opt := quickOpts(0)
			opt.StopGrace = 500 * time.Millisecond
			b, err := New(spec, opt)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if err := b.Start(ctx, nil); err != nil {
				t.Fatal(err)
			}
			if err := b.WaitHealthy(ctx, 10*time.Second); err != nil {
				b.Stop(ctx)
				t.Fatal(err)
			}
			pgid := b.(*process).pgid
			if err := b.Stop(ctx); err != nil {
				t.Fatalf("Stop: %v", err)
			}
			if err := syscall.Kill(-pgid, 0); !errors.Is(err, syscall.ESRCH) {
				t.Errorf("process group %d survives Stop (kill -0: %v)", pgid, err)
			}
			if !strings.Contains(b.LogTail(10), "child ") {
				t.Errorf("the fake never started its child; log: %s", b.LogTail(10))
			}
			if err := b.Stop(ctx); err != nil {
				t.Errorf("second Stop: %v", err)
			}
		})
	}
}

func TestVersionUndetected(t *testing.T) {
	fakeEnv(t, "", "") // the fake prints an empty line for --version
	spec, _ := Preset(PresetVLLMPage)
	spec.Model = "m"
	b, err := New(spec, quickOpts(0))
	if err != nil {
		t.Fatal(err)
	}
	err = b.Prepare(context.Background())
	if err == nil || !strings.Contains(err.Error(), "no version in output") || !strings.Contains(err.Error(), "vllm_version") {
		t.Errorf("Prepare = %v", err)
	}
	spec.VLLMVersion = "0.12.0" // given: no detection, the old variable
	b, _ = New(spec, quickOpts(0))
	if err := b.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c := b.Command(); len(c.Env) != 1 || c.Env[0] != "VLLM_ATTENTION_BACKEND=TRITON_ATTN" || c.Version != "0.12.0" {
		t.Errorf("command %+v", c)
	}
}

func TestNotInstalled(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	spec, _ := Preset(PresetVLLMPage)
	spec.Model = "m"
	b, err := New(spec, quickOpts(0))
	if err != nil {
		t.Fatal(err)
	}
	err = b.Prepare(context.Background())
	if !errors.Is(err, ErrNotInstalled) || !strings.Contains(err.Error(), "uv sync --extra vllm") {
		t.Errorf("err = %v", err)
	}
}

func TestFlashUnsupported(t *testing.T) {
	// python3 here is a fake that exits non-zero on -c, like a missing import.
	fakeEnv(t, "", "")
	spec, _ := Preset(PresetTorchBaseline)
	spec.Model = "m"
	spec.Attn = "flash"
	spec.Python = filepath.Join(fakeBin, "python3")
	b, err := New(spec, quickOpts(0))
	if err != nil {
		t.Fatal(err)
	}
	err = b.Prepare(context.Background())
	if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "flash_attn") {
		t.Errorf("err = %v", err)
	}
}

func TestPortInUse(t *testing.T) {
	fakeEnv(t, "", "")
	port, _ := FreePort("127.0.0.1")
	ln, err := (&netListener{}).listen(port)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	b, err := New(Spec{Kind: KindSim}, quickOpts(port))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Prepare(context.Background()); err == nil || !strings.Contains(err.Error(), strconv.Itoa(port)) {
		t.Errorf("Prepare on a busy port: %v", err)
	}
}

func TestSpecValidate(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
		want []string
	}{
		{"ok", Spec{Kind: KindSim}, nil},
		{"no kind", Spec{}, []string{"kind is missing"}},
		{"bad kind", Spec{Kind: "tgi"}, []string{`kind "tgi" is unknown`}},
		{"vllm needs model", Spec{Kind: KindVLLM}, []string{"needs a model"}},
		{"exec needs command", Spec{Kind: KindExec}, []string{"needs command"}},
		{"many", Spec{Kind: KindVLLM, Model: "m", GPUMemoryUtilization: 1.5, MaxNumSeqs: -1, OptimizationLevel: ptr(5),
			AttentionVia: "both", SpeculativeConfig: "{", KVPolicy: "lifo", Attn: "xformers", SimPolicy: "x"},
			[]string{"gpu_memory_utilization", "max_num_seqs -1", "optimization_level 5", "attention_via", "speculative_config", "kv_policy", "attn \"xformers\"", "sim_policy"}},
		{"kv tokens negative", Spec{Kind: KindSim, KVCacheTokens: -1}, []string{"kv_cache_tokens -1"}},
		{"kv tokens transformers", Spec{Kind: KindTransformers, Model: "m", KVCacheTokens: 10}, []string{"transformers serve cannot fix its KV capacity"}},
		{"kv tokens and gib", Spec{Kind: KindTorch, Model: "m", KVCacheTokens: 10, KVBudgetGiB: 1}, []string{"keep one"}},
		{"kv tokens sim disagree", Spec{Kind: KindSim, KVCacheTokens: 10, SimKVTokens: 20}, []string{"disagree"}},
		{"kv tokens sim agree", Spec{Kind: KindSim, KVCacheTokens: 10, SimKVTokens: 10}, nil},
		{"kv tokens vllm extra", Spec{Kind: KindVLLM, Model: "m", KVCacheTokens: 10, ExtraArgs: []string{"--num-gpu-blocks-override=4"}}, []string{"extra_args --num-gpu-blocks-override both size"}},
		{"kv tokens torch extra", Spec{Kind: KindTorch, Model: "m", KVCacheTokens: 10, ExtraArgs: []string{"--kv-budget-gib", "1"}}, []string{"extra_args --kv-budget-gib both size"}},
		{"tensor parallel is vllm's", Spec{Kind: KindSim, TensorParallelSize: 2}, []string{"tensor_parallel_size is a vllm setting"}},
		{"gpu_count below tp", Spec{Kind: KindVLLM, Model: "m", TensorParallelSize: 4, GPUCount: 2}, []string{"needs gpu_count ≥ 4"}},
		{"negative gpu_count", Spec{Kind: KindSim, GPUCount: -1}, []string{"gpu_count -1"}},
		{"tp with room", Spec{Kind: KindVLLM, Model: "m", TensorParallelSize: 2, GPUCount: 4}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.spec.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %v", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestPresetsAreValidAndIndependent(t *testing.T) {
	for _, name := range PresetNames() {
		p, err := Preset(name)
		if err != nil {
			t.Fatal(err)
		}
		if p.Kind != KindSim {
			p.Model = "m"
		}
		if err := p.Validate(); err != nil {
			t.Errorf("preset %s: %v", name, err)
		}
		if p.EnforceEager != nil {
			*p.EnforceEager = !*p.EnforceEager // must not change the table
		}
	}
	a, _ := Preset(PresetVLLMPage)
	if !*a.EnforceEager {
		t.Error("Preset returned a shared pointer: the table changed")
	}
	if _, err := Preset("nope"); err == nil || !strings.Contains(err.Error(), "vllm-page") {
		t.Errorf("unknown preset error = %v", err)
	}
}

func TestTailBuffer(t *testing.T) {
	tb := newTailBuffer(16)
	tb.Write([]byte("one\ntwo\nthree\nfour\n"))
	if got := tb.Last(2); got != "three\nfour" {
		t.Errorf("Last(2) = %q", got)
	}
	if got := tb.Last(10); got != "two\nthree\nfour" {
		t.Errorf("Last(10) after trimming = %q", got)
	}
}

func TestFreePortAvoidsEphemeralRange(t *testing.T) {
	lo, _ := ephemeralRange()
	for range 20 {
		p, err := FreePort("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		if lo > 11000 && (p < 10000 || p >= lo) {
			t.Errorf("FreePort = %d, want in [10000, %d)", p, lo)
		}
		ln, err := (&netListener{}).listen(p)
		if err != nil {
			t.Errorf("FreePort = %d, not bindable: %v", p, err)
			continue
		}
		ln.Close()
	}
}

// BenchmarkLifecycle measures what one trial pays for the backend's life
// apart from the server's own start-up: resolve, spawn, health polling
// (20 ms period here, 250 ms by default), SIGTERM and the port check.
func BenchmarkLifecycle(b *testing.B) {
	b.Setenv("PATH", fakeBin+string(os.PathListSeparator)+os.Getenv("PATH"))
	b.Setenv("FAKE_MODE", "")
	b.Setenv("FAKE_RECORD", "")
	b.ReportAllocs()
	ctx := context.Background()
	for b.Loop() {
		be, err := New(Spec{Kind: KindSim}, quickOpts(0))
		if err != nil {
			b.Fatal(err)
		}
		if err := be.Start(ctx, nil); err != nil {
			b.Fatal(err)
		}
		if err := be.WaitHealthy(ctx, 10*time.Second); err != nil {
			b.Fatal(err)
		}
		if err := be.Stop(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

func TestSpecGPUs(t *testing.T) {
	for _, tt := range []struct {
		spec    Spec
		gpus    int
		usesGPU bool
	}{
		{Spec{Kind: KindSim}, 1, false},
		{Spec{Kind: KindSim, GPUCount: 2}, 2, true},
		{Spec{Kind: KindVLLM, TensorParallelSize: 4}, 4, true},
		{Spec{Kind: KindVLLM, TensorParallelSize: 2, GPUCount: 4}, 4, true},
		{Spec{Kind: KindTorch}, 1, true},
		{Spec{Kind: KindExec}, 1, false},
	} {
		if g, u := tt.spec.GPUs(), tt.spec.UsesGPU(); g != tt.gpus || u != tt.usesGPU {
			t.Errorf("%+v: GPUs() = %d, UsesGPU() = %v; want %d, %v", tt.spec, g, u, tt.gpus, tt.usesGPU)
		}
	}
}

// TestGPUsPinTheServer: Options.GPUs reaches the server as
// CUDA_VISIBLE_DEVICES, over the variant's own env, and is shown in the
// resolved command.
func TestGPUsPinTheServer(t *testing.T) {
	rec := fakeEnv(t, "0.33.0", "")
	spec := Spec{Kind: KindSim, Env: map[string]string{"CUDA_VISIBLE_DEVICES": "7", "FAKE_KEEP": "1"}}
	port, err := FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	opt := quickOpts(port)
	opt.GPUs = []string{"2", "3"}
	opt.SearchDirs = []string{fakeBin}
	b, err := New(spec, opt)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := b.Start(ctx, io.Discard); err != nil {
		t.Fatal(err)
	}
	defer b.Stop(ctx)
	if err := b.WaitHealthy(ctx, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	got := readRecord(t, rec)
	if got.Env["CUDA_VISIBLE_DEVICES"] != "2,3" || got.Env["FAKE_KEEP"] != "1" {
		t.Errorf("server env: %v", got.Env)
	}
	if env := b.Command().Env; !slices.Contains(env, "CUDA_VISIBLE_DEVICES=2,3") || slices.Contains(env, "CUDA_VISIBLE_DEVICES=7") {
		t.Errorf("resolved command env: %v", env)
	}
}

// TestGPUMemoryOfLanes: the memory check sums the pinned GPUs, asking
// nvidia-smi for exactly those.
func TestGPUMemoryOfLanes(t *testing.T) {
	dir := t.TempDir()
	script := "#!/bin/sh\necho \"$@\" > " + filepath.Join(dir, "args") + "\nprintf '100\\n250\\n'\n"
	if err := os.WriteFile(filepath.Join(dir, "nvidia-smi"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	used, err := gpuMemoryUsedMiB(context.Background(), []string{"2", "3"})
	args, _ := os.ReadFile(filepath.Join(dir, "args"))
	if err != nil || used != 350 || !strings.Contains(string(args), "-i 2,3") {
		t.Errorf("used %d, %v; nvidia-smi called with %q", used, err, args)
	}
}

// TestVersionAmidWarnings: `vllm --version` on a GPU host prints import
// warnings that name other packages' versions around the version line;
// the line that is only a version wins.
func TestVersionAmidWarnings(t *testing.T) {
	fakeEnv(t, "INFO 12-03 torch 2.11.0+cu130 detected\n0.26.0\nWARNING transformers 5.17.0 is newer than tested (4.57)", "")
	spec, _ := Preset(PresetVLLMPage)
	spec.Model = "m"
	b, err := New(spec, quickOpts(0))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	if v := b.Command().Version; v != "0.26.0" {
		t.Errorf("version %q; want 0.26.0", v)
	}
}
