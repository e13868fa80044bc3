package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/vbench/vbench/metric"
	"github.com/vbench/vbench/replay"
)

// TestOneCaptureOneFigure (issue 18): one level's capture gives the same
// normalized latency in every place it is shown — vbbench's live progress
// line, its early-stop decision, status.json, a probe step's figures, the
// replayer's progress figure, the trial's summary.json and the study
// report. (Before, the early stop and status.json divided the mean E2E by
// the mean output while the report averaged per-request ratios: 0.0063
// against 0.0104 for one level of the demo.)
func TestOneCaptureOneFigure(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a simulated trial (≈10 s)")
	}
	bin := buildSim(t)
	dir := t.TempDir()
	tracePath := filepath.Join(dir, "trace.bin")
	writeTrace(t, tracePath, 400)
	// A limit of 1 µs/token stops the trial after its first level, so the
	// early-stop line shows the figure too.
	s, err := ParseStudy(`name = "one-figure"
results_dir = "` + filepath.Join(dir, "results") + `"
reports_dir = "` + filepath.Join(dir, "reports") + `"
[trace]
path = "` + tracePath + `"
[run]
rates = [8, 16]
duration = "2s"
warmup = "1s"
drain = "10s"
startup_timeout = "20s"
stop_grace = "3s"
chart = false
early_stop = { normalized_latency = "1us" }
[[models]]
name = "sim"
model = "sim"
max_model_len = 2048
variants = ["sim-paged"]
[variants.sim-paged]
preset = "sim-paged"
sim_speed = 20
`)
	if err != nil {
		t.Fatal(err)
	}
	p, err := MakePlan(context.Background(), s)
	if err != nil || p.Err() != nil {
		t.Fatalf("plan: %v %v", err, p.Err())
	}
	var progress bytes.Buffer
	res, err := Run(context.Background(), p, RunOptions{SearchDirs: []string{bin}, Progress: &syncBuf{b: &progress}, ToolVersion: "test"})
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, progress.String())
	}
	tr := res.Trials[0]
	if tr.Status != StatusEarlyStopped || len(tr.Levels) != 1 || tr.Levels[0].OK == 0 {
		t.Fatalf("trial %+v\n%s", tr, progress.String())
	}
	lv := tr.Levels[0]
	want := lv.NormLatency.Mean // completed requests (the paper's figure)
	fig := fmt.Sprintf("%.4f", want)
	figCut := fmt.Sprintf("%.4f", lv.NormLatencyWithCut.Mean)

	// 1. status.json on disk.
	st := readStatus(t, tr.Dir)
	if got := st.Levels[0].NormLatency.Mean; got != want {
		t.Errorf("status.json: %v; in memory %v", got, want)
	}
	// 2. the live progress line of the level and 3. the early stop.
	if !regexp.MustCompile(`rate 8 req/s: \d+ requests: .*normalized latency ` + fig + ` s/token`).MatchString(progress.String()) {
		t.Errorf("no progress line with normalized latency %s:\n%s", fig, progress.String())
	}
	if !strings.Contains(progress.String(), "saturated (rate 8: normalized latency "+figCut+" s/token") {
		t.Errorf("no early-stop line with %s:\n%s", figCut, progress.String())
	}
	// 4. the trial's summary.json (its analysis) and 5. the study report.
	if got := summaryNorm(t, filepath.Join(tr.Dir, "analysis", "summary.json")); !closeTo(got, want) {
		t.Errorf("trial summary.json: %v; status.json %v", got, want)
	}
	report, err := os.ReadFile(res.Report)
	if err != nil {
		t.Fatal(err)
	}
	if got := reportNorm(t, string(report), "sim-paged", "8"); got != fig {
		t.Errorf("report: %s; status.json %s", got, fig)
	}
	// 6. a probe step and 7. the replayer's progress figure, fed the same
	// capture.
	ares, g, err := levelGroup(context.Background(), filepath.Join(tr.Dir, lv.Capture))
	if err != nil {
		t.Fatal(err)
	}
	var ps ProbeStep
	ps.measure(ares.Requests, g, 2e9)
	if ps.NormLatency != lv.NormLatencyWithCut.Mean {
		t.Errorf("probe step: %v; status.json %v", ps.NormLatency, lv.NormLatencyWithCut.Mean)
	}
	var measured []metric.Request
	for _, r := range ares.Requests {
		if r.Measured() {
			measured = append(measured, r)
		}
	}
	if got := replay.NormLatencyText(metric.Summarize(measured)); !strings.Contains(got, "norm latency "+fig+" s/token") {
		t.Errorf("replayer progress figure %q; status.json %s", got, fig)
	}
	t.Logf("normalized latency %s s/token (%s with cut ones) everywhere; %d ok, %d cut", fig, figCut, lv.OK, lv.Cut)
}

func closeTo(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Abs(b) }

// summaryNorm reads the one group's norm_latency_mean_s_per_tok of a
// summary.json.
func summaryNorm(t *testing.T, path string) float64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Groups []map[string]any `json:"groups"`
	}
	if err := json.Unmarshal(b, &doc); err != nil || len(doc.Groups) != 1 {
		t.Fatalf("%s: %v (%d groups)", path, err, len(doc.Groups))
	}
	v, ok := doc.Groups[0]["norm_latency_mean_s_per_tok"].(float64)
	if !ok {
		t.Fatalf("%s: norm_latency_mean_s_per_tok = %v", path, doc.Groups[0]["norm_latency_mean_s_per_tok"])
	}
	return v
}

// reportNorm returns the "norm s/tok" cell of a report's summary table row.
func reportNorm(t *testing.T, report, variant, rate string) string {
	t.Helper()
	var col int
	for _, line := range strings.Split(report, "\n") {
		cells := strings.Split(strings.Trim(line, "| "), " | ")
		if len(cells) > 2 && cells[0] == "variant" {
			for i, c := range cells {
				if c == "norm s/tok" {
					col = i
				}
			}
		}
		if col > 0 && len(cells) > col && cells[0] == variant && cells[1] == rate {
			return cells[col]
		}
	}
	t.Fatalf("report has no row for %s at %s:\n%s", variant, rate, report)
	return ""
}
