package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/vbench/vbench/metric"
	"github.com/vbench/vbench/replay"
)

// warmStudy is a one-trial simulator study with short levels; run holds
// the [run] keys besides the common ones (and any [run.*] table after
// them).
func warmStudy(t *testing.T, dir, run string) *Study {
	t.Helper()
	tracePath := filepath.Join(dir, "trace.bin")
	writeTrace(t, tracePath, 400)
	s, err := ParseStudy(`name = "warm"
results_dir = "` + filepath.Join(dir, "results") + `"
reports_dir = "` + filepath.Join(dir, "reports") + `"
[trace]
path = "` + tracePath + `"
[[models]]
name = "sim"
model = "sim"
max_model_len = 2048
variants = ["sim-paged"]
[variants.sim-paged]
preset = "sim-paged"
sim_speed = 20
[run]
duration = "1s"
drain = "3s"
startup_timeout = "20s"
stop_grace = "3s"
chart = false
` + run)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// runStudy plans and runs s on the simulator.
func runStudy(t *testing.T, ctx context.Context, s *Study, opt RunOptions) (*RunResult, string, error) {
	t.Helper()
	p, err := MakePlan(context.Background(), s)
	if err != nil || p.Err() != nil {
		t.Fatalf("plan: %v %v", err, p.Err())
	}
	var progress bytes.Buffer
	opt.SearchDirs = []string{buildSim(t)}
	opt.Progress = &syncBuf{b: &progress}
	res, err := Run(ctx, p, opt)
	return res, progress.String(), err
}

func readReplay(t *testing.T, path string) replay.Result {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r replay.Result
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return r
}

// warmups counts the warm-up requests of a capture's analysis (the
// preflight, also warm-up traffic, left out).
func warmups(reqs []metric.Request) int {
	n := 0
	for _, r := range reqs {
		if r.Warmup && r.Level != "preflight" {
			n++
		}
	}
	return n
}

// summaryCounts reads the groups of a summary.json: level label → count.
func summaryCounts(t *testing.T, path string) map[string]float64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Groups []map[string]any `json:"groups"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, g := range doc.Groups {
		level, _ := g["level"].(string)
		out[level], _ = g["count"].(float64)
	}
	return out
}

// TestRunWarmupPerLevel: with run.warmup_mode = "level" every level's
// capture holds its own warm-up, tagged as such, sent at the level's rate;
// the level's figures (status.json, the trial's analysis) count only its
// measured requests.
func TestRunWarmupPerLevel(t *testing.T) {
	dir := t.TempDir()
	s := warmStudy(t, dir, "rates = [4, 8]\nwarmup = \"500ms\"\nwarmup_mode = \"level\"\n")
	res, progress, err := runStudy(t, context.Background(), s, RunOptions{})
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, progress)
	}
	tr := res.Trials[0]
	if tr.Status != StatusOK || len(tr.Levels) != 2 {
		t.Fatalf("trial %+v\n%s", tr, progress)
	}
	counts := summaryCounts(t, filepath.Join(tr.Dir, "analysis", "summary.json"))
	for _, lv := range tr.Levels {
		rr := readReplay(t, filepath.Join(tr.Dir, "replay-rate-"+lv.Label+".json"))
		if len(rr.Warmups) != 1 || rr.Warmups[0].Sent == 0 || rr.Warmups[0].Rate != lv.Rate {
			t.Fatalf("rate %s: the replayer's warm-ups %+v; want one at %g req/s", lv.Label, rr.Warmups, lv.Rate)
		}
		ares, g, err := levelGroup(context.Background(), filepath.Join(tr.Dir, lv.Capture))
		if err != nil {
			t.Fatal(err)
		}
		// Every warm-up request is in the capture, tagged as warm-up, and
		// none of them is counted.
		if got, want := warmups(ares.Requests), rr.Warmups[0].Sent; got != want {
			t.Errorf("rate %s: %d warm-up requests in the capture; the replayer sent %d", lv.Label, got, want)
		}
		if lv.Sent != rr.Levels[0].Sent || lv.Sent != g.Count || lv.Sent+rr.Warmups[0].Sent+1 != len(ares.Requests) {
			t.Errorf("rate %s: status counts %d; the replayer measured %d, the capture holds %d with %d warm-up and 1 preflight",
				lv.Label, lv.Sent, rr.Levels[0].Sent, len(ares.Requests), rr.Warmups[0].Sent)
		}
		if counts[lv.Label] != float64(lv.Sent) {
			t.Errorf("rate %s: the trial's analysis counts %v, status.json %d", lv.Label, counts[lv.Label], lv.Sent)
		}
	}
	report, err := os.ReadFile(res.Report)
	if err != nil {
		t.Fatal(err)
	}
	for _, lv := range tr.Levels {
		if !bytes.Contains(report, []byte("| sim-paged | "+lv.Label+" |")) {
			t.Errorf("report lacks the row of rate %s", lv.Label)
		}
	}
}
