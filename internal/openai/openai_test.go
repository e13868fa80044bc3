package openai

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestScan(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Info
	}{
		{"done", "[DONE]", Info{Valid: true, Done: true, CompletionTokens: -1, PromptTokens: -1}},
		{"chat content", `{"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}`,
			Info{Valid: true, Content: true, CompletionTokens: -1, PromptTokens: -1}},
		{"spaced content", `{"choices": [{"delta": {"content": "hi"}}]}`, Info{Valid: true, Content: true, CompletionTokens: -1, PromptTokens: -1}},
		{"spaced error", `{"error": {"message": "engine died"}}`, Info{Valid: true, Error: true, CompletionTokens: -1, PromptTokens: -1}},
		{"finished", `{"choices":[{"delta":{},"finish_reason" : "length"}],"usage":{"completion_tokens":5}}`,
			Info{Valid: true, Finished: true, CompletionTokens: 5, PromptTokens: -1}},
		{"finish_reason as content", `{"choices":[{"delta":{"content":"finish_reason"}}]}`, Info{Valid: true, Content: true, CompletionTokens: -1, PromptTokens: -1}},
		{"role only", `{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}`,
			Info{Valid: true, CompletionTokens: -1, PromptTokens: -1}},
		{"completion text", `{"choices":[{"text":"a b","index":0}]}`,
			Info{Valid: true, Content: true, CompletionTokens: -1, PromptTokens: -1}},
		{"continuous usage", `{"choices":[{"delta":{"content":"x"}}],"usage":{"prompt_tokens":8,"completion_tokens":3,"total_tokens":11}}`,
			Info{Valid: true, Content: true, CompletionTokens: 3, PromptTokens: 8}},
		{"final usage", `{"choices":[],"usage":{"prompt_tokens":8,"completion_tokens":16,"total_tokens":24}}`,
			Info{Valid: true, CompletionTokens: 16, PromptTokens: 8}},
		{"usage null", `{"choices":[{"delta":{"content":"x"}}],"usage":null}`,
			Info{Valid: true, Content: true, CompletionTokens: -1, PromptTokens: -1}},
		{"token ids", `{"choices":[{"delta":{"content":""},"token_ids":[1, 22,333]}]}`,
			Info{Valid: true, Content: true, TokenIDs: 3, CompletionTokens: -1, PromptTokens: -1}},
		{"reasoning", `{"choices":[{"delta":{"reasoning_content":"hmm"}}]}`,
			Info{Valid: true, Content: true, CompletionTokens: -1, PromptTokens: -1}},
		{"tool call", `{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{"}}]}}]}`,
			Info{Valid: true, Content: true, CompletionTokens: -1, PromptTokens: -1}},
		{"error", `{"error":{"message":"boom","type":"InternalServerError","code":500}}`,
			Info{Valid: true, Error: true, CompletionTokens: -1, PromptTokens: -1}},
		{"old error", `{"object":"error","message":"boom","code":500}`,
			Info{Valid: true, Error: true, CompletionTokens: -1, PromptTokens: -1}},
		{"error null", `{"error":null,"choices":[]}`, Info{Valid: true, CompletionTokens: -1, PromptTokens: -1}},
		{"message not content", `{"message":"x","text":"y"}`, Info{Valid: true, CompletionTokens: -1, PromptTokens: -1}},
		{"truncated", `{"choices":[{"delta":{"content":"hi"`, Info{Content: true, CompletionTokens: -1, PromptTokens: -1}},
		{"not json", `hello`, Info{CompletionTokens: -1, PromptTokens: -1}},
		{"trailing", `{} x`, Info{CompletionTokens: -1, PromptTokens: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Scan([]byte(tt.in)); got != tt.want {
				t.Errorf("Scan(%s) = %+v; want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestScanAllocs(t *testing.T) {
	in := []byte(`{"id":"cmpl-1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hello"},"token_ids":[5,6]}],"usage":{"prompt_tokens":8,"completion_tokens":3}}`)
	if a := testing.AllocsPerRun(1000, func() { Scan(in) }); a != 0 {
		t.Errorf("Scan allocates %v; want 0", a)
	}
}

func BenchmarkScan(b *testing.B) {
	in := []byte(`{"id":"cmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"m","choices":[{"index":0,"delta":{"content":"hello"},"finish_reason":null}],"usage":{"prompt_tokens":8,"completion_tokens":3,"total_tokens":11}}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		Scan(in)
	}
}

// reference computes Info with encoding/json for valid input.
func reference(data []byte) Info {
	info := Info{Valid: true, CompletionTokens: -1, PromptTokens: -1}
	var top map[string]any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if dec.Decode(&top) != nil {
		return Info{}
	}
	if e, ok := top["error"]; ok && e != nil {
		info.Error = true
	}
	if o, ok := top["object"].(string); ok && o == "error" {
		info.Error = true
	}
	if u, ok := top["usage"].(map[string]any); ok {
		if n, ok := intOf(u["completion_tokens"]); ok {
			info.CompletionTokens = n
		}
		if n, ok := intOf(u["prompt_tokens"]); ok {
			info.PromptTokens = n
		}
	}
	if c, ok := top["choices"]; ok {
		walk(c, &info)
	}
	return info
}

func intOf(v any) (int32, bool) {
	n, ok := v.(json.Number)
	if !ok || strings.Trim(string(n), "0123456789") != "" {
		return 0, false
	}
	i, err := n.Int64()
	if err != nil || i > 1<<31-1 {
		return 0, false
	}
	return int32(i), true
}

func walk(v any, info *Info) {
	switch v := v.(type) {
	case []any:
		for _, e := range v {
			walk(e, info)
		}
	case map[string]any:
		for k, e := range v {
			switch k {
			case "content", "text", "reasoning_content", "reasoning":
				if s, ok := e.(string); ok {
					if s != "" {
						info.Content = true
					}
					continue
				}
			case "finish_reason":
				if _, ok := e.(string); ok {
					info.Finished = true
					continue
				}
			case "tool_calls":
				if a, ok := e.([]any); ok && len(a) > 0 {
					info.Content = true
				}
			case "token_ids":
				if a, ok := e.([]any); ok {
					for _, x := range a {
						if _, ok := x.(json.Number); ok {
							info.TokenIDs++
						}
					}
					if info.TokenIDs > 0 {
						info.Content = true
					}
					continue
				}
			}
			walk(e, info)
		}
	}
}

// FuzzScan: Scan never panics, and on valid JSON objects without escapes in
// keys (the scanner compares raw key bytes) it agrees with encoding/json.
func FuzzScan(f *testing.F) {
	for _, s := range []string{
		`{"choices":[{"delta":{"content":"hi"}}],"usage":{"prompt_tokens":8,"completion_tokens":3}}`,
		`{"choices":[{"token_ids":[1,2,3]}]}`,
		`{"error":{"message":"x"}}`,
		`{"object":"error"}`,
		`[DONE]`,
		`{"choices":[{"delta":{"tool_calls":[]}}],"usage":{"completion_tokens":1.5}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got := Scan(data)
		if !json.Valid(data) || len(data) == 0 || data[0] != '{' || hasEscapeOrDup(data) {
			return
		}
		want := reference(data)
		if got != want {
			t.Fatalf("Scan(%s) = %+v; encoding/json says %+v", data, got, want)
		}
	})
}

// hasEscapeOrDup skips inputs outside the compared domain: backslashes
// (the scanner compares raw key bytes) and duplicate keys (encoding/json
// keeps the last value, the scanner notes every one).
func hasEscapeOrDup(data []byte) bool {
	if bytes.IndexByte(data, '\\') >= 0 {
		return true
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	type frame struct {
		obj     bool
		keys    map[string]bool
		wantKey bool
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		isKey := top != nil && top.obj && top.wantKey
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{obj: true, keys: map[string]bool{}, wantKey: true})
		case json.Delim('['):
			stack = append(stack, &frame{})
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		default:
			if isKey {
				k := tok.(string)
				if top.keys[k] {
					return true
				}
				top.keys[k] = true
				top.wantKey = false
				continue
			}
		}
		if isKey {
			continue
		}
		// A value (or a container start) completes a member of the parent.
		if tok != json.Delim('{') && tok != json.Delim('[') && tok != json.Delim('}') && tok != json.Delim(']') && top != nil && top.obj {
			top.wantKey = true
		}
		if (tok == json.Delim('}') || tok == json.Delim(']')) && len(stack) > 0 && stack[len(stack)-1].obj {
			stack[len(stack)-1].wantKey = true
		}
	}
}
