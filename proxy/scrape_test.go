package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vbench/vbench/capture"
)

func TestParseMetrics(t *testing.T) {
	text := `# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 3.0
vllm:num_requests_running{engine="1",model_name="m"} 2
vllm:num_requests_waiting{model_name="a}b \"q\""} 7 1700000000000
vllm:gpu_cache_usage_perc{model_name="m"} 0.5
vllm:kv_cache_usage_perc{model_name="m"} 0.25
vllm:num_preemptions_total{model_name="m"} 4
vllm:num_requests_running_other 99
vllm:time_to_first_token_seconds_bucket{le="0.1"} 5
broken{ 1
vllm:num_requests_waiting notanumber
`
	got := ParseMetrics([]byte(text), 42)
	want := []capture.Sample{
		{At: 42, Name: capture.MetricRunning, Value: 5},
		{At: 42, Name: capture.MetricWaiting, Value: 7},
		{At: 42, Name: capture.MetricKVUsage, Value: 0.25},
		{At: 42, Name: capture.MetricPreemptions, Value: 4},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("ParseMetrics = %v; want %v", got, want)
	}
	// Older vLLM: only gpu_cache_usage_perc.
	got = ParseMetrics([]byte("vllm:gpu_cache_usage_perc 0.5\nvllm:num_preemptions 1\n"), 1)
	want = []capture.Sample{{At: 1, Name: capture.MetricPreemptions, Value: 1}, {At: 1, Name: capture.MetricKVUsage, Value: 0.5}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("ParseMetrics(old names) = %v; want %v", got, want)
	}
}

func FuzzParseMetrics(f *testing.F) {
	f.Add([]byte("vllm:num_requests_running{a=\"}\"} 3\n# c\nvllm:num_preemptions_total 2 17\n"))
	f.Add([]byte("vllm:kv_cache_usage_perc{x=\"\\\"\"} NaN\r\n"))
	f.Add([]byte("vbtorch:steps_total{engine=\"0\"} 12\nvbsim:step_seconds_bucket{le=\"+Inf\"} 3\nvbsim:step_seconds_sum 0.5\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, s := range ParseMetrics(b, 1) {
			if s.At != 1 || s.Name == "" {
				t.Fatalf("bad sample %+v", s)
			}
		}
		names := map[string]bool{}
		for _, s := range ParseMetrics(b, 1, "vbtorch:*", "vbsim:step_seconds", "vllm:*") {
			if s.At != 1 || s.Name == "" || names[s.Name] {
				t.Fatalf("bad or repeated sample %+v", s)
			}
			names[s.Name] = true
		}
		if len(names) > 4+MaxExtraSeries {
			t.Fatalf("%d series kept; at most %d", len(names), 4+MaxExtraSeries)
		}
	})
}

func TestParseMetricsExtra(t *testing.T) {
	text := `# TYPE vbtorch:kv_filled_tokens gauge
vbtorch:kv_filled_tokens{engine="0",model_name="m"} 300
vbtorch:kv_reserved_tokens{engine="0",model_name="m"} 1000
vbtorch:steps_total{engine="0",model_name="m"} 12
vbtorch:steps_created{engine="0",model_name="m"} 1.7e9
vllm:num_requests_running{engine="0",model_name="m"} 2
vllm:num_preemptions_total{model_name="m"} 1
vbsim:step_seconds_bucket{le="0.1"} 3
vbsim:step_seconds_bucket{le="+Inf"} 4
vbsim:step_seconds_sum 0.25
vbsim:step_seconds_count 4
vbsim:step_seconds_other 9
vbsim:steps_total 4
vllm:iteration_tokens_total_sum{engine="0"} 100
vllm:iteration_tokens_total_sum{engine="1"} 20
vllm:iteration_tokens_total_count 7
vllm:iteration_tokens_total_bucket{le="1"} 1
`
	got := ParseMetrics([]byte(text), 9, "vbtorch:*", "vbsim:step_seconds", "vllm:iteration_tokens_total", "vllm:num_requests_*")
	want := []capture.Sample{
		{At: 9, Name: capture.MetricRunning, Value: 2},
		{At: 9, Name: capture.MetricPreemptions, Value: 1},
		{At: 9, Name: "vbsim:step_seconds_count", Value: 4},
		{At: 9, Name: "vbsim:step_seconds_sum", Value: 0.25},
		{At: 9, Name: "vbtorch:kv_filled_tokens", Value: 300},
		{At: 9, Name: "vbtorch:kv_reserved_tokens", Value: 1000},
		{At: 9, Name: "vbtorch:steps_total", Value: 12},
		{At: 9, Name: "vllm:iteration_tokens_total_count", Value: 7},
		{At: 9, Name: "vllm:iteration_tokens_total_sum", Value: 120},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("ParseMetrics(extra) =\n%v\nwant\n%v", got, want)
	}
	// Without patterns nothing else is kept.
	if got := ParseMetrics([]byte(text), 9); len(got) != 2 {
		t.Errorf("ParseMetrics(no extra) = %v; want the two vLLM samples", got)
	}
	// A broad prefix keeps at most MaxExtraSeries names.
	var b strings.Builder
	for i := range MaxExtraSeries + 10 {
		fmt.Fprintf(&b, "x:m%03d 1\nx:m%03d{a=\"b\"} 1\n", i, i)
	}
	got = ParseMetrics([]byte(b.String()), 1, "x:*")
	if len(got) != MaxExtraSeries || got[0].Value != 2 {
		t.Errorf("ParseMetrics(%d series) kept %d (first %v); want %d, each summed over its label sets", MaxExtraSeries+10, len(got), got[0], MaxExtraSeries)
	}
}

func TestScrapeMetricMatches(t *testing.T) {
	for _, c := range []struct {
		pattern, name string
		want          bool
	}{
		{"vbtorch:steps", "vbtorch:steps_total", true},
		{"vbtorch:steps", "vbtorch:steps", true},
		{"vbtorch:steps", "vbtorch:steps_created", false},
		{"vbtorch:steps", "vbtorch:step_seconds_total", false},
		{"vbsim:step_seconds", "vbsim:step_seconds_sum", true},
		{"vbsim:step_seconds", "vbsim:step_seconds_count", true},
		{"vbsim:step_seconds", "vbsim:step_seconds_bucket", false},
		{"vbsim:step_seconds_bucket", "vbsim:step_seconds_bucket", true},
		{"vbtorch:*", "vbtorch:kv_largest_hole_tokens", true},
		{"vbtorch:*", "vbtorch:steps_created", false},
		{"vbsim:*", "vbsim:batch_size_bucket", false},
		{"vbsim:*", "vllm:num_requests_running", false},
	} {
		if got := ScrapeMetricMatches(c.pattern, c.name); got != c.want {
			t.Errorf("ScrapeMetricMatches(%q, %q) = %v; want %v", c.pattern, c.name, got, c.want)
		}
	}
}

func TestValidateScrapeMetrics(t *testing.T) {
	if err := ValidateScrapeMetrics([]string{"vbtorch:*", "vllm:iteration_tokens_total", "_x", "a:b_c9"}); err != nil {
		t.Errorf("valid patterns: %v", err)
	}
	err := ValidateScrapeMetrics([]string{"*", "", "9abc", "a*b", "a b", "vbtorch:**"})
	if err == nil {
		t.Fatal("bad patterns accepted")
	}
	for _, want := range []string{`"*"`, "empty name", `"9abc"`, `"a*b"`, `"a b"`, `"vbtorch:**"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	cfg := Config{Upstream: "127.0.0.1:1", ScrapeMetrics: []string{"vbtorch:*"}}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "need a scrape interval") {
		t.Errorf("Validate without interval = %v; want a missing-interval error", err)
	}
}

// TestScrapeExtra scrapes a loopback /metrics with vbtorch's names through
// a running proxy and checks the extra series arrive under their names.
func TestScrapeExtra(t *testing.T) {
	leakCheck(t)
	var steps atomic.Int64
	addr, _ := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		n := steps.Add(1)
		fmt.Fprintf(w, "# TYPE vbtorch:steps_total counter\nvbtorch:steps_total{engine=\"0\"} %d\n"+
			"vbtorch:kv_filled_tokens{engine=\"0\"} 30\nvbtorch:kv_largest_hole_tokens 7\n"+
			"vllm:num_requests_running 1\nvllm:iteration_tokens_total_sum 5\nvllm:iteration_tokens_total_bucket{le=\"1\"} 1\nother 3\n", n)
	})
	sink := newMemSink()
	p, _ := startProxy(t, Config{Upstream: addr, ScrapeInterval: 20 * time.Millisecond,
		ScrapeMetrics: []string{"vbtorch:*", "vllm:iteration_tokens_total"}}, sink)
	deadline := time.Now().Add(10 * time.Second)
	for p.Stats().Samples < 15 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	sink.mu.Lock()
	samples := append([]capture.Sample(nil), sink.samples...)
	sink.mu.Unlock()
	byName := map[string][]float64{}
	for _, s := range samples {
		byName[s.Name] = append(byName[s.Name], s.Value)
	}
	for _, name := range []string{capture.MetricRunning, "vbtorch:steps_total", "vbtorch:kv_filled_tokens", "vbtorch:kv_largest_hole_tokens", "vllm:iteration_tokens_total_sum"} {
		if len(byName[name]) < 3 {
			t.Errorf("%s: %d samples; want one per scrape (all: %v)", name, len(byName[name]), byName)
		}
	}
	if len(byName) != 5 {
		t.Errorf("series kept: %v; want exactly the five selected", byName)
	}
	if s := byName["vbtorch:steps_total"]; len(s) >= 2 && s[1] <= s[0] {
		t.Errorf("vbtorch:steps_total %v; want rising per scrape", s)
	}
}

func TestScrape(t *testing.T) {
	leakCheck(t)
	running := 0
	addr, _ := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		running++
		fmt.Fprintf(w, "vllm:num_requests_running{model_name=\"m\"} %d\nvllm:num_requests_waiting{model_name=\"m\"} 1\n", running)
	})
	sink := newMemSink()
	p, url := startProxy(t, Config{Upstream: addr, ScrapeInterval: 20 * time.Millisecond}, sink)
	deadline := time.Now().Add(10 * time.Second)
	for p.Stats().Samples < 6 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	sink.mu.Lock()
	samples := append([]capture.Sample(nil), sink.samples...)
	sink.mu.Unlock()
	if len(samples) < 6 {
		t.Fatalf("%d samples after 10s of 20ms scrapes", len(samples))
	}
	var last int64
	for _, s := range samples {
		if s.At < last || (s.Name != capture.MetricRunning && s.Name != capture.MetricWaiting) {
			t.Errorf("sample %+v out of order or unexpected", s)
		}
		last = s.At
	}
	resp, err := newClient(t).Get(url + "/vb/health")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"status":"ok"`) {
		t.Errorf("/vb/health: %d %s", resp.StatusCode, body)
	}
	resp, err = newClient(t).Get(url + "/vb/nope")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 || len(sink.records()) != 0 {
		t.Errorf("/vb/nope: %d, %d records; want 404 and no record (admin paths are not forwarded)", resp.StatusCode, len(sink.records()))
	}
}

func TestScrapeUnreachableCounts(t *testing.T) {
	sink := newMemSink()
	p, _ := startProxy(t, Config{Upstream: "127.0.0.1:1", ScrapeInterval: 20 * time.Millisecond}, sink)
	deadline := time.Now().Add(10 * time.Second)
	for p.Stats().ScrapeErrors < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if st := p.Stats(); st.ScrapeErrors < 2 || st.Samples != 0 {
		t.Errorf("stats %+v; want scrape errors counted", st)
	}
}

// TestParseMetricsCacheConfigInfo reads the KV allocation from vLLM
// 0.26.0's cache_config_info line (copied from a real H200 scrape): the
// numeric labels become samples, the others (and the engine index) do not.
func TestParseMetricsCacheConfigInfo(t *testing.T) {
	text := `# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig
# TYPE vllm:cache_config_info gauge
vllm:cache_config_info{_block_size_resolved="True",block_size="16",cache_dtype="auto",calculate_kv_scales="False",enable_prefix_caching="True",engine="0",gpu_memory_utilization="0.5",is_attention_free="False",kv_cache_dtype_skip_layers="[]",kv_cache_max_concurrency="107.22265625",kv_cache_memory_bytes="None",kv_cache_size_tokens="439184",kv_offloading_backend="native",kv_offloading_size="None",kv_sharing_fast_prefill="False",mamba_block_size="None",mamba_cache_dtype="auto",mamba_cache_mode="none",mamba_page_size_padded="None",mamba_ssm_cache_dtype="auto",num_cpu_blocks="None",num_gpu_blocks="27449",num_gpu_blocks_override="None",prefix_caching_hash_algo="sha256",prefix_match_unit="None",skip_page_size_padded="None",sliding_window="None",user_specified_block_size="False",user_specified_mamba_block_size="False"} 1.0
vllm:cache_config_info{block_size="32",engine="1",num_gpu_blocks="5"} 1.0
vllm:num_requests_running{engine="0"} 3
other_info{version="1.2",n="7",quoted="a\"b",x="NaN"} 1
`
	got := ParseMetrics([]byte(text), 5)
	want := []capture.Sample{
		{At: 5, Name: capture.MetricRunning, Value: 3},
		{At: 5, Name: "vllm:cache_config_info:block_size", Value: 16},
		{At: 5, Name: "vllm:cache_config_info:gpu_memory_utilization", Value: 0.5},
		{At: 5, Name: "vllm:cache_config_info:kv_cache_max_concurrency", Value: 107.22265625},
		{At: 5, Name: "vllm:cache_config_info:kv_cache_size_tokens", Value: 439184},
		{At: 5, Name: "vllm:cache_config_info:num_gpu_blocks", Value: 27449},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("ParseMetrics =\n%v\nwant\n%v", got, want)
	}
	// Another info metric is kept only when a pattern selects it.
	got = ParseMetrics([]byte(text), 5, "other_info")
	var names []string
	for _, s := range got {
		if strings.HasPrefix(s.Name, "other_info") {
			names = append(names, fmt.Sprintf("%s=%g", s.Name, s.Value))
		}
	}
	if fmt.Sprint(names) != "[other_info:n=7 other_info:version=1.2]" {
		t.Errorf("other_info samples = %v", names)
	}
}

// TestScrapeOfEndlessMetricsDoesNotBlockShutdown: an upstream whose
// /metrics streams forever holds one scrape at most its timeout (twice
// the interval, at least a second), so Shutdown is not held by it.
func TestScrapeOfEndlessMetricsDoesNotBlockShutdown(t *testing.T) {
	started := make(chan struct{}, 1)
	up, _ := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case started <- struct{}{}:
		default:
		}
		for {
			if _, err := fmt.Fprint(w, "# HELP x never ends\n"); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-time.After(5 * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
	})
	p, err := New(Config{Upstream: up, ScrapeInterval: 20 * time.Millisecond, idleConns: 100 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go p.Serve(ln)
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the proxy never scraped /metrics")
	}
	done := make(chan error, 1)
	go func() { done <- p.Shutdown(context.Background()) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown still waits for a scrape of a /metrics that never ends")
	}
}

// TestShutdownBeforeServe: a Shutdown that comes before Serve has started
// (a signal right after the listener opened) still stops it; and one that
// comes after Serve started but before fasthttp registered the listener
// closes the listener itself.
func TestShutdownBeforeServe(t *testing.T) {
	for i := 0; i < 50; i++ {
		p, err := New(Config{Upstream: "127.0.0.1:1", ScrapeInterval: 20 * time.Millisecond, idleConns: 100 * time.Millisecond}, nil)
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		if i == 0 {
			p.Shutdown(context.Background()) // strictly before
		}
		go func() { served <- p.Serve(ln) }()
		if i > 0 {
			p.Shutdown(context.Background()) // racing Serve's start
		}
		select {
		case err := <-served:
			if err != nil {
				t.Fatalf("round %d: Serve: %v", i, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: Serve still serves after Shutdown", i)
		}
	}
}
