package analyze

import (
	"bytes"
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/vbench/vbench/capture"
)

// TestStoreMatchesDump: a real Badger capture and its JSON Lines dump give
// the same analysis.
func TestStoreMatchesDump(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	recs, samples, metas := smallFixture()
	writeStore(t, "store-x", recs, samples, metas)
	// The dump gets the metas as the store kept them (a clean close adds
	// the recorder's totals).
	st, err := capture.Open("store-x", capture.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	metas, err = st.Metas()
	st.Close()
	if err != nil || len(metas) != 1 || metas[0].Closed == 0 {
		t.Fatalf("stored metas %+v, %v; want one marked closed", metas, err)
	}
	writeDump(t, "store-x.jsonl", recs, samples, metas)
	summary := func(name string) string {
		res, err := Analyze(context.Background(), Config{Captures: []string{name}})
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := res.WriteSummaryCSV(&b); err != nil {
			t.Fatal(err)
		}
		return strings.ReplaceAll(b.String(), name, "CAPTURE")
	}
	fromStore, fromDump := summary("store-x"), summary("store-x.jsonl")
	if fromStore != fromDump {
		t.Errorf("store and dump differ:\n%s", firstDiff(fromStore, fromDump))
	}
	if !strings.Contains(fromStore, "a/1/1,a,1,1,1") {
		t.Errorf("store summary lacks the group:\n%s", fromStore)
	}
}

// TestRecorderLossesWarn: a capture whose writer dropped records says so in
// the analysis (columns and a warning), and one that was never closed
// cleanly is reported as such.
func TestRecorderLossesWarn(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	recs, samples, metas := smallFixture()
	// A clean capture first: totals known, nothing dropped.
	writeStore(t, "clean", recs, samples, metas)
	// A capture with a 1-item queue that refused some puts.
	st, err := capture.Open("lossy", capture.Options{SyncInterval: -1, QueueSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.PutMeta(metas[0]); err != nil {
		t.Fatal(err)
	}
	refused := 0
	w := st.Writer()
	for round := 0; round < 50 && refused == 0; round++ {
		for _, r := range recs {
			if !w.Put(r) {
				refused++
			}
		}
	}
	if refused == 0 {
		t.Skip("the writer kept up with a 1-item queue on this machine; nothing dropped")
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	// A live capture read through a snapshot: never closed.
	live, err := capture.Open("live", capture.Options{SyncInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	if err := live.PutMeta(metas[0]); err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		for !live.Writer().Put(r) {
		}
	}
	for deadline := time.Now().Add(10 * time.Second); live.Writer().Stats().Written < uint64(len(recs)); {
		if time.Now().After(deadline) {
			t.Fatalf("writer committed %d of %d records", live.Writer().Stats().Written, len(recs))
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := live.Snapshot("snap"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		capture string
		dropped float64
		unclean int
		warn    string
	}{
		{"clean", 0, 0, ""},
		{"lossy", float64(refused), 0, "the recorder dropped"},
		{"snap", math.NaN(), 1, "did not close it cleanly"},
	} {
		res, err := Analyze(context.Background(), Config{Captures: []string{tc.capture}})
		if err != nil {
			t.Fatalf("%s: %v", tc.capture, err)
		}
		g := res.Groups[0]
		if !near(g.RecorderDropped, tc.dropped) || g.CapturesUnclean != tc.unclean {
			t.Errorf("%s: dropped %v unclean %d; want %v %d", tc.capture, g.RecorderDropped, g.CapturesUnclean, tc.dropped, tc.unclean)
		}
		got := strings.Join(g.Warnings, "\n")
		if tc.warn == "" && (strings.Contains(got, "recorder") || strings.Contains(got, "cleanly")) {
			t.Errorf("%s: unexpected recorder warning:\n%s", tc.capture, got)
		}
		if tc.warn != "" && !strings.Contains(got, tc.warn) {
			t.Errorf("%s: warnings lack %q:\n%s", tc.capture, tc.warn, got)
		}
	}
}
