package capture_test

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/vbench/vbench/capture"
)

// A capture is one Badger store per trial. The writer (the proxy's side)
// never blocks: Put queues a finished exchange and one goroutine commits
// batches; Close flushes the queue. Readers open the closed capture
// read-only and get records in arrival order and samples in time order.
func ExampleOpen() {
	dir, _ := os.MkdirTemp("", "capture-example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "capture")

	st, err := capture.Open(path, capture.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC).UnixNano()
	st.PutMeta(capture.Meta{Tool: "example", Started: t0})
	ok := st.Writer().Put(&capture.Record{
		Method: "POST", Path: "/v1/completions", Status: 200, Outcome: capture.OutcomeOK,
		Labels:   map[string]string{"variant": "sim-paged"},
		Received: t0, Headers: int64(3 * time.Millisecond), End: int64(120 * time.Millisecond),
		Chunks: []capture.Chunk{
			{At: int64(20 * time.Millisecond), Size: 90, Events: 1, Content: 1, Tokens: 1, Usage: 1},
			{At: int64(120 * time.Millisecond), Size: 100, Events: 2, Content: 1, Tokens: 1, Usage: 2},
		},
		CompletionTokens: 2,
	})
	st.Writer().PutSample(capture.Sample{At: t0, Name: capture.MetricRunning, Value: 1})
	if err := st.Close(); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("queued:", ok)

	ro, err := capture.Open(path, capture.Options{ReadOnly: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ro.Close()
	ro.Records(func(r *capture.Record) error {
		fmt.Printf("record %d: %s %s %d %s, %d chunks, first after %v, %s\n", r.ID, r.Method, r.Path, r.Status, r.Outcome,
			len(r.Chunks), time.Duration(r.Chunks[0].At), r.Labels["variant"])
		return nil
	})
	ro.Samples(func(s capture.Sample) error {
		fmt.Println("sample", s.Name, s.Value)
		return nil
	})
	// Output:
	// queued: true
	// record 1: POST /v1/completions 200 ok, 2 chunks, first after 20ms, sim-paged
	// sample vllm:num_requests_running 1
}
