package capture

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"
)

func TestBodyUsage(t *testing.T) {
	tests := []struct {
		name         string
		status       int
		body         string
		cut          bool
		prompt, comp int32
		ok           bool
	}{
		{"completion", 200, `{"choices":[{"text":"x"}],"usage":{"prompt_tokens":3,"completion_tokens":7,"total_tokens":10}}`, false, 3, 7, true},
		{"no prompt tokens", 200, ` {"usage":{"completion_tokens":2}}`, false, -1, 2, true},
		{"no usage", 200, `{"choices":[]}`, false, 0, 0, false},
		{"null completion tokens", 200, `{"usage":{"completion_tokens":null}}`, false, 0, 0, false},
		{"negative", 200, `{"usage":{"completion_tokens":-4}}`, false, 0, 0, false},
		{"SSE body", 200, "data: {\"usage\":{\"completion_tokens\":2}}\n\n", false, 0, 0, false},
		{"cut body", 200, `{"usage":{"completion_tokens":2}}`, true, 0, 0, false},
		{"error status", 500, `{"usage":{"completion_tokens":2}}`, false, 0, 0, false},
		{"not JSON", 200, `{usage`, false, 0, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &Record{Status: tc.status, ResponseBody: []byte(tc.body), ResponseSize: int64(len(tc.body))}
			if tc.cut {
				r.ResponseSize += 10
			}
			p, c, ok := bodyUsage(r)
			if p != tc.prompt || c != tc.comp || ok != tc.ok {
				t.Fatalf("bodyUsage = %d, %d, %v; want %d, %d, %v", p, c, ok, tc.prompt, tc.comp, tc.ok)
			}
		})
	}
}

// A non-streamed exchange (the proxy records usage from SSE only, so its
// record says -1) exports its lengths from the response body's usage.
func TestExportLengthsOfNonStreamedResponses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cap")
	s := openTest(t, dir, Options{})
	// A text prompt whose length estimate (35 bytes / 4 ≈ 9 tokens) is not
	// the recorded 3, so the anonymized prompt shows which one was used.
	body := []byte(`{"model":"m","prompt":"a text prompt of thirty-five bytes","max_tokens":8}`)
	resp := []byte(`{"choices":[{"index":0,"text":" a b c"}],"usage":{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8}}`)
	r := &Record{Tags: Tags{Index: -1}, Method: "POST", Path: "/v1/completions", Status: 200, Outcome: OutcomeOK, Received: t0,
		End: int64(time.Millisecond), PromptTokens: -1, CompletionTokens: -1, Chunks: []Chunk{{At: 1, Size: int32(len(resp)), Tokens: -1, Usage: -1}},
		RequestBody: body, RequestSize: int64(len(body)), ResponseBody: resp, ResponseSize: int64(len(resp))}
	if !s.Writer().Put(r) {
		t.Fatal("dropped")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ro := openTest(t, dir, Options{ReadOnly: true})
	defer ro.Close()
	_, reqs, err := ExportTrace(ro, ExportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 1 || reqs[0].InputTokens != 3 || reqs[0].OutputTokens != 5 {
		t.Fatalf("exported %+v; want input 3, output 5", reqs)
	}
	// Anonymized, the prompt keeps its recorded length.
	_, anon, err := ExportTrace(ro, ExportOptions{Anonymize: true, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	var b struct{ Prompt []int32 }
	if err := json.Unmarshal(anon[0].Body, &b); err != nil || len(b.Prompt) != 3 || anon[0].InputTokens != 3 {
		t.Fatalf("anonymized body %s (err %v); want 3 token ids", anon[0].Body, err)
	}
}

func FuzzBodyUsage(f *testing.F) {
	f.Add(200, []byte(`{"usage":{"prompt_tokens":3,"completion_tokens":7}}`))
	f.Add(200, []byte(`{"usage":{"completion_tokens":99999999999}}`))
	f.Add(200, []byte(`{"usage":null}`))
	f.Add(404, []byte(`{}`))
	f.Add(200, []byte("data: x\n\n"))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		r := &Record{Status: status, ResponseBody: body, ResponseSize: int64(len(body))}
		p, c, ok := bodyUsage(r)
		if ok && (c < 0 || p < -1) {
			t.Fatalf("bodyUsage = %d, %d, true", p, c)
		}
		if !ok && (p != 0 || c != 0) {
			t.Fatalf("bodyUsage = %d, %d, false", p, c)
		}
		if n := promptTokens(r); n < 0 {
			t.Fatalf("promptTokens = %d", n)
		}
	})
}
