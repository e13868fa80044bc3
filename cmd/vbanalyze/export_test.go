package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vbench/vbench/capture"
	"github.com/vbench/vbench/trace"
)

func TestExportTrace(t *testing.T) {
	dir := t.TempDir()
	capDir := filepath.Join(dir, "cap")
	st, err := capture.Open(capDir, capture.Options{SyncInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC).UnixNano()
	for i := range 3 {
		body := []byte(`{"model":"m","prompt":"hello number ` + strings.Repeat("x", i) + `","max_tokens":8}`)
		r := &capture.Record{
			ID: uint64(i + 1), Labels: map[string]string{"app": "demo"}, Tags: capture.Tags{Index: -1, Warmup: i == 0},
			Method: "POST", Path: "/v1/completions", Status: 200, Outcome: capture.OutcomeOK,
			Received: base + int64(i)*int64(time.Second), End: int64(50 * time.Millisecond),
			RequestBody: body, RequestSize: int64(len(body)), PromptTokens: 4, CompletionTokens: 8,
		}
		st.Writer().Put(r)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "app.jsonl")
	code, stdout, stderr := runCmd("export-trace", capDir, "-o", out, "--label", "app=demo", "--skip-warmup", "--status", "200")
	if code != 0 || !strings.Contains(stdout, "2 requests") {
		t.Fatalf("exit %d: %s %s", code, stdout, stderr)
	}
	hdr, reqs, err := trace.ReadFile(out)
	if err != nil || len(reqs) != 2 || hdr.Count != 2 {
		t.Fatalf("trace: %v, %d requests", err, len(reqs))
	}
	if !strings.Contains(string(reqs[0].Body), "hello number x") {
		t.Errorf("first request body %s", reqs[0].Body)
	}
	for _, e := range []struct {
		args []string
		msg  string
	}{
		{[]string{"export-trace", capDir}, "-o"},
		{[]string{"export-trace", "-o", out}, "exactly one capture"},
		{[]string{"export-trace", capDir, "-o", out, "--label", "app=nope"}, "no request"},
		{[]string{"export-trace", capDir, "-o", out, "--since", "yesterday"}, "RFC 3339"},
	} {
		if code, _, stderr := runCmd(e.args...); code == 0 || !strings.Contains(stderr, e.msg) {
			t.Errorf("%q: exit %d %q; want an error with %q", e.args, code, stderr, e.msg)
		}
	}
}
