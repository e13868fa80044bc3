package analyze

import (
	"math/rand/v2"
	"os"
	"testing"
	"time"
)

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
