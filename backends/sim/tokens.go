package sim

import (
	"encoding/json"
	"hash/fnv"
	"math/rand/v2"
	"unicode/utf8"
)

// CharsPerToken is the text prompt rule: a text prompt of n characters
// (Unicode code points) counts ceil(n / CharsPerToken) tokens, at least 1 —
// about right for English under GPT-2/Llama BPE tokenizers, exactly
// reproducible, and the same rule as synth.EstimateTokens. Token-id prompts
// count exactly.
const CharsPerToken = 4

// ChatMessageOverhead is the chat-template cost of each chat message in
// tokens (role markers, separators); ChatPrimer is the assistant prefix the
// template appends.
const (
	ChatMessageOverhead = 4
	ChatPrimer          = 3
)

// TextTokens returns the token count of a text prompt of n characters.
func TextTokens(n int) int {
	if n <= 0 {
		return 1
	}
	return (n + CharsPerToken - 1) / CharsPerToken
}

// chatTokens counts a chat prompt: every message's content by the text
// rule plus ChatMessageOverhead, plus ChatPrimer.
func chatTokens(msgs []chatMessage) int {
	n := ChatPrimer
	for _, m := range msgs {
		n += ChatMessageOverhead
		if l := m.contentLen(); l > 0 {
			n += TextTokens(l)
		}
	}
	return n
}

type chatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// contentLen returns the length in characters of a message's text: a
// string, or the text parts of a content array.
func (m chatMessage) contentLen() int {
	if len(m.Content) == 0 || string(m.Content) == "null" {
		return 0
	}
	var s string
	if json.Unmarshal(m.Content, &s) == nil {
		return utf8.RuneCountInString(s)
	}
	var parts []struct {
		Text string `json:"text"`
	}
	if json.Unmarshal(m.Content, &parts) == nil {
		n := 0
		for _, p := range parts {
			n += utf8.RuneCountInString(p.Text)
		}
		return n
	}
	return len(m.Content)
}

// outputLength decides how many tokens a request generates. With ignore_eos
// it is maxTokens. Otherwise the simulated EOS falls uniformly in
// [max(minTokens,1), maxTokens], drawn from a generator seeded by the
// server seed and the request's content hash, so the same request always
// stops at the same point regardless of arrival order.
func outputLength(seed int64, contentHash uint64, maxTokens, minTokens int, ignoreEOS bool) (n int, reason string) {
	if ignoreEOS || maxTokens <= 1 {
		return maxTokens, FinishLength
	}
	lo := max(minTokens, 1)
	if lo >= maxTokens {
		return maxTokens, FinishLength
	}
	r := rand.New(rand.NewPCG(uint64(seed), contentHash))
	n = lo + r.IntN(maxTokens-lo+1)
	if n == maxTokens {
		return n, FinishLength
	}
	return n, FinishStop
}

// contentHash hashes what identifies a request's content.
func contentHash(parts ...[]byte) uint64 {
	h := fnv.New64a()
	for _, p := range parts {
		h.Write(p)
		h.Write([]byte{0})
	}
	return h.Sum64()
}

// words are the simulated output vocabulary; token i of a request is
// " " + words[(h+i·7919) mod len] (ASCII only, so no JSON escaping).
var words = [...]string{
	"the", "model", "serves", "tokens", "in", "a", "batch", "of", "requests", "and",
	"memory", "is", "paged", "into", "blocks", "so", "more", "sequences", "fit", "on",
	"one", "GPU", "while", "latency", "stays", "low", "until", "the", "rate", "reaches",
	"its", "knee", "where", "queues", "grow", "without", "bound", "because", "each", "step",
	"decodes", "every", "running", "sequence", "once", "prefill", "costs", "compute", "cache", "slots",
}

func appendToken(b []byte, h uint64, i int) []byte {
	b = append(b, ' ')
	return append(b, words[(h+uint64(i)*7919)%uint64(len(words))]...)
}
