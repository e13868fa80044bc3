package recorder

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vbench/vbench/capture"
	"github.com/vbench/vbench/internal/testserver"
	"github.com/vbench/vbench/replay"
)

// TestRecorder: the replayer, pointed at the recorder's URL, has every
// request (and the preflight) recorded through the in-process proxy into a
// real Badger store, tags included, and the store closed cleanly.
func TestRecorder(t *testing.T) {
	srv, err := testserver.Start(testserver.Config{TTFT: 2 * time.Millisecond, ITL: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	hdr, reqs := testserver.Trace(60, 3)
	dir := t.TempDir() + "/cap"
	rec, err := Start(Config{Capture: dir, Upstream: srv.URL, Labels: map[string]string{"variant": "x"},
		Meta: capture.Meta{Tool: "recorder-test", Extra: map[string]string{"trace_hash": hdr.HashHex()}}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := replay.Config{Target: rec.URL(), Rates: []float64{50}, Duration: 500 * time.Millisecond, Run: "emb", Labels: map[string]string{"variant": "x"}}
	res, err := replay.Run(context.Background(), cfg, hdr, reqs)
	if err != nil {
		t.Fatal(err)
	}
	stats, err := rec.Stop()
	if err != nil {
		t.Fatal(err)
	}
	lr := res.Levels[0]
	// Records: the measured requests, GET /v1/models and one preflight per
	// endpoint (the test trace has completions and chat).
	if stats.Written != int64(lr.Sent+3) || stats.Dropped != 0 || stats.Dir != dir {
		t.Fatalf("capture %+v; want %d records (sent + /v1/models + 2 preflights)", stats, lr.Sent+3)
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
	if err != nil || len(metas) != 1 || metas[0].Tool != "recorder-test" || metas[0].Extra["trace_hash"] != hdr.HashHex() || metas[0].PID == 0 {
		t.Fatalf("metas %+v, %v", metas, err)
	}
	// The recorder closed its capture cleanly: the meta carries the
	// writer's totals, as vbproxy's does.
	if rt := metas[0].Recorder; metas[0].Closed == 0 || rt == nil || int64(rt.Written) != stats.Written || rt.Dropped+rt.Lost != 0 {
		t.Errorf("meta closed %d recorder %+v; want marked closed, %d written, nothing dropped or lost", metas[0].Closed, rt, stats.Written)
	}
}

// TestStopRightAfterStart: a level that fails at once (its backend died)
// stops the recorder before the proxy's Serve may have run; Stop still
// returns and the capture is closed (it once waited forever).
func TestStopRightAfterStart(t *testing.T) {
	for i := range 20 {
		dir := fmt.Sprintf("%s/cap%d", t.TempDir(), i)
		rec, err := Start(Config{Capture: dir, Upstream: "http://127.0.0.1:1", Meta: capture.Meta{Tool: "test"}})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { _, err := rec.Stop(); done <- err }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("Stop did not return")
		}
	}
}

// TestStopAfterCaptureRemoved: the capture directory of a recording level
// is removed (say, the study's results directory) while it records; Stop
// returns at once with an error that says so and counts every record as
// dropped. It once never returned: Badger's Close retried its memtable
// flush into the missing directory forever.
func TestStopAfterCaptureRemoved(t *testing.T) {
	srv, err := testserver.Start(testserver.Config{ITL: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	hdr, reqs := testserver.Trace(20, 3)
	dir := t.TempDir() + "/cap"
	rec, err := Start(Config{Capture: dir, Upstream: srv.URL, Meta: capture.Meta{Tool: "test"}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := replay.Config{Target: rec.URL(), Rates: []float64{50}, Duration: 200 * time.Millisecond}
	res, err := replay.Run(context.Background(), cfg, hdr, reqs)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	type result struct {
		st  Stats
		err error
	}
	done := make(chan result, 1)
	go func() { st, err := rec.Stop(); done <- result{st, err} }()
	var r result
	select {
	case r = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Stop did not return within 30 s")
	}
	n := res.Levels[0].Sent + 3 // the measured requests, /v1/models, 2 preflights
	want := fmt.Sprintf("was removed while recording: %d records lost", n)
	if !errors.Is(r.err, capture.ErrDirRemoved) || !strings.Contains(r.err.Error(), want) {
		t.Errorf("Stop = %v; want it to say %q", r.err, want)
	}
	if r.st.Written != 0 || r.st.Dropped != int64(n) {
		t.Errorf("stats %+v; want 0 written, %d dropped", r.st, n)
	}
}
