package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vbench/vbench/analyze"
	"github.com/vbench/vbench/backends"
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

// TestRunEngineWarmup: run.engine_warmup plays the trace closed loop into
// capture/engine-warmup before the first level, with its concurrency in
// flight at its peak, tagged phase=engine-warmup, and drained before the
// level starts; status.json records it, and neither the level's figures,
// the trial's analysis nor the report count it.
func TestRunEngineWarmup(t *testing.T) {
	const conc = 8
	dir := t.TempDir()
	s := warmStudy(t, dir, "rates = [8]\nwarmup = \"0s\"\n[run.engine_warmup]\nduration = \"1s\"\nconcurrency = 8\n")
	res, progress, err := runStudy(t, context.Background(), s, RunOptions{})
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, progress)
	}
	tr := res.Trials[0]
	if tr.Status != StatusOK || len(tr.Levels) != 1 {
		t.Fatalf("trial %+v\n%s", tr, progress)
	}
	capDir := filepath.Join(tr.Dir, "capture", "engine-warmup")
	// Its requests are warm-up requests (the default window leaves them
	// out), tagged phase=engine-warmup, beside the replayer's preflight.
	ares, err := analyze.Analyze(context.Background(), analyze.Config{Captures: []string{capDir}, By: []string{"phase", "level"}, Window: analyze.WindowAll})
	if err != nil {
		t.Fatal(err)
	}
	var g *analyze.Group
	for _, x := range ares.Groups {
		if x.Level != "preflight" {
			if g != nil || x.Key != "engine-warmup/c8" {
				t.Fatalf("capture/engine-warmup: groups %v; want one of requests tagged phase=engine-warmup at c8", ares.Groups)
			}
			g = x
		}
	}
	if g == nil {
		t.Fatal("capture/engine-warmup: no group of engine warm-up requests")
	}
	var warm []metric.Request
	for _, r := range ares.Requests {
		if r.Level != "preflight" {
			if !r.Warmup {
				t.Fatalf("engine warm-up request %d is not a warm-up request", r.Index)
			}
			warm = append(warm, r)
		}
	}
	if peak := peakInFlight(warm); peak != conc {
		t.Errorf("engine warm-up: %d requests in flight at the peak, want %d", peak, conc)
	}

	// status.json: the record, from the capture.
	st := readStatus(t, tr.Dir)
	ew := st.EngineWarmup
	if ew == nil {
		t.Fatalf("status.json has no engine_warmup:\n%+v", st)
	}
	if ew.Capture != filepath.Join("capture", "engine-warmup") || ew.Concurrency != conc || ew.Duration != time.Second ||
		ew.Requests != g.Count || ew.Completed != g.Completed || ew.Requests <= conc || ew.Completed == 0 || ew.Seconds < 1 {
		t.Errorf("engine_warmup %+v; the capture has %d requests, %d completed", ew, g.Count, g.Completed)
	}
	if ew.TPOTMean == nil || *ew.TPOTMean != g.TPOT.Mean || ew.TTFTP50 == nil || *ew.TTFTP50 != g.TTFT.P50 {
		t.Errorf("engine_warmup TPOT mean %v, TTFT p50 %v; the capture's %v, %v", ew.TPOTMean, ew.TTFTP50, g.TPOT.Mean, g.TTFT.P50)
	}
	if !strings.Contains(progress, "engine warm-up: ") || !strings.Contains(progress, "at concurrency 8 in") {
		t.Errorf("progress does not show the engine warm-up:\n%s", progress)
	}

	// The level: after the warm-up's last request, other prompts (the
	// warm-up sends the trace from its end), its own count.
	lv := tr.Levels[0]
	lres, lg, err := levelGroup(context.Background(), filepath.Join(tr.Dir, lv.Capture))
	if err != nil {
		t.Fatal(err)
	}
	var warmEnd, warmLow int64 = 0, 1 << 62
	for _, r := range warm {
		warmEnd, warmLow = max(warmEnd, r.EndUnix()), min(warmLow, r.Index)
	}
	for _, r := range lres.Requests {
		if !r.Measured() {
			continue
		}
		if r.Start < warmEnd {
			t.Errorf("level request %d started %v before the engine warm-up's last ended", r.Index, time.Duration(warmEnd-r.Start))
			break
		}
		if r.Index >= warmLow {
			t.Errorf("level request %d was also sent in the engine warm-up (its lowest index %d)", r.Index, warmLow)
			break
		}
	}
	rr := readReplay(t, filepath.Join(tr.Dir, "replay-rate-8.json"))
	if lv.Sent != lg.Count || lv.Sent != rr.Levels[0].Sent {
		t.Errorf("level counts %d; its capture %d, the replayer %d", lv.Sent, lg.Count, rr.Levels[0].Sent)
	}
	if counts := summaryCounts(t, filepath.Join(tr.Dir, "analysis", "summary.json")); len(counts) != 1 || counts["8"] != float64(lv.Sent) {
		t.Errorf("the trial's analysis: %v; want only rate 8 with %d requests", counts, lv.Sent)
	}
	report, err := os.ReadFile(res.Report)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(report, []byte("| c8 |")) || bytes.Contains(report, []byte("engine-warmup")) || !bytes.Contains(report, []byte("| sim-paged | 8 |")) {
		t.Errorf("the report shows the engine warm-up:\n%s", report)
	}
	if _, err := os.Stat(filepath.Join(tr.Dir, "replay-engine-warmup.json")); err != nil {
		t.Error(err)
	}
}

// peakInFlight is the most requests running at once.
func peakInFlight(reqs []metric.Request) int {
	type edge struct {
		at    int64
		delta int
	}
	var edges []edge
	for _, r := range reqs {
		edges = append(edges, edge{r.Start, 1}, edge{r.EndUnix(), -1})
	}
	// Ends before starts at the same instant: a closed loop's next request
	// follows its previous one.
	slices.SortFunc(edges, func(a, b edge) int {
		if a.at != b.at {
			return int(min(max(a.at-b.at, -1), 1))
		}
		return a.delta - b.delta
	})
	n, peak := 0, 0
	for _, e := range edges {
		n += e.delta
		peak = max(peak, n)
	}
	return peak
}

func TestPeakInFlight(t *testing.T) {
	r := func(start, end int64) metric.Request {
		return metric.Request{Start: start, End: time.Duration(end - start)}
	}
	tests := []struct {
		reqs []metric.Request
		want int
	}{
		{nil, 0},
		{[]metric.Request{r(0, 10)}, 1},
		{[]metric.Request{r(0, 10), r(10, 20)}, 1}, // one follows the other
		{[]metric.Request{r(0, 10), r(5, 20), r(6, 7), r(15, 30)}, 3},
	}
	for _, tt := range tests {
		if got := peakInFlight(tt.reqs); got != tt.want {
			t.Errorf("peakInFlight(%v) = %d, want %d", tt.reqs, got, tt.want)
		}
	}
}

// TestRunEngineWarmupStops: Ctrl-C during the engine warm-up interrupts
// the trial, a backend crash fails it, as during a level: no level runs,
// the server is stopped, status.json says why.
func TestRunEngineWarmupStops(t *testing.T) {
	tests := []struct {
		name   string
		cancel bool // else kill the backend
		status string
		err    string
	}{
		{"interrupted", true, StatusInterrupted, "engine warm-up"},
		{"crashed", false, StatusFailed, "backend crashed during the engine warm-up"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			// A window far longer than the test: only the stop ends it.
			s := warmStudy(t, dir, "rates = [8]\n[run.engine_warmup]\nduration = \"3m\"\nconcurrency = 4\n")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var url string
			opt := RunOptions{
				OnEngineWarmup: func(tr Trial, b backends.Backend) {
					url = b.BaseURL()
					time.AfterFunc(500*time.Millisecond, func() {
						if tt.cancel {
							cancel()
						} else {
							syscall.Kill(-b.PID(), syscall.SIGKILL)
						}
					})
				},
				OnLevel: func(tr Trial, rate float64, b backends.Backend) {
					t.Errorf("level %g ran after the engine warm-up stopped", rate)
				},
			}
			start := time.Now()
			res, progress, err := runStudy(t, ctx, s, opt)
			if tt.cancel != (err != nil) {
				t.Errorf("Run: %v", err)
			}
			if res == nil || len(res.Trials) != 1 {
				t.Fatalf("Run = %+v, %v\n%s", res, err, progress)
			}
			tr := res.Trials[0]
			st := readStatus(t, tr.Dir)
			if st.Status != tt.status || !strings.Contains(st.Error, tt.err) || len(st.Levels) != 0 || st.EngineWarmup == nil || st.EngineWarmup.Error == "" {
				t.Errorf("status.json: %s %q, %d levels, engine warm-up %+v; want %s, %q\n%s", st.Status, st.Error, len(st.Levels), st.EngineWarmup, tt.status, tt.err, progress)
			}
			// Structural, not a timing goal: the warm-up ended before its
			// 3-minute window could, so the stop cut it.
			if ws := st.EngineWarmup; ws != nil && ws.Seconds >= 180 {
				t.Errorf("the engine warm-up ran its whole window (%.0f s): the stop did not cut it", ws.Seconds)
			}
			if ln, err := net.Listen("tcp", strings.TrimPrefix(url, "http://")); err != nil {
				t.Errorf("the backend's address %s is still taken: %v", url, err)
			} else {
				ln.Close()
			}
			t.Logf("stopped after %v", time.Since(start))
			if tt.cancel {
				return
			}
			// --resume runs the failed trial again, engine warm-up included
			// (its server is new).
			s.Run.EngineWarmup.Duration = Duration(time.Second)
			res, progress, err = runStudy(t, context.Background(), s, RunOptions{Resume: true})
			if err != nil {
				t.Fatalf("resume: %v\n%s", err, progress)
			}
			again := res.Trials[0]
			if again.Dir == tr.Dir || again.Status != StatusOK || again.EngineWarmup == nil || again.EngineWarmup.Completed == 0 || len(again.Levels) != 1 {
				t.Errorf("resumed trial %+v", again)
			}
			if _, err := os.Stat(filepath.Join(again.Dir, "capture", "engine-warmup")); err != nil {
				t.Errorf("resumed trial: %v", err)
			}
		})
	}
}
