package render

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vbench/vbench/analyze"
)

// TestClosedLevelOrder analyses a probe's captures (closed-loop levels
// c1 … c32, no rate) next to two open-loop levels: every output lists
// the rates first, rising, then the concurrencies numerically, never as
// text (c1, c16, c2, …).
func TestClosedLevelOrder(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	e := engine{Name: "sim-paged", Capacity: 10, Decode: 20 * time.Millisecond}
	var caps []string
	// Written in text order, so the input order cannot pass for the answer.
	for _, level := range []string{"10", "2", "c1", "c16", "c2", "c32", "c4"} {
		recs, samples := synthCapture(e, 4, 1, 20, 42)
		rate := 0.0
		if level == "10" || level == "2" {
			rate = map[string]float64{"10": 10, "2": 2}[level]
		}
		for _, r := range recs {
			r.Tags.Level, r.Tags.Rate = level, rate
		}
		p := "probe-" + level + ".jsonl"
		writeDump(t, p, recs, samples, nil)
		caps = append(caps, p)
	}
	var stdout bytes.Buffer
	if err := Run(context.Background(), analyze.Config{Captures: caps, Out: "out", Stdout: &stdout}); err != nil {
		t.Fatal(err)
	}
	want := []string{"2", "10", "c1", "c2", "c4", "c16", "c32"}

	f, err := os.Open(filepath.Join("out", "summary.csv"))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil || len(rows) < 2 {
		t.Fatalf("summary.csv: %v %q", err, rows)
	}
	col := slices.Index(rows[0], "level")
	var got []string
	for _, row := range rows[1:] {
		got = append(got, row[col])
	}
	if !slices.Equal(got, want) {
		t.Errorf("summary.csv levels %v; want %v", got, want)
	}

	b, err := os.ReadFile(filepath.Join("out", "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	var sum struct {
		Groups []struct {
			Level string `json:"level"`
		} `json:"groups"`
		Aggregates []struct {
			Level string `json:"level"`
		} `json:"aggregates"`
	}
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatal(err)
	}
	for name, list := range map[string][]struct {
		Level string `json:"level"`
	}{"groups": sum.Groups, "aggregates": sum.Aggregates} {
		got = got[:0]
		for _, g := range list {
			got = append(got, g.Level)
		}
		if !slices.Equal(got, want) {
			t.Errorf("summary.json %s levels %v; want %v", name, got, want)
		}
	}

	// The Markdown table and the one on stdout: a row per level, in order.
	md, err := os.ReadFile(filepath.Join("out", "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{"report.md": string(md), "stdout": stdout.String()} {
		got = got[:0]
		for _, line := range strings.Split(text, "\n") {
			if f := strings.Fields(strings.ReplaceAll(line, "|", " ")); len(f) > 5 && f[0] == "sim-paged" && f[2] == "1" {
				got = append(got, f[1])
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s rows %v; want %v", name, got, want)
		}
	}
}
