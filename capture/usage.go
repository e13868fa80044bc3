package capture

import (
	"bytes"
	"encoding/json"
)

// bodyUsage reads the usage object of a complete, non-streamed JSON
// response body (the proxy takes usage from SSE events only, so a
// non-streamed exchange records PromptTokens = CompletionTokens = -1 while
// its body says how long it was). ok is false when the body is cut, not a
// JSON object, or has no usage.
func bodyUsage(r *Record) (prompt, completion int32, ok bool) {
	body := bytes.TrimSpace(r.ResponseBody)
	if len(body) == 0 || body[0] != '{' || int64(len(r.ResponseBody)) < r.ResponseSize || r.Status/100 != 2 {
		return 0, 0, false
	}
	var b struct {
		Usage *struct {
			PromptTokens     *int32 `json:"prompt_tokens"`
			CompletionTokens *int32 `json:"completion_tokens"`
		} `json:"usage"`
	}
	if json.Unmarshal(body, &b) != nil || b.Usage == nil || b.Usage.CompletionTokens == nil || *b.Usage.CompletionTokens < 0 {
		return 0, 0, false
	}
	prompt = -1
	if p := b.Usage.PromptTokens; p != nil && *p >= 0 {
		prompt = *p
	}
	return prompt, *b.Usage.CompletionTokens, true
}

// promptTokens is the recorded prompt length: the server's usage (streamed
// or in a non-streamed body), else 0.
func promptTokens(r *Record) int32 {
	if r.PromptTokens >= 0 {
		return r.PromptTokens
	}
	if p, _, ok := bodyUsage(r); ok && p >= 0 {
		return p
	}
	return 0
}
