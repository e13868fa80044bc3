package importer

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/vbench/vbench/capture"
)

// A continuing turn carries its think time: its arrival minus the end of
// the turn it continues; a turn sent before that end gets 0.
func TestExportThinkTime(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cap")
	s := openTest(t, dir, capture.Options{})
	put := func(at, end time.Duration, body, resp []byte) {
		r := &capture.Record{Tags: capture.Tags{Index: -1}, Method: "POST", Path: "/v1/chat/completions", Status: 200, Outcome: capture.OutcomeOK,
			Received: t0 + int64(at), End: int64(end), PromptTokens: 5, CompletionTokens: 2,
			RequestBody: body, RequestSize: int64(len(body)), ResponseBody: resp, ResponseSize: int64(len(resp))}
		if !s.Writer().Put(r) {
			t.Fatal("dropped")
		}
	}
	// Turn 0 arrives at 0 and answers for 800 ms; turn 1 comes 1.2 s
	// after that end; turn 2 arrives while turn 1 (ending at 2.5 s) was
	// still streaming (a client that did not wait).
	put(0, 800*time.Millisecond, chatBody(t, nil, "Q1"), sse("A", "1"))
	put(150*time.Millisecond, 10*time.Millisecond, []byte(`{"model":"m","messages":[{"role":"user","content":"alone"}]}`), sse("x"))
	put(2*time.Second, 500*time.Millisecond, chatBody(t, nil, "Q1", "A1", "Q2"), sse("A2"))
	put(2400*time.Millisecond, 100*time.Millisecond, chatBody(t, nil, "Q1", "A1", "Q2", "A2", "Q3"), sse("A3"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ro := openTest(t, dir, capture.Options{ReadOnly: true})
	defer ro.Close()
	_, reqs, err := FromCapture(ro, CaptureOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		conv  string
		turn  int32
		think time.Duration
	}{{"c1", 0, 0}, {"", 0, 0}, {"c1", 1, 1200 * time.Millisecond}, {"c1", 2, 0}}
	if len(reqs) != len(want) {
		t.Fatalf("exported %d requests, want %d", len(reqs), len(want))
	}
	for i, w := range want {
		q := reqs[i]
		if q.Conversation != w.conv || q.Turn != w.turn || q.ThinkTime != w.think {
			t.Errorf("request %d: conversation %q turn %d think %v, want %q %d %v", i, q.Conversation, q.Turn, q.ThinkTime, w.conv, w.turn, w.think)
		}
	}
}
