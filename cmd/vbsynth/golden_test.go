package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (run go test ./cmd/vbsynth -update if the change is intended):\n got: %.600s\nwant: %.600s", name, got, want)
	}
}

// TestGolden pins the exact bytes of a small synthesized trace and of an
// imported one, and the text of inspect: a change in any draw, encoding or
// default shows up here.
func TestGolden(t *testing.T) {
	dir := t.TempDir()
	syn := filepath.Join(dir, "synth.jsonl")
	if code, _, errs := runT("--dataset", "alpaca", "--requests", "12", "--burstiness", "0.5", "--seed", "7", "--token-range", "100,200", "-o", syn); code != 0 {
		t.Fatal(errs)
	}
	b, _ := os.ReadFile(syn)
	golden(t, "synth_alpaca_gamma.jsonl", b)

	code, out, errs := runT("inspect", syn)
	if code != 0 {
		t.Fatal(errs)
	}
	golden(t, "inspect.txt", []byte(strings.ReplaceAll(out, dir, "DIR")))

	imp := filepath.Join(dir, "burst.jsonl")
	if code, _, errs := runT("import", "burstgpt", "../../synth/importer/testdata/burstgpt.csv", "--max-gap", "30s", "--token-range", "5,9", "-o", imp); code != 0 {
		t.Fatal(errs)
	}
	b, _ = os.ReadFile(imp)
	golden(t, "import_burstgpt.jsonl", b)
}
