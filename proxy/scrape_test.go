package proxy

import (
	"fmt"
	"io"
	"net/http"
	"strings"
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
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, s := range ParseMetrics(b, 1) {
			if s.At != 1 || s.Name == "" {
				t.Fatalf("bad sample %+v", s)
			}
		}
	})
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
