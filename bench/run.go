package bench

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vbench/vbench/analyze"
	"github.com/vbench/vbench/analyze/render"
	"github.com/vbench/vbench/backends"
	"github.com/vbench/vbench/capture"
	"github.com/vbench/vbench/internal/progress"
	"github.com/vbench/vbench/internal/recorder"
	"github.com/vbench/vbench/metric"
	"github.com/vbench/vbench/replay"
	"github.com/vbench/vbench/trace"
)

// Trial statuses recorded in status.json and the index.
const (
	StatusRunning      = "running"
	StatusOK           = analyze.TrialStatusOK
	StatusEarlyStopped = analyze.TrialStatusEarlyStopped // ok, higher rates skipped as saturated
	StatusFailed       = "failed"
	StatusUnsupported  = "unsupported" // the variant cannot run here (skipped)
	StatusInterrupted  = "interrupted"
)

// done reports whether a status counts as finished for --resume.
func done(status string) bool { return status == StatusOK || status == StatusEarlyStopped }

// RunOptions are the settings of one `vbbench run`.
type RunOptions struct {
	// Resume skips trials of the same study that finished before.
	Resume bool
	// Archive compresses each trial's raw captures after analysis.
	Archive bool
	// Force runs despite plan errors (a model that seems not to fit).
	Force bool
	// Progress receives the live view (nil: none).
	Progress io.Writer
	// SearchDirs are searched for vbsim before PATH.
	SearchDirs []string
	// ToolVersion is recorded in meta.json.
	ToolVersion string
	// OnLevel, when set, is called as each level starts (tests inject
	// failures through it); with GPU lanes, from several goroutines at once.
	OnLevel func(t Trial, rate float64, b backends.Backend)
	// OnEngineWarmup, when set, is called as a trial's engine warm-up
	// starts (run.engine_warmup), like OnLevel.
	OnEngineWarmup func(t Trial, b backends.Backend)
	// Trials, when set, runs only these trials of the plan (by Index) and
	// writes no study report (vbbench report does): one task of a Slurm job
	// array runs one trial this way.
	Trials []int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// LevelStatus is what one rate level of a trial did. Its figures are
// those of the level's capture, decoded and computed exactly as the
// analysis does (analyze.Analyze over the capture, the metric package's
// definitions): status.json, the early stop and the progress line show the
// numbers summary.csv and the report show for the same level.
type LevelStatus struct {
	Label   string  `json:"label"`
	Rate    float64 `json:"rate"`
	Capture string  `json:"capture"`
	// Sent counts the measured requests (warm-up excluded); OK those that
	// completed, Cut those still running at the drain deadline (censored),
	// Failed the rest.
	Sent   int `json:"sent"`
	OK     int `json:"ok"`
	Cut    int `json:"cut"`
	Failed int `json:"failed"`
	// NormLatency is E2E / output tokens over completed requests (its Mean
	// is the normalized latency); NormLatencyWithCut counts the cut ones
	// at their lower bound and is what the early stop compares.
	NormLatency        metric.Dist `json:"norm_latency"`
	NormLatencyWithCut metric.Dist `json:"norm_latency_with_cut"`
	TTFT               metric.Dist `json:"ttft"`
	TPOT               metric.Dist `json:"tpot"`
	// Drain is how long requests could run after the level's window, and
	// DrainReason how the cut policy chose it.
	Drain       time.Duration `json:"drain_ns,omitempty"`
	DrainReason string        `json:"drain_reason,omitempty"`
	Error       string        `json:"error,omitempty"`
}

// figures fills the level's figures from the analysis group of its
// capture.
func (lv *LevelStatus) figures(g *analyze.Group) {
	lv.Sent, lv.OK, lv.Cut, lv.Failed = g.Count, g.Completed, g.Cut, g.Failed
	lv.NormLatency, lv.NormLatencyWithCut, lv.TTFT, lv.TPOT = g.NormLatency, g.NormLatencyWithCut, g.TTFT, g.TPOT
}

// levelGroup analyses one level's capture as the report will: the one
// group of its measured requests.
func levelGroup(ctx context.Context, capDir string) (*analyze.Result, *analyze.Group, error) {
	res, err := analyze.Analyze(ctx, analyze.Config{Captures: []string{capDir}, By: []string{"capture"}})
	if err != nil {
		return nil, nil, err
	}
	if len(res.Groups) != 1 {
		return res, nil, fmt.Errorf("bench: capture %s: %d groups of measured requests, want 1", capDir, len(res.Groups))
	}
	return res, res.Groups[0], nil
}

// engineWarmupGroup is the one group of an engine warm-up's capture: its
// requests are all warm-up requests (analyze.PhaseEngineWarmup), so they
// are read with the window all, leaving out the replayer's preflight.
func engineWarmupGroup(ctx context.Context, capDir string) (*analyze.Group, error) {
	res, err := analyze.Analyze(ctx, analyze.Config{Captures: []string{capDir}, By: []string{"capture", "level"}, Window: analyze.WindowAll})
	if err != nil {
		return nil, err
	}
	var gs []*analyze.Group
	for _, g := range res.Groups {
		if g.Level != "preflight" {
			gs = append(gs, g)
		}
	}
	if len(gs) != 1 {
		return nil, fmt.Errorf("bench: capture %s: %d groups of engine warm-up requests, want 1", capDir, len(gs))
	}
	return gs[0], nil
}

// phaseEngineWarmup is the phase label of the engine warm-up's requests
// (X-VB-Label-phase), and engineWarmupDir its capture under capture/.
const (
	phaseEngineWarmup = analyze.PhaseEngineWarmup
	engineWarmupDir   = "engine-warmup"
)

// EngineWarmupStatus is what a trial's engine warm-up did
// (run.engine_warmup): how many requests, how long, and the TPOT and TTFT
// of its capture by the metric package's definitions, to set against the
// first level's (an engine that compiles kernels per batch shape is slow
// until it has seen them). It is never one of the trial's levels: its
// capture is apart from theirs, and neither the trial's analysis nor the
// study report reads it.
type EngineWarmupStatus struct {
	Capture     string        `json:"capture"`
	Concurrency int           `json:"concurrency"`
	Duration    time.Duration `json:"duration_ns"`
	// Requests counts the requests sent; Completed those that streamed to
	// their end, Cut those still running at the drain deadline, Failed the
	// rest.
	Requests  int `json:"requests"`
	Completed int `json:"completed"`
	Cut       int `json:"cut"`
	Failed    int `json:"failed"`
	// Seconds is the warm-up's wall time, from its start until its last
	// request ended (or was cut).
	Seconds float64 `json:"seconds"`
	// TPOTMean and TTFTP50 are in seconds, over the completed requests
	// (null when none completed).
	TPOTMean *float64 `json:"tpot_mean_s"`
	TTFTP50  *float64 `json:"ttft_p50_s"`
	// Exhausted is set when the trace ran out before the window ended.
	Exhausted bool   `json:"exhausted,omitempty"`
	Error     string `json:"error,omitempty"`
}

// figures fills the warm-up's counts and figures from the analysis group
// of its capture.
func (ws *EngineWarmupStatus) figures(g *analyze.Group) {
	ws.Requests, ws.Completed, ws.Cut, ws.Failed = g.Count, g.Completed, g.Cut, g.Failed
	ws.TPOTMean, ws.TTFTP50 = metric.Num(g.TPOT.Mean), metric.Num(g.TTFT.P50)
}

// line is the warm-up's figures in one line (the progress line).
func (ws *EngineWarmupStatus) line() string {
	ms := func(v *float64) string {
		if v == nil {
			return "-"
		}
		return fmt.Sprintf("%.1fms", *v*1e3)
	}
	return fmt.Sprintf("%d requests at concurrency %d in %.1fs: %d ok, %d failed, %d cut | TPOT mean %s, TTFT p50 %s (not measured)",
		ws.Requests, ws.Concurrency, ws.Seconds, ws.Completed, ws.Failed, ws.Cut, ms(ws.TPOTMean), ms(ws.TTFTP50))
}

// TrialStatus is status.json of a trial directory.
type TrialStatus struct {
	Study    string   `json:"study"`
	Key      string   `json:"key"`
	Model    string   `json:"model"`
	Variant  string   `json:"variant"`
	Rep      int      `json:"rep"`
	GPUs     []string `json:"gpus,omitempty"`
	Status   string   `json:"status"`
	Error    string   `json:"error,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
	// EngineWarmup is what the engine warm-up did (nil: none ran).
	EngineWarmup *EngineWarmupStatus `json:"engine_warmup,omitempty"`
	Levels       []LevelStatus       `json:"levels"`
	// Cut is the total of the levels' cut requests (see LevelStatus).
	Cut       int       `json:"cut"`
	Skipped   []float64 `json:"skipped_rates,omitempty"`
	StopCause string    `json:"early_stop,omitempty"`
	Archived  bool      `json:"archived,omitempty"`
	Started   time.Time `json:"started"`
	Ended     time.Time `json:"ended"`
	Dir       string    `json:"-"`
}

// RunResult summarises a study run.
type RunResult struct {
	Trials []TrialStatus
	// Report is the Markdown report's path ("" when none was written).
	Report string
	// Interrupted is set when the context was cancelled.
	Interrupted bool
}

// Failed counts trials that did not finish.
func (r *RunResult) Failed() int {
	n := 0
	for _, t := range r.Trials {
		if !done(t.Status) {
			n++
		}
	}
	return n
}

// Run executes the study: for each trial in plan order it starts the
// backend, warms up, replays every rate through the embedded proxy into
// the trial's captures, stops the backend and analyses; then it writes the
// study report. With GPU lanes (Plan.GPUs) several trials run at once, each
// pinned to its GPUs (lanes.go). A failing trial is recorded and the study
// goes on; a cancelled ctx stops the running backends and keeps what
// finished.
func Run(ctx context.Context, p *Plan, opt RunOptions) (*RunResult, error) {
	// The budget is the whole matrix's: a run of some trials (a Slurm
	// task's) is not held to it.
	if err := p.errs(len(opt.Trials) == 0); err != nil && !opt.Force {
		return nil, fmt.Errorf("%w (fix the study, or pass --force to run anyway)", err)
	}
	selected, err := p.Select(opt.Trials)
	if err != nil {
		return nil, err
	}
	if err := p.lanesErr(); err != nil {
		return nil, err
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Progress == nil {
		opt.Progress = io.Discard
	}
	// A live line per trial and per replay phase on a terminal, plain
	// lines elsewhere; every other line goes above them.
	disp := progress.New(opt.Progress)
	defer disp.Close()
	opt.Progress = disp
	s := p.Study
	hdr, reqs, stored, err := readyTrace(ctx, p, opt.SearchDirs, opt.Force)
	if err != nil {
		return nil, err
	}
	var previous map[string]TrialStatus
	if opt.Resume {
		if previous, err = scanFinished(s.ResultsDir, s.Name); err != nil {
			return nil, err
		}
	}
	r := &runner{study: s, plan: p, opt: opt, hdr: hdr, reqs: reqs, tracePath: stored, start: opt.Now(), disp: disp, tasks: map[int]*progress.Task{}}
	r.runID = opt.Now().UTC().Format("20060102T150405Z")
	res := &RunResult{Trials: r.runTrials(ctx, selected, previous)}
	res.Interrupted = ctx.Err() != nil
	if n := len(res.Trials); n > 0 && r.clock != nil {
		fmt.Fprintf(disp, "study %s: %d trials in %s (estimated at the start: %s)\n", s.Name, n, roundDur(opt.Now().Sub(r.start)), roundDur(r.clock.initial))
	}
	if !res.Interrupted && len(opt.Trials) == 0 {
		report, err := r.report(context.WithoutCancel(ctx), res.Trials)
		if err != nil {
			fmt.Fprintf(opt.Progress, "report: %v\n", err)
		}
		res.Report = report
	}
	if opt.Archive {
		for i := range res.Trials {
			t := &res.Trials[i]
			if t.Archived || t.Dir == "" {
				continue
			}
			if err := archiveCaptures(t.Dir); err != nil {
				t.Warnings = append(t.Warnings, "archive: "+err.Error())
			} else {
				t.Archived = true
			}
			writeJSON(filepath.Join(t.Dir, "status.json"), t)
		}
	}
	if res.Interrupted {
		return res, ctx.Err()
	}
	return res, nil
}

type runner struct {
	study     *Study
	plan      *Plan
	opt       RunOptions
	hdr       trace.Header
	reqs      []trace.Request
	tracePath string
	runID     string
	start     time.Time
	clock     *laneClock // the ETA; set by runTrials
	ports     portSet    // the lanes' backend ports
	indexMu   sync.Mutex

	disp    *progress.Display
	tasksMu sync.Mutex
	tasks   map[int]*progress.Task // a live line per running trial
}

// trialName is how progress names a trial: "[1/2] sim-8b/sim-paged rep 1".
func (r *runner) trialName(t Trial, gpus []string) string {
	return fmt.Sprintf("[%d/%d]%s %s/%s rep %d", t.Index+1, len(r.plan.Trials), laneTag(gpus), t.Model.Name, t.Variant.Name, t.Rep)
}

// progress shows what trial t does now on its live line, with the levels
// done as its bar and the whole study's ETA; keep also prints it as a
// lasting line (a level's figures, an early stop).
func (r *runner) progress(t Trial, gpus []string, levelsDone int, what string, keep bool) {
	r.tasksMu.Lock()
	task := r.tasks[t.Index]
	if task == nil {
		task = r.disp.Task(r.trialName(t, gpus))
		r.tasks[t.Index] = task
	}
	r.tasksMu.Unlock()
	if keep && r.disp.Live() {
		fmt.Fprintf(r.disp, "%s: %s\n", r.trialName(t, gpus), what)
	}
	eta := time.Duration(0)
	if r.clock != nil {
		eta = max(r.clock.eta(), time.Second)
	}
	task.Update(int64(levelsDone), int64(len(t.Rates)), what, eta)
}

// finished ends trial t's live line with its outcome (no ETA: it is over).
func (r *runner) finished(t Trial, gpus []string, what string) {
	r.tasksMu.Lock()
	task := r.tasks[t.Index]
	delete(r.tasks, t.Index)
	r.tasksMu.Unlock()
	line := fmt.Sprintf("%s: %s", r.trialName(t, gpus), what)
	if task == nil {
		fmt.Fprintln(r.disp, line)
		return
	}
	task.Done(line)
}

// trialDir makes results/<model>/<variant>/<timestamp>-<short-id>.
func (r *runner) trialDir(t Trial) (string, error) {
	now := r.opt.Now().UTC()
	sum := sha256.Sum256([]byte(r.study.Name + "\x00" + t.Key() + "\x00" + strconv.FormatInt(now.UnixNano(), 10)))
	name := now.Format("20060102T150405Z") + "-" + hex.EncodeToString(sum[:3])
	dir, err := under(r.study.ResultsDir, SanitizeName(t.Model.Name), SanitizeName(t.Variant.Name), name)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	return dir, nil
}

// TrialConfig is config.json of a trial: everything that made it.
type TrialConfig struct {
	Study     string           `json:"study"`
	StudyFile string           `json:"study_file,omitempty"`
	Key       string           `json:"key"`
	RunID     string           `json:"run_id"`
	Model     ModelConfig      `json:"model"`
	Variant   Variant          `json:"variant"`
	Rep       int              `json:"rep"`
	Run       RunConfig        `json:"run"`
	TraceHash string           `json:"trace_hash"`
	Trace     string           `json:"trace"`
	Command   backends.Command `json:"command"`
	BaseURL   string           `json:"base_url"`
	// GPUs are the GPU lanes the trial was pinned to (none without lanes).
	GPUs []string `json:"gpus,omitempty"`
}

func (r *runner) trial(ctx context.Context, t Trial, gpus []string) (st TrialStatus) {
	s := r.study
	st = TrialStatus{Study: s.Name, Key: t.Key(), Model: t.Model.Name, Variant: t.Variant.Name, Rep: t.Rep,
		GPUs: gpus, Status: StatusRunning, Started: r.opt.Now().UTC()}
	dir, err := r.trialDir(t)
	if err != nil {
		st.Status, st.Error = StatusFailed, err.Error()
		return st
	}
	st.Dir = dir
	statusPath := filepath.Join(dir, "status.json")
	finish := func() {
		st.Ended = r.opt.Now().UTC()
		if err := writeJSON(statusPath, st); err != nil {
			st.Warnings = append(st.Warnings, err.Error())
		}
		r.appendIndex(st)
		r.finished(t, gpus, fmt.Sprintf("finished: %s%s in %s", st.Status, cutNote(st), roundDur(st.Ended.Sub(st.Started))))
	}
	defer finish()
	writeJSON(statusPath, st)
	r.progress(t, gpus, 0, "starting "+t.Variant.Spec.Kind+" backend", false)

	relTrace, _ := filepath.Rel(dir, r.tracePath)
	run := s.Run
	run.Rates = t.Rates
	cfg := TrialConfig{Study: s.Name, StudyFile: s.Path(), Key: t.Key(), RunID: r.runID, Model: t.Model, Variant: t.Variant,
		Rep: t.Rep, Run: run, TraceHash: r.hdr.HashHex(), Trace: relTrace, GPUs: gpus}
	spec := t.Variant.Spec.Clone()
	meta := collectMeta(ctx, r.opt.ToolVersion, spec, st.Started, gpus)
	writeJSON(filepath.Join(dir, "meta.json"), meta)
	defer func() {
		meta.Ended = r.opt.Now().UTC()
		writeJSON(filepath.Join(dir, "meta.json"), meta)
	}()
	logf, err := os.Create(filepath.Join(dir, "backend.log"))
	if err != nil {
		st.Status, st.Error = StatusFailed, fmt.Sprintf("bench: backend log: %v", err)
		return st
	}
	defer logf.Close()
	var b backends.Backend
	// Stop with a context of its own: a Ctrl-C must still stop the server.
	stop := func() {
		if err := stopBackend(ctx, b, s.Run.StopGrace.D()); err != nil {
			st.Warnings = append(st.Warnings, "stop: "+err.Error())
		}
	}
	bopt := backends.Options{SearchDirs: r.opt.SearchDirs, GPUs: gpus}
	if len(r.plan.GPUs) > 0 {
		// Lanes start servers at the same time: keep their ports apart.
		port, err := r.ports.pick()
		if err != nil {
			st.Status, st.Error = StatusFailed, err.Error()
			return st
		}
		defer r.ports.release(port)
		bopt.Port = port
	}
	launched := r.opt.Now()
	b, warns, err := launchWith(ctx, spec, s.Run, bopt, logf, func(b backends.Backend, prepErr error) {
		cfg.BaseURL = b.BaseURL()
		cfg.Command = b.Command()
		if prepErr == nil {
			meta.BackendVersion = cfg.Command.Version
			if meta.Python == nil {
				meta.Python = pythonVersions(ctx, spec, cfg.Command)
			}
		}
		writeJSON(filepath.Join(dir, "config.json"), cfg)
	})
	st.Warnings = append(st.Warnings, warns...)
	if err != nil {
		if b == nil {
			writeJSON(filepath.Join(dir, "config.json"), cfg)
		}
		st.Status, st.Error = StatusFailed, err.Error()
		switch {
		case errors.Is(err, backends.ErrUnsupported):
			st.Status = StatusUnsupported
			fmt.Fprintf(r.opt.Progress, "variant %s skipped: %v\n", t.Variant.Name, err)
		case ctx.Err() != nil:
			st.Status = StatusInterrupted
		}
		return st
	}
	meta.StartupSeconds = r.opt.Now().Sub(launched).Seconds()
	if alloc, err := ServerAllocation(ctx, b.BaseURL()); err != nil {
		meta.AllocatedError = err.Error()
	} else {
		meta.Allocated = alloc
	}
	writeJSON(filepath.Join(dir, "meta.json"), meta)
	r.progress(t, gpus, 0, fmt.Sprintf("backend healthy at %s after %.0fs%s", b.BaseURL(), meta.StartupSeconds, allocationNote(meta.Allocated)), false)

	// The engine warm-up: a failure there (a crash, Ctrl-C, a refused
	// preflight) ends the trial as a level's would, before any level.
	if s.Run.EngineWarmup.On() && ctx.Err() == nil {
		ws, err := r.engineWarmup(ctx, t, gpus, b, dir)
		st.EngineWarmup = ws
		switch {
		case err != nil && ctx.Err() != nil:
			st.Status, st.Error = StatusInterrupted, err.Error()
		case err != nil:
			st.Status, st.Error = StatusFailed, err.Error()
		case ws.Error != "":
			st.Warnings = append(st.Warnings, "engine warm-up: "+ws.Error)
		}
		writeJSON(statusPath, st)
	}

	var measured replay.Measured // the trial's levels so far: the drain policy starts from it
	levelsStart := r.opt.Now()
	for i, rate := range t.Rates {
		if ctx.Err() != nil || st.Status != StatusRunning {
			break
		}
		lv, err := r.level(ctx, t, gpus, b, dir, i, rate, measured)
		if r.clock != nil {
			// The ETA from what the levels took so far (drain, set-up and
			// all), not the plan's guess.
			per := r.opt.Now().Sub(levelsStart) / time.Duration(i+1)
			r.clock.remaining(t.Index, per*time.Duration(len(t.Rates)-i-1)+tailEstimate(t.Variant.Spec))
		}
		st.Levels = append(st.Levels, lv)
		st.Cut += lv.Cut
		m := replay.MeasuredOf(metric.Summary{TTFT: lv.TTFT, TPOT: lv.TPOT})
		m.Rate = rate // the next level's drain counts the queue a faster rate may build
		measured = measured.Merge(m)
		if err != nil {
			st.Error = err.Error()
			switch {
			case ctx.Err() != nil:
				st.Status = StatusInterrupted
			default:
				st.Status = StatusFailed
			}
			break
		}
		if cause := r.saturated(lv); cause != "" && i+1 < len(t.Rates) {
			st.StopCause = fmt.Sprintf("rate %g: %s", rate, cause)
			st.Skipped = append(st.Skipped, t.Rates[i+1:]...)
			st.Status = StatusEarlyStopped
			if r.clock != nil {
				r.clock.remaining(t.Index, tailEstimate(t.Variant.Spec))
			}
			r.progress(t, gpus, i+1, "saturated ("+st.StopCause+"); skipping rates "+fmtRates(st.Skipped), true)
			break
		}
	}
	stop()
	if ctx.Err() != nil && st.Status == StatusRunning {
		st.Status = StatusInterrupted
		st.Error = "interrupted"
	}
	if st.Status == StatusRunning {
		st.Status = StatusOK
	}
	// Analyse what was captured, even for a failed trial: the partial data
	// shows what happened before the failure.
	if caps := levelCaptures(dir, st.Levels); len(caps) > 0 {
		if err := r.analyzeTrial(context.WithoutCancel(ctx), dir, caps); err != nil {
			st.Warnings = append(st.Warnings, "analysis: "+err.Error())
		}
	}
	return st
}

// launch creates, prepares and starts spec's server and waits until it is
// healthy, as every trial does. record is called once the command is
// resolved (with Prepare's error, if any), so callers can write down what
// was run before the wait for health, which may take minutes. A server
// that loses its port to another process between our check and its bind
// gets one more try on a new port (the warning says so). On an error the
// server is stopped; the Backend is nil only when it could not be made.
func launch(ctx context.Context, spec backends.Spec, run RunConfig, searchDirs []string, log io.Writer,
	record func(b backends.Backend, prepErr error)) (backends.Backend, []string, error) {
	return launchWith(ctx, spec, run, backends.Options{SearchDirs: searchDirs}, log, record)
}

// launchWith is launch with the backend's options (GPUs, port); StopGrace
// comes from run. A port given in opt is used for the first try only.
func launchWith(ctx context.Context, spec backends.Spec, run RunConfig, opt backends.Options, log io.Writer,
	record func(b backends.Backend, prepErr error)) (backends.Backend, []string, error) {
	var warns []string
	opt.StopGrace = run.StopGrace.D()
	for attempt := 1; ; attempt++ {
		if attempt > 1 {
			opt.Port = 0
		}
		b, err := backends.New(spec, opt)
		if err != nil {
			return nil, warns, err
		}
		err = b.Prepare(ctx)
		if record != nil {
			record(b, err)
		}
		if err != nil {
			return b, warns, err
		}
		if err := b.Start(ctx, log); err != nil {
			return b, warns, err
		}
		err = b.WaitHealthy(ctx, run.StartupTimeout.D())
		if err == nil {
			return b, warns, nil
		}
		if serr := stopBackend(ctx, b, run.StopGrace.D()); serr != nil {
			warns = append(warns, "stop: "+serr.Error())
		}
		if attempt == 1 && ctx.Err() == nil && strings.Contains(strings.ToLower(b.LogTail(5)), "address already in use") {
			warns = append(warns, fmt.Sprintf("port of %s was taken before the server bound it; retried on a new port", b.BaseURL()))
			continue
		}
		return b, warns, err
	}
}

// stopBackend stops b with a context of its own: a cancelled ctx (Ctrl-C)
// must still stop the server.
func stopBackend(ctx context.Context, b backends.Backend, grace time.Duration) error {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace+2*time.Minute)
	defer cancel()
	return b.Stop(sctx)
}

// levelSetup is one load level against a backend: the replay and the
// in-process recording proxy in front of the backend that writes the
// level's capture.
type levelSetup struct {
	replay replay.Config
	record recorder.Config
}

// levelConfig is the setup of one load level against b, recorded into
// capDir: the same for a trial's rate levels and a probe's concurrency
// steps, so both captures analyse alike. The replayer's phases show on
// disp (nil: nowhere), named after the variant (lanes run several at once).
func levelConfig(s *Study, m ModelConfig, v Variant, rep string, b backends.Backend, capDir, runID, trial string, disp *progress.Display) levelSetup {
	exact := true
	if s.Run.ExactOutput != nil {
		exact = *s.Run.ExactOutput
	}
	labels := map[string]string{"variant": v.Name, "model": m.Name, "rep": rep, "study": s.Name}
	var pw io.Writer
	var onProgress func(replay.Progress)
	var interval time.Duration
	if disp != nil {
		pw = prefixWriter(disp, "    ")
		onProgress = progress.Replay(disp, v.Name+" ", "    ")
		if disp.Live() {
			interval = time.Second // a live bar moves every second
		}
	}
	return levelSetup{
		replay: replay.Config{
			Speed:            s.Run.Speed,
			Duration:         s.Run.Duration.D(),
			Drain:            s.Run.Drain.D(),
			MaxDrain:         s.Run.MaxDrain.D(),
			MaxConcurrency:   s.Run.MaxConcurrency,
			Model:            v.Spec.ServedModelName,
			ExactOutput:      exact,
			NoEOSFields:      !v.Spec.SendsEOSFields(),
			Labels:           labels,
			Run:              runID,
			Trial:            trial,
			OnProgress:       onProgress,
			ProgressInterval: interval,
			InterruptDrain:   2 * time.Second,
		},
		record: recorder.Config{
			Capture:        capDir,
			Upstream:       b.BaseURL(),
			Labels:         labels,
			ScrapeInterval: time.Second,
			ScrapeMetrics:  v.Spec.ScrapeMetrics,
			Log:            pw,
			Meta:           capture.Meta{Tool: "vbbench", Extra: map[string]string{"run": runID, "trial": trial}},
		},
	}
}

// run replays the level through its recording proxy and closes the
// capture; the analysis can read it when run returns.
func (ls levelSetup) run(ctx context.Context, hdr trace.Header, reqs []trace.Request) (*replay.Result, error) {
	rc := ls.record
	rc.Meta.Extra["trace_hash"] = hdr.HashHex()
	rc.Meta.Config, _ = json.Marshal(ls.replay)
	rec, err := recorder.Start(rc)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	cfg := ls.replay
	cfg.Target = rec.URL()
	res, err := replay.Run(ctx, cfg, hdr, reqs)
	if _, serr := rec.Stop(); serr != nil {
		err = errors.Join(err, serr)
	}
	return res, err
}

// whileAlive returns a context cancelled when b's process ends (a crash
// under load stops the level at once) or when cancel is called.
func whileAlive(ctx context.Context, b backends.Backend) (context.Context, context.CancelFunc) {
	lctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-b.Exited():
			cancel()
		case <-lctx.Done():
		}
	}()
	return lctx, cancel
}

// level replays the trace at one rate into capture/<label>.
func (r *runner) level(ctx context.Context, t Trial, gpus []string, b backends.Backend, dir string, i int, rate float64, measured replay.Measured) (LevelStatus, error) {
	s := r.study
	label := strconv.FormatFloat(rate, 'f', -1, 64)
	capDir := filepath.Join(dir, "capture", "rate-"+label)
	lv := LevelStatus{Label: label, Rate: rate, Capture: filepath.Join("capture", "rate-"+label)}
	r.progress(t, gpus, i, fmt.Sprintf("rate %s req/s (%d/%d) for %s", label, i+1, len(t.Rates), s.Run.Duration.D()), false)
	if r.opt.OnLevel != nil {
		r.opt.OnLevel(t, rate, b)
	}
	// The level stops early if the backend dies under it.
	lctx, cancel := whileAlive(ctx, b)
	defer cancel()
	ls := levelConfig(s, t.Model, t.Variant, strconv.Itoa(t.Rep), b, capDir, r.runID, filepath.Base(dir), r.disp)
	ls.replay.Rates = []float64{rate}
	ls.replay.Measured = measured
	// The warm-up precedes the first level, or every level (each played
	// at its own rate): its requests carry X-VB-Warmup, so the level's
	// analysis leaves them out.
	if s.Run.Warmup > 0 && (i == 0 || s.Run.WarmupMode == replay.WarmupLevel) {
		ls.replay.WarmupDuration = s.Run.Warmup.D()
		ls.replay.WarmupMode = s.Run.WarmupMode // one level per replay: either mode warms it up
	}
	res, err := ls.run(lctx, r.hdr, r.reqs)
	if res != nil {
		writeJSON(filepath.Join(dir, "replay-rate-"+label+".json"), res)
		for _, l := range res.Levels {
			lv.Drain, lv.DrainReason = l.Drain, l.DrainReason
		}
	}
	if _, g, ferr := levelGroup(context.WithoutCancel(ctx), capDir); ferr == nil {
		lv.figures(g)
		r.progress(t, gpus, i+1, fmt.Sprintf("rate %s req/s: %s", label, lv.line()), true)
	} else if err == nil {
		err = fmt.Errorf("bench: the capture of rate %s: %w", label, ferr)
	}
	select {
	case <-b.Exited():
		err = fmt.Errorf("backend crashed during rate %s (%v); last log lines:\n%s", label, b.ExitErr(), b.LogTail(15))
	default:
	}
	if err != nil {
		lv.Error = err.Error()
	}
	return lv, err
}

// engineWarmup plays the trace closed loop at run.engine_warmup's
// concurrency for its duration into capture/engine-warmup, then lets its
// requests finish by the drain policy of a level, so the engine runs every
// batch size from the concurrency down to 1. It is set up as a level is
// (levelConfig; a probe's step is the same closed loop) and stops as one
// does when the backend dies or ctx is cancelled; its requests are tagged
// phase=engine-warmup. It sends the trace from its end backwards, as the
// replayer's warm-ups do: the levels send it from its start, and a prompt
// seen in the warm-up would be a prefix-cache hit in a level. The error is what ends the trial; a capture that
// cannot be analysed only says so in the status's Error.
func (r *runner) engineWarmup(ctx context.Context, t Trial, gpus []string, b backends.Backend, dir string) (*EngineWarmupStatus, error) {
	ew := r.study.Run.EngineWarmup
	r.progress(t, gpus, 0, fmt.Sprintf("engine warm-up: closed loop at concurrency %d for %s (not measured)", ew.Concurrency, ew.Duration.D()), false)
	if r.opt.OnEngineWarmup != nil {
		r.opt.OnEngineWarmup(t, b)
	}
	ls := levelConfig(r.study, t.Model, t.Variant, strconv.Itoa(t.Rep), b, "", r.runID, filepath.Base(dir), r.disp)
	if ls.replay.OnProgress != nil {
		// The replayer calls it a level; the lines say what it is.
		ls.replay.OnProgress = progress.Replay(r.disp, t.Variant.Name+" engine warm-up: ", "    ")
	}
	ws, err := runEngineWarmup(ctx, ls, b, dir, ew.Concurrency, ew.Duration.D(), r.hdr, r.reqs, r.opt.Now)
	if ws.Error == "" {
		r.progress(t, gpus, 0, "engine warm-up: "+ws.line(), true)
	}
	if err != nil {
		ws.Error = err.Error()
	}
	return ws, err
}

// runEngineWarmup plays an engine warm-up against b with the level setup
// ls (levelConfig's, for a trial or a probe): closed loop at n requests in
// flight for d, then drained, into dir/capture/engine-warmup, tagged
// phase=engine-warmup, the trace sent backwards (see backwards). Its
// figures come from its capture; ws.Error says when the capture cannot be
// analysed. The error is the replay's, or the backend's crash, which ends
// the trial or the probed variant.
func runEngineWarmup(ctx context.Context, ls levelSetup, b backends.Backend, dir string, n int, d time.Duration, hdr trace.Header, reqs []trace.Request, now func() time.Time) (*EngineWarmupStatus, error) {
	rel := filepath.Join("capture", engineWarmupDir)
	capDir := filepath.Join(dir, rel)
	ws := &EngineWarmupStatus{Capture: rel, Concurrency: n, Duration: d}
	ls.record.Capture = capDir
	ls.replay.Concurrency = []int{n}
	ls.replay.Rates = nil
	ls.replay.MaxConcurrency = 0 // a closed loop holds its concurrency
	ls.replay.Duration = d
	ls.replay.Labels["phase"] = phaseEngineWarmup
	lctx, cancel := whileAlive(ctx, b)
	defer cancel()
	start := now()
	res, err := ls.run(lctx, hdr, backwards(reqs))
	ws.Seconds = now().Sub(start).Seconds()
	if res != nil {
		writeJSON(filepath.Join(dir, "replay-"+engineWarmupDir+".json"), res)
		for _, l := range res.Levels {
			ws.Exhausted = l.Exhausted
		}
	}
	if g, ferr := engineWarmupGroup(context.WithoutCancel(ctx), capDir); ferr == nil {
		ws.figures(g)
	} else if err == nil {
		ws.Error = fmt.Sprintf("the capture: %v", ferr)
	}
	select {
	case <-b.Exited():
		err = fmt.Errorf("backend crashed during the engine warm-up (%v); last log lines:\n%s", b.ExitErr(), b.LogTail(15))
	default:
		if err != nil {
			err = fmt.Errorf("bench: engine warm-up: %w", err)
		}
	}
	return ws, err
}

// backwards returns the trace's requests last first, their offsets
// mirrored (a replay wants them in arrival order; a closed loop ignores
// them). The requests keep their indexes.
func backwards(reqs []trace.Request) []trace.Request {
	out := make([]trace.Request, len(reqs))
	if len(reqs) == 0 {
		return out
	}
	last := reqs[len(reqs)-1].Offset
	for i := range out {
		out[i] = reqs[len(reqs)-1-i]
		out[i].Offset = last - out[i].Offset
	}
	return out
}

// line is the level's figures in one line (the progress and the early
// stop say the same).
func (lv *LevelStatus) line() string {
	t := fmt.Sprintf("%d requests: %d ok, %d failed, %d cut | normalized latency %s s/token", lv.Sent, lv.OK, lv.Failed, lv.Cut, fmtFig(lv.NormLatency.Mean))
	if lv.Cut > 0 {
		t += fmt.Sprintf(" (%s with the cut ones at their lower bound)", fmtFig(lv.NormLatencyWithCut.Mean))
	}
	return t
}

func fmtFig(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', 4, 64)
}

// cutNote says how many requests a finished trial's levels cut.
func cutNote(st TrialStatus) string {
	if st.Cut == 0 {
		return ""
	}
	sent := 0
	for _, l := range st.Levels {
		sent += l.Sent
	}
	return fmt.Sprintf(" (%d of %d requests cut at the drain deadline, counted as censored)", st.Cut, sent)
}

// saturated applies the early-stop rule to a finished level: the
// normalized latency with the cut requests counted at their lower bound
// over the limit. The cut share alone never decides: a few long requests
// outlasting the drain are censored, not a saturated server, while a queue
// that grows without bound shows in the latency of what it cut.
func (r *runner) saturated(lv LevelStatus) string {
	es := r.study.Run.EarlyStop
	if es.NormalizedLatency <= 0 || !(lv.NormLatencyWithCut.Mean > es.NormalizedLatency.D().Seconds()) {
		return ""
	}
	if lv.Cut > 0 {
		return fmt.Sprintf("normalized latency %s s/token with its %d cut requests at their lower bound (%s over completed ones) > %s",
			fmtFig(lv.NormLatencyWithCut.Mean), lv.Cut, fmtFig(lv.NormLatency.Mean), es.NormalizedLatency.D())
	}
	return fmt.Sprintf("normalized latency %s s/token > %s", fmtFig(lv.NormLatencyWithCut.Mean), es.NormalizedLatency.D())
}

func levelCaptures(dir string, levels []LevelStatus) []string {
	var out []string
	for _, l := range levels {
		p := filepath.Join(dir, l.Capture)
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			out = append(out, p)
		}
	}
	return out
}

func (r *runner) chart() bool {
	return r.study.Run.Chart == nil || *r.study.Run.Chart
}

func (r *runner) analyzeTrial(ctx context.Context, dir string, caps []string) error {
	return render.Run(ctx, analyze.Config{
		Captures: caps,
		Out:      filepath.Join(dir, "analysis"),
		Chart:    r.chart(),
		Title:    "vbench trial " + filepath.Base(dir),
	})
}

// report analyses every finished trial of the study together into
// reports/<timestamp>.md.
func (r *runner) report(ctx context.Context, trials []TrialStatus) (string, error) {
	return writeReport(ctx, r.study, trials, r.opt.Now(), r.chart())
}

// writeReport analyses the captures of trials together into
// <reports_dir>/<now>.md and its CSV/JSON and charts.
func writeReport(ctx context.Context, s *Study, trials []TrialStatus, now time.Time, chart bool) (string, error) {
	var caps []string
	for _, t := range trials {
		if t.Dir == "" || t.Archived {
			continue
		}
		caps = append(caps, levelCaptures(t.Dir, t.Levels)...)
	}
	if len(caps) == 0 {
		return "", errors.New("no captures to report on")
	}
	name := now.UTC().Format("20060102T150405Z")
	if err := os.MkdirAll(s.ReportsDir, 0o755); err != nil {
		return "", fmt.Errorf("bench: reports: %w", err)
	}
	path := filepath.Join(s.ReportsDir, name+".md")
	by := []string{"variant", "rate", "trial"}
	if len(s.Models) > 1 {
		by = []string{"model", "variant", "rate", "trial"}
	}
	cfg := analyze.Config{
		Captures: caps,
		By:       by,
		Out:      filepath.Join(s.ReportsDir, name),
		Report:   path,
		Chart:    chart,
		Title:    "vbench study " + s.Name,
	}
	if err := render.Run(ctx, cfg); err != nil {
		return "", err
	}
	return path, nil
}

// readyTrace makes the study's trace when missing, reads it, checks it
// against the plan's rates (unless force) and stores it once under the
// results; it returns the header, the requests and the stored path.
func readyTrace(ctx context.Context, p *Plan, searchDirs []string, force bool) (trace.Header, []trace.Request, string, error) {
	s := p.Study
	hdr, reqs, tracePath, err := prepareTrace(ctx, s, searchDirs)
	if err != nil {
		return hdr, nil, "", err
	}
	if errs := checkTrace(hdr, s.Run, planRates(p)); len(errs) > 0 && !force {
		return hdr, nil, "", fmt.Errorf("bench: %s", strings.Join(errs, "; "))
	}
	if err := os.MkdirAll(s.ResultsDir, 0o755); err != nil {
		return hdr, nil, "", fmt.Errorf("bench: results: %w", err)
	}
	stored, err := storeTrace(s.ResultsDir, tracePath, hdr)
	return hdr, reqs, stored, err
}

// prepareTrace reads the study's trace, generating it first if asked.
func prepareTrace(ctx context.Context, s *Study, searchDirs []string) (trace.Header, []trace.Request, string, error) {
	path := s.Trace.Path
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) && len(s.Trace.Generate) > 0 {
		argv := make([]string, len(s.Trace.Generate))
		for i, a := range s.Trace.Generate {
			argv[i] = strings.ReplaceAll(a, "{path}", path)
		}
		if !strings.Contains(argv[0], "/") {
			for _, d := range searchDirs {
				if p := filepath.Join(d, argv[0]); isExecutable(p) {
					argv[0] = p
					break
				}
			}
		}
		if dir := filepath.Dir(path); dir != "" {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return trace.Header{}, nil, "", fmt.Errorf("bench: %w", err)
			}
		}
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return trace.Header{}, nil, "", fmt.Errorf("bench: generate the trace with %s: %v\n%s", strings.Join(argv, " "), err, lastLines(string(out), 10))
		}
	}
	hdr, reqs, err := trace.ReadFile(path)
	if err != nil {
		return hdr, nil, "", fmt.Errorf("bench: trace: %w", err)
	}
	return hdr, reqs, path, nil
}

// planRates returns every rate some trial of the plan runs, rising.
func planRates(p *Plan) []float64 {
	var out []float64
	for _, t := range p.Trials {
		out = append(out, t.Rates...)
	}
	sort.Float64s(out)
	return slices.Compact(out)
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// storeTrace copies the trace once per study into results/traces/<hash>.bin.
func storeTrace(results, src string, hdr trace.Header) (string, error) {
	dir := filepath.Join(results, "traces")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	ext := ".bin"
	if trace.IsJSONL(src) {
		ext = ".jsonl"
	}
	dst := filepath.Join(dir, hdr.ShortHash()+ext)
	if _, err := os.Stat(dst); err == nil {
		return dst, nil
	}
	in, err := os.Open(src)
	if err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	defer in.Close()
	// A temporary file of its own: Slurm tasks may store the same trace
	// into a shared results directory at once.
	out, err := os.CreateTemp(dir, hdr.ShortHash()+".*.tmp")
	if err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	tmp := out.Name()
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(tmp)
		return "", fmt.Errorf("bench: copy the trace: %w", err)
	}
	if err := out.Close(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("bench: %w", err)
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("bench: %w", err)
	}
	return dst, os.Rename(tmp, dst)
}

// scanFinished finds the finished trials of a study under results.
func scanFinished(results, study string) (map[string]TrialStatus, error) {
	all, err := ScanAttempts(results, study)
	if err != nil {
		return nil, err
	}
	out := map[string]TrialStatus{}
	for key, attempts := range all {
		for _, st := range attempts {
			if prev, ok := out[key]; done(st.Status) && (!ok || st.Ended.After(prev.Ended)) {
				out[key] = st
			}
		}
	}
	return out, nil
}

// appendIndex adds the trial's row to results/README.md.
func (r *runner) appendIndex(st TrialStatus) {
	r.indexMu.Lock()
	defer r.indexMu.Unlock()
	path := filepath.Join(r.study.ResultsDir, "README.md")
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	// Lanes and Slurm tasks append to one index: an advisory lock keeps
	// the header first and rows whole (where the filesystem has flock).
	if syscall.Flock(int(f.Fd()), syscall.LOCK_EX) == nil {
		defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	}
	var row strings.Builder
	if fi, err := f.Stat(); err == nil && fi.Size() == 0 {
		row.WriteString("# vbench results\n\nOne row per trial, appended by `vbbench run`.\n\n| date | study | model | variant | rep | status | config |\n|---|---|---|---|---|---|---|\n")
	}
	rel := "-"
	if st.Dir != "" {
		if p, err := filepath.Rel(r.study.ResultsDir, filepath.Join(st.Dir, "config.json")); err == nil {
			rel = "[" + p + "](" + p + ")"
		}
	}
	status := st.Status
	if st.StopCause != "" {
		status += " (" + st.StopCause + ")"
	} else if st.Error != "" {
		status += ": " + firstLine(st.Error)
	}
	fmt.Fprintf(&row, "| %s | %s | %s | %s | %d | %s | %s |\n", st.Started.Format("2006-01-02 15:04:05Z"),
		cell(st.Study), cell(st.Model), cell(st.Variant), st.Rep, cell(status), rel)
	io.WriteString(f, row.String())
}

func cell(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "|", "\\|"), "\n", " ") }

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("bench: %s: %w", path, err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return os.Rename(tmp, path)
}

// prefixWriter indents each write (the replayer's progress lines).
func prefixWriter(w io.Writer, prefix string) io.Writer {
	if w == io.Discard {
		return nil
	}
	return &prefixed{w: w, prefix: prefix}
}

type prefixed struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
}

func (p *prefixed) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := strings.TrimRight(string(b), "\n")
	_, err := io.WriteString(p.w, p.prefix+strings.ReplaceAll(s, "\n", "\n"+p.prefix)+"\n")
	return len(b), err
}
