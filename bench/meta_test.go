package bench

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestServerAllocation reads what vLLM 0.26.0 says it allocated from its
// cache_config_info labels (the line is from a real H200 scrape, trimmed),
// and vbtorch's capacity gauge; a server without either gives nil.
func TestServerAllocation(t *testing.T) {
	bodies := map[string]string{
		"/vllm/metrics": `# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig
vllm:cache_config_info{block_size="16",cache_dtype="auto",engine="0",gpu_memory_utilization="0.6",kv_cache_max_concurrency="16.0",kv_cache_size_tokens="32768",num_gpu_blocks="2048",num_gpu_blocks_override="2048"} 1.0
vllm:num_requests_running{engine="0"} 0
`,
		"/torch/metrics": "vbtorch:kv_capacity_tokens 32768\nvbtorch:steps_total 0\n",
		"/none/metrics":  "x 1\n",
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := bodies[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(b))
	}))
	defer srv.Close()
	ctx := context.Background()
	got, err := ServerAllocation(ctx, srv.URL+"/vllm")
	want := map[string]float64{
		"vllm:cache_config_info:block_size": 16, "vllm:cache_config_info:gpu_memory_utilization": 0.6,
		"vllm:cache_config_info:kv_cache_max_concurrency": 16, "vllm:cache_config_info:kv_cache_size_tokens": 32768,
		"vllm:cache_config_info:num_gpu_blocks": 2048, "vllm:cache_config_info:num_gpu_blocks_override": 2048,
	}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("vLLM allocation = %v, %v; want %v", got, err, want)
	}
	if n := allocationNote(got); n != "; KV 32768 tokens (2048 blocks of 16)" {
		t.Errorf("note %q", n)
	}
	got, err = ServerAllocation(ctx, srv.URL+"/torch")
	if err != nil || !reflect.DeepEqual(got, map[string]float64{"vbtorch:kv_capacity_tokens": 32768}) {
		t.Errorf("vbtorch allocation = %v, %v", got, err)
	}
	if got, err := ServerAllocation(ctx, srv.URL+"/none"); got != nil || err != nil {
		t.Errorf("server without allocation metrics = %v, %v; want nil, nil", got, err)
	}
	if _, err := ServerAllocation(ctx, srv.URL+"/missing"); err == nil {
		t.Error("404 /metrics: no error")
	}
}

// TestShebangPython finds the interpreter of a pip --target console script
// ("#!/usr/bin/env python3"), as the offline bundle's bin/vllm has.
func TestShebangPython(t *testing.T) {
	dir := t.TempDir()
	py := filepath.Join(dir, "python3")
	if err := os.WriteFile(py, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	for _, c := range []struct{ first, want string }{
		{"#!/usr/bin/env python3", py},
		{"#!" + py, py},
		{"#!/bin/sh", ""},
		{"no shebang", ""},
	} {
		script := filepath.Join(dir, "vllm")
		if err := os.WriteFile(script, []byte(c.first+"\nimport sys\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		if got := shebangPython(script); got != c.want {
			t.Errorf("shebangPython(%q) = %q; want %q", c.first, got, c.want)
		}
	}
}

func TestKVAllocation(t *testing.T) {
	for _, tt := range []struct {
		name string
		a    map[string]float64
		want KVCache
		ok   bool
	}{
		{"vLLM", map[string]float64{"vllm:cache_config_info:kv_cache_size_tokens": 32768, "vllm:cache_config_info:num_gpu_blocks": 2048, "vllm:cache_config_info:block_size": 16}, KVCache{32768, 2048, 16}, true},
		{"vLLM without the token count", map[string]float64{"vllm:cache_config_info:num_gpu_blocks": 512, "vllm:cache_config_info:block_size": 16}, KVCache{8192, 512, 16}, true},
		{"vbtorch", map[string]float64{"vbtorch:kv_capacity_tokens": 32768}, KVCache{Tokens: 32768}, true},
		{"vbsim", map[string]float64{"vbsim:kv_cache_capacity_tokens": 4096}, KVCache{Tokens: 4096}, true},
		{"nothing", map[string]float64{"vllm:cache_config_info:gpu_memory_utilization": 0.6}, KVCache{}, false},
		{"nil", nil, KVCache{}, false},
	} {
		if got, ok := KVAllocation(tt.a); got != tt.want || ok != tt.ok {
			t.Errorf("%s: %+v %v; want %+v %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}
