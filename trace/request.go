// Package trace defines the request value that flows from the synthesizer
// (and the trace importers) to the replayer, and the two files that hold a
// sequence of them: the versioned binary trace.bin and its JSON Lines twin.
//
// A trace is a Header followed by requests in arrival order. Offsets of a
// synthesized trace are drawn at a mean rate of 1 request/s; the replayer
// scales them by 1/R to play the trace at R requests/s, so every rate level
// and every variant sees the same requests in the same relative timing.
package trace

import (
	"fmt"
	"time"
)

// Endpoint paths a request can target.
const (
	EndpointCompletions = "/v1/completions"
	EndpointChat        = "/v1/chat/completions"
)

// Message is one chat message of a /v1/chat/completions prompt.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Source names where a request came from: a dataset and its row, a public
// trace and its line, or a capture and its record.
type Source struct {
	Dataset string `json:"dataset,omitempty"`
	Row     string `json:"row,omitempty"`
}

// Request is one request of a trace. Exactly one of Prompt, Messages and
// PromptTokenIDs carries the prompt, unless Body holds a verbatim captured
// request body, in which case Body is sent as it is (see the replayer).
type Request struct {
	// Index is the position of the request in its trace, from 0.
	Index int64 `json:"index"`
	// Offset is the arrival time relative to the start of the trace.
	Offset time.Duration `json:"offset_ns"`
	// Endpoint is the API path, EndpointCompletions or EndpointChat.
	Endpoint string `json:"endpoint"`
	// Prompt is a text prompt (completions).
	Prompt string `json:"prompt,omitempty"`
	// Messages is a chat prompt.
	Messages []Message `json:"messages,omitempty"`
	// PromptTokenIDs is a prompt given as token ids (completions).
	PromptTokenIDs []int32 `json:"prompt_token_ids,omitempty"`
	// InputTokens is the target (or known) prompt length in tokens.
	InputTokens int32 `json:"input_tokens"`
	// OutputTokens is the target output length in tokens.
	OutputTokens int32 `json:"output_tokens"`
	// Sampling holds the sampling parameters sent with the request.
	Sampling Sampling `json:"sampling"`
	// Source says where the request came from.
	Source Source `json:"source,omitempty"`
	// Conversation groups the turns of one multi-turn conversation; empty
	// for single requests.
	Conversation string `json:"conversation,omitempty"`
	// Turn is the 0-based turn number inside Conversation.
	Turn int32 `json:"turn,omitempty"`
	// ThinkTime is, for a turn after the first, the recorded gap between
	// the end of the previous turn's answer and this turn's arrival (the
	// user's think time). The replayer sends the turn no earlier than the
	// previous turn's end plus ThinkTime (scaled like offsets). Zero for
	// single requests and first turns.
	ThinkTime time.Duration `json:"think_ns,omitempty"`
	// Body is a verbatim captured request body (traffic replay); when set it
	// is what the replayer sends.
	Body []byte `json:"body,omitempty"`
}

// Sampling holds the sampling parameters of a request. Temperature and TopP
// are sent only when their Has flag is set, so a trace can leave them to the
// server's defaults.
type Sampling struct {
	MaxTokens      int32   `json:"max_tokens"`
	MinTokens      int32   `json:"min_tokens,omitempty"`
	IgnoreEOS      bool    `json:"ignore_eos,omitempty"`
	HasTemperature bool    `json:"has_temperature,omitempty"`
	Temperature    float64 `json:"temperature,omitempty"`
	HasTopP        bool    `json:"has_top_p,omitempty"`
	TopP           float64 `json:"top_p,omitempty"`
}

// PromptKind says which field carries the prompt of a request.
type PromptKind uint8

// Prompt kinds, in the order the binary format stores them.
const (
	PromptText PromptKind = iota
	PromptMessages
	PromptTokens
)

// Kind returns which field carries the prompt: token ids win over messages,
// messages over text.
func (r *Request) Kind() PromptKind {
	switch {
	case len(r.PromptTokenIDs) > 0:
		return PromptTokens
	case len(r.Messages) > 0:
		return PromptMessages
	default:
		return PromptText
	}
}

// Validate reports the first problem that makes r unusable by the replayer.
func (r *Request) Validate() error {
	switch {
	case r.Index < 0:
		return fmt.Errorf("index %d is negative", r.Index)
	case r.Offset < 0:
		return fmt.Errorf("offset %v is negative", r.Offset)
	case r.Endpoint == "":
		return fmt.Errorf("endpoint is empty")
	case r.Endpoint[0] != '/':
		return fmt.Errorf("endpoint %q does not start with /", r.Endpoint)
	case r.InputTokens < 0:
		return fmt.Errorf("input tokens %d is negative", r.InputTokens)
	case r.OutputTokens < 0:
		return fmt.Errorf("output tokens %d is negative", r.OutputTokens)
	case r.ThinkTime < 0:
		return fmt.Errorf("think time %v is negative", r.ThinkTime)
	case r.Sampling.MaxTokens < 0 || r.Sampling.MinTokens < 0:
		return fmt.Errorf("max_tokens %d / min_tokens %d is negative", r.Sampling.MaxTokens, r.Sampling.MinTokens)
	case len(r.Messages) > 0 && len(r.PromptTokenIDs) > 0:
		return fmt.Errorf("both messages and prompt token ids are set")
	case len(r.Body) == 0 && r.Endpoint == EndpointChat && len(r.Messages) == 0:
		return fmt.Errorf("chat request without messages")
	}
	return nil
}

// Clone returns a deep copy of r.
func (r *Request) Clone() Request {
	c := *r
	c.Messages = append([]Message(nil), r.Messages...)
	c.PromptTokenIDs = append([]int32(nil), r.PromptTokenIDs...)
	c.Body = append([]byte(nil), r.Body...)
	if len(r.Messages) == 0 {
		c.Messages = nil
	}
	if len(r.PromptTokenIDs) == 0 {
		c.PromptTokenIDs = nil
	}
	if len(r.Body) == 0 {
		c.Body = nil
	}
	return c
}
