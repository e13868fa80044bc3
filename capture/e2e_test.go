package capture_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/vbench/vbench/capture"
	"github.com/vbench/vbench/internal/testserver"
	"github.com/vbench/vbench/proxy"
	"github.com/vbench/vbench/synth/importer"
)

// TestRecordAndExportRealTraffic records a real client's traffic through
// the real proxy into a real capture, then exports it: a two-turn chat
// conversation (the client sends the streamed answer back) and an
// unrelated completion. The export must keep the order, the bodies the
// server received, the arrival gaps, and link the two chat turns.
func TestRecordAndExportRealTraffic(t *testing.T) {
	up, err := testserver.Start(testserver.Config{TTFT: 5 * time.Millisecond, ITL: 2 * time.Millisecond, Tokens: 6})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	dir := filepath.Join(t.TempDir(), "cap")
	st, err := capture.Open(dir, capture.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	px, err := proxy.New(proxy.Config{Upstream: up.Addr, Labels: map[string]string{"app": "chat"}, Logger: slog.New(slog.DiscardHandler)}, st.Writer())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go px.Serve(ln)

	cfg := openai.DefaultConfig("sk-never-exported")
	cfg.BaseURL = "http://" + ln.Addr().String() + "/v1"
	client := openai.NewClientWithConfig(cfg)
	ctx := context.Background()

	// Turn 1, streamed; the client assembles the answer.
	msgs := []openai.ChatCompletionMessage{{Role: openai.ChatMessageRoleUser, Content: "Tell me a story."}}
	answer := func() string {
		s, err := client.CreateChatCompletionStream(ctx, openai.ChatCompletionRequest{Model: "m", Messages: msgs, MaxCompletionTokens: 6, Stream: true})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var b strings.Builder
		for {
			r, err := s.Recv()
			if errors.Is(err, io.EOF) {
				return b.String()
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Choices) > 0 {
				b.WriteString(r.Choices[0].Delta.Content)
			}
		}
	}
	a1 := answer()
	time.Sleep(150 * time.Millisecond) // think time
	if _, err := client.CreateCompletion(ctx, openai.CompletionRequest{Model: "m", Prompt: "unrelated", MaxTokens: 4}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond)
	msgs = append(msgs, openai.ChatCompletionMessage{Role: openai.ChatMessageRoleAssistant, Content: a1},
		openai.ChatCompletionMessage{Role: openai.ChatMessageRoleUser, Content: "Go on."})
	answer()

	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := px.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	ro, err := capture.Open(dir, capture.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	var recs []*capture.Record
	ro.Records(func(r *capture.Record) error { recs = append(recs, r); return nil })
	hdr, reqs, err := importer.FromCapture(ro, importer.CaptureOptions{Labels: map[string]string{"app": "chat"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 3 || len(recs) != 3 {
		t.Fatalf("exported %d requests from %d records, want 3", len(reqs), len(recs))
	}
	sent := up.Bodies()
	for i, q := range reqs {
		if !bytes.Equal(q.Body, sent[i]) {
			t.Errorf("request %d body differs from what the server received:\n%s\n%s", i, q.Body, sent[i])
		}
		if want := time.Duration(recs[i].Received - recs[0].Received); q.Offset != want {
			t.Errorf("request %d offset %v, recorded %v", i, q.Offset, want)
		}
		if bytes.Contains(q.Body, []byte("sk-never-exported")) {
			t.Error("secret in an exported body")
		}
	}
	if reqs[1].Offset < 150*time.Millisecond || reqs[2].Offset-reqs[1].Offset < 150*time.Millisecond {
		t.Errorf("arrival gaps not kept: %v %v", reqs[1].Offset, reqs[2].Offset)
	}
	if reqs[0].Endpoint != "/v1/chat/completions" || reqs[1].Endpoint != "/v1/completions" {
		t.Errorf("endpoints %q %q", reqs[0].Endpoint, reqs[1].Endpoint)
	}
	if reqs[0].Conversation == "" || reqs[2].Conversation != reqs[0].Conversation || reqs[2].Turn != 1 || reqs[1].Conversation != "" {
		t.Errorf("conversation not recognised: %q/%d %q/%d %q/%d", reqs[0].Conversation, reqs[0].Turn, reqs[1].Conversation, reqs[1].Turn, reqs[2].Conversation, reqs[2].Turn)
	}
	if reqs[0].OutputTokens != 6 || hdr.Count != 3 || hdr.Params["conversations"] != "1" {
		t.Errorf("output tokens %d, header %+v", reqs[0].OutputTokens, hdr)
	}
}
