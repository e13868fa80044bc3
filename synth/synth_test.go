package synth

import (
	"bytes"
	"context"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vbench/vbench/trace"
)

func writeTrace(t testing.TB, cfg Config, path string) trace.Header {
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	w, closeFn, err := trace.Create(path, s.Header())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Write(context.Background(), w); err != nil {
		t.Fatal(err)
	}
	if err := closeFn(); err != nil {
		t.Fatal(err)
	}
	return w.Header()
}

func TestSameConfigSameBytes(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.Requests = 500
	cfg.Arrival = Arrival{Process: trace.ArrivalGamma, Burstiness: 0.5}
	a, b, c := filepath.Join(dir, "a.bin"), filepath.Join(dir, "b.bin"), filepath.Join(dir, "c.bin")
	writeTrace(t, cfg, a)
	writeTrace(t, cfg, b)
	cfg.Seed = 2
	writeTrace(t, cfg, c)
	ba, _ := os.ReadFile(a)
	bb, _ := os.ReadFile(b)
	bc, _ := os.ReadFile(c)
	if !bytes.Equal(ba, bb) {
		t.Error("same config gave different bytes")
	}
	if bytes.Equal(ba, bc) {
		t.Error("different seeds gave the same bytes")
	}
	h, reqs, err := trace.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	if !h.Created.Equal(time.Unix(1, 0)) || h.Arrival != trace.ArrivalGamma || h.Burstiness != 0.5 || h.MeanRate != 1 || len(reqs) != 500 {
		t.Errorf("header %+v, %d requests", h, len(reqs))
	}
}

func TestArrivalsIndependentOfPromptMode(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Requests = 50
	s1, _ := New(context.Background(), cfg)
	cfg.Prompt = PromptWords
	s2, _ := New(context.Background(), cfg)
	var r1, r2 trace.Request
	for s1.Next(&r1) && s2.Next(&r2) {
		if r1.Offset != r2.Offset || r1.InputTokens != r2.InputTokens || r1.OutputTokens != r2.OutputTokens {
			t.Fatalf("request %d differs between prompt modes: %v/%d vs %v/%d", r1.Index, r1.Offset, r1.InputTokens, r2.Offset, r2.InputTokens)
		}
		if r2.Prompt == "" || len(strings.Fields(r2.Prompt)) != int(r2.InputTokens) {
			t.Fatalf("words prompt has %d words for %d tokens", len(strings.Fields(r2.Prompt)), r2.InputTokens)
		}
	}
}

func TestSpanAndRate(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Requests, cfg.Span = 0, time.Hour
	h := writeTrace(t, cfg, filepath.Join(t.TempDir(), "s.bin"))
	if h.Span > time.Hour || h.Count < 3400 || h.Count > 3800 {
		t.Errorf("1h at 1 req/s: %d requests over %v", h.Count, h.Span)
	}
}

func TestPromptsAndSampling(t *testing.T) {
	ctx := context.Background()
	cfg := DefaultConfig()
	cfg.Dataset, cfg.Requests, cfg.Endpoint = "testdata/sharegpt_small.json", 6, trace.EndpointChat
	cfg.Filter = Filter{MinTokens: 1}
	s, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var req trace.Request
	seen := map[string]int{}
	for s.Next(&req) {
		if len(req.Messages) != 1 || req.Messages[0].Role != "user" || req.Messages[0].Content == "" {
			t.Fatalf("chat request %+v", req)
		}
		if err := req.Validate(); err != nil {
			t.Fatal(err)
		}
		if req.Sampling.MaxTokens != req.OutputTokens || req.Sampling.MinTokens != req.OutputTokens || !req.Sampling.IgnoreEOS {
			t.Errorf("sampling %+v for %d output tokens", req.Sampling, req.OutputTokens)
		}
		seen[req.Source.Row]++
	}
	// Three usable rows, six requests: each row exactly twice (without replacement per pass).
	if len(seen) != 3 || seen["a1"] != 2 || seen["a2"] != 2 || seen["a5"] != 2 {
		t.Errorf("rows drawn %v", seen)
	}
	cfg.Endpoint, cfg.Prompt, cfg.TokenLow, cfg.TokenHigh = trace.EndpointCompletions, PromptTokens, 5, 7
	s, _ = New(ctx, cfg)
	for s.Next(&req) {
		if len(req.PromptTokenIDs) != int(req.InputTokens) || req.Prompt != "" {
			t.Fatalf("token prompt: %d ids for %d tokens", len(req.PromptTokenIDs), req.InputTokens)
		}
		for _, id := range req.PromptTokenIDs {
			if id < 5 || id >= 7 {
				t.Fatalf("token id %d outside [5,7)", id)
			}
		}
	}
	cfg.Prompt, cfg.Dataset = PromptText, "alpaca"
	if _, err := New(ctx, cfg); err == nil || !strings.Contains(err.Error(), "without text") {
		t.Errorf("text prompts from a profile: %v", err)
	}
}

func TestMix(t *testing.T) {
	m, err := LoadMix("../examples/mix.json")
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Mix, cfg.Requests = m, 20000
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(s.Header().Dataset, "sharegpt:0.7") {
		t.Errorf("header dataset %q", s.Header().Dataset)
	}
	counts := map[string]float64{}
	var req trace.Request
	for s.Next(&req) {
		counts[req.Source.Dataset]++
	}
	if f := counts["sharegpt"] / 20000; math.Abs(f-0.7) > 0.015 {
		t.Errorf("sharegpt share %.3f, want 0.7", f)
	}
	for _, bad := range []string{`{}`, `{"components":[]}`, `{"components":[{"dataset":"a","weight":0}]}`, `{"components":[{"dataset":"","weight":1}]}`, `{"components":[{"dataset":"a","weight":1}],"x":1}`, `[`} {
		if _, err := ParseMix([]byte(bad)); err == nil {
			t.Errorf("mix %s accepted", bad)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.Dataset = "" }, "no dataset"},
		{func(c *Config) { c.Requests, c.Span = 0, 0 }, "--requests N or --span"},
		{func(c *Config) { c.Span = time.Minute }, "not both"},
		{func(c *Config) { c.Prompt = "x" }, "--prompt"},
		{func(c *Config) { c.Endpoint, c.Prompt = trace.EndpointChat, PromptTokens }, "chat requests cannot carry token ids"},
		{func(c *Config) { c.TokenLow, c.TokenHigh = 5, 5 }, "--token-range"},
		{func(c *Config) { c.Arrival = Arrival{Process: "x"} }, "unknown arrival"},
	} {
		c := DefaultConfig()
		tc.mod(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want %q", err, tc.want)
		}
	}
	// All problems at once.
	c := DefaultConfig()
	c.Dataset, c.Prompt = "", "x"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "no dataset") || !strings.Contains(err.Error(), "--prompt") {
		t.Errorf("joined errors: %v", err)
	}
	if _, err := New(context.Background(), Config{Dataset: "no/such/file.json", Requests: 1, Prompt: PromptAuto, Endpoint: trace.EndpointCompletions, TokenHigh: 10, Arrival: Arrival{Process: trace.ArrivalPoisson}}); err == nil || !strings.Contains(err.Error(), "neither an embedded profile") {
		t.Errorf("missing file: %v", err)
	}
}

func TestNextAllocs(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Requests = 1 << 40
	cfg.Prompt = PromptWords
	s, _ := New(context.Background(), cfg)
	var req trace.Request
	// Words prompts allocate the string (and its builder growth), nothing else.
	if n := testing.AllocsPerRun(1000, func() { s.Next(&req) }); n > 2 {
		t.Errorf("Next allocates %.1f times per request, want <= 2", n)
	}
	// Token-id prompts reuse one buffer: no allocation once it has grown.
	cfg.Prompt = PromptTokens
	s, _ = New(context.Background(), cfg)
	for range 5000 {
		s.Next(&req)
	}
	if n := testing.AllocsPerRun(1000, func() { s.Next(&req) }); n != 0 {
		t.Errorf("Next with token ids allocates %.1f times per request, want 0", n)
	}
}

// BenchmarkSynthesize1M draws 1M ShareGPT-profile requests (token-id
// prompts) into a binary trace file, as `vbsynth --requests 1000000` does.
func BenchmarkSynthesize1M(b *testing.B) {
	path := filepath.Join(b.TempDir(), "1m.bin")
	cfg := DefaultConfig()
	cfg.Requests = 1_000_000
	b.ReportAllocs()
	for b.Loop() {
		writeTrace(b, cfg, path)
	}
	st, _ := os.Stat(path)
	b.ReportMetric(float64(st.Size())/1e6, "MB-file")
}

// BenchmarkNext draws one request (token-id prompt) without writing it.
func BenchmarkNext(b *testing.B) {
	cfg := DefaultConfig()
	cfg.Requests = 1 << 62
	s, err := New(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	var req trace.Request
	b.ReportAllocs()
	for b.Loop() {
		s.Next(&req)
	}
}

// BenchmarkDecode1M reads a 1M-request trace back with trace.Reader.
func BenchmarkDecode1M(b *testing.B) {
	path := filepath.Join(b.TempDir(), "1m.bin")
	cfg := DefaultConfig()
	cfg.Requests = 1_000_000
	writeTrace(b, cfg, path)
	st, _ := os.Stat(path)
	b.SetBytes(st.Size())
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		r, err := trace.NewReader(f)
		if err != nil {
			b.Fatal(err)
		}
		var req trace.Request
		n := 0
		for {
			err := r.Read(&req)
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		f.Close()
		if n != 1_000_000 {
			b.Fatalf("read %d", n)
		}
	}
}

func TestTokenPromptRange(t *testing.T) {
	r := newRand(1, streamTokens)
	var buf []int32
	seen := map[int32]bool{}
	for n := range 40 {
		buf = TokenPrompt(r, n, 10, 13, buf)
		if len(buf) != n {
			t.Fatalf("TokenPrompt(n=%d) gave %d ids", n, len(buf))
		}
		for _, id := range buf {
			if id < 10 || id >= 13 {
				t.Fatalf("id %d outside [10,13)", id)
			}
			seen[id] = true
		}
	}
	if len(seen) != 3 {
		t.Errorf("ids drawn %v, want all of 10, 11, 12", seen)
	}
}
