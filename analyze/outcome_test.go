package analyze

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/vbench/vbench/capture"
)

// TestProxyOutcomesAreFailures: every proxy outcome other than ok makes a
// failed request counted under its own name in failed_by
// (upstream_header_timeout included).
func TestProxyOutcomesAreFailures(t *testing.T) {
	recs, _ := synthCapture(engine{Name: "x", Capacity: 10, Decode: 20 * time.Millisecond}, 2, 1, 10, 1)
	outcomes := capture.Outcomes()[1:] // all but ok
	for i, o := range outcomes {
		r := recs[i]
		r.Outcome, r.Chunks, r.CompletionTokens = o, nil, -1
		if o == capture.OutcomeUpstreamHeaderTimeout || o == capture.OutcomeUpstreamUnreachable {
			r.Status, r.Headers = 0, 0
		}
	}
	path := filepath.Join(t.TempDir(), "c.jsonl")
	writeDump(t, path, recs, nil, nil)
	res, err := Analyze(context.Background(), Config{Captures: []string{path}})
	if err != nil {
		t.Fatal(err)
	}
	g := res.Groups[0]
	if g.Failed != len(outcomes) || g.Completed != len(recs)-len(outcomes) {
		t.Errorf("group: %d failed, %d completed; want %d failed", g.Failed, g.Completed, len(outcomes))
	}
	for _, o := range outcomes {
		if g.FailedBy[string(o)] != 1 {
			t.Errorf("failed_by %v; want 1 %s", g.FailedBy, o)
		}
	}
	m := Measure(recs[slices.Index(outcomes, capture.OutcomeUpstreamHeaderTimeout)], "c")
	if m.Completed() || m.ErrorKind != string(capture.OutcomeUpstreamHeaderTimeout) {
		t.Errorf("Measure(header timeout record) = completed %v kind %q; want a failure of kind upstream_header_timeout", m.Completed(), m.ErrorKind)
	}
}
