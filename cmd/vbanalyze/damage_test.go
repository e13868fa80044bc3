package main

import (
	"crypto/sha256"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vbench/vbench/capture"
)

// damagedFixture writes a capture of n requests whose bodies are stored in
// Badger's value log, then flips one byte in the middle of that log.
func damagedFixture(t *testing.T, dir string, n int) {
	t.Helper()
	st, err := capture.Open(dir, capture.Options{SyncInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.PutMeta(capture.Meta{Tool: "vbproxy", ToolVersion: "test", Labels: map[string]string{"variant": "v"}}); err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC).UnixNano()
	for i := range n {
		body := make([]byte, 4096)
		x := uint32(i*2654435761 + 1)
		for k := range body {
			x ^= x << 13
			x ^= x >> 17
			x ^= x << 5
			body[k] = byte(x)
		}
		r := &capture.Record{ID: uint64(i + 1), Labels: map[string]string{"variant": "v"},
			Tags:   capture.Tags{Trial: "1", Level: "2", Rate: 2, Index: int64(i)},
			Method: "POST", Path: "/v1/completions", Status: 200, Outcome: capture.OutcomeOK,
			Received: base + int64(i)*int64(100*time.Millisecond), End: int64(50 * time.Millisecond),
			RequestBody: body, RequestSize: int64(len(body)), PromptTokens: 5, CompletionTokens: 1,
			Chunks: []capture.Chunk{{At: int64(20 * time.Millisecond), Size: 40, Events: 1, Content: 1, Tokens: 1, Usage: 1}}}
		if !st.Writer().Put(r) {
			t.Fatal("record dropped")
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	vlogs, _ := filepath.Glob(filepath.Join(dir, "*.vlog"))
	if len(vlogs) != 1 {
		t.Fatalf("value logs %v", vlogs)
	}
	b, err := os.ReadFile(vlogs[0])
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(vlogs[0], b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func dirHashes(t *testing.T, dir string) map[string][32]byte {
	t.Helper()
	out := map[string][32]byte{}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = sha256.Sum256(b)
	}
	return out
}

// TestDamagedCaptureExitStatus: the analysis, --dump and export-trace of
// a capture with one flipped byte in its value log run to their end,
// write what they could read, say on stderr how many of the records the
// writer committed were read, exit 3, and change no file of the capture.
func TestDamagedCaptureExitStatus(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "cap")
	damagedFixture(t, dir, 200)
	before := dirHashes(t, dir)
	out := filepath.Join(tmp, "out")
	for _, args := range [][]string{
		{dir, "--out", out},
		{dir, "--dump"},
		{"export-trace", dir, "-o", filepath.Join(tmp, "t.bin")},
	} {
		code, stdout, stderr := runCmd(args...)
		if code != 3 || !strings.Contains(stderr, "199 of the 200 records its writers committed were read") {
			t.Errorf("vbanalyze %s: exit %d; want 3 and what is lost on stderr:\n%s", strings.Join(args, " "), code, stderr)
		}
		if strings.Contains(stderr, "panic") || stdout == "" {
			t.Errorf("vbanalyze %s: stdout %q, stderr %q", strings.Join(args, " "), stdout, stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "summary.json")); err != nil {
		t.Errorf("no summary written for a damaged capture: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "report.md")); !strings.Contains(string(b), "is damaged") {
		t.Errorf("report.md does not say the capture is damaged")
	}
	if !reflect.DeepEqual(before, dirHashes(t, dir)) {
		t.Error("reading the damaged capture changed its files")
	}
	// --recover repairs only what a killed writer leaves: nothing here.
	if code, stdout, stderr := runCmd("--recover", dir); code != 0 || !strings.Contains(stdout, "nothing to recover") {
		t.Errorf("--recover of a closed capture: exit %d, %s %s", code, stdout, stderr)
	}
	if !reflect.DeepEqual(before, dirHashes(t, dir)) {
		t.Error("--recover changed a capture that was closed cleanly")
	}
	// A clean capture: --recover has nothing to do; analysis exits 0.
	clean := filepath.Join(tmp, "clean")
	fixtureStore(t, clean, "v", "h")
	if code, stdout, stderr := runCmd("--recover", clean); code != 0 || !strings.Contains(stdout, "nothing to recover") {
		t.Errorf("--recover of a clean capture: exit %d, %s %s", code, stdout, stderr)
	}
	if code, _, stderr := runCmd(clean); code != 0 {
		t.Errorf("analysis of a clean capture: exit %d, %s", code, stderr)
	}
}
