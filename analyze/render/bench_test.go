package render

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/vbench/vbench/analyze"
)

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
		if err := Run(context.Background(), analyze.Config{Captures: []string{dir}, Out: out}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n), "requests/op")
}
