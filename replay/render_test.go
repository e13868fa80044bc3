package replay

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/vbench/vbench/trace"
)

func TestRender(t *testing.T) {
	const usage = `"stream":true,"stream_options":{"include_usage":true,"continuous_usage_stats":true}`
	tests := []struct {
		name string
		req  trace.Request
		opt  RenderOptions
		want string
	}{
		{"completions text", trace.Request{Endpoint: trace.EndpointCompletions, Prompt: "Hi \"you\"", Sampling: trace.Sampling{MaxTokens: 7, IgnoreEOS: true}},
			RenderOptions{Model: "m"},
			`{"model":"m","prompt":"Hi \"you\"","max_tokens":7,"ignore_eos":true,` + usage + `}`},
		{"completions token ids and sampling", trace.Request{Endpoint: trace.EndpointCompletions, PromptTokenIDs: []int32{1, 2, 3},
			Sampling: trace.Sampling{MaxTokens: 4, MinTokens: 4, HasTemperature: true, Temperature: 0, HasTopP: true, TopP: 0.9}},
			RenderOptions{Model: "m"},
			`{"model":"m","prompt":[1,2,3],"max_tokens":4,"min_tokens":4,"temperature":0,"top_p":0.9,` + usage + `}`},
		{"empty prompt", trace.Request{Endpoint: trace.EndpointCompletions}, RenderOptions{Model: "m"},
			`{"model":"m","prompt":"",` + usage + `}`},
		{"chat both length fields", trace.Request{Endpoint: trace.EndpointChat, Messages: []trace.Message{{Role: "system", Content: "s"}, {Role: "user", Content: "u"}},
			Sampling: trace.Sampling{MaxTokens: 9}},
			RenderOptions{Model: "m"},
			`{"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":"u"}],"max_tokens":9,"max_completion_tokens":9,` + usage + `}`},
		{"chat max_completion_tokens only", trace.Request{Endpoint: trace.EndpointChat, Messages: []trace.Message{{Role: "user", Content: "u"}}, Sampling: trace.Sampling{MaxTokens: 9}},
			RenderOptions{Model: "m", ChatMaxTokens: ChatMaxTokensCompletion},
			`{"model":"m","messages":[{"role":"user","content":"u"}],"max_completion_tokens":9,` + usage + `}`},
		{"exact output", trace.Request{Endpoint: trace.EndpointCompletions, Prompt: "p", OutputTokens: 33, Sampling: trace.Sampling{MaxTokens: 100}},
			RenderOptions{Model: "m", ExactOutput: true},
			`{"model":"m","prompt":"p","max_tokens":33,"min_tokens":33,"ignore_eos":true,` + usage + `}`},
		{"exact output without EOS fields", trace.Request{Endpoint: trace.EndpointChat, Messages: []trace.Message{{Role: "user", Content: "u"}}, OutputTokens: 33, Sampling: trace.Sampling{MaxTokens: 100, MinTokens: 100, IgnoreEOS: true}},
			RenderOptions{Model: "m", ExactOutput: true, NoEOSFields: true},
			`{"model":"m","messages":[{"role":"user","content":"u"}],"max_tokens":33,"max_completion_tokens":33,` + usage + `}`},
		{"verbatim: EOS fields removed", trace.Request{Endpoint: trace.EndpointChat, OutputTokens: 5, Body: []byte(`{"model":"orig","messages":[],"ignore_eos":true,"min_tokens":2}`)},
			RenderOptions{ExactOutput: true, NoEOSFields: true},
			`{"max_tokens":5,"messages":[],"model":"orig","stream":true,"stream_options":{"include_usage":true,"continuous_usage_stats":true}}`},
		{"verbatim: stream forced, model kept", trace.Request{Endpoint: trace.EndpointChat, Body: []byte(`{"model":"orig","stream":false,"messages":[{"role":"user","content":"x"}],"temperature":0.70}`)},
			RenderOptions{Model: "ignored"},
			`{"messages":[{"role":"user","content":"x"}],"model":"orig","stream":true,"stream_options":{"include_usage":true,"continuous_usage_stats":true},"temperature":0.70}`},
		{"verbatim: model override and exact output", trace.Request{Endpoint: trace.EndpointChat, OutputTokens: 5, Body: []byte(`{"model":"orig","messages":[],"max_completion_tokens":50}`)},
			RenderOptions{VerbatimModel: "new", ExactOutput: true},
			`{"ignore_eos":true,"max_completion_tokens":5,"max_tokens":5,"messages":[],"min_tokens":5,"model":"new","stream":true,"stream_options":{"include_usage":true,"continuous_usage_stats":true}}`},
	}
	for _, tt := range tests {
		got, err := Render(&tt.req, tt.opt)
		if err != nil || string(got) != tt.want {
			t.Errorf("%s: Render =\n%s, %v\nwant\n%s", tt.name, got, err, tt.want)
		}
	}
	bad := []struct {
		name string
		req  trace.Request
		want string
	}{
		{"chat without messages", trace.Request{Endpoint: trace.EndpointChat, Prompt: "x"}, "without messages"},
		{"completions with messages", trace.Request{Endpoint: trace.EndpointCompletions, Messages: []trace.Message{{Role: "user"}}}, "chat messages"},
		{"verbatim not an object", trace.Request{Endpoint: trace.EndpointCompletions, Body: []byte(`[1,2]`)}, "not a JSON object"},
		{"verbatim trailing data", trace.Request{Endpoint: trace.EndpointCompletions, Body: []byte(`{"a":1} {"b":2}`)}, "trailing data"},
		{"verbatim null", trace.Request{Endpoint: trace.EndpointCompletions, Body: []byte(`null`)}, "not a JSON object"},
	}
	for _, tt := range bad {
		if _, err := Render(&tt.req, RenderOptions{}); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err %v; want %q", tt.name, err, tt.want)
		}
	}
}

// FuzzRenderVerbatim: any captured body either fails cleanly or comes out
// as a JSON object that streams and asks for usage.
func FuzzRenderVerbatim(f *testing.F) {
	for _, s := range []string{`{"model":"m","prompt":"x"}`, `{}`, `{"stream":"no","stream_options":1}`, `[`, `{"a":1e999}`, `{"a":"\ud800"}`, ` {"x":[1,{"y":null}]} `, `{"a":1}{"b":2}`} {
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, body []byte, exact bool) {
		if len(body) == 0 {
			return // no verbatim body: the request is generated from its fields
		}
		r := trace.Request{Endpoint: trace.EndpointCompletions, Body: body, OutputTokens: 3}
		out, err := Render(&r, RenderOptions{VerbatimModel: "m", ExactOutput: exact})
		if err != nil {
			return
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("output is not a JSON object: %v\n%s", err, out)
		}
		if string(m["stream"]) != "true" || string(m["model"]) != `"m"` {
			t.Fatalf("stream %s model %s in %s", m["stream"], m["model"], out)
		}
	})
}
