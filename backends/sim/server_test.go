package sim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func startServer(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	if cfg.Preset == "" {
		cfg.Preset = "tiny"
	}
	if cfg.Speed == 0 {
		cfg.Speed = 20
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s)
	t.Cleanup(func() { hs.Close(); s.Close() })
	return s, hs.URL
}

type chunk struct {
	Object  string `json:"object"`
	Model   string `json:"model"`
	Choices []struct {
		Text  *string `json:"text"`
		Delta *struct {
			Role    *string `json:"role"`
			Content *string `json:"content"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		Prompt     int `json:"prompt_tokens"`
		Completion int `json:"completion_tokens"`
		Total      int `json:"total_tokens"`
	} `json:"usage"`
}

// stream posts body and returns the decoded events (the last is [DONE]).
func stream(t *testing.T, url, path, body string) ([]chunk, bool) {
	t.Helper()
	resp, err := http.Post(url+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	var out []chunk
	sc := bufio.NewScanner(resp.Body)
	doneSeen := false
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			t.Fatalf("line %q is not an SSE data line", line)
		}
		if data == "[DONE]" {
			doneSeen = true
			continue
		}
		if doneSeen {
			t.Fatalf("event after [DONE]: %s", data)
		}
		var c chunk
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			t.Fatalf("chunk %q: %v", data, err)
		}
		out = append(out, c)
	}
	return out, doneSeen
}

func TestStreamCompletionsUsage(t *testing.T) {
	_, url := startServer(t, Config{})
	chunks, done := stream(t, url, "/v1/completions",
		`{"model":"sim-tiny","prompt":[1,2,3,4,5,6,7],"max_tokens":25,"ignore_eos":true,"temperature":0.7,"stream":true,"stream_options":{"include_usage":true,"continuous_usage_stats":true}}`)
	if !done {
		t.Fatal("no [DONE]")
	}
	last := chunks[len(chunks)-1]
	if len(last.Choices) != 0 || last.Usage == nil || last.Usage.Prompt != 7 || last.Usage.Completion != 25 || last.Usage.Total != 32 {
		t.Fatalf("usage chunk %+v; want choices [] and usage 7/25/32", last)
	}
	text := ""
	prev := 0
	for i, c := range chunks[:len(chunks)-1] {
		if c.Object != "text_completion" || c.Model != "sim-tiny" || len(c.Choices) != 1 || c.Choices[0].Text == nil {
			t.Fatalf("chunk %d: %+v", i, c)
		}
		if c.Usage == nil || c.Usage.Completion <= prev {
			t.Fatalf("chunk %d: continuous usage %+v not increasing from %d", i, c.Usage, prev)
		}
		prev = c.Usage.Completion
		text += *c.Choices[0].Text
		fin := c.Choices[0].FinishReason
		if (i == len(chunks)-2) != (fin != nil) {
			t.Fatalf("chunk %d: finish_reason %v", i, fin)
		}
	}
	if n := len(strings.Fields(text)); n != 25 {
		t.Fatalf("text has %d words; want 25 tokens", n)
	}
	if fin := *chunks[len(chunks)-2].Choices[0].FinishReason; fin != FinishLength {
		t.Fatalf("finish_reason %q; want length", fin)
	}
}

func TestStreamChatShape(t *testing.T) {
	_, url := startServer(t, Config{})
	chunks, done := stream(t, url, "/v1/chat/completions",
		`{"messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"abcdefghij"}]}],"max_completion_tokens":6,"ignore_eos":true,"stream":true,"stream_options":{"include_usage":true}}`)
	if !done {
		t.Fatal("no [DONE]")
	}
	first := chunks[0].Choices[0].Delta
	if chunks[0].Object != "chat.completion.chunk" || first == nil || first.Role == nil || *first.Role != "assistant" || *first.Content != "" {
		t.Fatalf("first chunk %+v; want the role delta", chunks[0])
	}
	// 3 + (4 + 2 "be brief") + (4 + 3 "abcdefghij")
	if u := chunks[len(chunks)-1].Usage; u == nil || u.Prompt != 16 || u.Completion != 6 {
		t.Fatalf("usage %+v; want prompt 16, completion 6", u)
	}
	for _, c := range chunks[1 : len(chunks)-1] {
		if c.Usage != nil {
			t.Fatalf("usage on a content chunk without continuous_usage_stats: %+v", c)
		}
	}
}

func TestNonStreaming(t *testing.T) {
	_, url := startServer(t, Config{})
	for _, tc := range []struct{ path, body, object string }{
		{"/v1/completions", `{"prompt":"abcdefgh","max_tokens":9,"ignore_eos":true}`, "text_completion"},
		{"/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}],"max_tokens":9,"ignore_eos":true}`, "chat.completion"},
	} {
		resp, err := http.Post(url+tc.path, "application/json", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			Object  string `json:"object"`
			Choices []struct {
				Text    string `json:"text"`
				Message struct{ Role, Content string }
				Finish  string `json:"finish_reason"`
			} `json:"choices"`
			Usage struct{ PromptTokens, CompletionTokens, TotalTokens int } `json:"usage"`
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err := json.Unmarshal(b, &got); err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s %v", tc.path, resp.StatusCode, b, err)
		}
		var u struct {
			Usage struct {
				P int `json:"prompt_tokens"`
				C int `json:"completion_tokens"`
			} `json:"usage"`
		}
		json.Unmarshal(b, &u)
		text := got.Choices[0].Text + got.Choices[0].Message.Content
		if got.Object != tc.object || u.Usage.C != 9 || len(strings.Fields(text)) != 9 || got.Choices[0].Finish != "length" {
			t.Fatalf("%s: %s", tc.path, b)
		}
		if tc.object == "text_completion" && u.Usage.P != 2 { // 8 chars / 4
			t.Fatalf("prompt tokens %d for 8 characters; want 2", u.Usage.P)
		}
	}
}

func TestErrors(t *testing.T) {
	_, url := startServer(t, Config{})
	for _, tc := range []struct {
		name, path, body string
		status           int
		msg              string
	}{
		{"unknown model", "/v1/completions", `{"model":"gpt-9","prompt":"x"}`, 404, "The model `gpt-9` does not exist."},
		{"context overflow", "/v1/completions", `{"prompt":[1,2,3],"max_tokens":600}`, 400, "This model's maximum context length is 512 tokens. However, you requested 600 output tokens and your prompt contains 3 input tokens, for a total of 603 tokens."},
		{"stream options without stream", "/v1/completions", `{"prompt":"x","stream_options":{"include_usage":true}}`, 400, "Stream options can only be defined when `stream=True`."},
		{"bad json", "/v1/completions", `{"prompt":`, 400, "invalid request body"},
		{"no prompt", "/v1/completions", `{}`, 400, "prompt: missing"},
		{"batch prompt", "/v1/completions", `{"prompt":["a","b"]}`, 400, "one prompt per request"},
		{"negative id", "/v1/completions", `{"prompt":[1,-2]}`, 400, "negative"},
		{"n", "/v1/completions", `{"prompt":"x","n":2}`, 400, "n=1"},
		{"min over max", "/v1/completions", `{"prompt":"x","max_tokens":3,"min_tokens":5}`, 400, "min_tokens"},
		{"zero max", "/v1/completions", `{"prompt":"x","max_tokens":0}`, 400, "max_tokens must be at least 1"},
		{"no messages", "/v1/chat/completions", `{"messages":[]}`, 400, "at least one message"},
	} {
		resp, err := http.Post(url+tc.path, "application/json", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		var e struct {
			Error struct {
				Message string `json:"message"`
				Code    int    `json:"code"`
			} `json:"error"`
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err := json.Unmarshal(b, &e); err != nil || resp.StatusCode != tc.status || e.Error.Code != tc.status || !strings.Contains(e.Error.Message, tc.msg) {
			t.Errorf("%s: %d %s; want %d with %q", tc.name, resp.StatusCode, b, tc.status, tc.msg)
		}
	}
}

func TestSimulatedEOS(t *testing.T) {
	_, url := startServer(t, Config{Seed: 5})
	lengths := map[int]bool{}
	for i := range 6 {
		body := `{"prompt":"question ` + string(rune('a'+i)) + `","max_tokens":40,"min_tokens":10}`
		var n [2]int
		for k := range 2 { // the same request twice stops at the same point
			resp, err := http.Post(url+"/v1/completions", "application/json", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			var got struct {
				Choices []struct {
					Finish string `json:"finish_reason"`
				} `json:"choices"`
				Usage struct {
					C int `json:"completion_tokens"`
				} `json:"usage"`
			}
			json.NewDecoder(resp.Body).Decode(&got)
			resp.Body.Close()
			n[k] = got.Usage.C
			if want := map[bool]string{true: "length", false: "stop"}[n[k] == 40]; got.Choices[0].Finish != want {
				t.Fatalf("%d tokens finished %q; want %q", n[k], got.Choices[0].Finish, want)
			}
		}
		if n[0] != n[1] || n[0] < 10 || n[0] > 40 {
			t.Fatalf("request %d: lengths %v; want equal, within [10, 40]", i, n)
		}
		lengths[n[0]] = true
	}
	if len(lengths) < 3 {
		t.Fatalf("6 different prompts stopped at only %d distinct lengths", len(lengths))
	}
}

func metricValue(t *testing.T, url, name string) float64 {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, name+"{") {
			var v float64
			if _, err := fmtSscan(line[strings.LastIndexByte(line, ' ')+1:], &v); err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return v
		}
	}
	t.Fatalf("metric %s missing", name)
	return 0
}

func TestMetricsAndDisconnect(t *testing.T) {
	s, url := startServer(t, Config{Speed: 1})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", url+"/v1/completions",
		strings.NewReader(`{"prompt":"a long one","max_tokens":500,"ignore_eos":true,"stream":true}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	if _, err := br.ReadString('\n'); err != nil { // first token arrived
		t.Fatal(err)
	}
	if v := metricValue(t, url, "vllm:num_requests_running"); v != 1 {
		t.Fatalf("running %v while streaming; want 1", v)
	}
	if v := metricValue(t, url, "vllm:kv_cache_usage_perc"); !(v > 0 && v <= 1) {
		t.Fatalf("kv usage %v while streaming; want in (0, 1]", v)
	}
	cancel()
	resp.Body.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := s.Engine().Stats()
		if st.Running == 0 && st.KVUsed == 0 && st.Finished[FinishAbort] == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("client went away but the engine still runs it: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if v := metricValue(t, url, "vllm:num_requests_running"); v != 0 {
		t.Fatalf("running %v after abort", v)
	}
	for _, name := range []string{"vllm:num_requests_waiting", "vllm:num_preemptions_total", "vllm:generation_tokens_total", "vbsim:step_seconds_count"} {
		metricValue(t, url, name)
	}
}

func TestPreemptionMetric(t *testing.T) {
	// 128 paged tokens; four requests that each grow to 60 tokens. At
	// speed 0.25 they run for about 0.7 s, so the four overlap even when a
	// busy machine delays their sends (at speed 50, 1 ms each, they once ran
	// one after another and none was preempted).
	_, url := startServer(t, Config{KVTokens: 128, Speed: 0.25})
	done := make(chan struct{})
	for range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			resp, err := http.Post(url+"/v1/completions", "application/json", strings.NewReader(`{"prompt":[1,2,3,4,5,6,7,8,9,10],"max_tokens":50,"ignore_eos":true}`))
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	for range 4 {
		<-done
	}
	if v := metricValue(t, url, "vllm:num_preemptions_total"); v == 0 {
		t.Fatal("no preemption although 4 × 60 tokens exceed 128")
	}
	if v := metricValue(t, url, "vllm:generation_tokens_total"); v != 200 {
		t.Fatalf("generation tokens %v; want 200", v)
	}
}

func TestModelsAndHealth(t *testing.T) {
	_, url := startServer(t, Config{Model: "my-model"})
	resp, err := http.Get(url + "/health")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("health: %v %v", resp, err)
	}
	resp.Body.Close()
	resp, _ = http.Get(url + "/v1/models")
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var m struct {
		Data []struct {
			ID          string `json:"id"`
			MaxModelLen int    `json:"max_model_len"`
		} `json:"data"`
	}
	if json.Unmarshal(b, &m) != nil || len(m.Data) != 1 || m.Data[0].ID != "my-model" || m.Data[0].MaxModelLen != 512 {
		t.Fatalf("models: %s", b)
	}
}

func TestAppendChunkAllocs(t *testing.T) {
	s, err := New(Config{Preset: "tiny"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	o := &output{s: s, j: &job{chat: true, cont: true, prompt: 10}, id: "chatcmpl-1", buf: make([]byte, 0, 4096)}
	allocs := testing.AllocsPerRun(1000, func() {
		o.buf = o.appendChunk(o.buf[:0], 3, 5, false, "", 5)
	})
	if allocs != 0 {
		t.Fatalf("appendChunk allocates %v times per chunk; want 0", allocs)
	}
	if !bytes.HasPrefix(o.buf, []byte(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":0,"model":"sim-tiny","choices":[{"index":0,"delta":{"content":" `)) {
		t.Fatalf("chunk %s", o.buf)
	}
}

func BenchmarkAppendChunk(b *testing.B) {
	s, _ := New(Config{Preset: "tiny"})
	defer s.Close()
	o := &output{s: s, j: &job{cont: true, prompt: 10}, id: "cmpl-1", buf: make([]byte, 0, 4096)}
	b.ReportAllocs()
	for i := range b.N {
		o.buf = o.appendChunk(o.buf[:0], i, i+1, false, "", i+1)
	}
}

func FuzzParseRequest(f *testing.F) {
	for _, seed := range []string{
		`{"model":"sim-tiny","prompt":"hello","max_tokens":5,"stream":true,"stream_options":{"include_usage":true}}`,
		`{"prompt":[1,2,3],"max_tokens":5,"ignore_eos":true,"min_tokens":2}`,
		`{"prompt":[[1,2]]}`,
		`{"messages":[{"role":"user","content":"hi"}],"max_completion_tokens":3}`,
		`{"messages":[{"role":"user","content":[{"type":"text","text":"x"}]}]}`,
		`{"prompt":null}`, `[]`, `{"n":0}`, `{"prompt":"x","max_tokens":-1}`,
	} {
		f.Add([]byte(seed), false)
		f.Add([]byte(seed), true)
	}
	s, err := New(Config{Preset: "tiny"})
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	f.Fuzz(func(t *testing.T, body []byte, chat bool) {
		j, aerr := s.parse(body, chat)
		if aerr != nil {
			if aerr.status != 400 && aerr.status != 404 || aerr.msg == "" {
				t.Fatalf("error %+v", aerr)
			}
			return
		}
		if j.prompt < 1 || j.max < 1 || j.prompt+j.max > s.cfg.MaxModelLen || j.min > j.max {
			t.Fatalf("accepted an invalid request: %+v", j)
		}
	})
}

func fmtSscan(s string, v *float64) (int, error) { return fmt.Sscan(s, v) }

func TestManyConcurrentStreams(t *testing.T) {
	// 300 streams into a 512-token paged cache (32 blocks): most wait,
	// admitted ones outgrow their first block and get preempted and
	// recomputed; every one still gets exactly its tokens.
	s, url := startServer(t, Config{Speed: 50, KVTokens: 512})
	const n, tokens = 300, 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := fmt.Sprintf(`{"prompt":"request number %d with some words","max_tokens":%d,"ignore_eos":true,"stream":true,"stream_options":{"include_usage":true,"continuous_usage_stats":true}}`, i, tokens)
			resp, err := client.Post(url+"/v1/completions", "application/json", strings.NewReader(body))
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				errs <- err
				return
			}
			words := 0
			for _, line := range strings.Split(string(b), "\n") {
				if d, ok := strings.CutPrefix(line, "data: "); ok && d != "[DONE]" {
					var c chunk
					if err := json.Unmarshal([]byte(d), &c); err != nil {
						errs <- err
						return
					}
					if len(c.Choices) == 1 {
						words += len(strings.Fields(*c.Choices[0].Text))
					} else if c.Usage.Completion != tokens {
						errs <- fmt.Errorf("request %d: usage %+v", i, c.Usage)
					}
				}
			}
			if words != tokens || !strings.HasSuffix(string(b), "data: [DONE]\n\n") {
				errs <- fmt.Errorf("request %d: %d tokens of text; want %d", i, words, tokens)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := s.Engine().Stats()
	if st.Finished[FinishLength] != n || st.OutputTokens != n*tokens || st.Running != 0 || st.KVUsed != 0 {
		t.Fatalf("engine after the load: %+v", st)
	}
	if st.Preemptions == 0 {
		t.Fatalf("no preemption in %d steps; the load should outgrow 32 blocks", st.Steps)
	}
	t.Logf("steps %d, preemptions %d, prompt tokens computed %d", st.Steps, st.Preemptions, st.PromptTokens)
}

func TestChunkBytes(t *testing.T) {
	// The exact bytes of vLLM's chunk shapes (key order, nulls).
	s, err := New(Config{Preset: "tiny", Model: "m"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tc := range []struct {
		name     string
		j        job
		from, to int
		role     bool
		finish   string
		usage    int
		want     string
	}{
		{"completions", job{prompt: 3}, 0, 1, false, "", -1,
			`data: {"id":"x","object":"text_completion","created":7,"model":"m","choices":[{"index":0,"text":" the","logprobs":null,"finish_reason":null,"stop_reason":null}]}` + "\n\n"},
		{"completions last with usage", job{prompt: 3, cont: true}, 1, 3, false, "length", 3,
			`data: {"id":"x","object":"text_completion","created":7,"model":"m","choices":[{"index":0,"text":" on each","logprobs":null,"finish_reason":"length","stop_reason":null}],"usage":{"prompt_tokens":3,"total_tokens":6,"completion_tokens":3}}` + "\n\n"},
		{"chat role", job{chat: true}, 0, 0, true, "", -1,
			`data: {"id":"x","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}` + "\n\n"},
		{"chat content", job{chat: true}, 0, 1, false, "", -1,
			`data: {"id":"x","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"index":0,"delta":{"content":" the"},"logprobs":null,"finish_reason":null}]}` + "\n\n"},
		{"chat last", job{chat: true}, 1, 2, false, "stop", -1,
			`data: {"id":"x","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"index":0,"delta":{"content":" on"},"logprobs":null,"finish_reason":"stop","stop_reason":null}]}` + "\n\n"},
	} {
		o := &output{s: s, j: &tc.j, id: "x", created: 7}
		if got := string(o.appendChunk(nil, tc.from, tc.to, tc.role, tc.finish, tc.usage)); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, tc.want)
		}
	}
}
