package bench

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Holds. A GPU lent for a fixed time (a hold: 30 minutes, of which ≈27 are
// usable once the machine has started) cannot run a study longer than that,
// so the study runs as several holds, each a study file of its own, on
// machines that may differ. One variant, the anchor, runs at the same two
// rates in every hold: its difference between holds measures the drift
// between machines, and figures from different holds are compared through
// it.
//
// The split keeps the plan's run order and every trial whole (its whole
// ladder, levels of full length): each hold is a run of consecutive trials,
// and the holds are as few as the hold length allows. A hold's estimate is
// its trials' estimates (trialEstimate, placed on the plan's GPU lanes as
// the plan places them; one after another without lanes) plus the anchor
// trial's. The anchor runs its whole ladder in the hold where it falls and
// as an extra trial at the anchor rates, after the hold's other trials of
// its model, in every other hold.
//
// Several models: the anchor is per model, the same variant name under
// each model (every model must run it); a hold carries model m's anchor
// trial when it runs some of m's trials but not m's anchor whole. One
// study file gives a variant one ladder, so a hold never runs the anchor
// whole for one model and at the anchor rates for another. The fewest holds
// are found by dynamic programming over the run order, not greedily: the
// anchor trial a hold needs, and that rule, depend on where it starts.
//
// Repetitions: a hold file runs each of its variants once, so the holds go
// repetition by repetition. The split of one repetition (the plan's order
// of models and variants) is the split of each; a hold file has
// repetitions = 1, and the holds of repetition r follow those of r−1
// (holds in all = holds per repetition × repetitions).

// HoldSplit is a plan split into holds (Plan.SplitHolds).
type HoldSplit struct {
	// Plan is the plan split.
	Plan *Plan `json:"-"`
	// Hold is the usable length of one hold; each hold's estimate is at
	// most Hold.
	Hold time.Duration `json:"hold_ns"`
	// OneHold reports that the plan's estimate fits one hold: the study
	// runs as it is, and Holds is empty.
	OneHold bool `json:"one_hold"`
	// Anchor is the anchor variant and AnchorRates its rates in the holds
	// where it runs as the anchor trial (empty with OneHold unless asked
	// for).
	Anchor      string    `json:"anchor,omitempty"`
	AnchorRates []float64 `json:"anchor_rates,omitempty"`
	// Holds are the holds in the order they run, repetition by repetition.
	Holds []Hold `json:"holds,omitempty"`
	// PerRep is the number of holds of each repetition.
	PerRep int `json:"holds_per_repetition"`
}

// Hold is one hold of a split: a study file of its own.
type Hold struct {
	// Number counts the holds from 1, over every repetition.
	Number int `json:"number"`
	// Rep is the repetition whose trials it runs (from 1).
	Rep int `json:"rep"`
	// Trials are its trials in run order: consecutive trials of the plan,
	// each model's anchor trial (if any) after that model's others.
	Trials []HoldTrial `json:"trials"`
	// Estimate is its expected wall time.
	Estimate time.Duration `json:"estimate_ns"`
}

// HoldTrial is a trial of a hold: a trial of the plan, or the anchor trial.
// Its Start and GPUs are where the hold's own run is expected to place it,
// from the hold's start.
type HoldTrial struct {
	Trial
	// Anchor marks the extra trial of the anchor variant at the anchor
	// rates (its Index is that of the anchor's whole trial in the plan).
	Anchor bool `json:"anchor,omitempty"`
}

// defaultAnchor names the anchor when none is given: the first variant in
// run order whose preset is torch-baseline with kv_policy oracle (the
// anchor of the dense H200 study, docs/results/h200-2026-12-03), else the
// first variant.
func defaultAnchor(trials []Trial) string {
	for _, t := range trials {
		if t.Variant.Preset == "torch-baseline" && t.Variant.Spec.KVPolicy == "oracle" {
			return t.Variant.Name
		}
	}
	return trials[0].Variant.Name
}

// SplitHolds splits the plan into the fewest holds of length hold (see
// Holds above). anchor names the anchor variant ("": defaultAnchor);
// anchorRates are its rates in the other holds, each one of its ladder's
// (nil: its lowest rate and the rate at index len/2). When the plan's
// estimate fits one hold the split says so (OneHold) and has no holds;
// anchor and anchorRates are then checked only when given. A trial that
// does not fit a hold, with the anchor trial its hold needs, is an error
// that points at trimming its ladder.
func (p *Plan) SplitHolds(hold time.Duration, anchor string, anchorRates []float64) (*HoldSplit, error) {
	if hold <= 0 {
		return nil, fmt.Errorf("bench: hold %s: want a positive length", hold)
	}
	h := &HoldSplit{Plan: p, Hold: hold, PerRep: 1}
	if len(p.Trials) == 0 {
		return nil, errors.New("bench: the plan has no trials to split")
	}
	fits := p.Estimate <= hold
	if fits && anchor == "" && anchorRates == nil {
		h.OneHold = true
		return h, nil
	}
	if err := h.setAnchor(anchor, anchorRates); err != nil {
		return nil, err
	}
	if fits {
		h.OneHold = true
		return h, nil
	}
	for rep := 1; rep <= p.Study.Run.Repetitions; rep++ {
		var trials []Trial
		for _, t := range p.Trials {
			if t.Rep == rep {
				trials = append(trials, t)
			}
		}
		holds, err := h.splitRep(trials)
		if err != nil {
			return nil, err
		}
		for _, hd := range holds {
			hd.Number = len(h.Holds) + 1
			hd.Rep = rep
			h.Holds = append(h.Holds, hd)
		}
		h.PerRep = len(holds)
	}
	return h, nil
}

// setAnchor resolves and checks the anchor and its rates.
func (h *HoldSplit) setAnchor(name string, rates []float64) error {
	var first []Trial // each model × variant once, in run order
	for _, t := range h.Plan.Trials {
		if t.Rep == 1 {
			first = append(first, t)
		}
	}
	if name == "" {
		name = defaultAnchor(first)
	}
	var names []string
	for _, t := range first {
		if !slices.Contains(names, t.Variant.Name) {
			names = append(names, t.Variant.Name)
		}
	}
	if !slices.Contains(names, name) {
		return fmt.Errorf("bench: anchor %q is not a variant of the study; its variants: %s", name, strings.Join(names, ", "))
	}
	ladders := map[string][]float64{} // model → the anchor's ladder
	for _, m := range h.Plan.Study.Models {
		i := slices.IndexFunc(first, func(t Trial) bool { return t.Model.Name == m.Name && t.Variant.Name == name })
		if i < 0 {
			return fmt.Errorf("bench: anchor %q: model %s does not run it (its variants: %s); the anchor must be a variant of every model", name, m.Name, strings.Join(m.Variants, ", "))
		}
		ladders[m.Name] = first[i].Rates
	}
	ladder := ladders[h.Plan.Study.Models[0].Name]
	if len(ladder) == 0 {
		return fmt.Errorf("bench: anchor %q has no rates", name)
	}
	given := rates != nil
	if !given {
		rates = []float64{ladder[0], ladder[len(ladder)/2]}
	}
	rates = slices.Clone(rates)
	sort.Float64s(rates)
	rates = slices.Compact(rates)
	if len(rates) == 0 {
		return fmt.Errorf("bench: anchor %q: no anchor rates given", name)
	}
	var errs []error
	for _, m := range h.Plan.Study.Models {
		l := ladders[m.Name]
		for _, r := range rates {
			if slices.Contains(l, r) {
				continue
			}
			fix := "pick the anchor rates from it"
			if !given {
				fix = "give anchor rates that every model's ladder has (--anchor-rates)"
			}
			errs = append(errs, fmt.Errorf("bench: anchor rate %g is not in the ladder of %s/%s %s: drift is measurable only at rates that every hold runs, and the hold with its whole ladder runs only those; %s",
				r, m.Name, name, fmtRates(l), fix))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	h.Anchor, h.AnchorRates = name, rates
	return nil
}

// anchorTrial is whole's trial at the anchor rates.
func (h *HoldSplit) anchorTrial(whole Trial) HoldTrial {
	t := whole
	t.Rates = slices.Clone(h.AnchorRates)
	t.Estimate, t.Measured = h.Plan.measured.estimate(t, h.Plan.Study.Run)
	t.Start, t.GPUs = 0, nil
	return HoldTrial{Trial: t, Anchor: true}
}

// holdOf builds the hold of trials[i:j] (one repetition's trials in run
// order): the trials, and after each model's the anchor trial when the
// hold does not run the model's anchor whole. ok is false when the hold would run the anchor whole for one
// model and at the anchor rates for another (one study file gives a
// variant one ladder).
func (h *HoldSplit) holdOf(trials []Trial, i, j int) (hd Hold, ok bool) {
	whole := map[string]bool{} // models whose anchor runs whole here
	for _, t := range trials[i:j] {
		if t.Variant.Name == h.Anchor {
			whole[t.Model.Name] = true
		}
	}
	anchored := false
	for k := i; k < j; {
		m := trials[k].Model.Name
		end := k
		for end < j && trials[end].Model.Name == m {
			hd.Trials = append(hd.Trials, HoldTrial{Trial: trials[end]})
			end++
		}
		if !whole[m] { // then the hold runs only some of m's trials: every model runs the anchor
			a := slices.IndexFunc(trials, func(t Trial) bool { return t.Model.Name == m && t.Variant.Name == h.Anchor })
			hd.Trials = append(hd.Trials, h.anchorTrial(trials[a]))
			anchored = true
		}
		k = end
	}
	if anchored && len(whole) > 0 {
		return hd, false
	}
	ts := make([]Trial, len(hd.Trials))
	for k, t := range hd.Trials {
		ts[k] = t.Trial
	}
	pr := project(ts, h.Plan.GPUs, nil, func(t Trial) time.Duration { return t.Estimate })
	for k := range hd.Trials {
		hd.Trials[k].Start, hd.Trials[k].GPUs = pr.Start[k], pr.GPUs[k]
	}
	hd.Estimate = pr.Wall
	return hd, true
}

// splitRep splits one repetition's trials (run order) into the fewest
// holds, the earlier holds as full as that allows.
func (h *HoldSplit) splitRep(trials []Trial) ([]Hold, error) {
	n := len(trials)
	// Every trial must fit a hold alone, with the anchor trial its hold
	// then needs; then a split exists (one hold per trial at worst).
	var errs []error
	for k := range trials {
		if hd, ok := h.holdOf(trials, k, k+1); ok && hd.Estimate > h.Hold {
			errs = append(errs, h.tooLong(hd))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	// fit[i][j-i-1]: the hold of trials[i:j], if it fits.
	fit := make([][]*Hold, n)
	for i := range n {
		fit[i] = make([]*Hold, n-i)
		for j := i + 1; j <= n; j++ {
			if hd, ok := h.holdOf(trials, i, j); ok && hd.Estimate <= h.Hold {
				fit[i][j-i-1] = &hd
			}
		}
	}
	// fewest[i]: the fewest holds that run trials[i:]; then from the first
	// trial on, each hold takes the most trials that keep that fewest.
	const none = 1 << 30
	fewest := make([]int, n+1)
	for i := n - 1; i >= 0; i-- {
		fewest[i] = none
		for j := i + 1; j <= n; j++ {
			if fit[i][j-i-1] != nil && fewest[j] < none {
				fewest[i] = min(fewest[i], fewest[j]+1)
			}
		}
	}
	var out []Hold
	for i := 0; i < n; {
		for j := n; j > i; j-- {
			if hd := fit[i][j-i-1]; hd != nil && fewest[j] == fewest[i]-1 {
				out = append(out, *hd)
				i = j
				break
			}
		}
	}
	return out, nil
}

// tooLong says that a one-trial hold does not fit and what to trim.
func (h *HoldSplit) tooLong(hd Hold) error {
	t := hd.Trials[0].Trial
	var anchor time.Duration
	with := ""
	if len(hd.Trials) > 1 {
		anchor = hd.Trials[1].Estimate
		with = fmt.Sprintf(", and with the anchor trial its hold also runs (%s at %s, ≈%s) ≈%s", h.Anchor, fmtRates(h.AnchorRates), toSecond(anchor), toSecond(hd.Estimate))
	}
	msg := fmt.Sprintf("bench: trial %d (%s) takes ≈%s%s, over the hold of %s by %s",
		t.Index+1, t.Key(), toSecond(t.Estimate), with, h.Hold, toSecond(hd.Estimate-h.Hold))
	switch {
	case anchor > h.Hold:
		msg += "; the anchor trial alone does not fit: fewer anchor rates, or a longer hold"
	default:
		if a := ladderAdvice([]Trial{t}, h.Plan.GPUs, h.Plan.Study.Run, h.Hold-anchor, h.Plan.measured); a != "" {
			msg += "; " + a
		} else {
			msg += "; not even one of its levels fits: a longer hold"
		}
	}
	return errors.New(msg)
}

// Print writes the split for people: per hold its trials and estimate,
// and the count of holds.
func (h *HoldSplit) Print(w io.Writer) {
	if h.OneHold {
		fmt.Fprintf(w, "\nholds: fits one hold of %s (≈%s): run the study as it is\n", h.Hold, roundDur(h.Plan.Estimate))
		return
	}
	reps := h.Plan.Study.Run.Repetitions
	fmt.Fprintf(w, "\nholds of %s: the estimate ≈%s is over one hold; the anchor %s runs at %s req/s in every hold that lacks its whole ladder\n",
		h.Hold, roundDur(h.Plan.Estimate), h.Anchor, strings.Trim(fmtRates(h.AnchorRates), "[]"))
	for _, hd := range h.Holds {
		rep := ""
		if reps > 1 {
			rep = fmt.Sprintf(", repetition %d", hd.Rep)
		}
		fmt.Fprintf(w, "  hold %d%s: ≈%s of %s\n", hd.Number, rep, toSecond(hd.Estimate), h.Hold)
		for _, t := range hd.Trials {
			note := ""
			if r := h.anchorRole(t); r != "" {
				note = "  " + r
			}
			fmt.Fprintf(w, "    %-24s %-18s %-28s ≈%s%s\n", t.Model.Name, t.Variant.Name, "rates "+fmtRates(t.Rates), toSecond(t.Estimate), note)
		}
	}
	fmt.Fprintf(w, "%s per repetition × %s = %s in all\n", plural(h.PerRep, "hold"), plural(reps, "repetition"), plural(len(h.Holds), "hold"))
}

// toSecond rounds d to the second, as hold estimates are printed.
func toSecond(d time.Duration) time.Duration { return d.Round(time.Second) }

// anchorRole says what a hold's trial is to the anchor: "anchor" (its
// extra trial at the anchor rates), "anchor, whole ladder" (its own trial)
// or "" (another variant).
func (h *HoldSplit) anchorRole(t HoldTrial) string {
	switch {
	case t.Anchor:
		return "anchor"
	case t.Variant.Name == h.Anchor:
		return "anchor, whole ladder"
	}
	return ""
}

// plural is "1 hold", "3 holds".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// holdFileName is the file of hold n: <study name>-hold<n>.toml, the name
// made safe for a path.
func (h *HoldSplit) holdFileName(n int) string {
	// The suffix after sanitizing: SanitizeName shortens a long name, which
	// would cut "-holdN" off and give every hold one file.
	return SanitizeName(h.Plan.Study.Name) + "-hold" + strconv.Itoa(n) + ".toml"
}

// WriteStudies writes one study file per hold into dir (made if missing),
// dir/<study name>-hold<N>.toml, and returns their paths. Each is the
// study restricted to its hold: the same trace, run settings, models,
// budgets and variant settings, [[models]] variants the hold's, the anchor
// variant's rates the anchor rates where it runs as the anchor trial, name
// suffixed -hold<N>, budget the hold, and repetitions 1. The study is
// written from the file as parsed (comments are not kept), under a header
// that says where it came from: the source file, command (when not ""),
// the hold's trials and the anchor. A file already there is left alone
// when it is byte-identical and is otherwise an error, before anything is
// written. Nothing is written for a split with OneHold or a plan with
// errors.
func (h *HoldSplit) WriteStudies(dir, command string) ([]string, error) {
	if h.OneHold {
		return nil, nil
	}
	if err := h.Plan.Err(); err != nil {
		return nil, fmt.Errorf("bench: no hold files written: %w", err)
	}
	if h.Plan.Study.raw == nil {
		return nil, errors.New("bench: no hold files written: the study was not read from a study file")
	}
	type file struct {
		path string
		text []byte
		same bool
	}
	var files []file
	var errs []error
	for _, hd := range h.Holds {
		text, err := h.studyText(hd, command)
		if err != nil {
			return nil, err
		}
		f := file{path: filepath.Join(dir, h.holdFileName(hd.Number)), text: text}
		old, err := os.ReadFile(f.path)
		switch {
		case err == nil && bytes.Equal(old, text):
			f.same = true
		case err == nil:
			errs = append(errs, fmt.Errorf("bench: %s exists and differs from hold %d of this split: remove it or write to another directory", f.path, hd.Number))
		case !errors.Is(err, os.ErrNotExist):
			errs = append(errs, fmt.Errorf("bench: %w", err))
		}
		files = append(files, f)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	paths := make([]string, len(files))
	for i, f := range files {
		paths[i] = f.path
		if f.same {
			continue
		}
		if err := os.WriteFile(f.path, f.text, 0o644); err != nil {
			return paths[:i], fmt.Errorf("bench: %w", err)
		}
	}
	return paths, nil
}

// studyText is hold hd's study file: a header, then the source as parsed,
// restricted to the hold. It parses the result, so that a file it writes
// always loads.
func (h *HoldSplit) studyText(hd Hold, command string) ([]byte, error) {
	s := h.Plan.Study
	doc := cloneTOML(s.raw).(map[string]any)
	doc["name"] = fmt.Sprintf("%s-hold%d", s.Name, hd.Number)
	doc["budget"] = h.Hold.String()
	run, _ := doc["run"].(map[string]any)
	if run == nil {
		run = map[string]any{}
		doc["run"] = run
	}
	if s.Run.Repetitions > 1 {
		run["repetitions"] = int64(1)
	}
	// The GPU lanes the split was estimated on (--gpus overrides the file's
	// run.gpus): the hold file runs on the same, or its estimate is not the
	// hold's.
	if len(h.Plan.GPUs) > 0 {
		run["gpus"] = strings.Join(h.Plan.GPUs, ",")
	} else {
		delete(run, "gpus")
	}
	// The hold's variants per model, and the models that run anchor trials.
	vars := map[string][]string{}
	atRates := false
	for _, t := range hd.Trials {
		vars[t.Model.Name] = append(vars[t.Model.Name], t.Variant.Name)
		atRates = atRates || t.Anchor
	}
	rawModels, _ := doc["models"].([]map[string]any)
	if len(rawModels) != len(s.Models) {
		return nil, fmt.Errorf("bench: hold %d: the study file's [[models]] do not match the study's", hd.Number)
	}
	var models []map[string]any
	used := map[string]bool{}
	for i, m := range s.Models {
		if vs := vars[m.Name]; len(vs) > 0 {
			rawModels[i]["variants"] = vs
			models = append(models, rawModels[i])
			for _, v := range vs {
				used[v] = true
			}
		}
	}
	doc["models"] = models
	variants, _ := doc["variants"].(map[string]any)
	for name := range variants {
		if !used[name] {
			delete(variants, name)
		}
	}
	if atRates {
		if variants == nil {
			variants = map[string]any{}
		}
		v, _ := variants[h.Anchor].(map[string]any)
		if v == nil {
			v = map[string]any{"preset": h.Anchor} // a bare preset name
			variants[h.Anchor] = v
		}
		v["rates"] = tomlRates(h.AnchorRates)
	}
	if len(variants) > 0 {
		doc["variants"] = variants
	} else {
		delete(doc, "variants")
	}

	var b bytes.Buffer
	h.header(&b, hd, command)
	if err := encodeStudy(&b, doc); err != nil {
		return nil, fmt.Errorf("bench: hold %d: %w", hd.Number, err)
	}
	if _, err := parseStudy(b.String()); err != nil {
		return nil, fmt.Errorf("bench: hold %d: the study file made for it does not parse: %w", hd.Number, err)
	}
	return b.Bytes(), nil
}

// header writes the comment that says where hold hd's file came from.
func (h *HoldSplit) header(w io.Writer, hd Hold, command string) {
	s := h.Plan.Study
	src := s.Path()
	if src == "" {
		src = "a study parsed from text"
	}
	fmt.Fprintf(w, "# Hold %d of %d of the study %q", hd.Number, len(h.Holds), s.Name)
	if reps := s.Run.Repetitions; reps > 1 {
		fmt.Fprintf(w, " (hold %d of %d of repetition %d of %d)", (hd.Number-1)%h.PerRep+1, h.PerRep, hd.Rep, reps)
	}
	fmt.Fprintf(w, ", generated from\n# %s", src)
	if command != "" {
		fmt.Fprintf(w, " by:\n#   %s", command)
	}
	fmt.Fprintf(w, "\n#\n# It runs, in ≈%s of a %s hold:\n", toSecond(hd.Estimate), h.Hold)
	// Where each model's anchor runs its whole ladder in this repetition.
	var models []string
	wholeIn := map[string]int{}
	for _, o := range h.Holds {
		for _, t := range o.Trials {
			if _, seen := wholeIn[t.Model.Name]; o.Rep == hd.Rep && t.Variant.Name == h.Anchor && !t.Anchor && !seen {
				wholeIn[t.Model.Name] = o.Number
				models = append(models, t.Model.Name)
			}
		}
	}
	where := ""
	switch len(models) {
	case 0:
	case 1:
		where = fmt.Sprintf(" (its whole ladder in hold %d)", wholeIn[models[0]])
	default:
		parts := make([]string, len(models))
		for i, m := range models {
			parts[i] = fmt.Sprintf("%s's in hold %d", m, wholeIn[m])
		}
		where = " (its whole ladder: " + strings.Join(parts, ", ") + ")"
	}
	for _, t := range hd.Trials {
		note := ""
		if r := h.anchorRole(t); r != "" {
			note = " (the " + r + ")"
		}
		fmt.Fprintf(w, "#   %s/%s at %s req/s, ≈%s%s\n", t.Model.Name, t.Variant.Name, strings.Trim(fmtRates(t.Rates), "[]"), toSecond(t.Estimate), note)
	}
	comment(w, fmt.Sprintf("The anchor is %s at %s req/s in every hold%s: its difference between holds measures the drift between machines. The trace, run settings, models, budgets and variant settings are the source's; its comments are not copied.",
		h.Anchor, strings.Trim(fmtRates(h.AnchorRates), "[]"), where))
	fmt.Fprintln(w)
}

// comment writes text as # lines of at most 80 columns (a longer word
// gets a line of its own).
func comment(w io.Writer, text string) {
	line := "#"
	for _, word := range strings.Fields(text) {
		if len(line) > 1 && len(line)+1+len(word) > 80 {
			fmt.Fprintln(w, line)
			line = "#"
		}
		line += " " + word
	}
	fmt.Fprintln(w, line)
}

// encodeStudy writes a study decoded without a schema as TOML: the top
// level's values in a study file's usual order, then its tables.
func encodeStudy(w io.Writer, doc map[string]any) error {
	var scalars, tables []string
	for _, k := range slices.Sorted(maps.Keys(doc)) {
		switch doc[k].(type) {
		case map[string]any, []map[string]any:
			tables = append(tables, k)
		default:
			scalars = append(scalars, k)
		}
	}
	first := func(keys []string, order ...string) []string {
		out := slices.DeleteFunc(slices.Clone(order), func(k string) bool { return !slices.Contains(keys, k) })
		for _, k := range keys {
			if !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
		return out
	}
	for _, k := range first(scalars, "name", "description", "results_dir", "reports_dir", "budget") {
		if err := encodeKey(w, k, doc[k]); err != nil {
			return err
		}
	}
	for _, k := range first(tables, "gpu", "trace", "run", "models", "slurm", "variants") {
		if _, err := io.WriteString(w, "\n"); err != nil {
			return err
		}
		if err := encodeKey(w, k, doc[k]); err != nil {
			return err
		}
	}
	return nil
}

// encodeKey writes one top-level key as TOML, sub-tables unindented.
func encodeKey(w io.Writer, k string, v any) error {
	enc := toml.NewEncoder(w)
	enc.Indent = ""
	return enc.Encode(map[string]any{k: v})
}

// tomlRates are rates as a study file writes them: whole ones as integers
// (11, not 11.0).
func tomlRates(rates []float64) []any {
	out := make([]any, len(rates))
	for i, r := range rates {
		if r == math.Trunc(r) && math.Abs(r) < 1<<53 {
			out[i] = int64(r)
		} else {
			out[i] = r
		}
	}
	return out
}

// cloneTOML copies a value decoded without a schema, so that editing the
// copy leaves the study's own untouched.
func cloneTOML(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = cloneTOML(e)
		}
		return out
	case []map[string]any:
		out := make([]map[string]any, len(v))
		for i, e := range v {
			out[i] = cloneTOML(e).(map[string]any)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = cloneTOML(e)
		}
		return out
	default:
		return v
	}
}
