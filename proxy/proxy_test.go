package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/vbench/vbench/capture"
	"github.com/vbench/vbench/internal/testserver"
)

// newClient returns an HTTP client whose connections close with the test.
func newClient(t testing.TB) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 100, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// writeParts writes each part and flushes, pausing gap between parts.
func writeParts(w http.ResponseWriter, parts []string, gap time.Duration) {
	f := w.(http.Flusher)
	for i, p := range parts {
		if i > 0 && gap > 0 {
			time.Sleep(gap)
		}
		io.WriteString(w, p)
		f.Flush()
	}
}

var sseParts = []string{
	"data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
	"data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"}}],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1}}\n\n",
	": keep-alive comment\n\n",
	"data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" world\"}}],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2}}\n\ndata: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"!\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":3}}\n\n",
	"data: [DONE]\n\n",
}

func TestByteTransparency(t *testing.T) {
	leakCheck(t)
	tests := []struct {
		name        string
		contentType string
		parts       []string
		length      bool // send Content-Length
		want        capture.Outcome
		wantErr     string // substring of the record's Error
		wantContent int    // content events
	}{
		{"sse", "text/event-stream", sseParts, false, capture.OutcomeOK, "", 3},
		{"chunked", "text/plain", []string{"one ", "two ", "three\n"}, false, capture.OutcomeOK, "", 0},
		{"plain json", "application/json", []string{`{"id":"x","object":"chat.completion","choices":[{"message":{"content":"hi"}}]}`}, true, capture.OutcomeOK, "", 0},
		{"error chunk", "text/event-stream", []string{sseParts[1], "data: {\"error\":{\"message\":\"engine died\",\"type\":\"InternalServerError\",\"code\":500}}\n\n"}, false, capture.OutcomeOK, "error event", 1},
		{"malformed sse", "text/event-stream", []string{"data: {not json\n\n", "data: ok\r\n\r\n", "garbage line without colon\n\n"}, false, capture.OutcomeOK, "not valid JSON", 0},
		{"empty", "text/plain", nil, true, capture.OutcomeOK, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			whole := strings.Join(tt.parts, "")
			addr, _ := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tt.contentType)
				w.Header().Set("X-Upstream", "yes")
				if tt.length {
					w.Header().Set("Content-Length", fmt.Sprint(len(whole)))
				}
				writeParts(w, tt.parts, time.Millisecond)
			})
			sink := newMemSink()
			_, url := startProxy(t, Config{Upstream: addr}, sink)
			resp, err := newClient(t).Post(url+"/v1/chat/completions", "application/json", strings.NewReader(`{"stream":true}`))
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != whole {
				t.Errorf("client got %q; upstream sent %q", got, whole)
			}
			if resp.Header.Get("X-Upstream") != "yes" || resp.Header.Get("Content-Type") != tt.contentType {
				t.Errorf("headers not passed through: %v", resp.Header)
			}
			if tt.length && resp.ContentLength != int64(len(whole)) {
				t.Errorf("Content-Length = %d; want %d", resp.ContentLength, len(whole))
			}
			rec := sink.wait(t, 1)[0]
			if rec.Outcome != tt.want || !strings.Contains(rec.Error, tt.wantErr) || (tt.wantErr == "" && rec.Error != "") {
				t.Errorf("record outcome %q error %q; want %q with %q", rec.Outcome, rec.Error, tt.want, tt.wantErr)
			}
			if string(rec.ResponseBody) != whole || rec.ResponseSize != int64(len(whole)) {
				t.Errorf("recorded body %q (size %d); want %q", rec.ResponseBody, rec.ResponseSize, whole)
			}
			var sum int64
			content := 0
			for _, c := range rec.Chunks {
				sum += int64(c.Size)
				content += int(c.Content)
			}
			if sum != int64(len(whole)) || content != tt.wantContent {
				t.Errorf("chunks sum to %d bytes with %d content events; want %d and %d", sum, content, len(whole), tt.wantContent)
			}
			if rec.Status != 200 || rec.Method != "POST" || rec.Path != "/v1/chat/completions" || string(rec.RequestBody) != `{"stream":true}` {
				t.Errorf("record = %+v", rec)
			}
		})
	}
}

func TestSSERecordTokens(t *testing.T) {
	addr, _ := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		writeParts(w, sseParts, 0)
	})
	sink := newMemSink()
	_, url := startProxy(t, Config{Upstream: addr}, sink)
	resp, err := newClient(t).Post(url+"/v1/chat/completions", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	rec := sink.wait(t, 1)[0]
	if rec.PromptTokens != 5 || rec.CompletionTokens != 3 {
		t.Errorf("usage = %d/%d; want 5/3", rec.PromptTokens, rec.CompletionTokens)
	}
	var events, content, tokens int
	for _, c := range rec.Chunks {
		events += int(c.Events)
		content += int(c.Content)
		if c.Tokens > 0 {
			tokens += int(c.Tokens)
		}
	}
	if events != 5 || content != 3 || tokens != 3 {
		t.Errorf("events %d content %d tokens %d; want 5 3 3 (chunks %+v)", events, content, tokens, rec.Chunks)
	}
}

// TestJSONRecordTokens: a non-streamed JSON response records its usage
// from the body (issue 18: it recorded -1 / -1 and the analysis fell back
// to nothing), read by the same decoder as a stream; a body cut by the
// record limit or a non-2xx one is not read.
func TestJSONRecordTokens(t *testing.T) {
	body := `{"id":"cmpl-1","object":"text_completion","choices":[{"index":0,"text":" a b c d","finish_reason":"length"}],"usage":{"prompt_tokens":6,"completion_tokens":4,"total_tokens":10}}`
	addr, _ := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/v1/fail" {
			w.WriteHeader(http.StatusBadRequest)
		}
		io.WriteString(w, body)
	})
	for _, tc := range []struct {
		path           string
		record         int
		prompt, output int32
	}{
		{"/v1/completions", 0, 6, 4},
		{"/v1/completions", 20, -1, -1}, // the body is cut at 20 bytes: not read
		{"/v1/fail", 0, -1, -1},         // an error response's usage is not the request's
	} {
		sink := newMemSink()
		_, url := startProxy(t, Config{Upstream: addr, RecordResponseBody: tc.record}, sink)
		resp, err := newClient(t).Post(url+tc.path, "application/json", strings.NewReader(`{"stream":false}`))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		rec := sink.wait(t, 1)[0]
		if rec.PromptTokens != tc.prompt || rec.CompletionTokens != tc.output {
			t.Errorf("%s (record %d bytes): usage %d/%d; want %d/%d", tc.path, tc.record, rec.PromptTokens, rec.CompletionTokens, tc.prompt, tc.output)
		}
	}
}

// TestTiming: the proxy forwards each event as it arrives, and the
// capture's chunk times are the times the proxy read them. The upstream
// runs in lockstep with the client: it sends event i+1 only after the
// client has received event i (so a proxy that held events back would
// stall the stream, whatever the machine's load), and waits 20 ms before
// each. Then every chunk's recorded time lies between the upstream's send
// and the client's receipt, and the recorded gaps are at least 20 ms:
// bounds that hold on a starved machine, unlike "gaps of about 20 ms".
func TestTiming(t *testing.T) {
	const gap = 20 * time.Millisecond
	const n = 15
	got := make(chan struct{})
	var sent [n]int64 // Unix ns of each event's write
	addr, _ := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range n {
			if i > 0 {
				time.Sleep(gap) // a model's inter-token time
			}
			sent[i] = time.Now().UnixNano()
			fmt.Fprintf(w, "data: {\"choices\":[{\"index\":0,\"text\":\"t%d\"}]}\n\n", i)
			w.(http.Flusher).Flush()
			select {
			case <-got:
			case <-time.After(10 * time.Second):
				return // the client never got it: the test fails below
			}
		}
		io.WriteString(w, "data: [DONE]\n\n")
	})
	sink := newMemSink()
	_, url := startProxy(t, Config{Upstream: addr}, sink)
	resp, err := newClient(t).Post(url+"/v1/completions", "application/json",
		strings.NewReader(fmt.Sprintf(`{"model":"m","prompt":"x","stream":true,"max_tokens":%d}`, n)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	var arrivals []int64
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			break
		}
		if strings.HasPrefix(line, "data: {") {
			arrivals = append(arrivals, time.Now().UnixNano())
			got <- struct{}{}
		}
	}
	if len(arrivals) != n {
		t.Fatalf("the client got %d events; want %d (an event held back by the proxy stalls the lockstep upstream)", len(arrivals), n)
	}
	rec := sink.wait(t, 1)[0]
	var at []int64
	for _, c := range rec.Chunks {
		if c.Content > 0 {
			at = append(at, rec.Received+c.At)
		}
	}
	if len(at) != n {
		t.Fatalf("capture has %d content chunks; want %d (no coalescing)", len(at), n)
	}
	// The proxy's clock is the wall clock anchored once plus the monotonic
	// reading; allow it 2 ms of drift from this process's wall clock.
	const slack = int64(2 * time.Millisecond)
	for i := range n {
		if at[i] < sent[i]-slack || at[i] > arrivals[i]+slack {
			t.Errorf("event %d recorded at %d, not between its send (%d) and its receipt by the client (%d)", i, at[i], sent[i], arrivals[i])
		}
		if i > 0 && at[i]-at[i-1] < int64(gap)-slack {
			t.Errorf("events %d and %d recorded %v apart; the upstream sent them at least %v apart", i-1, i, time.Duration(at[i]-at[i-1]), gap)
		}
	}
}

func TestTagsLabelsRedaction(t *testing.T) {
	srv, err := testserver.Start(testserver.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	for _, secrets := range []bool{false, true} {
		t.Run(fmt.Sprint("secrets=", secrets), func(t *testing.T) {
			sink := newMemSink()
			_, url := startProxy(t, Config{Upstream: srv.URL, Labels: map[string]string{"variant": "vllm-page"}, RecordSecrets: secrets}, sink)
			req, _ := http.NewRequest("POST", url+"/v1/completions", strings.NewReader(`{"model":"m","prompt":"x","max_tokens":2}`))
			req.Header.Set("Authorization", "Bearer sk-secret")
			req.Header.Set("X-Api-Key", "k")
			req.Header.Set("Cookie", "a=b")
			req.Header.Set("X-VB-Run", "run1")
			req.Header.Set("X-VB-Trial", "t1")
			req.Header.Set("X-VB-Level", "10")
			req.Header.Set("X-VB-Rate", "10.5")
			req.Header.Set("X-VB-Index", "42")
			req.Header.Set("X-VB-Scheduled", "1700000000000000000")
			req.Header.Set("X-VB-Sent", "1700000000000000100")
			req.Header.Set("X-VB-Deadline", "1700000000900000000")
			req.Header.Set("X-VB-Warmup", "1")
			req.Header.Set("X-VB-Trace", "sha256:abc")
			req.Header.Set("X-VB-Label-Variant", "a")
			req.Header.Set("Connection", "keep-alive, X-Hop")
			req.Header.Set("X-Hop", "drop me")
			resp, err := newClient(t).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			rec := sink.wait(t, 1)[0]
			want := capture.Tags{Run: "run1", Trial: "t1", Level: "10", Rate: 10.5, Index: 42, Scheduled: 1700000000000000000,
				Sent: 1700000000000000100, Deadline: 1700000000900000000, Warmup: true, TraceHash: "sha256:abc",
				Extra: map[string]string{"label-variant": "a"}}
			if fmt.Sprint(rec.Tags) != fmt.Sprint(want) {
				t.Errorf("tags = %+v; want %+v", rec.Tags, want)
			}
			if rec.Labels["variant"] != "vllm-page" {
				t.Errorf("labels = %v", rec.Labels)
			}
			hs := srv.Headers()
			up := hs[len(hs)-1]
			for k := range up {
				if strings.HasPrefix(strings.ToLower(k), "x-vb-") || k == "X-Hop" {
					t.Errorf("upstream got %s: tags and hop-by-hop headers must be stripped", k)
				}
			}
			if up.Get("Authorization") != "Bearer sk-secret" {
				t.Errorf("upstream Authorization = %q; the proxy must forward secrets", up.Get("Authorization"))
			}
			for _, h := range rec.RequestHeaders {
				if strings.HasPrefix(strings.ToLower(h.Name), "x-vb-") {
					t.Errorf("recorded header %s: tags are not headers", h.Name)
				}
				switch h.Name {
				case "Authorization", "X-Api-Key", "Cookie":
					if secrets != (h.Value != capture.Redacted) {
						t.Errorf("%s recorded as %q with RecordSecrets=%v", h.Name, h.Value, secrets)
					}
				}
			}
		})
	}
}

func TestUntaggedIndex(t *testing.T) {
	srv, err := testserver.Start(testserver.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	sink := newMemSink()
	_, url := startProxy(t, Config{Upstream: srv.URL}, sink)
	resp, err := newClient(t).Get(url + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	rec := sink.wait(t, 1)[0]
	if rec.Tags.Index != -1 || rec.Method != "GET" || rec.Status != 200 {
		t.Errorf("record = %+v; want untagged (index -1) GET 200", rec)
	}
}

func TestGoOpenAI(t *testing.T) {
	leakCheck(t)
	srv, err := testserver.Start(testserver.Config{ITL: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	sink := newMemSink()
	_, url := startProxy(t, Config{Upstream: srv.URL}, sink)
	for _, base := range []string{srv.URL, url} {
		cfg := openai.DefaultConfig("sk-test")
		cfg.BaseURL = base + "/v1"
		cfg.HTTPClient = newClient(t)
		c := openai.NewClientWithConfig(cfg)
		ctx := context.Background()
		req := openai.ChatCompletionRequest{Model: "m", MaxCompletionTokens: 5, Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "hi"}}}
		res, err := c.CreateChatCompletion(ctx, req)
		if err != nil {
			t.Fatalf("%s: %v", base, err)
		}
		if res.Choices[0].Message.Content != "t0 t1 t2 t3 t4 " || res.Usage.CompletionTokens != 5 {
			t.Errorf("%s: non-streamed = %+v", base, res)
		}
		req.Stream = true
		req.StreamOptions = &openai.StreamOptions{IncludeUsage: true}
		st, err := c.CreateChatCompletionStream(ctx, req)
		if err != nil {
			t.Fatalf("%s: %v", base, err)
		}
		var text strings.Builder
		var usage *openai.Usage
		for {
			r, err := st.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: stream: %v", base, err)
			}
			if len(r.Choices) > 0 {
				text.WriteString(r.Choices[0].Delta.Content)
			}
			if r.Usage != nil {
				usage = r.Usage
			}
		}
		st.Close()
		if text.String() != "t0 t1 t2 t3 t4 " || usage == nil || usage.CompletionTokens != 5 {
			t.Errorf("%s: streamed %q usage %+v", base, text.String(), usage)
		}
	}
	recs := sink.wait(t, 2)
	if recs[1].CompletionTokens != 5 || recs[1].Outcome != capture.OutcomeOK {
		t.Errorf("streamed record: %+v", recs[1])
	}
	var b bytes.Buffer
	json.NewEncoder(&b).Encode(recs[1])
	if !strings.Contains(b.String(), `"completion_tokens":5`) {
		t.Errorf("record JSON: %s", b.String())
	}
}
