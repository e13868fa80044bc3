package render

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vbench/vbench/analyze"
	"github.com/vbench/vbench/capture"

	"github.com/vbench/vbench/metric"
)

var (
	update  = flag.Bool("update", false, "rewrite the golden files under testdata/golden")
	keepDir = flag.String("keep", "", "copy the sweep test's outputs (charts, report) to this directory to look at them")
)

// goldenDir returns the absolute testdata/golden/name (tests change the
// working directory).
func goldenDir(t *testing.T, name string) string {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(wd, "testdata", "golden", name)
}

// compareGolden compares the files under dir with those under golden.
func compareGolden(t *testing.T, golden, dir string, files []string) {
	t.Helper()
	for _, f := range files {
		got, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		gp := filepath.Join(golden, f)
		if *update {
			if err := os.MkdirAll(filepath.Dir(gp), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(gp, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(gp)
		if err != nil {
			t.Fatalf("%v (run go test -update to create it)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from %s (run go test -update after checking the change):\n%s", f, gp, firstDiff(string(got), string(want)))
		}
	}
}

// The golden tests run in a temporary working directory so the capture
// names written in the outputs are stable.
func TestGoldenSmall(t *testing.T) {
	golden := goldenDir(t, "small")
	dir := t.TempDir()
	t.Chdir(dir)
	recs, samples, metas := smallFixture()
	writeDump(t, "fx.jsonl", recs, samples, metas)
	slo, _ := analyze.ParseSLO("ttft=150ms,tpot=100ms")
	var stdout bytes.Buffer
	cfg := analyze.Config{Captures: []string{"fx.jsonl"}, Out: "out", VLLMJSON: true, SLO: slo, Stdout: &stdout}
	if err := Run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("out", "table.txt"), stdout.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(filepath.Join(dir, "out"))
	compareGolden(t, golden, ".", []string{"summary.csv", "summary.json", "aggregates.csv", "requests.csv", "report.md", "table.txt", "vllm/a_1_1.json"})
}

func TestGoldenSweep(t *testing.T) {
	golden := goldenDir(t, "sweep")
	dir := t.TempDir()
	t.Chdir(dir)
	engines := []engine{{Name: "torch-baseline", Capacity: 4, Decode: 40 * time.Millisecond}, {Name: "vllm-page", Capacity: 10, Decode: 20 * time.Millisecond}}
	caps := writeSweep(t, ".", engines, []float64{2, 4, 8, 12}, 2, 60)
	for i := range caps {
		caps[i] = filepath.Base(caps[i])
	}
	run := func(out string, charts bool) {
		t.Helper()
		cfg := analyze.Config{Captures: caps, Out: out, Chart: charts, Title: "sweep fixture"}
		if err := Run(context.Background(), cfg); err != nil {
			t.Fatal(err)
		}
	}
	run("out", true)
	run("again", false) // chart bytes: TestRenderDeterministic (rendering is slow under -race)
	files := []string{"summary.csv", "aggregates.csv", "summary.json"}
	for _, f := range append(files, "requests.csv") {
		a, _ := os.ReadFile(filepath.Join("out", f))
		b, _ := os.ReadFile(filepath.Join("again", f))
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("%s: two runs gave different bytes (or none: %d)", f, len(a))
		}
	}
	for _, name := range chartOrder() {
		p := filepath.Join("out", "charts", name+".png")
		f, err := os.Open(p)
		if err != nil {
			t.Errorf("chart %s: %v", name, err)
			continue
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Errorf("chart %s: %v", name, err)
			continue
		}
		if b := img.Bounds(); b.Dx() != 1024 || b.Dy() != 640 {
			t.Errorf("chart %s: %v; want 1024×640", name, b)
		}
		fi, _ := os.Stat(p)
		svg, err := os.ReadFile(filepath.Join("out", "charts", name+".svg"))
		if fi.Size() < 20_000 || err != nil || !bytes.Contains(svg, []byte("<svg")) || len(svg) < 5_000 {
			t.Errorf("chart %s: png %d bytes, svg %d bytes (%v): too small to hold a chart", name, fi.Size(), len(svg), err)
		}
	}
	if *keepDir != "" {
		if err := os.CopyFS(*keepDir, os.DirFS("out")); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(filepath.Join(dir, "out"))
	compareGolden(t, golden, ".", append(files, "report.md"))
}

func TestMixedTraces(t *testing.T) {
	dir := t.TempDir()
	a, _ := synthCapture(engine{Name: "a", Capacity: 10, Decode: 20 * time.Millisecond}, 2, 1, 10, 1)
	b, _ := synthCapture(engine{Name: "b", Capacity: 10, Decode: 20 * time.Millisecond}, 2, 1, 10, 1)
	for _, r := range b {
		r.Tags.TraceHash = "trace-2"
	}
	pa, pb := filepath.Join(dir, "a.jsonl"), filepath.Join(dir, "b.jsonl")
	writeDump(t, pa, a, nil, nil)
	writeDump(t, pb, b, nil, nil)
	_, err := analyze.Analyze(context.Background(), analyze.Config{Captures: []string{pa, pb}})
	if !errors.Is(err, analyze.ErrMixedTraces) || !strings.Contains(err.Error(), "--allow-mixed") {
		t.Fatalf("err = %v; want analyze.ErrMixedTraces naming --allow-mixed", err)
	}
	res, err := analyze.Analyze(context.Background(), analyze.Config{Captures: []string{pa, pb}, AllowMixed: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Warnings) == 0 || !strings.Contains(res.Warnings[0], "trace-1, trace-2") {
		t.Errorf("warnings %q; want the two hashes", res.Warnings)
	}
}

// TestRobustness: bad captures end in a clear error or a sensible result,
// never a panic.
func TestRobustness(t *testing.T) {
	dir := t.TempDir()
	onlyFail, _ := synthCapture(engine{Name: "x", Capacity: 10, Decode: 20 * time.Millisecond}, 2, 1, 5, 1)
	for _, r := range onlyFail {
		r.Status, r.Chunks, r.CompletionTokens = 503, nil, -1
	}
	crashed, _ := synthCapture(engine{Name: "x", Capacity: 10, Decode: 20 * time.Millisecond}, 2, 1, 5, 1)
	for _, r := range crashed[2:] {
		r.Outcome, r.End = "", 0 // records without an end
		r.Chunks = r.Chunks[:len(r.Chunks)/2]
	}
	write := func(name string, recs []*capture.Record) string {
		p := filepath.Join(dir, name)
		writeDump(t, p, recs, nil, nil)
		return p
	}
	emptyDir := filepath.Join(dir, "emptystore")
	writeStore(t, emptyDir, nil, nil, nil)
	badLine := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(badLine, []byte("{\"kind\":\"record\",\"id\":1}\nnot json\n"), 0o644)
	notCap := filepath.Join(dir, "plain")
	os.MkdirAll(notCap, 0o755)
	os.WriteFile(filepath.Join(notCap, "x.txt"), []byte("hi"), 0o644)

	tests := []struct {
		name    string
		capture string
		wantErr string // "" : must succeed
		check   func(*analyze.Result) string
	}{
		{"empty dump", write("empty.jsonl", nil), "no request records", nil},
		{"empty store", emptyDir, "no request records", nil},
		{"missing", filepath.Join(dir, "nope"), "no such file", nil},
		{"not a dump", badLine, "line 2", nil},
		{"not a capture dir", notCap, "capture: open " + notCap + ": not a vbench capture", nil},
		{"only failures", write("fail.jsonl", onlyFail), "", func(r *analyze.Result) string {
			g := r.Groups[0]
			if g.Completed != 0 || g.Failed != 5 || g.FailedBy["http_503"] != 5 || len(r.Warnings) == 0 {
				return "want 5 failed by http_503 and a warning"
			}
			return ""
		}},
		{"crashed proxy", write("crash.jsonl", crashed), "", func(r *analyze.Result) string {
			g := r.Groups[0]
			if g.Completed != 2 || g.FailedBy[metric.KindIncomplete] != 3 {
				return "want 2 completed, 3 incomplete"
			}
			return ""
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(dir, "out-"+strings.ReplaceAll(tt.name, " ", "-"))
			var stdout bytes.Buffer
			cfg := analyze.Config{Captures: []string{tt.capture}, Out: out, Chart: true, VLLMJSON: true, Stdout: &stdout}
			res, err := analyze.Analyze(context.Background(), cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v; want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if msg := tt.check(res); msg != "" {
				t.Errorf("%s: %+v", msg, res.Groups[0])
			}
			if err := Write(context.Background(), res, cfg); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(out, "report.md")); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestGoldenServer pins summary.csv/json, server_metrics.csv and the
// report of the server fixture.
func TestGoldenServer(t *testing.T) {
	golden := goldenDir(t, "server")
	dir := t.TempDir()
	t.Chdir(dir)
	recs, samples := serverFixture()
	writeDump(t, "fx.jsonl", recs, samples, nil)
	cfg := analyze.Config{Captures: []string{"fx.jsonl"}, Out: "out", Report: "out/report.md", Title: "server fixture"}
	if err := Run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	t.Chdir(filepath.Join(dir, "out"))
	compareGolden(t, golden, ".", []string{"summary.csv", "summary.json", "server_metrics.csv", "report.md"})
	if _, err := os.Stat("server_metrics.csv"); err != nil {
		t.Error(err)
	}
}

// TestRequestsOutcomeAgreesWithSummary (issue 18): requests.csv's outcome
// column counts exactly what the summary counts — an HTTP 400 or 500 row
// is "failed", not "ok" (its proxy_outcome may still be ok: the proxy
// forwarded the response to its end).
func TestRequestsOutcomeAgreesWithSummary(t *testing.T) {
	dir := t.TempDir()
	recs, samples, metas := smallFixture()
	p := filepath.Join(dir, "fx.jsonl")
	writeDump(t, p, recs, samples, metas)
	res, err := analyze.Analyze(context.Background(), analyze.Config{Captures: []string{p}})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteRequestsCSV(res, &b); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := func(name string) int { return slices.Index(rows[0], name) }
	outcome, warm, status, proxy := col("outcome"), col("warmup"), col("status"), col("proxy_outcome")
	counts := map[string]int{}
	for _, r := range rows[1:] {
		if r[warm] == "true" {
			continue
		}
		counts[r[outcome]]++
		if r[status] == "500" && (r[outcome] != "failed" || r[proxy] != "ok") {
			t.Errorf("HTTP 500 row: outcome %s, proxy_outcome %s; want failed, ok", r[outcome], r[proxy])
		}
	}
	g := res.Groups[0]
	if counts["ok"] != g.Completed || counts["failed"] != g.Failed || counts["cut"] != g.Cut || len(counts) != 3 {
		t.Errorf("requests.csv outcomes %v; summary completed %d failed %d cut %d", counts, g.Completed, g.Failed, g.Cut)
	}
}
