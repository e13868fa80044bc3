package replay

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"github.com/vbench/vbench/trace"
)

// Chat length fields: which of max_tokens and max_completion_tokens a chat
// request carries (Config.ChatMaxTokens).
const (
	ChatMaxTokensBoth       = "both"
	ChatMaxTokensLegacy     = "max_tokens"
	ChatMaxTokensCompletion = "max_completion_tokens"
)

// RenderOptions are the settings that shape request bodies.
type RenderOptions struct {
	// Model is the model name put in every generated body.
	Model string
	// VerbatimModel replaces the model of verbatim (captured) bodies when
	// set; they keep their own otherwise.
	VerbatimModel string
	// ChatMaxTokens says which length field chat requests carry
	// (ChatMaxTokensBoth when empty).
	ChatMaxTokens string
	// ExactOutput asks every request with a known output length for exactly
	// that many tokens: max_tokens = min_tokens = OutputTokens, ignore_eos.
	ExactOutput bool
	// NoEOSFields keeps ignore_eos and min_tokens out of every body, for
	// servers that reject unknown fields (transformers serve answers 422);
	// exact output then rests on max_tokens alone.
	NoEOSFields bool
}

type streamOptions struct {
	IncludeUsage         bool `json:"include_usage"`
	ContinuousUsageStats bool `json:"continuous_usage_stats"`
}

var usageOptions = streamOptions{IncludeUsage: true, ContinuousUsageStats: true}

// body is the request we build from a trace.Request. Field order is the
// order of the JSON keys.
type body struct {
	Model               string          `json:"model"`
	Prompt              any             `json:"prompt,omitempty"`
	Messages            []trace.Message `json:"messages,omitempty"`
	MaxTokens           *int32          `json:"max_tokens,omitempty"`
	MaxCompletionTokens *int32          `json:"max_completion_tokens,omitempty"`
	MinTokens           *int32          `json:"min_tokens,omitempty"`
	IgnoreEOS           bool            `json:"ignore_eos,omitempty"`
	Temperature         *float64        `json:"temperature,omitempty"`
	TopP                *float64        `json:"top_p,omitempty"`
	Stream              bool            `json:"stream"`
	StreamOptions       streamOptions   `json:"stream_options"`
}

// Render returns the JSON body sent for r: the verbatim captured body
// (patched, see renderVerbatim) when r.Body is set, otherwise a completions
// or chat request built from the prompt and sampling fields. Every body
// streams and asks for per-chunk usage so token counts come from the server.
func Render(r *trace.Request, opt RenderOptions) ([]byte, error) {
	maxTok, minTok, ignoreEOS := r.Sampling.MaxTokens, r.Sampling.MinTokens, r.Sampling.IgnoreEOS
	if opt.ExactOutput && r.OutputTokens > 0 {
		maxTok, minTok, ignoreEOS = r.OutputTokens, r.OutputTokens, true
	}
	if opt.NoEOSFields {
		minTok, ignoreEOS = 0, false
	}
	if len(r.Body) > 0 {
		return renderVerbatim(r.Body, opt, maxTok, minTok, ignoreEOS)
	}
	b := body{Model: opt.Model, Stream: true, StreamOptions: usageOptions, IgnoreEOS: ignoreEOS}
	chat := r.Endpoint == trace.EndpointChat
	switch {
	case chat && len(r.Messages) == 0:
		return nil, fmt.Errorf("chat request without messages")
	case chat:
		b.Messages = r.Messages
	case len(r.PromptTokenIDs) > 0:
		b.Prompt = r.PromptTokenIDs
	case len(r.Messages) > 0:
		return nil, fmt.Errorf("completions request (%s) with chat messages", r.Endpoint)
	default:
		b.Prompt = r.Prompt
	}
	if maxTok > 0 {
		m := maxTok
		switch {
		case !chat || opt.ChatMaxTokens == ChatMaxTokensLegacy:
			b.MaxTokens = &m
		case opt.ChatMaxTokens == ChatMaxTokensCompletion:
			b.MaxCompletionTokens = &m
		default:
			b.MaxTokens, b.MaxCompletionTokens = &m, &m
		}
	}
	if minTok > 0 {
		m := minTok
		b.MinTokens = &m
	}
	if r.Sampling.HasTemperature {
		t := r.Sampling.Temperature
		b.Temperature = &t
	}
	if r.Sampling.HasTopP {
		p := r.Sampling.TopP
		b.TopP = &p
	}
	out, err := json.Marshal(&b)
	if err != nil {
		return nil, fmt.Errorf("encode body: %w", err)
	}
	return out, nil
}

// renderVerbatim sends a captured body as it was, except that streaming and
// usage reporting are forced on, the model is replaced when one is given,
// and the length fields are set when exact output was asked. Other keys and
// their values are kept byte for byte (keys come out sorted).
func renderVerbatim(raw []byte, opt RenderOptions, maxTok, minTok int32, ignoreEOS bool) ([]byte, error) {
	var m map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil || m == nil {
		if err == nil {
			err = fmt.Errorf("null")
		}
		return nil, fmt.Errorf("verbatim body is not a JSON object: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("verbatim body has trailing data after its JSON object")
	}
	set := func(k string, v any) {
		b, _ := json.Marshal(v) // plain values: cannot fail
		m[k] = b
	}
	set("stream", true)
	set("stream_options", usageOptions)
	if opt.VerbatimModel != "" {
		set("model", opt.VerbatimModel)
	}
	if opt.ExactOutput && maxTok > 0 {
		_, hasMCT := m["max_completion_tokens"]
		set("max_tokens", maxTok)
		if hasMCT {
			set("max_completion_tokens", maxTok)
		}
		if !opt.NoEOSFields {
			set("min_tokens", minTok)
			set("ignore_eos", ignoreEOS)
		}
	}
	if opt.NoEOSFields {
		delete(m, "min_tokens")
		delete(m, "ignore_eos")
	}
	out, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode verbatim body: %w", err)
	}
	return out, nil
}
