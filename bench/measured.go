package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vbench/vbench/backends"
	"github.com/vbench/vbench/replay"
)

// Measured is what earlier trials took, by model × variant: the evidence
// `vbbench plan --measured DIR` estimates a trial from instead of the
// plan's model of a start-up and a level's drain. Its zero value, and nil,
// know nothing.
//
// From each finished trial (status ok or early-stopped) under the given
// results trees it keeps:
//   - fixed: the trial's wall time less its replays' (the server's start-up,
//     its stop, each level's analysis and the gaps between);
//   - the engine warm-up's wall time;
//   - each level's drain: the replay's elapsed time past its window, by rate.
//
// A trial estimated from it counts the means of these and, for a rate
// never measured, the plan's drain model; the run settings (window,
// warm-up, drain bound) are the study's own.
//
// A `vbbench probe`'s probe.json under the folders gives each probed
// variant's server start-up and its TPOT at the knee: for a model × variant
// with no finished trial, the estimate counts that start-up (and the
// model's stop) in place of the model's start-up, a level's tail as the
// trace's 99th-percentile output × that TPOT (measuredEstimate), and the
// model for the rest.
type Measured struct {
	cells map[cellKey]*measuredCell
	// Trials counts the finished trials read, Probes the probed variants
	// with a start-up or a TPOT.
	Trials, Probes int
	// Dirs lists the trials' folders and the probe.json files read.
	Dirs []string
	// Notes name the finished trials left out, and why.
	Notes []string
	// outTokens is the 99th percentile of the expected output lengths of
	// the trace of the view (forTrace; 0: unknown), which with a probe's
	// TPOT sizes a level's tail.
	outTokens int32
}

// cellKey names a model × variant that replayed one trace (its hash, in
// hex): drains and start-ups measured on one workload do not stand for
// another's.
type cellKey struct{ model, variant, trace string }

// measuredCell is the evidence for one model × variant on one trace.
type measuredCell struct {
	fixed, engineWarmup []time.Duration
	drains              map[float64][]time.Duration
	// From probes: the server's start-ups, and the TPOT at the knee.
	startups, tpots []time.Duration
}

// MeasuredCell summarises what Measured knows of one model × variant.
type MeasuredCell struct {
	// Trials counts the finished trials; ProbeStartup is the mean start-up
	// of the probes of it (0: none).
	Trials       int
	ProbeStartup time.Duration
	// ProbeTPOT is the mean TPOT at the knee of the probes of it (0: none).
	ProbeTPOT time.Duration
	// Fixed and EngineWarmup are the means (0: none measured); Drains the
	// mean drain at each measured rate.
	Fixed, EngineWarmup time.Duration
	Drains              map[float64]time.Duration
}

// LoadMeasured reads every finished trial under roots (results trees, or
// any folders above them; hidden folders are skipped). A trial whose
// files do not parse is an error naming the file: an estimate from a
// partial record would be wrong without saying so. Trials that did not
// finish are left out.
func LoadMeasured(roots ...string) (*Measured, error) {
	m := &Measured{cells: map[cellKey]*measuredCell{}}
	for _, root := range roots {
		if _, err := os.Stat(root); err != nil {
			return nil, fmt.Errorf("measured: %w", err)
		}
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && path != root && len(d.Name()) > 1 && d.Name()[0] == '.' {
				return filepath.SkipDir
			}
			switch {
			case d.IsDir():
				return nil
			case d.Name() == "status.json":
				return m.addTrial(filepath.Dir(path))
			case d.Name() == "probe.json":
				return m.addProbe(path)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("measured: %w", err)
		}
	}
	sort.Strings(m.Dirs)
	return m, nil
}

// addTrial adds one trial directory's evidence (nothing when it did not
// finish).
func (m *Measured) addTrial(dir string) error {
	var st TrialStatus
	if err := readJSON(filepath.Join(dir, "status.json"), &st); err != nil {
		return err
	}
	if st.Status != StatusOK && st.Status != StatusEarlyStopped || st.Model == "" || st.Variant == "" ||
		st.Started.IsZero() || !st.Ended.After(st.Started) {
		return nil
	}
	replays := st.Ended.Sub(st.Started)
	var ew time.Duration
	trace := ""
	if st.EngineWarmup != nil {
		var r replay.Result
		if err := readJSON(filepath.Join(dir, "replay-"+engineWarmupDir+".json"), &r); err != nil {
			return m.skip(dir, err)
		}
		ew = r.Ended.Sub(r.Started)
		replays -= ew
		trace = r.TraceHash
	}
	drains := map[float64]time.Duration{}
	for _, lv := range st.Levels {
		var r replay.Result
		if err := readJSON(filepath.Join(dir, "replay-rate-"+lv.Label+".json"), &r); err != nil {
			return m.skip(dir, err)
		}
		if trace == "" {
			trace = r.TraceHash
		} else if r.TraceHash != "" && r.TraceHash != trace {
			return fmt.Errorf("%s: its levels replayed different traces (%.12s, %.12s)", dir, trace, r.TraceHash)
		}
		replays -= r.Ended.Sub(r.Started)
		for _, l := range r.Levels {
			if !l.Warmup && l.Window > 0 && l.Elapsed > 0 {
				drains[lv.Rate] = max(l.Elapsed-l.Window, 0)
			}
		}
	}
	if replays < 0 {
		return fmt.Errorf("%s: its replays took longer than the trial (clock or record damaged)", dir)
	}
	c := m.cellFor(cellKey{st.Model, st.Variant, trace})
	c.fixed = append(c.fixed, replays)
	if ew > 0 {
		c.engineWarmup = append(c.engineWarmup, ew)
	}
	for rate, d := range drains {
		c.drains[rate] = append(c.drains[rate], d)
	}
	m.Trials++
	m.Dirs = append(m.Dirs, dir)
	return nil
}

// addProbe adds what a probe.json records of each variant: its server's
// start-up, and its TPOT at the knee (the step at its knee concurrency).
func (m *Measured) addProbe(path string) error {
	var r ProbeResult
	if err := readJSON(path, &r); err != nil {
		return err
	}
	added := false
	for _, vp := range r.Variants {
		if vp.Model == "" || vp.Variant == "" || vp.Error != "" {
			continue
		}
		var tpot float64
		for _, st := range vp.Steps {
			if st.Concurrency == vp.KneeConcurrency && st.TPOT > 0 && !math.IsNaN(st.TPOT) {
				tpot = st.TPOT
			}
		}
		if vp.StartupSeconds <= 0 && tpot <= 0 {
			continue
		}
		c := m.cellFor(cellKey{vp.Model, vp.Variant, r.TraceHash})
		if vp.StartupSeconds > 0 {
			c.startups = append(c.startups, time.Duration(vp.StartupSeconds*float64(time.Second)))
		}
		if tpot > 0 {
			c.tpots = append(c.tpots, time.Duration(tpot*float64(time.Second)))
		}
		m.Probes++
		added = true
	}
	if added {
		m.Dirs = append(m.Dirs, path)
	}
	return nil
}

// cellFor is the cell of key, made when missing.
func (m *Measured) cellFor(key cellKey) *measuredCell {
	c := m.cells[key]
	if c == nil {
		c = &measuredCell{drains: map[float64][]time.Duration{}}
		m.cells[key] = c
	}
	return c
}

// skip leaves out a finished trial whose replay record is missing (a
// results tree copied without it), with a note; any other error is
// returned.
func (m *Measured) skip(dir string, err error) error {
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	m.Notes = append(m.Notes, fmt.Sprintf("--measured: %s left out: %v", dir, err))
	return nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// Cell returns what is known of model/variant on the trace of that hash
// (hex; "" matches any trace when only one was measured). ok is false when
// nothing, or more than one trace, matches.
func (m *Measured) Cell(model, variant, trace string) (MeasuredCell, bool) {
	c := m.cell(model, variant, trace)
	if c == nil {
		return MeasuredCell{}, false
	}
	out := MeasuredCell{Trials: len(c.fixed), ProbeStartup: mean(c.startups), ProbeTPOT: mean(c.tpots), Fixed: mean(c.fixed), EngineWarmup: mean(c.engineWarmup), Drains: map[float64]time.Duration{}}
	for r, ds := range c.drains {
		out.Drains[r] = mean(ds)
	}
	return out, true
}

// cell is the evidence for model/variant on trace ("": the one trace it
// was measured on, nil when there were several).
func (m *Measured) cell(model, variant, trace string) *measuredCell {
	if m == nil {
		return nil
	}
	if trace != "" {
		return m.cells[cellKey{model, variant, trace}]
	}
	var found *measuredCell
	for k, c := range m.cells {
		if k.model == model && k.variant == variant {
			if found != nil {
				return nil
			}
			found = c
		}
	}
	return found
}

// forTrace is the part of m that stands for a study replaying the trace of
// that hash (hex; "" when the trace is not made yet): each model × variant
// measured on it, or, with no hash, measured on one trace only. Notes name
// what is left out. nil when m is.
func (m *Measured) forTrace(trace string) (*Measured, []string) {
	if m == nil {
		return nil, nil
	}
	out := &Measured{cells: map[cellKey]*measuredCell{}, Dirs: m.Dirs}
	var notes []string
	seen := map[[2]string]bool{}
	for k := range m.cells {
		mv := [2]string{k.model, k.variant}
		if seen[mv] {
			continue
		}
		seen[mv] = true
		if c := m.cell(k.model, k.variant, trace); c != nil {
			out.cells[cellKey{k.model, k.variant, trace}] = c
			out.Trials += len(c.fixed)
			if len(c.fixed) == 0 {
				out.Probes += max(len(c.startups), len(c.tpots))
			}
			continue
		}
		if trace != "" {
			notes = append(notes, fmt.Sprintf("--measured: %s/%s was measured on another trace than this study's (%.12s): not used", k.model, k.variant, trace))
		} else {
			notes = append(notes, fmt.Sprintf("--measured: %s/%s was measured on several traces and this study's is not made yet: not used (make the trace first)", k.model, k.variant))
		}
	}
	sort.Strings(notes)
	return out, notes
}

func mean(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return sum / time.Duration(len(ds))
}

// estimate is a trial's expected wall time: from the measurements of its
// model × variant where there are some (see Measured; m is the view of one
// trace, forTrace), else the plan's model (trialEstimate). measured says
// which.
func (m *Measured) estimate(t Trial, r RunConfig) (d time.Duration, measured bool) {
	c := m.cell(t.Model.Name, t.Variant.Name, "")
	if c == nil {
		return trialEstimate(t.Variant.Spec, r, t.Rates, typicalDrainFor(t.Variant.Spec), t.Variant.Saturation), false
	}
	return measuredEstimate(c, t.Variant.Spec, r, t.Rates, t.Variant.Saturation, m.outTokens), true
}

// measuredEstimate is trialEstimate with the measured parts in place of
// the modelled ones.
//
// A level's drain at a rate never measured is its last requests' tail:
// with a probe's TPOT at the knee and the trace's 99th-percentile output
// length (outTokens), their product (measured on the H200's ShareGPT
// levels below the knees: 750 tokens × 21–31 ms = 16–23 s against drains
// of 14–28 s for eager vLLM, × 7 ms = 5 s against 4 s compiled); else the
// model's typicalDrainFor. Past the saturation the backlog comes on top.
func measuredEstimate(c *measuredCell, spec backends.Spec, r RunConfig, rates []float64, sat float64, outTokens int32) time.Duration {
	var d time.Duration
	switch {
	case len(c.fixed) > 0:
		d = mean(c.fixed)
	case len(c.startups) > 0: // a probe's start-up
		d = mean(c.startups) + tailEstimate(spec)
	default:
		d = startupEstimate(spec) + tailEstimate(spec)
	}
	tail := typicalDrainFor(spec)
	if tp := mean(c.tpots); tp > 0 && outTokens > 0 {
		tail = time.Duration(outTokens) * tp
	}
	if r.EngineWarmup.On() {
		if ew := mean(c.engineWarmup); ew > 0 {
			d += ew
		} else {
			d += engineWarmupEstimate(r, min(tail, r.DrainBound()))
		}
	}
	if r.WarmupMode == replay.WarmupLevel {
		d += time.Duration(len(rates)) * r.Warmup.D()
	} else {
		d += r.Warmup.D()
	}
	for _, rate := range rates {
		drain := tail + kneeBacklog(spec, rate, sat, r)
		if ds := c.drains[rate]; len(ds) > 0 {
			drain = mean(ds)
		}
		d += r.Duration.D() + min(r.DrainBound(), drain)
	}
	return d
}

// String lists the cells, one line each: what the estimate uses.
func (m *Measured) String() string {
	if m == nil || len(m.cells) == 0 {
		return "no finished trials or probed variants"
	}
	keys := make([]cellKey, 0, len(m.cells))
	for k := range m.cells {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.model+"/"+a.variant != b.model+"/"+b.variant {
			return a.model+"/"+a.variant < b.model+"/"+b.variant
		}
		return a.trace < b.trace
	})
	var out string
	for _, k := range keys {
		c := m.cells[k]
		rates := make([]float64, 0, len(c.drains))
		for r := range c.drains {
			rates = append(rates, r)
		}
		sort.Float64s(rates)
		if len(c.fixed) == 0 {
			var what []string
			if len(c.startups) > 0 {
				what = append(what, fmt.Sprintf("start-up ≈%s", roundDur(mean(c.startups))))
			}
			if tp := mean(c.tpots); tp > 0 {
				w := fmt.Sprintf("TPOT at the knee %.1f ms", tp.Seconds()*1000)
				if m.outTokens > 0 {
					w += fmt.Sprintf(" (a level's tail ≈ %d tokens × it = %s)", m.outTokens, roundDur(time.Duration(m.outTokens)*tp))
				}
				what = append(what, w)
			}
			out += fmt.Sprintf("  %-40s probe: %s; the rest: the model\n", k.model+"/"+k.variant, strings.Join(what, ", "))
			continue
		}
		line := fmt.Sprintf("  %-40s %d trial(s): start-up, stop and analysis ≈%s", k.model+"/"+k.variant, len(c.fixed), roundDur(mean(c.fixed)))
		if len(c.engineWarmup) > 0 {
			line += fmt.Sprintf(", engine warm-up ≈%s", roundDur(mean(c.engineWarmup)))
		}
		if len(rates) > 0 {
			line += ", drain"
			for _, r := range rates {
				line += fmt.Sprintf(" %s:%s", strconv.FormatFloat(r, 'g', -1, 64), roundDur(mean(c.drains[r])))
			}
		}
		out += line + "\n"
	}
	return out
}
