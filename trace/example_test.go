package trace_test

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/vbench/vbench/trace"
)

// A trace is a header plus requests in arrival order. WriteFile fills the
// header's count, span and content hash; the extension picks the format
// (.jsonl for JSON Lines, anything else the binary trace.bin).
func ExampleWriteFile() {
	dir, _ := os.MkdirTemp("", "trace-example")
	defer os.RemoveAll(dir)
	reqs := []trace.Request{
		{Index: 0, Offset: 0, Endpoint: trace.EndpointCompletions, Prompt: "Hello", InputTokens: 2, OutputTokens: 16,
			Sampling: trace.Sampling{MaxTokens: 16, MinTokens: 16, IgnoreEOS: true}},
		{Index: 1, Offset: 1500 * time.Millisecond, Endpoint: trace.EndpointChat, InputTokens: 9, OutputTokens: 32,
			Messages: []trace.Message{{Role: "user", Content: "Write a haiku."}}, Sampling: trace.Sampling{MaxTokens: 32}},
	}
	path := filepath.Join(dir, "trace.bin")
	h, err := trace.WriteFile(path, trace.Header{Generator: "example", MeanRate: 1, Arrival: trace.ArrivalConstant}, reqs)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(h.Count, h.Span)

	// ReadFile reads either format and checks every record's CRC.
	_, back, err := trace.ReadFile(path)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(back[1].Endpoint, back[1].Messages[0].Content)
	// Output:
	// 2 1.5s
	// /v1/chat/completions Write a haiku.
}
