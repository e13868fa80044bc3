package analyze_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/vbench/vbench/analyze"
	"github.com/vbench/vbench/capture"
)

// Analyze reads captures (directories, or JSON Lines dumps) and computes one
// group per variant × rate × trial (Config.By): throughput, TTFT, TPOT,
// normalized latency and the rest, each defined once in package metric.
// render.Run does the same and writes the table, CSV/JSON files, charts
// and report.md (Config.Out, Chart).
func ExampleAnalyze() {
	dir, _ := os.MkdirTemp("", "analyze-example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "capture")
	st, err := capture.Open(path, capture.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC).UnixNano()
	ms := int64(time.Millisecond)
	for i := range 4 {
		// Four streamed requests at 2 req/s: first token after 50 ms, then
		// one token every 10 ms, 10 tokens.
		rec := &capture.Record{Method: "POST", Path: "/v1/completions", Status: 200, Outcome: capture.OutcomeOK,
			Labels:   map[string]string{"variant": "sim-paged"},
			Tags:     capture.Tags{Level: "2", Rate: 2, Index: int64(i), Scheduled: t0 + int64(i)*500*ms, Sent: t0 + int64(i)*500*ms},
			Received: t0 + int64(i)*500*ms, Headers: 5 * ms, End: 140 * ms, CompletionTokens: 10, PromptTokens: 20}
		for k := range 10 {
			rec.Chunks = append(rec.Chunks, capture.Chunk{At: 50*ms + int64(k)*10*ms, Size: 100, Events: 1, Content: 1, Tokens: 1, Usage: int32(k + 1)})
		}
		st.Writer().Put(rec)
	}
	if err := st.Close(); err != nil {
		fmt.Println(err)
		return
	}

	res, err := analyze.Analyze(context.Background(), analyze.Config{Captures: []string{path}, By: []string{"variant", "rate"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, g := range res.Groups {
		fmt.Printf("%s at %g req/s: %d completed, TTFT p50 %.0f ms, TPOT mean %.0f ms, normalized latency %.3f s/token\n",
			g.Variant, g.Rate, g.Completed, g.TTFT.P50*1000, g.TPOT.Mean*1000, g.NormLatency.Mean)
	}
	// Output:
	// sim-paged at 2 req/s: 4 completed, TTFT p50 50 ms, TPOT mean 10 ms, normalized latency 0.014 s/token
}
