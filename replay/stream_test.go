package replay

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/vbench/vbench/metric"
)

const sampleStream = "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n" +
	"data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}],\"usage\":{\"completion_tokens\":1}}\n\n" +
	"data: {\"choices\":[{\"delta\":{\"content\":\"b\"}}],\"usage\":{\"completion_tokens\":2}}\n\n" +
	"data: {\"choices\":[],\"usage\":{\"completion_tokens\":2}}\n\n" +
	"data: [DONE]\n\n"

func TestStreamerRead(t *testing.T) {
	tests := []struct {
		stream  string
		content int32
		tokens  int32
		source  metric.TokenSource
		err     error
	}{
		{sampleStream, 2, 2, metric.SourceUsageChunks, nil},
		{strings.TrimSuffix(sampleStream, "data: [DONE]\n\n"), 2, 2, metric.SourceUsageChunks, errTruncated},
		{"data: {\"error\":{\"message\":\"x\"}}\n\ndata: [DONE]\n\n", 0, 0, metric.SourceNone, errStreamError},
		// The two the old scanner of its own got wrong (issue 18): white
		// space after a colon is content, and the PyTorch baseline's
		// engine-failure event is an error.
		{"data: {\"choices\":[{\"delta\":{\"content\": \"hi\"}}]}\n\ndata: [DONE]\n\n", 1, 1, metric.SourceChunks, nil},
		{"data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"error\": {\"message\": \"engine failed\"}}\n\n", 1, 1, metric.SourceChunks, errStreamError},
		{"", 0, 0, metric.SourceNone, errTruncated},
	}
	for _, tt := range tests {
		var s streamer
		var res metric.Request
		err := s.read(strings.NewReader(tt.stream), true, time.Now(), &res)
		if err != tt.err || res.ContentEvents != tt.content || res.OutputTokens != tt.tokens || res.TokenSource != tt.source || res.Bytes != int64(len(tt.stream)) {
			t.Errorf("read(%q) = content %d tokens %d (%s) bytes %d err %v; want %d %d (%s) %d %v", tt.stream, res.ContentEvents, res.OutputTokens, res.TokenSource, res.Bytes, err,
				tt.content, tt.tokens, tt.source, len(tt.stream), tt.err)
		}
		if tt.content > 0 && (res.FirstContent <= 0 || res.FirstContent < res.FirstByte) {
			t.Errorf("first content %v first byte %v", res.FirstContent, res.FirstByte)
		}
	}
}

// TestStreamerReadJSON: a non-streamed response takes its usage from the
// JSON body (issue 18: it had none).
func TestStreamerReadJSON(t *testing.T) {
	body := `{"id":"cmpl-1","object":"text_completion","choices":[{"index":0,"text":"hello there","finish_reason":"length"}],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}`
	var s streamer
	var res metric.Request
	if err := s.read(oneByteChunks{strings.NewReader(body), 13}, false, time.Now(), &res); err != nil {
		t.Fatal(err)
	}
	if res.OutputTokens != 7 || res.PromptTokens != 5 || res.TokenSource != metric.SourceUsage || res.Streamed {
		t.Errorf("non-streamed: %d output tokens (%s), %d prompt, streamed %v; want 7 (usage), 5, false", res.OutputTokens, res.TokenSource, res.PromptTokens, res.Streamed)
	}
	if err := s.read(strings.NewReader(body[:40]), false, time.Now(), &res); err != errTruncated {
		t.Errorf("a cut JSON body: %v; want errTruncated", err)
	}
	if err := s.read(strings.NewReader(`{"error":{"message":"boom"}}`), false, time.Now(), &res); err != errStreamError {
		t.Errorf("an error object: %v; want errStreamError", err)
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
		var ra, rb metric.Request
		errA := a.read(bytes.NewReader(stream), true, time.Now(), &ra)
		errB := b.read(oneByteReader{bytes.NewReader(stream)}, true, time.Now(), &rb)
		if errA != errB || ra.ContentEvents != rb.ContentEvents || ra.OutputTokens != rb.OutputTokens || ra.TokenSource != rb.TokenSource ||
			ra.Bytes != int64(len(stream)) || rb.Bytes != ra.Bytes {
			t.Fatalf("whole: %d %d %v; byte by byte: %d %d %v", ra.ContentEvents, ra.OutputTokens, errA, rb.ContentEvents, rb.OutputTokens, errB)
		}
	})
}

// TestStreamerAllocs: reading a stream allocates nothing, per chunk or per
// response, once the decoder's buffers have grown.
func TestStreamerAllocs(t *testing.T) {
	var s streamer
	body := bytes.Repeat([]byte("data: {\"choices\":[{\"text\":\"tok\"}],\"usage\":{\"completion_tokens\":1}}\n\n"), 200)
	body = append(body, "data: [DONE]\n\n"...)
	r := bytes.NewReader(body)
	res := new(metric.Request)
	now := time.Now()
	var rd io.Reader = oneByteChunks{r, 64}
	allocs := testing.AllocsPerRun(100, func() {
		r.Reset(body)
		*res = metric.Request{}
		if err := s.read(rd, true, now, res); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 0 {
		t.Errorf("%.1f allocations per 201-event stream; want none", allocs)
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
	res := new(metric.Request)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		r.Reset(body)
		*res = metric.Request{}
		if err := s.read(oneByteChunks{r, 160}, true, time.Now(), res); err != nil {
			b.Fatal(err)
		}
	}
}
