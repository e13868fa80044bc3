// Package openai is a quick, allocation-free scanner of the JSON an
// OpenAI-compatible server (vLLM, our PyTorch baseline, the simulator) sends
// in each streamed event: whether the event carries generated content, how
// many token ids it holds, the usage counters, and whether it is an error.
// It does not build values; it walks the bytes once. Invalid JSON is
// reported, never a panic.
package openai

import "bytes"

// Info is what Scan found in one event's data.
type Info struct {
	// Valid says the data was one well-formed JSON object (or [DONE]).
	Valid bool
	// Done is the "[DONE]" sentinel that ends an OpenAI stream.
	Done bool
	// Error is an error object: a top-level "error" key that is not null,
	// or "object": "error" (older vLLM).
	Error bool
	// Content says a choice carries generated output: a non-empty content,
	// text, reasoning or reasoning_content string, a non-empty tool_calls
	// array, or token ids.
	Content bool
	// TokenIDs counts the numbers in the choices' token_ids arrays.
	TokenIDs int32
	// CompletionTokens and PromptTokens come from a top-level usage object;
	// -1 when absent or null.
	CompletionTokens int32
	PromptTokens     int32
}

// maxDepth bounds nesting so hostile input cannot exhaust the stack.
const maxDepth = 64

// where says which part of the chunk a value belongs to.
type where uint8

const (
	atTop where = iota
	inChoices
	inUsage
	elsewhere
)

var done = []byte("[DONE]")

// Scan reads one event's data.
func Scan(data []byte) Info {
	info := Info{CompletionTokens: -1, PromptTokens: -1}
	data = bytes.TrimSpace(data)
	if bytes.Equal(data, done) {
		info.Valid, info.Done = true, true
		return info
	}
	s := scanner{b: data, info: &info}
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		return info
	}
	if !s.object(atTop, 0) {
		return info
	}
	s.ws()
	info.Valid = s.i == len(s.b)
	return info
}

type scanner struct {
	b    []byte
	i    int
	info *Info
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// str reads a string at s.i and returns its raw bytes (escapes kept).
func (s *scanner) str() ([]byte, bool) {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return nil, false
	}
	start := s.i + 1
	for j := start; j < len(s.b); j++ {
		switch s.b[j] {
		case '\\':
			j++
		case '"':
			s.i = j + 1
			return s.b[start:j], true
		default:
			if s.b[j] < 0x20 {
				return nil, false
			}
		}
	}
	return nil, false
}

// object reads an object; w says where its members live.
func (s *scanner) object(w where, depth int) bool {
	if depth > maxDepth {
		return false
	}
	s.i++ // '{'
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return true
	}
	for {
		s.ws()
		key, ok := s.str()
		if !ok {
			return false
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return false
		}
		s.i++
		s.ws()
		if !s.member(w, key, depth) {
			return false
		}
		s.ws()
		if s.i >= len(s.b) {
			return false
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			return true
		default:
			return false
		}
	}
}

// member reads the value of key in an object at w and notes what matters.
func (s *scanner) member(w where, key []byte, depth int) bool {
	if s.i >= len(s.b) {
		return false
	}
	c := s.b[s.i]
	switch w {
	case atTop:
		switch string(key) {
		case "choices":
			return s.value(inChoices, depth+1)
		case "usage":
			if c == '{' {
				return s.object(inUsage, depth+1)
			}
		case "error":
			if c != 'n' {
				s.info.Error = true
			}
		case "object":
			if c == '"' {
				v, ok := s.str()
				if ok && string(v) == "error" {
					s.info.Error = true
				}
				return ok
			}
		}
		return s.value(elsewhere, depth+1)
	case inUsage:
		switch string(key) {
		case "completion_tokens":
			if n, ok := s.number(); ok {
				s.info.CompletionTokens = n
				return true
			}
		case "prompt_tokens":
			if n, ok := s.number(); ok {
				s.info.PromptTokens = n
				return true
			}
		}
		return s.value(elsewhere, depth+1)
	case inChoices:
		switch string(key) {
		case "content", "text", "reasoning_content", "reasoning":
			if c == '"' {
				v, ok := s.str()
				if ok && len(v) > 0 {
					s.info.Content = true
				}
				return ok
			}
		case "tool_calls":
			if c == '[' {
				start := s.i
				if !s.value(inChoices, depth+1) {
					return false
				}
				if !isEmptyArray(s.b[start:s.i]) {
					s.info.Content = true
				}
				return true
			}
		case "token_ids":
			if c == '[' {
				return s.tokenIDs(depth + 1)
			}
		}
		return s.value(inChoices, depth+1)
	}
	return s.value(elsewhere, depth+1)
}

func isEmptyArray(b []byte) bool {
	return len(bytes.TrimSpace(b[1:len(b)-1])) == 0
}

// tokenIDs reads an array of token ids and counts its numbers.
func (s *scanner) tokenIDs(depth int) bool {
	s.i++ // '['
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		return true
	}
	for {
		s.ws()
		if s.i < len(s.b) && (s.b[s.i] == '-' || s.b[s.i] >= '0' && s.b[s.i] <= '9') {
			s.info.TokenIDs++
			s.info.Content = true
		}
		if !s.value(elsewhere, depth+1) {
			return false
		}
		s.ws()
		if s.i >= len(s.b) {
			return false
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case ']':
			s.i++
			return true
		default:
			return false
		}
	}
}

// number reads a JSON number that must be a non-negative integer fitting
// int32; anything else is left for value to skip.
func (s *scanner) number() (int32, bool) {
	j := s.i
	var n int64
	for j < len(s.b) && s.b[j] >= '0' && s.b[j] <= '9' {
		n = n*10 + int64(s.b[j]-'0')
		if n > 1<<31-1 {
			return 0, false
		}
		j++
	}
	if j == s.i || (j < len(s.b) && (s.b[j] == '.' || s.b[j] == 'e' || s.b[j] == 'E')) {
		return 0, false
	}
	s.i = j
	return int32(n), true
}

// value skips any JSON value; objects and arrays inherit w.
func (s *scanner) value(w where, depth int) bool {
	if depth > maxDepth || s.i >= len(s.b) {
		return false
	}
	switch c := s.b[s.i]; {
	case c == '{':
		return s.object(w, depth)
	case c == '[':
		s.i++
		s.ws()
		if s.i < len(s.b) && s.b[s.i] == ']' {
			s.i++
			return true
		}
		for {
			s.ws()
			if !s.value(w, depth+1) {
				return false
			}
			s.ws()
			if s.i >= len(s.b) {
				return false
			}
			switch s.b[s.i] {
			case ',':
				s.i++
			case ']':
				s.i++
				return true
			default:
				return false
			}
		}
	case c == '"':
		_, ok := s.str()
		return ok
	case c == 't':
		return s.lit("true")
	case c == 'f':
		return s.lit("false")
	case c == 'n':
		return s.lit("null")
	case c == '-' || (c >= '0' && c <= '9'):
		j := s.i
		if s.b[j] == '-' {
			j++
		}
		digits := j
		for j < len(s.b) && (s.b[j] >= '0' && s.b[j] <= '9' || s.b[j] == '.' || s.b[j] == 'e' || s.b[j] == 'E' || s.b[j] == '+' || s.b[j] == '-') {
			j++
		}
		if j == digits {
			return false
		}
		s.i = j
		return true
	}
	return false
}

func (s *scanner) lit(word string) bool {
	if len(s.b)-s.i < len(word) || string(s.b[s.i:s.i+len(word)]) != word {
		return false
	}
	s.i += len(word)
	return true
}
