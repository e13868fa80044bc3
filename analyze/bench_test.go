package analyze

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/vbench/vbench/capture"
)

// benchRecord builds request i of the benchmark capture: chunks content
// chunks with per-chunk usage, then the usage-only chunk.
func benchRecord(rng *rand.Rand, i int, at int64, chunks int) *capture.Record {
	r := &capture.Record{
		ID:     uint64(i + 1),
		Labels: map[string]string{"variant": "vllm-page"},
		Tags: capture.Tags{Run: "bench", Trial: "1", Level: "50", Rate: 50, Index: int64(i), TraceHash: "bench",
			Scheduled: t0 + at, Sent: t0 + at + int64(rng.IntN(200_000))},
		Method: "POST", Path: "/v1/completions", Status: 200, Outcome: capture.OutcomeOK,
		Received: t0 + at + 300_000, PromptTokens: int32(100 + rng.IntN(400)), CompletionTokens: int32(chunks),
		Chunks: make([]capture.Chunk, 0, chunks+1),
	}
	t := int64(20*ms) + int64(rng.IntN(int(30*ms)))
	for k := range chunks {
		r.Chunks = append(r.Chunks, capture.Chunk{At: t, Size: 160, Events: 1, Content: 1, Tokens: 1, Usage: int32(k + 1)})
		t += int64(15*ms) + int64(rng.IntN(int(10*ms)))
	}
	r.Chunks = append(r.Chunks, capture.Chunk{At: t, Size: 220, Events: 2, Tokens: -1, Usage: int32(chunks)})
	r.End = t + 50_000
	return r
}

// writeBenchStore writes a capture of n requests × chunks chunks at 50
// req/s (Poisson) with server gauges every second, through the real
// store and its batching writer.
func writeBenchStore(tb testing.TB, dir string, n, chunks int) {
	tb.Helper()
	// the writer logs when its queue is full; the loops below retry
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := capture.Open(dir, capture.Options{SyncInterval: -1, Logger: quiet})
	if err != nil {
		tb.Fatal(err)
	}
	if err := st.PutMeta(capture.Meta{Tool: "bench", Labels: map[string]string{"variant": "vllm-page"}}); err != nil {
		tb.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	w := st.Writer()
	var at int64
	for i := range n {
		at += int64(rng.ExpFloat64() / 50 * 1e9)
		r := benchRecord(rng, i, at, chunks)
		for !w.Put(r) {
			time.Sleep(time.Millisecond)
		}
	}
	for s := int64(0); s <= at/1e9+30; s++ {
		for _, x := range []capture.Sample{
			{At: t0 + s*1e9, Name: capture.MetricRunning, Value: float64(100 + rng.IntN(50))},
			{At: t0 + s*1e9, Name: capture.MetricWaiting, Value: float64(rng.IntN(10))},
			{At: t0 + s*1e9, Name: capture.MetricKVUsage, Value: rng.Float64()},
			{At: t0 + s*1e9, Name: capture.MetricPreemptions, Value: float64(s / 10)},
		} {
			for !w.PutSample(x) {
				time.Sleep(time.Millisecond)
			}
		}
	}
	// A full queue makes Put return false (and count a drop); the loops
	// above retry, so the store must hold every record.
	if err := st.Close(); err != nil {
		tb.Fatal(err)
	}
	ro, err := capture.Open(dir, capture.Options{ReadOnly: true})
	if err != nil {
		tb.Fatal(err)
	}
	defer ro.Close()
	if got, _, err := ro.Counts(); err != nil || got != int64(n) {
		tb.Fatalf("capture holds %d records (%v); want %d", got, err, n)
	}
}

func benchSize() (n, chunks int) {
	n, chunks = 100_000, 300
	if v, err := strconv.Atoi(os.Getenv("VBENCH_ANALYZE_N")); err == nil && v > 0 {
		n = v
	}
	if v, err := strconv.Atoi(os.Getenv("VBENCH_ANALYZE_CHUNKS")); err == nil && v > 0 {
		chunks = v
	}
	return n, chunks
}

// TestWriteBenchCapture writes the benchmark capture to
// $VBENCH_ANALYZE_CAPTURE for bench/scripts/analyze-bench.sh (skipped
// unless set).
func TestWriteBenchCapture(t *testing.T) {
	dir := os.Getenv("VBENCH_ANALYZE_CAPTURE")
	if dir == "" {
		t.Skip("set VBENCH_ANALYZE_CAPTURE=DIR to write the benchmark capture")
	}
	n, chunks := benchSize()
	start := time.Now()
	writeBenchStore(t, dir, n, chunks)
	t.Logf("wrote %d requests × %d chunks to %s in %s", n, chunks, dir, time.Since(start).Round(time.Millisecond))
}

// BenchmarkAnalyzeStore analyses a real capture of 100,000 requests × 300
// chunks (VBENCH_ANALYZE_N and VBENCH_ANALYZE_CHUNKS change the size):
// reading the store, per-request metrics, summaries, CSV/JSON outputs.
// Goal: under 30 s on a 2-core machine.
func BenchmarkAnalyzeStore(b *testing.B) {
	n, chunks := benchSize()
	dir := filepath.Join(b.TempDir(), "capture")
	start := time.Now()
	writeBenchStore(b, dir, n, chunks)
	b.Logf("capture of %d × %d written in %s", n, chunks, time.Since(start).Round(time.Millisecond))
	out := filepath.Join(b.TempDir(), "out")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := Run(context.Background(), Config{Captures: []string{dir}, Out: out}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n), "requests/op")
}

// BenchmarkMeasure is the per-record work: one request of 300 chunks.
func BenchmarkMeasure(b *testing.B) {
	rec := benchRecord(rand.New(rand.NewPCG(1, 2)), 0, 0, 300)
	gaps := make([]float64, 0, 400)
	m := Measurer{OnContent: func(_, g time.Duration, _ int) { gaps = append(gaps, g.Seconds()) }}
	b.ReportAllocs()
	for b.Loop() {
		gaps = gaps[:0]
		_ = m.Measure(rec, "bench")
	}
}

func TestMeasureAllocs(t *testing.T) {
	rec := benchRecord(rand.New(rand.NewPCG(1, 2)), 0, 0, 300)
	gaps := make([]float64, 0, 400)
	m := Measurer{OnContent: func(_, g time.Duration, _ int) { gaps = append(gaps, g.Seconds()) }}
	m.Measure(rec, "bench") // grows the decoder's buffers
	allocs := testing.AllocsPerRun(100, func() {
		gaps = gaps[:0]
		_ = m.Measure(rec, "bench")
	})
	if allocs != 0 {
		t.Errorf("Measure allocates %v times per record; want 0", allocs)
	}
}
