package analyze

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
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
		var b strings.Builder
		for _, g := range res.Groups {
			c := *g
			c.Captures = nil
			fmt.Fprintf(&b, "%+v\n", c)
		}
		return b.String()
	}
	fromStore, fromDump := summary("store-x"), summary("store-x.jsonl")
	if fromStore != fromDump {
		t.Errorf("store and dump differ:\n%s", firstDiff(fromStore, fromDump))
	}
	if !strings.Contains(fromStore, "Key:a/1/1 ") {
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
	// A capture whose writer refused some puts: records larger than the
	// queue's memory bound are refused whatever the scheduling.
	st, err := capture.Open("lossy", capture.Options{SyncInterval: -1, QueueBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.PutMeta(metas[0]); err != nil {
		t.Fatal(err)
	}
	refused := 0
	w := st.Writer()
	for _, r := range recs {
		for !w.Put(r) {
			time.Sleep(time.Millisecond)
		}
		big := *r
		big.ID, big.RequestBody = 0, make([]byte, 2<<20)
		if !w.Put(&big) {
			refused++
		}
	}
	if refused != len(recs) {
		t.Fatalf("refused %d of %d oversized records", refused, len(recs))
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	// A dump of a capture whose writer lost records to a full disk inside
	// the window (the capture tests lose them for real).
	lostMeta := metas[0]
	lostMeta.Version, lostMeta.Closed = capture.MetaVersion, t0+10_000*ms
	lostMeta.Recorder = &capture.RecorderTotals{Written: uint64(len(recs)), Lost: 7, Errors: 2,
		LastError: "capture: no space left for the capture", FirstLoss: t0 + 100*ms, LastLoss: t0 + 200*ms}
	writeDump(t, "lost.jsonl", recs, samples, []capture.Meta{lostMeta})
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
		capture       string
		dropped, lost float64
		unclean       int
		warn          []string
	}{
		{"clean", 0, 0, 0, nil},
		{"lossy", float64(refused), 0, 0, []string{fmt.Sprintf("capture lossy: the recorder dropped %d (queue full) and lost 0", refused), "UTC, outside this group's window"}},
		{"lost.jsonl", 0, 7, 0, []string{"dropped 0 (queue full) and lost 7", "; 2 failed writes, the last: capture: no space left"}},
		{"snap", math.NaN(), math.NaN(), 1, []string{"did not close it cleanly"}},
	} {
		res, err := Analyze(context.Background(), Config{Captures: []string{tc.capture}})
		if err != nil {
			t.Fatalf("%s: %v", tc.capture, err)
		}
		g := res.Groups[0]
		if !near(g.RecorderDropped, tc.dropped) || !near(g.RecorderLost, tc.lost) || g.CapturesUnclean != tc.unclean {
			t.Errorf("%s: dropped %v lost %v unclean %d; want %v %v %d", tc.capture, g.RecorderDropped, g.RecorderLost, g.CapturesUnclean, tc.dropped, tc.lost, tc.unclean)
		}
		got := strings.Join(g.Warnings, "\n")
		if tc.warn == nil && (strings.Contains(got, "recorder") || strings.Contains(got, "cleanly")) {
			t.Errorf("%s: unexpected recorder warning:\n%s", tc.capture, got)
		}
		for _, want := range tc.warn {
			if !strings.Contains(got, want) {
				t.Errorf("%s: warnings lack %q:\n%s", tc.capture, want, got)
			}
		}
		if tc.capture == "lost.jsonl" && strings.Contains(got, "outside") {
			t.Errorf("%s: a loss inside the window reported outside:\n%s", tc.capture, got)
		}
	}
}

// TestExpandCaptures: a directory that holds captures below it (a trial's
// capture/ folder, a results tree) stands for them, in lexical order, and
// the engine warm-up's capture among them is warm-up traffic, never a
// measured group; captures, dumps, "-" and folders with no capture in them
// are kept as given (opening the last says why it is not one).
func TestExpandCaptures(t *testing.T) {
	t.Chdir(t.TempDir())
	recs, samples, metas := smallFixture()
	writeStore(t, "results/m/v/trial1/capture/rate-1", recs, samples, metas)
	warm, _, _ := smallFixture()
	for _, r := range warm {
		r.Labels = map[string]string{"phase": PhaseEngineWarmup, "level": "c64"}
	}
	writeStore(t, "results/m/v/trial1/capture/engine-warmup", warm, nil, nil)
	writeDump(t, "dump.jsonl", recs, samples, metas)
	if err := os.MkdirAll("empty/sub", 0o755); err != nil {
		t.Fatal(err)
	}
	// Not looked into: hidden folders, and captures deeper than a results
	// tree's.
	writeStore(t, "results/.trash/capture/rate-9", recs, samples, metas)
	writeStore(t, "deep/1/2/3/4/5/6/capture", recs, samples, metas)
	for _, c := range []struct {
		in   []string
		want []string
	}{
		{[]string{"results"}, []string{"results/m/v/trial1/capture/engine-warmup", "results/m/v/trial1/capture/rate-1"}},
		{[]string{"results/m/v/trial1/capture"}, []string{"results/m/v/trial1/capture/engine-warmup", "results/m/v/trial1/capture/rate-1"}},
		{[]string{"results/m/v/trial1/capture/rate-1", "-", "dump.jsonl", "empty", "missing", "deep"}, []string{"results/m/v/trial1/capture/rate-1", "-", "dump.jsonl", "empty", "missing", "deep"}},
		{[]string{"deep/1"}, []string{"deep/1/2/3/4/5/6/capture"}},
	} {
		if got, notes := ExpandCaptures(c.in); !slices.Equal(got, c.want) || len(notes) > 0 {
			t.Errorf("ExpandCaptures(%q) = %q (notes %q), want %q and no note", c.in, got, notes, c.want)
		}
	}

	whole, err := Analyze(context.Background(), Config{Captures: []string{"results"}})
	if err != nil {
		t.Fatal(err)
	}
	alone, err := Analyze(context.Background(), Config{Captures: []string{"results/m/v/trial1/capture/rate-1"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(whole.Groups) != len(alone.Groups) || len(whole.Groups) == 0 {
		t.Fatalf("the tree gives %d groups, the level's capture alone %d: the engine warm-up was measured", len(whole.Groups), len(alone.Groups))
	}
	for i, g := range whole.Groups {
		if g.Key != alone.Groups[i].Key || g.Count != alone.Groups[i].Count {
			t.Errorf("group %d: %s (%d requests) from the tree, %s (%d) alone", i, g.Key, g.Count, alone.Groups[i].Key, alone.Groups[i].Count)
		}
	}
	if !strings.Contains(strings.Join(whole.Warnings, "\n"), "only warm-up requests") {
		t.Errorf("no word of the engine warm-up's group in the warnings: %q", whole.Warnings)
	}
	if _, err := Analyze(context.Background(), Config{Captures: []string{"empty"}}); !errors.Is(err, capture.ErrNotCapture) {
		t.Errorf("a folder with no capture: %v, want ErrNotCapture", err)
	}

	// A vbbench trial that did not finish (Ctrl-C, a crash) is left out of
	// a tree, with a note; a tree of nothing else is analysed, saying so;
	// its captures given by name are analysed as they are.
	writeStore(t, "results/m/v/trial0/capture/rate-1", recs, samples, metas)
	for dir, status := range map[string]string{"results/m/v/trial0": "interrupted", "results/m/v/trial1": "ok"} {
		if err := os.WriteFile(dir+"/status.json", []byte(`{"study": "s", "status": "`+status+`"}`), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, notes := ExpandCaptures([]string{"results/m"})
	if !slices.Equal(got, []string{"results/m/v/trial1/capture/engine-warmup", "results/m/v/trial1/capture/rate-1"}) ||
		len(notes) != 1 || !strings.Contains(notes[0], "results/m/v/trial0 (its status.json: \"interrupted\") left out") {
		t.Errorf("a tree with an interrupted trial: %q, notes %q", got, notes)
	}
	got, notes = ExpandCaptures([]string{"results/m/v/trial0"})
	if !slices.Equal(got, []string{"results/m/v/trial0/capture/rate-1"}) || len(notes) != 1 || !strings.Contains(notes[0], "only trials that did not finish") {
		t.Errorf("only an interrupted trial: %q, notes %q", got, notes)
	}
	if got, notes = ExpandCaptures([]string{"results/m/v/trial0/capture/rate-1"}); len(got) != 1 || len(notes) != 0 {
		t.Errorf("an unfinished trial's capture by name: %q, notes %q", got, notes)
	}
	res, err := Analyze(context.Background(), Config{Captures: []string{"results/m"}})
	if err != nil || !strings.Contains(strings.Join(res.Warnings, "\n"), "left out: that trial did not finish") {
		t.Errorf("the analysis of the tree does not say what it left out: %v %q", err, res.Warnings)
	}
}
