package replay

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/vbench/vbench/internal/openai"
)

var scanEventTests = []struct {
	data     string
	kind     eventKind
	tokens   int32
	finished bool
}{
	{`[DONE]`, eventDone, -1, false},
	{`{"choices":[{"text":"hi"}]}`, eventContent, -1, false},
	{`{"choices":[{"text":""}],"usage":{"prompt_tokens":3,"completion_tokens":0}}`, eventOther, 0, false},
	{`{"choices":[{"delta":{"role":"assistant","content":""}}]}`, eventOther, -1, false},
	{`{"choices":[{"delta":{"content":"x"}}],"usage":{"completion_tokens": 12}}`, eventContent, 12, false},
	{`{"choices":[{"delta":{"reasoning_content":"think"}}]}`, eventContent, -1, false},
	{`{"choices":[{"token_ids":[5,6]}]}`, eventContent, -1, false},
	{`{"choices":[{"delta":{"tool_calls":[{"id":"1"}]}}]}`, eventContent, -1, false},
	{`{"choices":[],"usage":{"completion_tokens":99999999999}}`, eventOther, -1, false},
	{`{"error":{"message":"boom","code":500}}`, eventError, -1, false},
	{`{"object":"error","message":"x"}`, eventError, -1, false},
	{`garbage`, eventOther, -1, false},
	{`{"choices":[{"index":0,"text":"tok","finish_reason":null}],"usage":{"completion_tokens":1}}`, eventContent, 1, false},
	{`{"choices":[{"index":0,"text":"","finish_reason":"length"}]}`, eventOther, -1, true},
	{`{"choices":[{"delta":{"content":"z"},"finish_reason" : "stop"}]}`, eventContent, -1, true},
	{`{"usage":{"completion_tokens":3},"x":{"completion_tokens":7}}`, eventOther, 7, false},
	{`{"text":"`, eventOther, -1, false},
	{`"`, eventOther, -1, false},
}

func TestScanEvent(t *testing.T) {
	for _, tt := range scanEventTests {
		kind, tokens, fin := scanEvent([]byte(tt.data))
		if kind != tt.kind || tokens != tt.tokens || fin != tt.finished {
			t.Errorf("scanEvent(%s) = %d, %d, %v; want %d, %d, %v", tt.data, kind, tokens, fin, tt.kind, tt.tokens, tt.finished)
		}
	}
}

// scanEventRef is the substring-search definition that scanEvent's one
// pass must match: a key counts wherever it occurs (overlaps included),
// the last usage.completion_tokens wins, and a finish_reason is a string
// after the key and a colon, as openai.Finished.
func scanEventRef(data []byte) (eventKind, int32, bool) {
	if len(data) == 6 && string(data) == "[DONE]" {
		return eventDone, -1, false
	}
	// at calls ok with what follows each occurrence of key.
	at := func(key []byte, ok func(after []byte) bool) bool {
		for i := 0; i < len(data); i++ {
			j := bytes.Index(data[i:], key)
			if j < 0 {
				return false
			}
			i += j
			if ok(data[i+len(key):]) {
				return true
			}
		}
		return false
	}
	fin := at(keyFinish, func(after []byte) bool {
		after = bytes.TrimLeft(after, " \t\r\n")
		if len(after) == 0 || after[0] != ':' {
			return false
		}
		after = bytes.TrimLeft(after[1:], " \t\r\n")
		return len(after) > 0 && after[0] == '"'
	})
	tokens := int32(-1)
	if i := bytes.LastIndex(data, keyUsage); i >= 0 {
		tokens = parseInt(data[i+len(keyUsage):])
	}
	if bytes.Contains(data, keyError) || bytes.Contains(data, keyObjError) {
		return eventError, tokens, fin
	}
	nonEmpty := func(key []byte, closing byte) bool {
		return at(key, func(after []byte) bool { return len(after) > 0 && after[0] != closing })
	}
	if nonEmpty(keyText, '"') || nonEmpty(keyContent, '"') || nonEmpty(keyReasoning, '"') ||
		nonEmpty(keyTokenIDs, ']') || nonEmpty(keyToolCalls, ']') {
		return eventContent, tokens, fin
	}
	return eventOther, tokens, fin
}

// TestScanEventFinishedAsOpenAI checks the finish flag against
// openai.Finished on the table (well-formed payloads, no overlapping keys).
func TestScanEventFinishedAsOpenAI(t *testing.T) {
	for _, tt := range scanEventTests {
		if _, _, fin := scanEvent([]byte(tt.data)); fin != openai.Finished([]byte(tt.data)) {
			t.Errorf("scanEvent(%s) finished = %v; openai.Finished says %v", tt.data, fin, !fin)
		}
	}
}

// FuzzScanEvent checks the one-pass scanner against the substring-search
// definition on arbitrary payloads.
func FuzzScanEvent(f *testing.F) {
	for _, tt := range scanEventTests {
		f.Add([]byte(tt.data))
	}
	f.Add([]byte(`{"a":"\"text\":\"x","finish_reason":"stop","completion_tokens":"completion_tokens":5}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, tok, fin := scanEvent(data)
		rk, rtok, rfin := scanEventRef(data)
		if k != rk || tok != rtok || fin != rfin {
			t.Fatalf("scanEvent(%q) = %d, %d, %v; the substring searches say %d, %d, %v", data, k, tok, fin, rk, rtok, rfin)
		}
	})
}

const sampleStream = "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n" +
	"data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}],\"usage\":{\"completion_tokens\":1}}\n\n" +
	"data: {\"choices\":[{\"delta\":{\"content\":\"b\"}}],\"usage\":{\"completion_tokens\":2}}\n\n" +
	"data: {\"choices\":[],\"usage\":{\"completion_tokens\":2}}\n\n" +
	"data: [DONE]\n\n"

func TestStreamerRead(t *testing.T) {
	tests := []struct {
		stream  string
		content int
		tokens  int32
		err     error
	}{
		{sampleStream, 2, 2, nil},
		{strings.TrimSuffix(sampleStream, "data: [DONE]\n\n"), 2, 2, errTruncated},
		{"data: {\"error\":{\"message\":\"x\"}}\n\ndata: [DONE]\n\n", 0, -1, errStreamError},
		{"", 0, -1, errTruncated},
	}
	for _, tt := range tests {
		var s streamer
		res := RequestResult{Tokens: -1}
		err := s.read(strings.NewReader(tt.stream), time.Now(), &res)
		if err != tt.err || res.Content != tt.content || res.Tokens != tt.tokens || res.Bytes != int64(len(tt.stream)) {
			t.Errorf("read(%q) = content %d tokens %d bytes %d err %v; want %d %d %d %v", tt.stream, res.Content, res.Tokens, res.Bytes, err, tt.content, tt.tokens, len(tt.stream), tt.err)
		}
		if tt.content > 0 && (res.FirstContent <= 0 || res.FirstContent < res.FirstByte) {
			t.Errorf("first content %v first byte %v", res.FirstContent, res.FirstByte)
		}
	}
}

// oneByteReader returns one byte per Read, the worst split of a stream.
type oneByteReader struct{ r io.Reader }

func (o oneByteReader) Read(p []byte) (int, error) { return o.r.Read(p[:1]) }

// FuzzStream: a stream gives the same counts however its bytes are split
// into reads, and never panics.
func FuzzStream(f *testing.F) {
	f.Add([]byte(sampleStream), uint8(7))
	f.Add([]byte("data: [DONE]\r\n\r\n"), uint8(1))
	f.Add([]byte("\xEF\xBB\xBFdata: {\"text\":\"x\"}\r\rdata:[DONE]\n\n"), uint8(3))
	f.Add([]byte(": comment\nevent: x\ndata: {\"usage\":{\"completion_tokens\":4}}\n\n"), uint8(2))
	f.Fuzz(func(t *testing.T, stream []byte, split uint8) {
		var a, b streamer
		ra, rb := RequestResult{Tokens: -1}, RequestResult{Tokens: -1}
		errA := a.read(bytes.NewReader(stream), time.Now(), &ra)
		errB := b.read(oneByteReader{bytes.NewReader(stream)}, time.Now(), &rb)
		if errA != errB || ra.Content != rb.Content || ra.Tokens != rb.Tokens || ra.Bytes != int64(len(stream)) || rb.Bytes != ra.Bytes {
			t.Fatalf("whole: %d %d %v; byte by byte: %d %d %v", ra.Content, ra.Tokens, errA, rb.Content, rb.Tokens, errB)
		}
	})
}

// TestStreamerAllocs: reading a stream allocates nothing per chunk (the
// closure and nothing else per response).
func TestStreamerAllocs(t *testing.T) {
	var s streamer
	body := bytes.Repeat([]byte("data: {\"choices\":[{\"text\":\"tok\"}],\"usage\":{\"completion_tokens\":1}}\n\n"), 200)
	body = append(body, "data: [DONE]\n\n"...)
	r := bytes.NewReader(body)
	res := RequestResult{}
	now := time.Now()
	allocs := testing.AllocsPerRun(100, func() {
		r.Reset(body)
		res = RequestResult{Tokens: -1}
		if err := s.read(oneByteChunks{r, 64}, now, &res); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 2 {
		t.Errorf("%.1f allocations per 201-event stream; want at most 2 (none per chunk)", allocs)
	}
}

// oneByteChunks returns at most n bytes per Read.
type oneByteChunks struct {
	r io.Reader
	n int
}

func (o oneByteChunks) Read(p []byte) (int, error) { return o.r.Read(p[:min(len(p), o.n)]) }

func BenchmarkStreamerRead(b *testing.B) {
	var s streamer
	body := bytes.Repeat([]byte("data: {\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"choices\":[{\"index\":0,\"text\":\"tok\",\"finish_reason\":null}],\"usage\":{\"prompt_tokens\":8,\"completion_tokens\":1,\"total_tokens\":9}}\n\n"), 100)
	body = append(body, "data: [DONE]\n\n"...)
	r := bytes.NewReader(body)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		r.Reset(body)
		res := RequestResult{Tokens: -1}
		if err := s.read(oneByteChunks{r, 160}, time.Now(), &res); err != nil {
			b.Fatal(err)
		}
	}
}
