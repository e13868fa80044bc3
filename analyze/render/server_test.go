package render

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vbench/vbench/analyze"
)

// TestServerInternalsReport: the report's server-internals table shows the
// server fixture's hand-computed figures (analyze's TestServerFigures),
// and a capture without server extras has no such table.
func TestServerInternalsReport(t *testing.T) {
	dir := t.TempDir()
	recs, samples := serverFixture()
	p := filepath.Join(dir, "server.jsonl")
	writeDump(t, p, recs, samples, nil)
	small, smallSamples, metas := smallFixture()
	q := filepath.Join(dir, "small.jsonl")
	writeDump(t, q, small, smallSamples, metas)
	for _, tc := range []struct {
		capture string
		want    bool
	}{{p, true}, {q, false}} {
		res, err := analyze.Analyze(context.Background(), analyze.Config{Captures: []string{tc.capture}})
		if err != nil {
			t.Fatal(err)
		}
		var report bytes.Buffer
		if err := WriteReport(res, &report, &analyze.Config{Title: "t"}, nil, dir); err != nil {
			t.Fatal(err)
		}
		has := strings.Contains(report.String(), "## Server internals")
		// tokens/step is "-" in every row (no vLLM series): its column is left out.
		if has != tc.want || tc.want && (!strings.Contains(report.String(), "| 60.0 | 10.0ms | 2.00 | 440 | 120 | 30.0% | 2548 | 4096 |") || strings.Contains(report.String(), "tokens/step |")) {
			t.Errorf("%s: server internals table %v, want %v:\n%s", tc.capture, has, tc.want, report.String())
		}
	}
}
