//go:build !race

// The race detector makes this regeneration take ~50 s; it runs in plain go test.

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestGeneratedFileUpToDate regenerates the profiles and compares them with
// the committed synth/profile_data.go. It needs shared/data and a GPT-2
// tokenizer.json (bench/scripts/synth_gpt2_tokenizer.sh), so it skips on a
// fresh clone.
func TestGeneratedFileUpToDate(t *testing.T) {
	data, gpt2 := "../../../../shared/data", "../../../.gl/gpt2-tokenizer.json"
	if p := os.Getenv("VBENCH_GPT2_TOKENIZER"); p != "" {
		gpt2 = p
	}
	for _, p := range []string{data, gpt2} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("%s not present", p)
		}
	}
	if testing.Short() {
		t.Skip("slow")
	}
	out := filepath.Join(t.TempDir(), "profile_data.go")
	if err := run(data, gpt2, out); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(out)
	want, err := os.ReadFile("../../profile_data.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("synth/profile_data.go is stale: run go generate ./synth")
	}
}
