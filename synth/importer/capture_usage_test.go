package importer

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/vbench/vbench/capture"
)

// TestRecordLengths: a record's exported lengths are the analysis' (the
// one decoder): a non-streamed body's usage when it was recorded whole
// with a 2xx status, else what the timeline says.
func TestRecordLengths(t *testing.T) {
	tests := []struct {
		name         string
		status       int
		body         string
		cut          bool
		prompt, comp int32
	}{
		{"completion", 200, `{"choices":[{"text":"x"}],"usage":{"prompt_tokens":3,"completion_tokens":7,"total_tokens":10}}`, false, 3, 7},
		{"no prompt tokens", 200, ` {"usage":{"completion_tokens":2}}`, false, 0, 2},
		{"no usage", 200, `{"choices":[]}`, false, 0, 0},
		{"null completion tokens", 200, `{"usage":{"completion_tokens":null}}`, false, 0, 0},
		{"cut body", 200, `{"usage":{"completion_tokens":2}}`, true, 0, 0},
		{"error status", 500, `{"usage":{"completion_tokens":2}}`, false, 0, 0},
		{"not JSON", 200, `{usage`, false, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &capture.Record{Status: tc.status, Outcome: capture.OutcomeOK, ContentType: "application/json", PromptTokens: -1, CompletionTokens: -1,
				ResponseBody: []byte(tc.body), ResponseSize: int64(len(tc.body))}
			if tc.cut {
				r.ResponseSize += 10
			}
			if p, c := promptTokens(r), outputTokens(r); p != tc.prompt || c != tc.comp {
				t.Fatalf("lengths %d, %d; want %d, %d", p, c, tc.prompt, tc.comp)
			}
		})
	}
}

// A non-streamed exchange (the proxy records usage from SSE only, so its
// record says -1) exports its lengths from the response body's usage.
func TestExportLengthsOfNonStreamedResponses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cap")
	s := openTest(t, dir, capture.Options{})
	// A text prompt whose length estimate (35 bytes / 4 ≈ 9 tokens) is not
	// the recorded 3, so the anonymized prompt shows which one was used.
	body := []byte(`{"model":"m","prompt":"a text prompt of thirty-five bytes","max_tokens":8}`)
	resp := []byte(`{"choices":[{"index":0,"text":" a b c"}],"usage":{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8}}`)
	r := &capture.Record{Tags: capture.Tags{Index: -1}, Method: "POST", Path: "/v1/completions", Status: 200, Outcome: capture.OutcomeOK, Received: t0,
		End: int64(time.Millisecond), PromptTokens: -1, CompletionTokens: -1, Chunks: []capture.Chunk{{At: 1, Size: int32(len(resp)), Tokens: -1, Usage: -1}},
		RequestBody: body, RequestSize: int64(len(body)), ResponseBody: resp, ResponseSize: int64(len(resp))}
	if !s.Writer().Put(r) {
		t.Fatal("dropped")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ro := openTest(t, dir, capture.Options{ReadOnly: true})
	defer ro.Close()
	_, reqs, err := FromCapture(ro, CaptureOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 1 || reqs[0].InputTokens != 3 || reqs[0].OutputTokens != 5 {
		t.Fatalf("exported %+v; want input 3, output 5", reqs)
	}
	// Anonymized, the prompt keeps its recorded length.
	_, anon, err := FromCapture(ro, CaptureOptions{Anonymize: true, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	var b struct{ Prompt []int32 }
	if err := json.Unmarshal(anon[0].Body, &b); err != nil || len(b.Prompt) != 3 || anon[0].InputTokens != 3 {
		t.Fatalf("anonymized body %s (err %v); want 3 token ids", anon[0].Body, err)
	}
}

func FuzzRecordLengths(f *testing.F) {
	f.Add(200, []byte(`{"usage":{"prompt_tokens":3,"completion_tokens":7}}`))
	f.Add(200, []byte(`{"usage":{"completion_tokens":99999999999}}`))
	f.Add(200, []byte(`{"usage":null}`))
	f.Add(404, []byte(`{}`))
	f.Add(200, []byte("data: x\n\n"))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		r := &capture.Record{Status: status, Outcome: capture.OutcomeOK, PromptTokens: -1, CompletionTokens: -1, ResponseBody: body, ResponseSize: int64(len(body))}
		if p, c := promptTokens(r), outputTokens(r); p < 0 || c < 0 {
			t.Fatalf("lengths %d, %d", p, c)
		}
	})
}
