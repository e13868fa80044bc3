package render

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/vbench/vbench/analyze"
	"github.com/vbench/vbench/analyze/internal/fixture"
)

// FuzzRender: whatever a dump holds, the summary renders as valid JSON
// (through encoding/json, NaN as null) and as a table, never a panic.
func FuzzRender(f *testing.F) {
	for _, seed := range fixture.FuzzSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := analyze.Analyze(context.Background(), analyze.Config{Captures: []string{"-"}, Stdin: bytes.NewReader(data), AllowMixed: true})
		if err != nil {
			return
		}
		var out bytes.Buffer
		if err := WriteSummaryJSON(res, &out); err != nil {
			t.Fatal(err)
		}
		if !json.Valid(out.Bytes()) {
			t.Fatalf("summary.json is not valid JSON:\n%s", out.Bytes())
		}
		if err := WriteTable(res, &out); err != nil {
			t.Fatal(err)
		}
	})
}
