package analyze

import (
	"bytes"
	"context"
	"math"
	"testing"

	"github.com/vbench/vbench/analyze/internal/fixture"
	"github.com/vbench/vbench/capture"
)

// FuzzReadDump: any bytes given as a dump end in records or an error,
// never a panic; every record read analyses without panicking.
func FuzzReadDump(f *testing.F) {
	for _, seed := range fixture.FuzzSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var got []*capture.Record
		_, _, err := readDump(context.Background(), bytes.NewReader(data), "fuzz", func(r *capture.Record) error {
			got = append(got, r)
			return nil
		})
		for _, r := range got {
			m := Measure(r, "fuzz")
			if m.Completed() && m.OutputTokens > 1 && !math.IsNaN(m.TTFT()) && math.IsNaN(m.TPOT()) {
				t.Errorf("completed request with %d tokens and a TTFT has no TPOT", m.OutputTokens)
			}
		}
		if err != nil {
			return
		}
		if _, err := Analyze(context.Background(), Config{Captures: []string{"-"}, Stdin: bytes.NewReader(data), AllowMixed: true}); err != nil {
			return
		}
	})
}
