package replay

import (
	"context"
	"testing"
	"time"

	"github.com/vbench/vbench/capture"
	"github.com/vbench/vbench/internal/testserver"
)

// TestEmbeddedCapture: --capture records every request (and the preflight)
// through the in-process proxy into a real Badger store, tags included.
func TestEmbeddedCapture(t *testing.T) {
	srv := startServer(t, testserver.Config{TTFT: 2 * time.Millisecond, ITL: time.Millisecond})
	hdr, reqs := testTrace(60, 3)
	dir := t.TempDir() + "/cap"
	cfg := Config{Capture: dir, Upstream: srv.URL, Rates: []float64{50}, Duration: 500 * time.Millisecond, Run: "emb", Labels: map[string]string{"variant": "x"}}
	res, err := Run(context.Background(), cfg, hdr, reqs)
	if err != nil {
		t.Fatal(err)
	}
	lr := res.Levels[0]
	// Records: the measured requests, GET /v1/models and one preflight per
	// endpoint (the test trace has completions and chat).
	if res.Capture == nil || res.Capture.Written != int64(lr.Sent+3) || res.Capture.Dropped != 0 {
		t.Fatalf("capture %+v; want %d records (sent + /v1/models + 2 preflights)", res.Capture, lr.Sent+3)
	}
	st, err := capture.Open(dir, capture.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var measured []capture.Record
	err = st.Records(func(r *capture.Record) error {
		if r.Tags.Level != "preflight" && r.Path != "/v1/models" {
			measured = append(measured, *r)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(measured) != lr.Sent {
		t.Fatalf("%d measured records; want %d", len(measured), lr.Sent)
	}
	seenIdx := map[int64]bool{}
	for _, r := range measured {
		seenIdx[r.Tags.Index] = true
		if r.Tags.Run != "emb" || r.Tags.Level != "50" || r.Tags.TraceHash != hdr.HashHex() || r.Tags.Scheduled == 0 || r.Tags.Sent < r.Tags.Scheduled || r.Outcome != capture.OutcomeOK {
			t.Errorf("record %d: tags %+v outcome %s", r.ID, r.Tags, r.Outcome)
		}
		if r.Labels["variant"] != "x" {
			t.Errorf("record %d labels %v", r.ID, r.Labels)
		}
	}
	if len(seenIdx) != lr.Sent {
		t.Errorf("%d distinct indices; want %d", len(seenIdx), lr.Sent)
	}
	metas, err := st.Metas()
	if err != nil || len(metas) != 1 || metas[0].Tool != Tool || metas[0].Extra["trace_hash"] != hdr.HashHex() {
		t.Fatalf("metas %+v, %v", metas, err)
	}
	// The replayer closed its capture cleanly: the meta carries the
	// recorder's totals, as vbproxy's does.
	if rt := metas[0].Recorder; metas[0].Closed == 0 || rt == nil || int64(rt.Written) != res.Capture.Written || rt.Dropped+rt.Lost != 0 {
		t.Errorf("meta closed %d recorder %+v; want marked closed, %d written, nothing dropped or lost", metas[0].Closed, rt, res.Capture.Written)
	}
}
