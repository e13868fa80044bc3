package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vbench/vbench/backends"
)

// laneTrials makes trials that take needs[i] GPUs and est[i] each.
func laneTrials(needs []int, est []time.Duration) []Trial {
	out := make([]Trial, len(needs))
	for i, n := range needs {
		out[i] = Trial{Index: i, Model: ModelConfig{Name: "m"}, Rep: 1, Estimate: est[i],
			Variant: Variant{Name: fmt.Sprintf("v%d", i), Spec: backends.Spec{Kind: backends.KindSim, GPUCount: n}}}
	}
	return out
}

func durs(v ...int) []time.Duration {
	out := make([]time.Duration, len(v))
	for i, s := range v {
		out[i] = time.Duration(s) * time.Second
	}
	return out
}

func TestProject(t *testing.T) {
	tests := []struct {
		name   string
		gpus   []string
		needs  []int
		est    []time.Duration
		starts []time.Duration
		on     [][]string
		wall   time.Duration
	}{
		{"serial", nil, []int{1, 2, 1}, durs(10, 20, 5), durs(0, 10, 30), [][]string{nil, nil, nil}, 35 * time.Second},
		{"two lanes", []string{"0", "1"}, []int{1, 1, 1, 1}, durs(10, 10, 10, 10), durs(0, 0, 10, 10),
			[][]string{{"0"}, {"1"}, {"0"}, {"1"}}, 20 * time.Second},
		// The 4-GPU trial waits for all four; the single-GPU trial after it
		// fits the GPU left free and passes it (first fit).
		{"tensor parallel waits, a small one passes", []string{"0", "1", "2", "3"}, []int{1, 1, 4, 1}, durs(10, 10, 10, 10),
			durs(0, 0, 10, 0), [][]string{{"0"}, {"1"}, {"0", "1", "2", "3"}, {"2"}}, 20 * time.Second},
		// Uneven lengths: the next trial takes the GPU that frees first.
		{"uneven", []string{"a", "b"}, []int{1, 1, 1}, durs(30, 10, 10), durs(0, 0, 10),
			[][]string{{"a"}, {"b"}, {"b"}}, 30 * time.Second},
		// A pair waits for an aligned pair of GPUs (0-1 or 2-3), not for
		// any two free ones (0 and 3 at 10 s).
		{"aligned pair waits", []string{"0", "1", "2", "3"}, []int{1, 1, 1, 2}, durs(10, 20, 20, 5),
			durs(0, 0, 0, 20), [][]string{{"0"}, {"1"}, {"2"}, {"0", "1"}}, 25 * time.Second},
		// A trial that can never fit is left out (the plan errors on it).
		{"too big", []string{"0"}, []int{2, 1}, durs(10, 10), []time.Duration{-1, 0}, [][]string{nil, {"0"}}, 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			trials := laneTrials(tt.needs, tt.est)
			pr := project(trials, tt.gpus, nil, func(t Trial) time.Duration { return t.Estimate })
			if !slices.Equal(pr.Start, tt.starts) || pr.Wall != tt.wall {
				t.Errorf("starts %v wall %v; want %v, %v", pr.Start, pr.Wall, tt.starts, tt.wall)
			}
			for i := range tt.on {
				if !slices.Equal(pr.GPUs[i], tt.on[i]) {
					t.Errorf("trial %d on %v, want %v", i, pr.GPUs[i], tt.on[i])
				}
			}
		})
	}
}

// TestProjectBusy: a projection from a running state (the ETA) starts the
// waiting trials on the slots as they free.
func TestTakeSlots(t *testing.T) {
	for _, tt := range []struct {
		busy string // x busy, . free
		n    int
		want []int // nil: must wait
	}{
		{"........", 2, []int{0, 1}},
		{"x.......", 2, []int{2, 3}},       // aligned pair, not 1-2
		{"x.......", 4, []int{4, 5, 6, 7}}, // aligned quad
		{"x..x.x..", 2, []int{6, 7}},
		{"x..xx.x.", 2, nil}, // free pairs 1-2 and 5 are not aligned: wait
		{"x...x...", 8, nil}, // 6 free, no block of 8
		{"x.x.x.x.", 1, []int{1}},
		{"x.x.....", 3, []int{3, 4, 5}}, // not a power of two: contiguous
		{"x.xx.x.x", 3, []int{1, 4, 6}}, // else any free
		{"x.xx.xxx", 3, nil},
		{"..........", 8, []int{0, 1, 2, 3, 4, 5, 6, 7}},
	} {
		busy := make([]bool, len(tt.busy))
		for i, c := range tt.busy {
			busy[i] = c == 'x'
		}
		got := takeSlots(busy, tt.n)
		if !slices.Equal(got, tt.want) {
			t.Errorf("takeSlots(%s, %d) = %v, want %v", tt.busy, tt.n, got, tt.want)
		}
		for _, i := range got {
			if !busy[i] {
				t.Errorf("slot %d not marked busy", i)
			}
		}
	}
}

func TestProjectBusy(t *testing.T) {
	trials := laneTrials([]int{1, 1}, durs(10, 10))
	pr := project(trials, []string{"0", "1"}, durs(6, 3), func(t Trial) time.Duration { return t.Estimate })
	if !slices.Equal(pr.Start, durs(3, 6)) || pr.Wall != 16*time.Second || !slices.Equal(pr.GPUs[0], []string{"1"}) {
		t.Errorf("%+v", pr)
	}
}

// TestLaneClockETA: the ETA counts the rest of the running trials and
// places the waiting ones on the lanes.
func TestLaneClockETA(t *testing.T) {
	now := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	trials := laneTrials([]int{1, 1, 1, 1}, durs(10, 10, 10, 10))
	c := newLaneClock(func() time.Time { return now }, []string{"0", "1"}, trials)
	if got := c.eta(); got != 20*time.Second {
		t.Errorf("eta before the start %v, want 20s", got)
	}
	c.started(trials[0], []int{0})
	c.started(trials[1], []int{1})
	now = now.Add(4 * time.Second)
	if got := c.eta(); got != 16*time.Second {
		t.Errorf("eta 4 s in %v, want 16s", got)
	}
	now = now.Add(20 * time.Second) // overran their estimates
	if got := c.eta(); got != 10*time.Second {
		t.Errorf("eta after an overrun %v, want 10s (the two waiting trials side by side)", got)
	}
	c.finished([]int{0})
	c.started(trials[2], []int{0})
	if got := c.eta(); got != 10*time.Second {
		t.Errorf("eta %v, want 10s", got)
	}
}

// laneRecorder is a fake trial function that records which GPUs each trial
// got and checks that no GPU is held twice at once.
type laneRecorder struct {
	t       *testing.T
	mu      sync.Mutex
	inUse   map[string]int // GPU → trial index
	got     map[int][]string
	running int
	peak    int
	// hold, when set, is called while the trial holds its GPUs.
	hold func(t Trial)
}

func (lr *laneRecorder) run(ctx context.Context, t Trial, gpus []string) TrialStatus {
	lr.mu.Lock()
	if lr.inUse == nil {
		lr.inUse, lr.got = map[string]int{}, map[int][]string{}
	}
	for _, g := range gpus {
		if other, ok := lr.inUse[g]; ok {
			lr.t.Errorf("trial %d got GPU %s while trial %d holds it", t.Index, g, other)
		}
		lr.inUse[g] = t.Index
	}
	lr.got[t.Index] = gpus
	lr.running++
	lr.peak = max(lr.peak, lr.running)
	lr.mu.Unlock()
	if lr.hold != nil {
		lr.hold(t)
	}
	lr.mu.Lock()
	for _, g := range gpus {
		delete(lr.inUse, g)
	}
	lr.running--
	lr.mu.Unlock()
	return TrialStatus{Key: t.Key(), Status: StatusOK, GPUs: gpus}
}

// barrier returns a hold function that makes the first n trials wait for
// each other: it completes only if the scheduler runs n trials at once.
func barrier(t *testing.T, n int) func(Trial) {
	var mu sync.Mutex
	arrived := 0
	all := make(chan struct{})
	return func(tr Trial) {
		mu.Lock()
		arrived++
		first := arrived <= n
		if arrived == n {
			close(all)
		}
		mu.Unlock()
		if !first {
			return
		}
		select {
		case <-all:
		case <-time.After(20 * time.Second):
			t.Errorf("trial %d: the first %d trials never ran at the same time", tr.Index, n)
		}
	}
}

func TestRunLanesParallelAndPinned(t *testing.T) {
	tests := []struct {
		name  string
		gpus  []string
		needs []int
		// together is how many trials must be able to run at once.
		together int
	}{
		{"serial", nil, []int{1, 1, 1}, 1},
		{"two lanes", []string{"0", "1"}, []int{1, 1, 1, 1, 1}, 2},
		{"mixed widths", []string{"0", "1", "2"}, []int{2, 1, 2, 1, 3, 1}, 2},
		{"tensor parallel pairs", []string{"4", "5", "6", "7"}, []int{2, 2, 2, 2}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			trials := laneTrials(tt.needs, durs(make([]int, len(tt.needs))...))
			lr := &laneRecorder{t: t, hold: barrier(t, tt.together)}
			res := runLanes(context.Background(), trials, tt.gpus, newLaneClock(time.Now, tt.gpus, trials), lr.run)
			if len(res) != len(trials) {
				t.Fatalf("%d results for %d trials", len(res), len(trials))
			}
			for _, tr := range trials {
				got := lr.got[tr.Index]
				if len(tt.gpus) == 0 {
					if got != nil {
						t.Errorf("trial %d pinned to %v without lanes", tr.Index, got)
					}
					continue
				}
				if len(got) != tt.needs[tr.Index] {
					t.Errorf("trial %d got GPUs %v, takes %d", tr.Index, got, tt.needs[tr.Index])
				}
				for _, g := range got {
					if !slices.Contains(tt.gpus, g) {
						t.Errorf("trial %d got GPU %s, not a lane", tr.Index, g)
					}
				}
				if res[tr.Index].Key != tr.Key() {
					t.Errorf("result %d is %s", tr.Index, res[tr.Index].Key)
				}
			}
			if lr.peak > max(len(tt.gpus), 1) || lr.peak < tt.together {
				t.Errorf("peak of %d trials at once", lr.peak)
			}
		})
	}
}

// TestRunLanesCancel: after ctx is cancelled no trial starts; the running
// ones end and are returned.
func TestRunLanesCancel(t *testing.T) {
	trials := laneTrials([]int{1, 1, 1, 1, 1}, durs(1, 1, 1, 1, 1))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hold := barrier(t, 2)
	lr := &laneRecorder{t: t, hold: func(tr Trial) {
		hold(tr)
		cancel()
		<-ctx.Done()
	}}
	res := runLanes(ctx, trials, []string{"0", "1"}, nil, lr.run)
	if len(res) != 2 {
		t.Errorf("%d trials ran after the cancel, want the 2 running ones: %v", len(res), res)
	}
}

func TestPlanLanes(t *testing.T) {
	dir := t.TempDir()
	s := simStudy(t, dir)
	s.Run.Repetitions = 2
	serial, err := MakePlan(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	s.Run.GPUs = GPUList{"0", "1"}
	p, err := MakePlan(context.Background(), s)
	if err != nil || p.Err() != nil {
		t.Fatalf("plan: %v %v", err, p.Err())
	}
	if p.TrialTime != serial.Estimate || p.Estimate != serial.Estimate/2 {
		t.Errorf("lanes: estimate %v, trial time %v; serial %v", p.Estimate, p.TrialTime, serial.Estimate)
	}
	if !slices.Equal(p.Trials[1].GPUs, []string{"1"}) || p.Trials[1].Start != 0 || p.Trials[2].Start != p.Trials[0].Estimate {
		t.Errorf("placement: %+v", p.Trials)
	}
	var out strings.Builder
	p.Print(&out)
	for _, want := range []string{"2 GPU lanes (0,1)", "gpu 1 ", "on 2 GPU lanes (serially ≈", "2.0× longer"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("plan output lacks %q:\n%s", want, out.String())
		}
	}

	// Over budget serially: the advice names lanes; a run of chosen
	// trials (a Slurm task) and a submission are not held to it.
	s.Budget = Duration(serial.Estimate / 3) // 2 lanes would need half of it: 4 do
	s.Run.GPUs = nil
	over, _ := MakePlan(context.Background(), s)
	if err := over.Err(); err == nil || !strings.Contains(err.Error(), "--gpus 0,1,2,3 (4 GPU lanes, if the host has them)") {
		t.Errorf("over budget: %v", err)
	}
	if err := over.errs(false); err != nil {
		t.Errorf("errors besides the budget: %v", err)
	}
	// A variant wider than the lanes, and one that pins itself.
	s2, err := ParseStudy(strings.Replace(studyText(t, dir), "sim_speed = 20\n[variants.sim-contiguous]",
		"sim_speed = 20\ngpu_count = 3\n[variants.sim-contiguous]", 1) + "env = { CUDA_VISIBLE_DEVICES = \"1\" }\n")
	if err != nil {
		t.Fatal(err)
	}
	s2.Run.GPUs = GPUList{"0", "1"}
	p2, _ := MakePlan(context.Background(), s2)
	errs := strings.Join(p2.Errors, "\n")
	if !strings.Contains(errs, "a trial takes 3 GPUs but the lanes have 2 (0,1)") || !strings.Contains(errs, "sets env CUDA_VISIBLE_DEVICES") {
		t.Errorf("plan errors:\n%s", errs)
	}
	if _, err := Run(context.Background(), p2, RunOptions{Force: true}); err == nil || !strings.Contains(err.Error(), "takes 3 GPUs") {
		t.Errorf("Run --force of a trial wider than the lanes: %v", err)
	}
}

func TestGPUList(t *testing.T) {
	tests := []struct {
		toml string
		want GPUList
		err  string
	}{
		{`gpus = [0, 1, 2, 3]`, GPUList{"0", "1", "2", "3"}, ""},
		{`gpus = ["GPU-5a1c", "MIG-GPU-5a1c/1/0"]`, GPUList{"GPU-5a1c", "MIG-GPU-5a1c/1/0"}, ""},
		{`gpus = "0, 1"`, GPUList{"0", "1"}, ""},
		{`gpus = [0, 0]`, nil, "GPU 0 is listed twice"},
		{`gpus = ["0;rm"]`, nil, `"0;rm" is not a GPU id`},
		{`gpus = [1.5]`, nil, "neither a GPU index"},
		{`gpus = 3`, nil, "want a list"},
	}
	for _, tt := range tests {
		s, err := ParseStudy(`name = "g"
[trace]
path = "t.bin"
[run]
rates = [1]
duration = "1s"
` + tt.toml + `
[[models]]
name = "m"
variants = ["sim-paged"]
`)
		switch {
		case tt.err != "":
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: error %v, want %q", tt.toml, err, tt.err)
			}
		case err != nil:
			t.Errorf("%s: %v", tt.toml, err)
		case !slices.Equal(s.Run.GPUs, tt.want):
			t.Errorf("%s: %v, want %v", tt.toml, s.Run.GPUs, tt.want)
		}
	}
	if g, err := ParseGPUList("2,3"); err != nil || !slices.Equal(g, GPUList{"2", "3"}) {
		t.Errorf("ParseGPUList = %v, %v", g, err)
	}
	for _, bad := range []string{"", ",", "0,0", "0 1"} {
		if _, err := ParseGPUList(bad); err == nil {
			t.Errorf("ParseGPUList(%q) accepted", bad)
		}
	}
}

// TestSimStudyLanes runs a study of four simulator trials on two simulated
// GPU lanes through the real path (vbsim processes, proxy, captures,
// analysis, index, report). One lane's backend is killed during its level;
// the other trials go on. It checks that every backend process had its
// lane's CUDA_VISIBLE_DEVICES, that trials sharing a GPU never overlapped
// while the lanes did run side by side, that the results tree is a serial
// run's, and that --resume re-runs only the crashed trial.
func TestSimStudyLanes(t *testing.T) {
	if testing.Short() {
		t.Skip("runs five simulated trials")
	}
	bin := buildSim(t)
	dir := t.TempDir()
	text := strings.Replace(studyText(t, dir), "rates = [4, 16]", "rates = [4]", 1)
	text = strings.Replace(text, `warmup = "1s"`, `warmup = "0s"`, 1)
	text = strings.Replace(text, "[run]\n", "[run]\ngpus = [0, 1]\nrepetitions = 2\n", 1)
	s, err := ParseStudy(text)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p, err := MakePlan(ctx, s)
	if err != nil || p.Err() != nil {
		t.Fatalf("plan: %v %v", err, p.Err())
	}
	var mu sync.Mutex
	envGPUs := map[string]string{} // trial key → CUDA_VISIBLE_DEVICES of its backend process
	const crashKey = "sim/8b/sim-contiguous/rep1"
	var progress bytes.Buffer
	opt := RunOptions{SearchDirs: []string{bin}, Progress: &syncBuf{b: &progress}, ToolVersion: "test",
		OnLevel: func(tr Trial, rate float64, b backends.Backend) {
			environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", b.PID()))
			if err != nil {
				t.Errorf("%s: %v", tr.Key(), err)
			}
			for _, kv := range strings.Split(string(environ), "\x00") {
				if v, ok := strings.CutPrefix(kv, "CUDA_VISIBLE_DEVICES="); ok {
					mu.Lock()
					envGPUs[tr.Key()] = v
					mu.Unlock()
				}
			}
			if tr.Key() == crashKey {
				if err := syscall.Kill(-b.PID(), syscall.SIGKILL); err != nil {
					t.Errorf("kill: %v", err)
				}
			}
		}}
	res, err := Run(ctx, p, opt)
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, progress.String())
	}
	if len(res.Trials) != 4 || res.Report == "" {
		t.Fatalf("trials %+v, report %q\n%s", res.Trials, res.Report, progress.String())
	}
	for i, st := range res.Trials {
		if st.Key != p.Trials[i].Key() {
			t.Errorf("result %d is %s, want plan order (%s)", i, st.Key, p.Trials[i].Key())
		}
		want := StatusOK
		if st.Key == crashKey {
			want = StatusFailed
		}
		if st.Status != want {
			t.Errorf("%s: %s (%s), want %s", st.Key, st.Status, st.Error, want)
		}
		if len(st.GPUs) != 1 || envGPUs[st.Key] != st.GPUs[0] {
			t.Errorf("%s: status says GPUs %v, its backend had CUDA_VISIBLE_DEVICES=%q", st.Key, st.GPUs, envGPUs[st.Key])
		}
		disk := readStatus(t, st.Dir)
		if !slices.Equal(disk.GPUs, st.GPUs) {
			t.Errorf("%s: status.json GPUs %v", st.Key, disk.GPUs)
		}
		var cfg TrialConfig
		b, _ := os.ReadFile(filepath.Join(st.Dir, "config.json"))
		json.Unmarshal(b, &cfg)
		if !slices.Equal(cfg.GPUs, st.GPUs) || !slices.Contains(cfg.Command.Env, "CUDA_VISIBLE_DEVICES="+st.GPUs[0]) {
			t.Errorf("%s: config.json GPUs %v, env %v", st.Key, cfg.GPUs, cfg.Command.Env)
		}
		if !strings.HasPrefix(st.Dir, filepath.Join(dir, "results", "sim_8b", st.Variant)+"/") {
			t.Errorf("%s: trial dir %s", st.Key, st.Dir)
		}
		for _, f := range []string{"meta.json", "backend.log", "capture/rate-4", "analysis/summary.csv"} {
			if st.Key == crashKey && f == "analysis/summary.csv" {
				continue // killed as its level began: nothing to analyse
			}
			if _, err := os.Stat(filepath.Join(st.Dir, f)); err != nil {
				t.Errorf("%s lacks %s: %v", st.Key, f, err)
			}
		}
	}
	overlapped := false
	for i, a := range res.Trials {
		for _, b := range res.Trials[i+1:] {
			apart := !a.Ended.After(b.Started) || !b.Ended.After(a.Started)
			if slices.Equal(a.GPUs, b.GPUs) && !apart {
				t.Errorf("%s and %s share GPU %v and overlapped: %s–%s and %s–%s", a.Key, b.Key, a.GPUs,
					a.Started.Format(time.StampMicro), a.Ended.Format(time.StampMicro), b.Started.Format(time.StampMicro), b.Ended.Format(time.StampMicro))
			}
			overlapped = overlapped || !apart
		}
	}
	if !overlapped {
		t.Error("no two trials ran at the same time on two lanes")
	}
	index, _ := os.ReadFile(filepath.Join(dir, "results", "README.md"))
	if n := strings.Count(string(index), "| sim-ci |"); n != 4 || strings.Count(string(index), "# vbench results") != 1 ||
		!strings.Contains(string(index), "failed: backend crashed") {
		t.Errorf("index:\n%s", index)
	}
	if !strings.Contains(progress.String(), "[gpu 1]") {
		t.Errorf("progress does not name the lanes:\n%s", progress.String())
	}

	// --resume: only the crashed trial runs again, on a lane.
	opt.Resume = true
	opt.OnLevel = nil
	progress.Reset()
	res2, err := Run(ctx, p, opt)
	if err != nil {
		t.Fatalf("resume: %v\n%s", err, progress.String())
	}
	for i, st := range res2.Trials {
		if st.Key == crashKey {
			if st.Status != StatusOK || st.Dir == res.Trials[i].Dir || len(st.GPUs) != 1 {
				t.Errorf("resumed trial: %+v", st)
			}
		} else if st.Dir != res.Trials[i].Dir {
			t.Errorf("resume re-ran %s", st.Key)
		}
	}
	if n := strings.Count(progress.String(), "skipped by --resume"); n != 3 {
		t.Errorf("%d trials skipped by --resume, want 3:\n%s", n, progress.String())
	}
}
