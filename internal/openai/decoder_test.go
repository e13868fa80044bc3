package openai

import (
	"bytes"
	"testing"
	"time"

	"github.com/vbench/vbench/metric"
)

const stream = "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n" +
	"data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":1}}\n\n" +
	"data: {\"choices\":[{\"delta\":{\"content\":\"bc\"}}],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3}}\n\n" +
	"data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"length\"}],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3}}\n\n" +
	"data: [DONE]\n\n"

// feed reads body through d in reads of n bytes, one millisecond apart,
// and returns the chunks it reported.
func feed(d *Decoder, r *metric.Request, body []byte, n int, streamed bool) []Chunk {
	d.Reset(r, streamed)
	var out []Chunk
	for i, at := 0, time.Duration(0); i < len(body); i, at = i+n, at+time.Millisecond {
		out = append(out, d.Read(at, body[i:min(i+n, len(body))]))
	}
	d.Finish()
	return out
}

func TestDecoderStream(t *testing.T) {
	var d Decoder
	var r metric.Request
	feed(&d, &r, []byte(stream), 1<<20, true)
	if r.OutputTokens != 3 || r.TokenSource != metric.SourceUsageChunks || r.PromptTokens != 7 || r.ContentEvents != 2 || r.ContentChunks != 1 {
		t.Errorf("one read: %+v", r)
	}
	if d.Problem() != "" || d.Events() != 5 {
		t.Errorf("problem %q, %d events", d.Problem(), d.Events())
	}
	// Split so each event is its own read: two content chunks, one gap.
	var chunks []Chunk
	d.Reset(&r, true)
	for i, ev := range bytes.SplitAfter([]byte(stream), []byte("\n\n")) {
		chunks = append(chunks, d.Read(time.Duration(i)*time.Millisecond, ev))
	}
	d.Finish()
	if r.ContentChunks != 2 || r.FirstContent != time.Millisecond || r.ITLGaps != 1 || r.ITLSum != time.Millisecond || r.OutputTokens != 3 {
		t.Errorf("per event: %+v", r)
	}
	if c := chunks[2]; c.Events != 1 || c.Content != 1 || c.Tokens != 2 || c.Usage != 3 {
		t.Errorf("chunk 2 = %+v; want 1 event, 1 content, 2 tokens, usage 3", c)
	}
}

func TestDecoderSources(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		tokens int32
		source metric.TokenSource
	}{
		{"final usage", "data: {\"choices\":[{\"text\":\"a\"}]}\n\ndata: {\"choices\":[{\"text\":\"b\"}]}\n\ndata: {\"choices\":[],\"usage\":{\"completion_tokens\":9}}\n\ndata: [DONE]\n\n", 9, metric.SourceUsage},
		{"token ids", "data: {\"choices\":[{\"text\":\"a\",\"token_ids\":[1,2]}]}\n\ndata: {\"choices\":[{\"token_ids\":[3]}]}\n\ndata: [DONE]\n\n", 3, metric.SourceTokenIDs},
		{"estimate", "data: {\"choices\":[{\"text\":\"a\"}]}\n\ndata: {\"choices\":[{\"text\":\"b\"}]}\n\ndata: [DONE]\n\n", 2, metric.SourceChunks},
		{"nothing", "data: [DONE]\n\n", 0, metric.SourceNone},
		// the case: white space after the colon is still content
		{"spaced", "data: {\"choices\":[{\"delta\":{\"content\": \"hi\"}}]}\n\ndata: [DONE]\n\n", 1, metric.SourceChunks},
	}
	for _, tt := range tests {
		var d Decoder
		var r metric.Request
		feed(&d, &r, []byte(tt.body), 7, true)
		if r.OutputTokens != tt.tokens || r.TokenSource != tt.source || d.Problem() != "" {
			t.Errorf("%s: %d tokens from %s (problem %q); want %d from %s", tt.name, r.OutputTokens, r.TokenSource, d.Problem(), tt.tokens, tt.source)
		}
	}
}

func TestDecoderProblems(t *testing.T) {
	tests := []struct {
		name, body string
		streamed   bool
		want       string
	}{
		{"done", stream, true, ""},
		{"finish reason, no DONE", "data: {\"choices\":[{\"text\":\"a\",\"finish_reason\":\"stop\"}]}\n\n", true, ""},
		{"cut", "data: {\"choices\":[{\"text\":\"a\",\"finish_reason\":null}]}\n\n", true, metric.KindTruncated},
		{"error event", "data: {\"choices\":[{\"text\":\"a\"}]}\n\ndata: {\"error\":{\"message\":\"x\"}}\n\ndata: [DONE]\n\n", true, metric.KindStreamError},
		// the PyTorch baseline's engine failure, spaced as Python writes it
		{"engine failure", "data: {\"error\": {\"message\": \"engine died\", \"type\": \"InternalServerError\"}}\n\n", true, metric.KindStreamError},
		{"event: error", "event: error\ndata: {\"message\":\"x\"}\n\ndata: [DONE]\n\n", true, metric.KindStreamError},
		{"json", `{"choices":[{"text":"a"}],"usage":{"prompt_tokens":2,"completion_tokens":4}}`, false, ""},
		{"json error", `{"error":{"message":"bad"}}`, false, metric.KindStreamError},
		{"cut json", `{"choices":[{"text":"a"}],"usa`, false, metric.KindTruncated},
	}
	for _, tt := range tests {
		var d Decoder
		var r metric.Request
		feed(&d, &r, []byte(tt.body), 5, tt.streamed)
		if got := d.Problem(); got != tt.want {
			t.Errorf("%s: problem %q; want %q", tt.name, got, tt.want)
		}
	}
}

// TestDecoderJSONUsage: a non-streamed response's usage comes from its
// JSON body (issue 18: it was -1 / 0 / none), read whole or recorded.
func TestDecoderJSONUsage(t *testing.T) {
	body := []byte(`{"id":"x","object":"text_completion","choices":[{"index":0,"text":"a b c","finish_reason":"length"}],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}`)
	var d Decoder
	var r metric.Request
	feed(&d, &r, body, 16, false)
	if r.OutputTokens != 5 || r.PromptTokens != 12 || r.TokenSource != metric.SourceUsage || r.Streamed || r.ContentChunks != 0 {
		t.Errorf("read: %+v", r)
	}
	// The analysis path: a recorded body, no chunks decoded.
	var r2 metric.Request
	d.Reset(&r2, false)
	d.Add(0, len(body), Chunk{Tokens: -1, Usage: -1})
	d.Body(body)
	d.Finish()
	if r2.OutputTokens != 5 || r2.PromptTokens != 12 || r2.TokenSource != metric.SourceUsage {
		t.Errorf("recorded body: %+v", r2)
	}
}

// TestDecoderPathsAgree: what a capture stores (the chunks Read returned)
// decodes, through Add, to the same response fields as the raw reads: the
// replayer's view and the analysis' view of one response are one.
func TestDecoderPathsAgree(t *testing.T) {
	for _, n := range []int{1, 3, 17, 64, 1 << 20} {
		checkPaths(t, []byte(stream), n)
	}
}

func checkPaths(t *testing.T, body []byte, n int) {
	t.Helper()
	var raw, stored Decoder
	var a, b metric.Request
	chunks := feed(&raw, &a, body, n, true)
	stored.Reset(&b, true)
	at := time.Duration(0)
	for i := 0; i < len(body); i, at = i+n, at+time.Millisecond {
		stored.Add(at, min(n, len(body)-i), chunks[i/n])
	}
	stored.Usage(raw.PromptTokens(), raw.CompletionTokens())
	stored.Finish()
	if a != b {
		t.Fatalf("reads of %d bytes: raw %+v\nstored %+v", n, a, b)
	}
}

func FuzzDecoderPaths(f *testing.F) {
	f.Add([]byte(stream), uint8(5))
	f.Add([]byte("data: {\"choices\":[{\"token_ids\":[1,2,3]}]}\n\ndata: {\"choices\":[],\"usage\":{\"completion_tokens\":3}}\n\n"), uint8(1))
	f.Add([]byte("data: {\"choices\":[{\"text\":\"a\"}],\"usage\":{\"completion_tokens\":5}}\n\ndata: {\"choices\":[{\"text\":\"b\"}],\"usage\":{\"completion_tokens\":2}}\n\n"), uint8(200))
	f.Fuzz(func(t *testing.T, body []byte, split uint8) {
		checkPaths(t, body, int(split)+1)
	})
}

// TestDecoderAllocs: decoding reads allocates nothing once the decoder's
// buffers have grown (the replayer and the proxy run it on every read).
func TestDecoderAllocs(t *testing.T) {
	body := bytes.Repeat([]byte("data: {\"choices\":[{\"text\":\"tok\"}],\"usage\":{\"completion_tokens\":1}}\n\n"), 50)
	var d Decoder
	r := new(metric.Request)
	run := func() {
		d.Reset(r, true)
		for i := 0; i < len(body); i += 100 {
			d.Read(time.Duration(i), body[i:min(i+100, len(body))])
		}
		d.Finish()
	}
	run()
	if a := testing.AllocsPerRun(100, run); a != 0 {
		t.Errorf("%v allocations per 50-event response; want 0", a)
	}
}

func BenchmarkDecoderRead(b *testing.B) {
	ev := []byte("data: {\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"choices\":[{\"index\":0,\"text\":\"tok\",\"finish_reason\":null}],\"usage\":{\"prompt_tokens\":8,\"completion_tokens\":1,\"total_tokens\":9}}\n\n")
	var d Decoder
	r := new(metric.Request)
	d.Reset(r, true)
	b.ReportAllocs()
	b.SetBytes(int64(len(ev)))
	for b.Loop() {
		d.Read(0, ev)
	}
}
