package proxy

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/vbench/vbench/capture"
	"github.com/vbench/vbench/internal/testenv"
	"github.com/vbench/vbench/internal/testserver"
)

// TestOpenAINodeSDK streams a chat completion through the proxy with the
// official OpenAI Node SDK (installed by .ci/run: npm install in
// internal/testdata/node) and compares with the same script run direct.
func TestOpenAINodeSDK(t *testing.T) {
	dir, _ := filepath.Abs("../internal/testdata/node")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "openai")); err != nil {
		testenv.Missing(t, "the OpenAI Node SDK is not installed: run 'npm ci' in %s (.ci/run does)", dir)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		testenv.Missing(t, "node is not on PATH")
	}
	srv, err := testserver.Start(testserver.Config{ITL: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	sink := newMemSink()
	_, url := startProxy(t, Config{Upstream: srv.URL}, sink)
	type result struct {
		Text   string `json:"text"`
		Chunks int    `json:"chunks"`
		Usage  *struct {
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
		Plain string `json:"plain"`
	}
	var results []result
	for _, base := range []string{srv.URL, url} {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		out, err := exec.CommandContext(ctx, node, filepath.Join(dir, "stream.mjs"), base+"/v1").CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("node stream.mjs %s: %v\n%s", base, err, out)
		}
		var r result
		if err := json.Unmarshal(out, &r); err != nil {
			t.Fatalf("node output %q: %v", out, err)
		}
		results = append(results, r)
	}
	direct, proxied := results[0], results[1]
	if proxied.Text != "t0 t1 t2 t3 t4 t5 " || proxied.Usage == nil || proxied.Usage.CompletionTokens != 6 || proxied.Plain != "t0 t1 t2 " {
		t.Errorf("through the proxy: %+v", proxied)
	}
	if proxied.Text != direct.Text || proxied.Chunks != direct.Chunks || proxied.Plain != direct.Plain {
		t.Errorf("proxied %+v differs from direct %+v", proxied, direct)
	}
	recs := sink.wait(t, 2)
	if recs[0].Outcome != capture.OutcomeOK || recs[0].CompletionTokens != 6 || len(recs[0].Chunks) == 0 {
		t.Errorf("streamed record: outcome %s tokens %d chunks %d", recs[0].Outcome, recs[0].CompletionTokens, len(recs[0].Chunks))
	}
	for _, h := range recs[0].RequestHeaders {
		if h.Name == "Authorization" && h.Value != capture.Redacted {
			t.Errorf("Authorization recorded as %q", h.Value)
		}
	}
}
