package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vbench/vbench/capture"
)

// fixtureStore writes a small real capture: three completed streams and
// one failure, tagged by a replayer.
func fixtureStore(t *testing.T, dir, variant, hash string) {
	t.Helper()
	st, err := capture.Open(dir, capture.Options{SyncInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.PutMeta(capture.Meta{Tool: "vbproxy", ToolVersion: "test", Labels: map[string]string{"variant": variant}}); err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC).UnixNano()
	for i := range 4 {
		r := &capture.Record{
			ID:     uint64(i + 1),
			Labels: map[string]string{"variant": variant},
			Tags:   capture.Tags{Trial: "1", Level: "2", Rate: 2, Index: int64(i), TraceHash: hash},
			Method: "POST", Path: "/v1/completions", Status: 200, Outcome: capture.OutcomeOK,
			Received: base + int64(i)*int64(500*time.Millisecond), PromptTokens: 5, CompletionTokens: 3,
		}
		for k := range 3 {
			r.Chunks = append(r.Chunks, capture.Chunk{At: int64(k+1) * int64(20*time.Millisecond), Size: 50, Events: 1, Content: 1, Tokens: 1, Usage: int32(k + 1)})
		}
		r.End = 61 * int64(time.Millisecond)
		if i == 3 {
			r.Status, r.Chunks, r.CompletionTokens = 503, nil, -1
		}
		if !st.Writer().Put(r) {
			t.Fatal("record dropped")
		}
	}
	st.Writer().PutSample(capture.Sample{At: base, Name: capture.MetricRunning, Value: 1})
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}

func runCmd(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestRun(t *testing.T) {
	dir := t.TempDir()
	capA := filepath.Join(dir, "a")
	capB := filepath.Join(dir, "b")
	capC := filepath.Join(dir, "c")
	fixtureStore(t, capA, "vllm-page", "h1")
	fixtureStore(t, capB, "torch-baseline", "h1")
	fixtureStore(t, capC, "other", "h2")
	out := filepath.Join(dir, "out")

	code, stdout, stderr := runCmd(capA, capB, "--out", out, "--chart", "--vllm-json", "--slo", "ttft=1s")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"vllm-page", "torch-baseline", "norm s/tok", "1 of 4 requests failed (http_503 1)"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("table lacks %q:\n%s", want, stdout)
		}
	}
	for _, f := range []string{"summary.csv", "summary.json", "aggregates.csv", "requests.csv", "report.md", "charts/norm_latency_vs_rate.png", "charts/timeline.svg", "vllm/vllm-page_2_1.json"} {
		if fi, err := os.Stat(filepath.Join(out, f)); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}

	code, stdout, _ = runCmd(capA, "--format", "json", "--by", "variant")
	var doc struct {
		Groups []map[string]any `json:"groups"`
	}
	if code != 0 || json.Unmarshal([]byte(stdout), &doc) != nil || len(doc.Groups) != 1 || doc.Groups[0]["completed"] != 3.0 || doc.Groups[0]["key"] != "vllm-page" {
		t.Errorf("--format json: exit %d, %s", code, stdout)
	}
	code, stdout, _ = runCmd(capA, "--format", "csv")
	if code != 0 || !strings.HasPrefix(stdout, "key,variant,level,rate,trial") {
		t.Errorf("--format csv: exit %d, %.80s", code, stdout)
	}

	code, stdout, _ = runCmd(capA, "--dump", "--no-bodies")
	if code != 0 || strings.Count(stdout, `"kind":"record"`) != 4 || !strings.Contains(stdout, `"kind":"meta"`) {
		t.Errorf("--dump: exit %d, %s", code, stdout)
	}
	dump := filepath.Join(dir, "a.jsonl")
	os.WriteFile(dump, []byte(stdout), 0o644)
	code, fromDump, _ := runCmd(dump, "--format", "csv", "--by", "variant,rate")
	_, fromStore, _ := runCmd(capA, "--format", "csv", "--by", "variant,rate")
	if code != 0 || strings.ReplaceAll(fromDump, dump, "X") != strings.ReplaceAll(fromStore, capA, "X") {
		t.Errorf("the dump's analysis differs from the store's:\n%s\n%s", fromDump, fromStore)
	}

	empty := filepath.Join(dir, "empty")
	if err := os.MkdirAll(filepath.Join(empty, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	errs := []struct {
		args []string
		code int
		msg  string
	}{
		{nil, 2, "give at least one capture"},
		{[]string{capA, "--format", "xml"}, 2, `--format "xml"`},
		{[]string{capA, "--slo", "ttft"}, 2, "want name=duration"},
		{[]string{capA, "--chart"}, 2, "give --out DIR"},
		{[]string{capA, "--bogus"}, 2, "unknown flag"},
		{[]string{filepath.Join(dir, "missing")}, 1, "no such file or directory"},
		{[]string{capA, capC}, 2, "--allow-mixed"},
		{[]string{empty}, 1, "capture: open " + empty + ": not a vbench capture"},
		// A folder that holds captures stands for them (here two of
		// different traces).
		{[]string{dir}, 2, "--allow-mixed"},
	}
	for _, e := range errs {
		code, _, stderr := runCmd(e.args...)
		if code != e.code || !strings.Contains(stderr, e.msg) || strings.Contains(stderr, "panic") {
			t.Errorf("vbanalyze %q: exit %d, %q; want exit %d with %q", e.args, code, stderr, e.code, e.msg)
		}
	}
	if code, _, stderr := runCmd(capA, capC, "--allow-mixed"); code != 0 {
		t.Errorf("--allow-mixed: exit %d: %s", code, stderr)
	}
}
