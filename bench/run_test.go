package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/vbench/vbench/backends"
	"github.com/vbench/vbench/internal/testbin"
)

// buildSim builds cmd/vbsim once for the tests that run real studies and
// returns the directory that holds it.
func buildSim(t *testing.T) string {
	t.Helper()
	return testbin.Dir(t, "cmd/vbsim")
}

func simStudy(t *testing.T, dir string) *Study {
	t.Helper()
	s, err := ParseStudy(studyText(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// studyText writes the trace of the simulator study into dir and returns
// the study's TOML.
func studyText(t *testing.T, dir string) string {
	t.Helper()
	tracePath := filepath.Join(dir, "trace.bin")
	if _, err := os.Stat(tracePath); err != nil {
		writeTrace(t, tracePath, 400)
	}
	return `name = "sim-ci"
results_dir = "` + filepath.Join(dir, "results") + `"
reports_dir = "` + filepath.Join(dir, "reports") + `"
budget = "10m"
[trace]
path = "` + tracePath + `"
[run]
rates = [4, 16]
duration = "2s"
warmup = "1s"
drain = "5s"
startup_timeout = "20s"
stop_grace = "3s"
chart = false
[[models]]
name = "sim/8b"
model = "sim"
max_model_len = 2048
variants = ["sim-paged", "sim-contiguous"]
[variants.sim-paged]
preset = "sim-paged"
sim_speed = 20
[variants.sim-contiguous]
preset = "sim-contiguous"
sim_speed = 20
`
}

func readStatus(t *testing.T, dir string) TrialStatus {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "status.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st TrialStatus
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestSimStudyEndToEnd runs a study of the simulator variants through the
// same code path as a GPU study: real vbsim processes, the embedded proxy,
// Badger captures, analysis, results tree, index and report. The second
// trial's backend is killed during its second level (an injected crash);
// --resume then re-runs only that trial.
func TestSimStudyEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two simulated trials (≈30 s)")
	}
	bin := buildSim(t)
	dir := t.TempDir()
	s := simStudy(t, dir)
	ctx := context.Background()
	p, err := MakePlan(ctx, s)
	if err != nil || p.Err() != nil {
		t.Fatalf("plan: %v %v", err, p.Err())
	}
	var progress bytes.Buffer
	crashed := false
	opt := RunOptions{SearchDirs: []string{bin}, Progress: &syncBuf{b: &progress}, ToolVersion: "test",
		OnLevel: func(tr Trial, rate float64, b backends.Backend) {
			if tr.Variant.Name == "sim-contiguous" && rate == 16 && !crashed {
				crashed = true
				// Kill the whole group, as the OOM killer would.
				if err := syscall.Kill(-b.PID(), syscall.SIGKILL); err != nil {
					t.Errorf("kill: %v", err)
				}
			}
		}}
	res, err := Run(ctx, p, opt)
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, progress.String())
	}
	if len(res.Trials) != 2 {
		t.Fatalf("trials %+v", res.Trials)
	}
	ok, failed := res.Trials[0], res.Trials[1]
	if ok.Status != StatusOK || len(ok.Levels) != 2 || ok.Levels[1].OK == 0 {
		t.Errorf("sim-paged trial: %+v", ok)
	}
	if failed.Status != StatusFailed || !strings.Contains(failed.Error, "backend crashed during rate 16") {
		t.Errorf("sim-contiguous trial: %+v", failed)
	}
	if res.Report == "" {
		t.Fatalf("no report; progress:\n%s", progress.String())
	}

	// The results tree.
	if !strings.HasPrefix(ok.Dir, filepath.Join(dir, "results", "sim_8b", "sim-paged")+"/") {
		t.Errorf("trial dir %s: model name not sanitized into the tree", ok.Dir)
	}
	for _, f := range []string{"config.json", "meta.json", "status.json", "backend.log", "capture/rate-4", "capture/rate-16",
		"analysis/summary.csv", "analysis/report.md", "replay-rate-4.json"} {
		if _, err := os.Stat(filepath.Join(ok.Dir, f)); err != nil {
			t.Errorf("trial lacks %s: %v", f, err)
		}
	}
	var cfg TrialConfig
	b, _ := os.ReadFile(filepath.Join(ok.Dir, "config.json"))
	json.Unmarshal(b, &cfg)
	if len(cfg.TraceHash) != 64 || !strings.HasSuffix(cfg.Trace, ".bin") || len(cfg.Command.Argv) == 0 {
		t.Errorf("config.json: %+v", cfg)
	}
	if _, err := os.Stat(filepath.Join(ok.Dir, cfg.Trace)); err != nil {
		t.Errorf("config.json's trace reference %s does not resolve: %v", cfg.Trace, err)
	}
	var meta Meta
	b, _ = os.ReadFile(filepath.Join(ok.Dir, "meta.json"))
	json.Unmarshal(b, &meta)
	if meta.GoVersion == "" || meta.Host == "" || meta.Ended.IsZero() || meta.ToolVersion != "test" {
		t.Errorf("meta.json: %+v", meta)
	}
	if meta.StartupSeconds <= 0 || meta.Allocated["vbsim:kv_cache_capacity_tokens"] <= 0 {
		t.Errorf("meta.json: start-up %v s, allocated %v; want both from the healthy vbsim", meta.StartupSeconds, meta.Allocated)
	}
	if log, _ := os.ReadFile(filepath.Join(failed.Dir, "backend.log")); !bytes.Contains(log, []byte("# vbbench: starting")) {
		t.Errorf("backend.log of the failed trial: %q", log)
	}
	index, _ := os.ReadFile(filepath.Join(dir, "results", "README.md"))
	if n := strings.Count(string(index), "| sim-ci |"); n != 2 || !strings.Contains(string(index), "failed: backend crashed") {
		t.Errorf("index:\n%s", index)
	}
	report, _ := os.ReadFile(res.Report)
	if !bytes.Contains(report, []byte("sim-paged")) {
		t.Errorf("report lacks the variant:\n%s", report)
	}
	if !strings.Contains(progress.String(), "ETA") || !strings.Contains(progress.String(), "rate 16 req/s (2/2)") {
		t.Errorf("progress:\n%s", progress.String())
	}

	// --resume: only the failed trial runs again.
	opt.Resume = true
	opt.Archive = true
	progress.Reset()
	res2, err := Run(ctx, p, opt)
	if err != nil {
		t.Fatalf("resume: %v\n%s", err, progress.String())
	}
	if res2.Trials[0].Dir != ok.Dir || !strings.Contains(progress.String(), "skipped by --resume") {
		t.Errorf("resume re-ran the finished trial: %+v\n%s", res2.Trials[0], progress.String())
	}
	if res2.Trials[1].Status != StatusOK || res2.Trials[1].Dir == failed.Dir {
		t.Errorf("resumed trial: %+v", res2.Trials[1])
	}
	index, _ = os.ReadFile(filepath.Join(dir, "results", "README.md"))
	if n := strings.Count(string(index), "| sim-ci |"); n != 3 {
		t.Errorf("index after resume has %d rows:\n%s", n, index)
	}
	// --archive packed the raw captures and kept the aggregates.
	for _, tr := range res2.Trials {
		if _, err := os.Stat(filepath.Join(tr.Dir, "capture.tar.gz")); err != nil {
			t.Errorf("%s: no capture.tar.gz: %v", tr.Dir, err)
		}
		if _, err := os.Stat(filepath.Join(tr.Dir, "capture")); !os.IsNotExist(err) {
			t.Errorf("%s: raw capture kept after --archive", tr.Dir)
		}
		if _, err := os.Stat(filepath.Join(tr.Dir, "analysis", "summary.csv")); err != nil {
			t.Errorf("%s: analysis lost: %v", tr.Dir, err)
		}
		if !readStatus(t, tr.Dir).Archived {
			t.Errorf("%s: status does not say archived", tr.Dir)
		}
	}
}

// TestRunInterrupted: cancelling mid-level stops the backend (no process
// left on its port) and records the trial as interrupted.
func TestRunInterrupted(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a simulated trial")
	}
	bin := buildSim(t)
	dir := t.TempDir()
	s := simStudy(t, dir)
	p, _ := MakePlan(context.Background(), s)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var url string
	opt := RunOptions{SearchDirs: []string{bin}, OnLevel: func(tr Trial, rate float64, b backends.Backend) {
		url = b.BaseURL()
		cancel()
	}}
	res, err := Run(ctx, p, opt)
	if err == nil || res == nil || !res.Interrupted {
		t.Fatalf("Run = %+v, %v", res, err)
	}
	if len(res.Trials) != 1 || res.Trials[0].Status != StatusInterrupted {
		t.Errorf("trials %+v", res.Trials)
	}
	if ln, err := net.Listen("tcp", strings.TrimPrefix(url, "http://")); err != nil {
		t.Errorf("the backend's address %s is still taken after the interrupt: %v", url, err)
	} else {
		ln.Close()
	}
	if st := readStatus(t, res.Trials[0].Dir); st.Status != StatusInterrupted {
		t.Errorf("status.json says %s", st.Status)
	}
}

func TestRunRefusesPlanErrors(t *testing.T) {
	dir := t.TempDir()
	s := simStudy(t, dir)
	s.Run.Duration = Duration(1e12) // 1000 s per level: the trace is too short
	p, _ := MakePlan(context.Background(), s)
	_, err := Run(context.Background(), p, RunOptions{})
	if err == nil || !strings.Contains(err.Error(), "--force") || !strings.Contains(err.Error(), "trace") {
		t.Errorf("Run with plan errors: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "results")); !os.IsNotExist(err) {
		t.Error("a refused run wrote results")
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
