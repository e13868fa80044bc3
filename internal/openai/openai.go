// Package openai is vbench's one decoder of OpenAI-compatible responses
// (vLLM, our PyTorch baseline, the simulator, transformers serve): Scan
// reads one streamed event's JSON without building values, and Decoder
// reads a whole response, read by read, into the response fields of a
// metric.Request. The proxy (to fill a capture's chunk timeline), the
// replayer (its own observations) and the analysis (a capture record) all
// go through it, so "content", "tokens" and "finished" mean one thing
// everywhere. Invalid JSON is reported, never a panic; nothing allocates
// per event.
package openai

import (
	"bytes"
	"encoding/binary"
	"math/bits"
)

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
	// Finished says a choice has a non-null finish_reason string: the
	// choice ended (servers that never send [DONE], such as transformers
	// serve, end a stream this way).
	Finished bool
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

// Scan reads one event's data.
func Scan(data []byte) Info {
	info := Info{CompletionTokens: -1, PromptTokens: -1}
	data = bytes.TrimSpace(data)
	if len(data) == 6 && string(data) == "[DONE]" {
		info.Valid, info.Done = true, true
		return info
	}
	if len(data) == 0 || data[0] != '{' {
		return info
	}
	i := object(data, 0, atTop, 0, &info)
	info.Valid = i >= 0 && ws(data, i) == len(data)
	return info
}

// space marks JSON white space.
var space = [256]bool{' ': true, '\t': true, '\n': true, '\r': true}

// strStop marks the bytes that end the fast part of a string: the quote,
// a backslash, and control characters (invalid inside a string).
var strStop = func() (t [256]bool) {
	for c := 0; c < 0x20; c++ {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// numChar marks the bytes a JSON number may hold after its first.
var numChar = [256]bool{'0': true, '1': true, '2': true, '3': true, '4': true, '5': true, '6': true, '7': true, '8': true, '9': true,
	'.': true, 'e': true, 'E': true, '+': true, '-': true}

// The scanner's functions take the input and a position and return the
// position after what they read (-1: invalid), so the hot state stays in
// registers.

func ws(b []byte, i int) int {
	for i < len(b) && space[b[i]] {
		i++
	}
	return i
}

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// hasLess marks (in the high bit of each byte's lane) the bytes of x below
// n (n <= 128); the lowest marked lane is exact, higher ones may be false
// positives, which is all str needs.
func hasLess(x uint64, n uint64) uint64 { return (x - ones*n) &^ x & highs }

// hasByte marks the bytes of x equal to c, as hasLess.
func hasByte(x uint64, c byte) uint64 { return hasLess(x^(ones*uint64(c)), 1) }

// str reads a string at b[i] == '"' and returns the end of its raw bytes
// (escapes kept) and the position after its closing quote.
func str(b []byte, i int) (end, next int) {
	j := i + 1
	for {
		// Eight bytes at a time while no stop byte is among them, then
		// byte by byte.
		for j+8 <= len(b) {
			x := binary.LittleEndian.Uint64(b[j:])
			if m := hasByte(x, '"') | hasByte(x, '\\') | hasLess(x, 0x20); m != 0 {
				j += bits.TrailingZeros64(m) / 8
				break
			}
			j += 8
		}
		for j < len(b) && !strStop[b[j]] {
			j++
		}
		if j >= len(b) {
			return -1, -1
		}
		switch b[j] {
		case '"':
			return j, j + 1
		case '\\':
			j += 2
		default:
			return -1, -1 // a control character
		}
	}
}

// object reads an object at b[i] == '{'; w says where its members live.
func object(b []byte, i int, w where, depth int, info *Info) int {
	if depth > maxDepth {
		return -1
	}
	i = ws(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return -1
		}
		kend, next := str(b, i)
		if next < 0 {
			return -1
		}
		key := b[i+1 : kend]
		i = ws(b, next)
		if i >= len(b) || b[i] != ':' {
			return -1
		}
		i = ws(b, i+1)
		if i = member(b, i, w, key, depth, info); i < 0 {
			return -1
		}
		i = ws(b, i)
		if i >= len(b) {
			return -1
		}
		switch b[i] {
		case ',':
			i = ws(b, i+1)
		case '}':
			return i + 1
		default:
			return -1
		}
	}
}

// member reads the value of key in an object at w and notes what matters.
func member(b []byte, i int, w where, key []byte, depth int, info *Info) int {
	if i >= len(b) {
		return -1
	}
	c := b[i]
	switch w {
	case atTop:
		switch string(key) {
		case "choices":
			return value(b, i, inChoices, depth+1, info)
		case "usage":
			if c == '{' {
				return object(b, i, inUsage, depth+1, info)
			}
		case "error":
			if c != 'n' {
				info.Error = true
			}
		case "object":
			if c == '"' {
				end, next := str(b, i)
				if next >= 0 && string(b[i+1:end]) == "error" {
					info.Error = true
				}
				return next
			}
		}
		return value(b, i, elsewhere, depth+1, info)
	case inUsage:
		switch string(key) {
		case "completion_tokens":
			if n, next := number(b, i); next >= 0 {
				info.CompletionTokens = n
				return next
			}
		case "prompt_tokens":
			if n, next := number(b, i); next >= 0 {
				info.PromptTokens = n
				return next
			}
		}
		return value(b, i, elsewhere, depth+1, info)
	case inChoices:
		switch string(key) {
		case "content", "text", "reasoning_content", "reasoning":
			if c == '"' {
				end, next := str(b, i)
				if next >= 0 && end > i+1 {
					info.Content = true
				}
				return next
			}
		case "finish_reason":
			if c == '"' {
				_, next := str(b, i)
				if next >= 0 {
					info.Finished = true
				}
				return next
			}
		case "tool_calls":
			if c == '[' {
				next := value(b, i, inChoices, depth+1, info)
				if next >= 0 && !isEmptyArray(b[i:next]) {
					info.Content = true
				}
				return next
			}
		case "token_ids":
			if c == '[' {
				return tokenIDs(b, i, depth+1, info)
			}
		}
		return value(b, i, inChoices, depth+1, info)
	}
	return value(b, i, elsewhere, depth+1, info)
}

func isEmptyArray(b []byte) bool {
	return len(bytes.TrimSpace(b[1:len(b)-1])) == 0
}

// tokenIDs reads an array of token ids at b[i] == '[' and counts its
// numbers.
func tokenIDs(b []byte, i int, depth int, info *Info) int {
	i = ws(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1
	}
	for {
		if i < len(b) && (b[i] == '-' || b[i] >= '0' && b[i] <= '9') {
			info.TokenIDs++
			info.Content = true
		}
		if i = value(b, i, elsewhere, depth+1, info); i < 0 {
			return -1
		}
		i = ws(b, i)
		if i >= len(b) {
			return -1
		}
		switch b[i] {
		case ',':
			i = ws(b, i+1)
		case ']':
			return i + 1
		default:
			return -1
		}
	}
}

// number reads a JSON number that must be a non-negative integer fitting
// int32; anything else (next < 0) is left for value to skip.
func number(b []byte, i int) (n int32, next int) {
	j := i
	var v int64
	for j < len(b) && b[j] >= '0' && b[j] <= '9' {
		v = v*10 + int64(b[j]-'0')
		if v > 1<<31-1 {
			return 0, -1
		}
		j++
	}
	if j == i || (j < len(b) && (b[j] == '.' || b[j] == 'e' || b[j] == 'E')) {
		return 0, -1
	}
	return int32(v), j
}

// value skips any JSON value at b[i]; objects and arrays inherit w.
func value(b []byte, i int, w where, depth int, info *Info) int {
	if depth > maxDepth || i >= len(b) {
		return -1
	}
	switch c := b[i]; {
	case c == '"':
		_, next := str(b, i)
		return next
	case c == '{':
		return object(b, i, w, depth, info)
	case c == '[':
		i = ws(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1
		}
		for {
			if i = value(b, i, w, depth+1, info); i < 0 {
				return -1
			}
			i = ws(b, i)
			if i >= len(b) {
				return -1
			}
			switch b[i] {
			case ',':
				i = ws(b, i+1)
			case ']':
				return i + 1
			default:
				return -1
			}
		}
	case c == 't':
		return lit(b, i, "true")
	case c == 'f':
		return lit(b, i, "false")
	case c == 'n':
		return lit(b, i, "null")
	case c == '-' || (c >= '0' && c <= '9'):
		j := i
		if c == '-' {
			j++
		}
		digits := j
		for j < len(b) && numChar[b[j]] {
			j++
		}
		if j == digits {
			return -1
		}
		return j
	}
	return -1
}

func lit(b []byte, i int, word string) int {
	if len(b)-i < len(word) || string(b[i:i+len(word)]) != word {
		return -1
	}
	return i + len(word)
}
