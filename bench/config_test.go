package bench

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vbench/vbench/backends"
	"github.com/vbench/vbench/internal/testbin"
	"github.com/vbench/vbench/replay"
)

const minimalStudy = `
name = "t"
[trace]
path = "trace.bin"
[run]
rates = [1, 5]
duration = "10s"
[[models]]
name = "m"
model = "Qwen/Qwen3-8B"
max_model_len = 4096
variants = ["vllm-page", "mine"]
[variants.mine]
preset = "vllm-page+flash"
max_num_seqs = 64
prefix_caching = true
extra_args = ["--seed", "1"]
`

func TestParseStudyResolvesPresetsAndOverrides(t *testing.T) {
	s, err := ParseStudy(minimalStudy)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := s.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 1 || len(vs[0]) != 2 {
		t.Fatalf("resolved %v", vs)
	}
	page, mine := vs[0][0].Spec, vs[0][1].Spec
	if page.AttentionBackend != "TRITON_ATTN" || !*page.EnforceEager || *page.PrefixCaching || page.Model != "Qwen/Qwen3-8B" || page.MaxModelLen != 4096 {
		t.Errorf("vllm-page = %+v", page)
	}
	if mine.AttentionBackend != "FLASH_ATTN" || !*mine.EnforceEager || !*mine.PrefixCaching || mine.MaxNumSeqs != 64 ||
		strings.Join(mine.ExtraArgs, " ") != "--seed 1" || vs[0][1].Preset != "vllm-page+flash" {
		t.Errorf("mine = %+v", mine)
	}
	if s.Run.Repetitions != 1 || s.Run.Drain != 0 || s.Run.MaxDrain.D() != replay.DefaultMaxDrain || s.Budget.D() != DefaultBudget || s.ResultsDir != "results" {
		t.Errorf("defaults not applied: %+v", s.Run)
	}
	// Overriding must not have changed the preset table.
	p, _ := backends.Preset("vllm-page+flash")
	if *p.PrefixCaching || p.MaxNumSeqs != 0 {
		t.Error("a study override leaked into the preset table")
	}
}

func TestParseStudyErrors(t *testing.T) {
	tests := []struct {
		name string
		text string
		want []string
	}{
		{"unknown keys everywhere", minimalStudy + "\ncolour = 1\n[run.early_stop]\nnormalised_latency = \"1s\"\n", []string{"unknown keys", "colour", "run.early_stop.normalised_latency"}},
		{"unknown key in a variant", strings.Replace(minimalStudy, "max_num_seqs = 64", "max_num_seq = 64", 1), []string{"unknown keys", "variants.mine.max_num_seq"}},
		{"unknown preset", strings.Replace(minimalStudy, `"vllm-page", "mine"`, `"vllm-pagd"`, 1), []string{`variant "vllm-pagd"`, "no preset"}},
		{"bad values all at once", `
name = ""
[trace]
[run]
rates = [5, 1, -2]
repetitions = -1
[[models]]
model = "m"
variants = []
`, []string{"name is missing", "trace.path is missing", "rates must rise", "rates[2] = -2", "run.duration is missing", "repetitions -1", "variants is empty"}},
		{"bad duration", strings.Replace(minimalStudy, `"10s"`, `"ten seconds"`, 1), []string{"want a value like 90s"}},
		{"bad spec value", strings.Replace(minimalStudy, "max_num_seqs = 64", "optimization_level = 9\nattention_via = \"both\"", 1), []string{"optimization_level 9", "attention_via"}},
		{"exec needs a command", minimalStudy + "\n[variants.srv]\nkind = \"exec\"\n", []string{`variant "srv"`, "needs command"}},
		{"not toml", "name = [", []string{"bench: study"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseStudy(tt.text)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

// TestWarmupConfig: run.warmup_mode and [run.engine_warmup] are read,
// defaulted and checked, each problem named by its key.
func TestWarmupConfig(t *testing.T) {
	with := func(run string) string {
		return strings.Replace(minimalStudy, "duration = \"10s\"\n", "duration = \"10s\"\n"+run, 1)
	}
	tests := []struct {
		name     string
		run      string
		mode     string
		engine   EngineWarmup
		wantErrs []string
	}{
		{"defaults", ``, "run", EngineWarmup{}, nil},
		{"level", "warmup = \"5s\"\nwarmup_mode = \"level\"\n", "level", EngineWarmup{}, nil},
		{"run", "warmup_mode = \"run\"\n", "run", EngineWarmup{}, nil},
		{"engine warm-up", "[run.engine_warmup]\nduration = \"20s\"\nconcurrency = 64\n", "run", EngineWarmup{Duration: Duration(20 * time.Second), Concurrency: 64}, nil},
		{"engine warm-up off", "[run.engine_warmup]\nduration = \"0s\"\nconcurrency = 64\n", "run", EngineWarmup{Concurrency: 64}, nil},
		{"bad mode", "warmup_mode = \"levels\"\n", "", EngineWarmup{}, []string{`run.warmup_mode "levels": want "run"`, `or "level"`}},
		{"negative duration", "[run.engine_warmup]\nduration = \"-5s\"\nconcurrency = 64\n", "", EngineWarmup{}, []string{"run.engine_warmup.duration -5s: must not be negative"}},
		{"no concurrency", "[run.engine_warmup]\nduration = \"20s\"\n", "", EngineWarmup{}, []string{"run.engine_warmup.concurrency 0: want 1 or more requests in flight with run.engine_warmup.duration 20s"}},
		{"negative concurrency", "[run.engine_warmup]\nduration = \"20s\"\nconcurrency = -1\n", "", EngineWarmup{}, []string{"run.engine_warmup.concurrency -1: want 1 or more"}},
		{"negative concurrency, off", "[run.engine_warmup]\nconcurrency = -1\n", "", EngineWarmup{}, []string{"run.engine_warmup.concurrency -1: must not be negative"}},
		{"unknown key", "[run.engine_warmup]\nduration = \"20s\"\nconcurency = 64\n", "", EngineWarmup{}, []string{"unknown keys: run.engine_warmup.concurency"}},
		{"all at once", "warmup_mode = \"x\"\n[run.engine_warmup]\nduration = \"20s\"\n", "", EngineWarmup{}, []string{"run.warmup_mode \"x\"", "run.engine_warmup.concurrency 0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseStudy(with(tt.run))
			if len(tt.wantErrs) > 0 {
				for _, w := range tt.wantErrs {
					if err == nil || !strings.Contains(err.Error(), w) {
						t.Errorf("error %v; want one that says %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Run.WarmupMode != tt.mode || s.Run.EngineWarmup != tt.engine {
				t.Errorf("warmup_mode %q, engine_warmup %+v; want %q, %+v", s.Run.WarmupMode, s.Run.EngineWarmup, tt.mode, tt.engine)
			}
		})
	}
}

func TestSanitizeName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Qwen/Qwen3-8B", "Qwen_Qwen3-8B"},
		{"vllm-page+flash", "vllm-page+flash"},
		{"../../etc/passwd", "_.._etc_passwd"},
		{"/abs/path", "_abs_path"},
		{"..", "_"},
		{"a b:c*?", "a_b_c__"},
		{"ünï", "_n_"},
		{"", "_"},
	}
	for _, tt := range tests {
		got := SanitizeName(tt.in)
		if got != tt.want {
			t.Errorf("SanitizeName(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if p, err := under("/r", got); err != nil || filepath.Dir(p) != "/r" {
			t.Errorf("SanitizeName(%q) = %q escapes: %v %v", tt.in, got, p, err)
		}
	}
	if _, err := under("/r", "..", "x"); err == nil {
		t.Error("under accepted ..")
	}
}

// TestExamplesPlan: every checked-in example study is accepted by plan.
func TestExamplesPlan(t *testing.T) {
	files, _ := filepath.Glob("../examples/*.toml")
	if len(files) < 3 {
		t.Fatalf("want at least 3 example studies, found %v", files)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			s, err := LoadStudy(f)
			if err != nil {
				t.Fatal(err)
			}
			p, err := MakePlan(context.Background(), s)
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			p.Print(&b)
			if err := p.Err(); err != nil {
				t.Fatalf("plan errors:\n%s", b.String())
			}
			if !strings.Contains(b.String(), "plan ok") {
				t.Errorf("plan output:\n%s", b.String())
			}
		})
	}
}

func TestMain(m *testing.M) { os.Exit(testbin.Main(m)) }

// TestModelBudget: a model's kv_cache_tokens, max_num_seqs and
// max_num_batched_tokens reach every variant that leaves them unset, on the
// kinds that have the knob; a variant's own key, or another way of sizing
// its KV cache, wins.
func TestModelBudget(t *testing.T) {
	s, err := ParseStudy(`
name = "t"
[trace]
path = "trace.bin"
[run]
rates = [1]
duration = "10s"
[[models]]
name = "m"
model = "/m"
max_model_len = 2048
kv_cache_tokens = 32768
max_num_seqs = 256
max_num_batched_tokens = 8192
variants = ["vllm-page", "torch-oracle", "torch-gib", "transformers-cb", "sim-paged", "small"]
[variants.torch-oracle]
preset = "torch-baseline"
kv_policy = "oracle"
[variants.torch-gib]
preset = "torch-baseline"
kv_budget_gib = 4
[variants.small]
preset = "vllm-all-opt"
kv_cache_tokens = 1024
max_num_seqs = 8
`)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := s.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][3]int{ // kv tokens, seqs, batched tokens
		"vllm-page": {32768, 256, 8192}, "torch-oracle": {32768, 256, 8192}, "torch-gib": {0, 256, 8192},
		"transformers-cb": {0, 256, 8192}, "sim-paged": {32768, 256, 8192}, "small": {1024, 8, 8192},
	}
	for _, v := range vs[0] {
		got := [3]int{v.Spec.KVCacheTokens, v.Spec.MaxNumSeqs, v.Spec.MaxNumBatchedTokens}
		if got != want[v.Name] {
			t.Errorf("%s: kv tokens, seqs, batched = %v; want %v", v.Name, got, want[v.Name])
		}
		if err := v.Spec.Validate(); err != nil {
			t.Errorf("%s: %v", v.Name, err)
		}
	}
}

// TestModelBudgetLeavesOtherSizing: a variant that sizes its KV cache with
// a server flag in extra_args keeps it; the study-wide kv_cache_tokens
// does not reach it (the two would conflict).
func TestModelBudgetLeavesOtherSizing(t *testing.T) {
	s, err := ParseStudy(`
name = "t"
[trace]
path = "trace.bin"
[run]
rates = [1]
duration = "10s"
[[models]]
name = "m"
model = "/m"
kv_cache_tokens = 32768
variants = ["own"]
[variants.own]
preset = "vllm-page"
extra_args = ["--num-gpu-blocks-override=100"]
`)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := s.Resolve()
	if err != nil || vs[0][0].Spec.KVCacheTokens != 0 {
		t.Errorf("variant with its own KV sizing got kv_cache_tokens %d (err %v); want 0", vs[0][0].Spec.KVCacheTokens, err)
	}
}

// TestStudyDocs: the study file docs/vbbench.md shows is valid, every key
// it lists is read, its warm-ups included.
func TestStudyDocs(t *testing.T) {
	doc, err := os.ReadFile("../docs/vbbench.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "```toml\nname = ")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("docs/vbbench.md has no ```toml block of a study")
	}
	s, err := ParseStudy("name = " + block)
	if err != nil {
		t.Fatalf("the documented study: %v", err)
	}
	if s.Run.WarmupMode != "run" || s.Run.EngineWarmup != (EngineWarmup{Duration: Duration(20 * time.Second), Concurrency: 64}) {
		t.Errorf("the documented study's warm-ups: mode %q, engine %+v", s.Run.WarmupMode, s.Run.EngineWarmup)
	}
}

// TestOrderVariants: the named variants first, in the order given, the
// rest after in the study's order, for every model; a name of no model's,
// or named twice, is an error.
func TestOrderVariants(t *testing.T) {
	s := &Study{Models: []ModelConfig{
		{Name: "a", Variants: []string{"max", "pow2", "oracle", "page", "flash", "opt"}},
		{Name: "b", Variants: []string{"page", "opt", "oracle"}},
	}}
	if err := s.OrderVariants([]string{"flash", "oracle", "page"}); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"flash oracle page max pow2 opt", "oracle page opt"} {
		if got := strings.Join(s.Models[i].Variants, " "); got != want {
			t.Errorf("model %s: %s, want %s", s.Models[i].Name, got, want)
		}
	}
	for _, tt := range []struct {
		order []string
		want  string
	}{
		{[]string{"page", "nope"}, `variant "nope" in the order is not a variant of any model`},
		{[]string{"page", "page"}, `variant "page" is named twice`},
	} {
		if err := s.OrderVariants(tt.order); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("OrderVariants(%v): %v, want %q", tt.order, err, tt.want)
		}
	}
}
