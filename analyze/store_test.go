package analyze

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestStoreMatchesDump: a real Badger capture and its JSON Lines dump give
// the same analysis.
func TestStoreMatchesDump(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	recs, samples, metas := smallFixture()
	writeStore(t, "store-x", recs, samples, metas)
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
