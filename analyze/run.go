// Package analyze turns captures into the numbers and pictures of a
// benchmark: per-request metrics (TTFT, ITL, TPOT, E2E, normalized
// latency), per-group summaries (variant × rate × trial) with percentiles
// computed like `vllm bench serve`, cross-trial means with confidence
// intervals, CSV/JSON/vLLM-JSON exports, charts and a Markdown report.
//
// The metric definitions live here and only here; docs/vbanalyze.md
// documents them. Analysis is pure and deterministic: the same captures
// give the same bytes.
package analyze

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/vbench/vbench/capture"
	"github.com/vbench/vbench/metric"
)

// ErrMixedTraces is wrapped by the error of Analyze when the requests
// replayed different traces and Config.AllowMixed is off.
var ErrMixedTraces = errors.New("captures replayed different traces")

// Result is everything an analysis computed.
type Result struct {
	// Groups are the per-group summaries, sorted by variant, rate, trial.
	Groups []*Group `json:"groups"`
	// Aggregates merge the trials of each group (Config.By without trial).
	Aggregates []*Aggregate `json:"aggregates"`
	// Saturation holds each variant's sustained rate under the threshold.
	Saturation []Saturation `json:"saturation"`
	// Setup describes the inputs (from the captures' metadata and labels).
	Setup Setup `json:"setup"`
	// Warnings are sentences about the whole analysis (group warnings
	// are in each Group).
	Warnings []string `json:"warnings,omitempty"`
	// Damaged names the captures that were damaged: read as far as they
	// could be, a warning says what is lost, and Run returns an error
	// wrapping capture.ErrDamaged after writing everything.
	Damaged []string `json:"damaged,omitempty"`
	// Requests are the per-request metrics, in input order then arrival
	// order.
	Requests []metric.Request `json:"-"`

	series   map[string]*sampleSeries // by capture name
	spans    map[string][]span        // by capture name
	recorder map[string]recorderState // by capture name
	damage   []string                 // "capture: health" of each damaged capture
	// labelledModels are the requests' model labels (sorted).
	labelledModels []string
	// by is the grouping the groups were made with (Config.By).
	by []string
}

// AggregatesOf merges the trials of the groups keep accepts, as Aggregates
// merges all of them (the same grouping): e.g. the trials that ran on one
// machine, whose comparison no drift between machines touches.
func (res *Result) AggregatesOf(keep func(*Group) bool) []*Aggregate {
	var gs []*Group
	for _, g := range res.Groups {
		if keep(g) {
			gs = append(gs, g)
		}
	}
	return aggregate(gs, res.by)
}

// recorderState is what a capture's metadata says about its writers: how
// many did not close cleanly and what the clean ones dropped or lost, when
// (Unix ns; 0 = unknown) and the last write error.
type recorderState struct {
	known                 bool // some meta is version 2 or later (says either way)
	unclean               int
	dropped, lost, errors uint64
	firstLoss, lastLoss   int64
	lastError             string
}

func recorderOf(metas []capture.Meta) recorderState {
	var st recorderState
	for _, m := range metas {
		if m.Version < 2 {
			continue
		}
		st.known = true
		if m.Closed == 0 {
			st.unclean++
			continue
		}
		rt := m.Recorder
		if rt == nil {
			continue
		}
		st.dropped += rt.Dropped
		st.lost += rt.Lost
		st.errors += rt.Errors
		if rt.LastError != "" {
			st.lastError = rt.LastError
		}
		if rt.FirstLoss > 0 && (st.firstLoss == 0 || rt.FirstLoss < st.firstLoss) {
			st.firstLoss = rt.FirstLoss
		}
		st.lastLoss = max(st.lastLoss, rt.LastLoss)
	}
	return st
}

// lossSlack is how long after a request's end its record may still be
// dropped (Put after the response) or lost (the next commit). A loss span
// that ends before a group's window or starts more than this after it is
// marked "outside this group's window": a hint that the loss fell between
// levels, not a proof (a request cut after the window still counts).
const lossSlack = int64(5e9)

// recorderFigures fills the group's recorder columns and warnings from its
// captures' metadata.
func (res *Result) recorderFigures(g *Group) {
	// The totals are known only when every capture of the group says and
	// every writer closed cleanly.
	known := len(g.Captures) > 0
	var dropped, lost uint64
	for _, c := range g.Captures {
		st := res.recorder[c]
		known = known && st.known && st.unclean == 0
		dropped += st.dropped
		lost += st.lost
		g.CapturesUnclean += st.unclean
		if st.dropped+st.lost > 0 {
			g.Warnings = append(g.Warnings, lossWarning(c, st, g))
		}
		if st.unclean > 0 {
			g.Warnings = append(g.Warnings, fmt.Sprintf("capture %s: %d writer(s) did not close it cleanly (killed, crashed or still running): the last ~second of records may be missing and what the recorder dropped is unknown", c, st.unclean))
		}
	}
	g.RecorderDropped, g.RecorderLost = math.NaN(), math.NaN()
	if known {
		g.RecorderDropped, g.RecorderLost = float64(dropped), float64(lost)
	}
}

// lossWarning says what the recorder of capture c dropped and lost, when,
// and whether that was outside g's window.
func lossWarning(c string, st recorderState, g *Group) string {
	var b strings.Builder
	fmt.Fprintf(&b, "capture %s: the recorder dropped %d (queue full) and lost %d (failed writes or a full disk) records or samples", c, st.dropped, st.lost)
	if st.firstLoss > 0 {
		fmt.Fprintf(&b, " between %s and %s UTC", lossTime(st.firstLoss), lossTime(st.lastLoss))
		if g.WindowEnd > g.WindowStart && (st.lastLoss < g.WindowStart || st.firstLoss > g.WindowEnd+lossSlack) {
			b.WriteString(", outside this group's window")
		}
	}
	if st.errors > 0 {
		fmt.Fprintf(&b, "; %d failed writes, the last: %s", st.errors, st.lastError)
	}
	b.WriteString(": the figures may miss that traffic")
	return b.String()
}

func lossTime(ns int64) string {
	return time.Unix(0, ns).UTC().Format("2006-01-02 15:04:05.000")
}

// Setup describes what was analysed.
type Setup struct {
	Captures    []string `json:"captures"`
	Variants    []string `json:"variants"`
	Models      []string `json:"models,omitempty"`
	TraceHashes []string `json:"trace_hashes,omitempty"`
	// Tools lists "tool version" of each capture writer; Hosts the hosts.
	Tools []string `json:"tools,omitempty"`
	Hosts []string `json:"hosts,omitempty"`
	// Facts are the metadata's Extra values and labels, "key=value",
	// deduplicated and sorted (GPU, driver, versions, ...).
	Facts []string `json:"facts,omitempty"`
	// Records and Samples count what was read; Skipped counts records
	// that are not inference requests (not POST: /v1/models, /health, ...),
	// left out of every metric.
	Records int `json:"records"`
	Skipped int `json:"skipped"`
	Samples int `json:"samples"`
	// By and Window repeat the configuration; SLO and Saturation too.
	By         []string `json:"by"`
	Window     string   `json:"window"`
	SLO        string   `json:"slo,omitempty"`
	Saturation float64  `json:"saturation_threshold"`
}

// Analyze reads the captures and computes the result. A directory that
// holds captures below it stands for them (ExpandCaptures). It writes
// nothing.
//
// With the default grouping (no Config.By), captures of more than one
// model (their model label) are grouped by model too, model first: two
// models' requests under one variant name are never pooled. A warning says
// so.
func Analyze(ctx context.Context, cfg Config) (*Result, error) {
	return analyze(ctx, cfg, len(cfg.By) == 0)
}

// analyze is Analyze. With byModel (the default grouping), the requests
// are grouped by model first as they are read, and when they turn out to
// hold one model label at most, the model is taken out of the groups'
// keys again (unless unlabelled requests sit beside labelled ones: those
// groups are not merged, so the captures are read once more without it).
// The captures are read once in every other case.
func analyze(ctx context.Context, cfg Config, byModel bool) (*Result, error) {
	orig := cfg
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	plainBy := cfg.By
	if byModel {
		cfg.By = slices.Concat([]string{"model"}, cfg.By)
	}
	unlabelled := false // a request without a model label
	var expandNotes []string
	cfg.Captures, expandNotes = ExpandCaptures(cfg.Captures)
	res := &Result{series: map[string]*sampleSeries{}, spans: map[string][]span{}, recorder: map[string]recorderState{}}
	res.Warnings = append(res.Warnings, expandNotes...)
	groups := map[string]*groupAcc{}
	var order []*groupAcc
	// The content chunks of the record being measured: the gaps between
	// them (ITL) and the tokens each carried, by its arrival time.
	var gaps []float64
	var gapTokens []int
	var chunkAt []int64
	var chunkTokens []int
	var received int64
	m := Measurer{OnContent: func(at, gap time.Duration, tokens int) {
		if len(chunkAt) > 0 {
			gaps = append(gaps, gap.Seconds())
			gapTokens = append(gapTokens, tokens)
		}
		chunkAt = append(chunkAt, received+int64(at))
		chunkTokens = append(chunkTokens, tokens)
	}}
	facts := map[string]bool{}
	tools, hosts, models, hashes, variants := map[string]bool{}, map[string]bool{}, map[string]bool{}, map[string]bool{}, map[string]bool{}
	labelled := map[string]bool{} // the requests' model labels
	lastModel := ""
	keyParts := make([]string, len(cfg.By))
	for _, name := range cfg.Captures {
		if slices.Contains(res.Setup.Captures, name) {
			return nil, fmt.Errorf("analyze: capture %s given twice", name)
		}
		res.Setup.Captures = append(res.Setup.Captures, name)
		var spans []span
		metas, samples, health, err := source{name: name, stdin: cfg.Stdin}.read(ctx, func(rec *capture.Record) error {
			if rec.Method != "POST" && rec.Method != "" {
				res.Setup.Skipped++
				return nil
			}
			gaps, gapTokens, chunkAt, chunkTokens = gaps[:0], gapTokens[:0], chunkAt[:0], chunkTokens[:0]
			received = rec.Received
			r := m.Measure(rec, name)
			for i, f := range cfg.By {
				keyParts[i] = keyOf(&r, rec, f)
			}
			r.Key = strings.Join(keyParts, "/")
			end := r.EndUnix()
			first := end
			if r.ContentChunks > 0 {
				first = min(r.Start+int64(r.FirstContent), end)
			}
			spans = append(spans, span{start: r.Start, first: first, end: end})
			idx := len(res.Requests)
			res.Requests = append(res.Requests, r)
			a := groups[r.Key]
			if a == nil {
				labels := make(map[string]string, len(cfg.By))
				for i, f := range cfg.By {
					labels[f] = keyParts[i]
				}
				a = &groupAcc{
					g:        &Group{Key: r.Key, Labels: labels, Variant: r.Variant, Level: r.Level, Rate: r.Rate, Trial: r.Trial, Model: r.Model},
					captures: map[string]bool{}, hashes: map[string]bool{},
				}
				groups[r.Key] = a
				order = append(order, a)
			}
			a.captures[name] = true
			if a.g.Model == "" {
				a.g.Model = modelOf(rec.RequestBody)
			}
			if r.Warmup && cfg.Window != WindowAll {
				a.g.Warmup++
				return nil
			}
			a.g.Count++
			a.reqs = append(a.reqs, idx)
			a.hashes[r.TraceHash] = true
			hashes[r.TraceHash] = true
			variants[r.Variant] = true
			models[a.g.Model] = true
			if r.Model == "" {
				unlabelled = true
			} else {
				if r.Model != lastModel {
					labelled[r.Model], lastModel = true, r.Model
				}
				if a.g.Model != r.Model && !slices.Contains(a.mixed, r.Model) {
					a.mixed = append(a.mixed, r.Model)
				}
			}
			if r.Completed() {
				a.addTokenTimes(chunkAt, chunkTokens)
				if len(gaps) > 0 {
					a.addGaps(gaps, gapTokens)
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("analyze: %w", err)
		}
		if health != nil {
			if health.Damaged() {
				res.Damaged = append(res.Damaged, name)
				res.damage = append(res.damage, fmt.Sprintf("%s: %s", name, health))
				res.Warnings = append(res.Warnings, fmt.Sprintf("capture %s is damaged: %s: the figures cover only what could be read", name, health))
			} else {
				for _, n := range health.Notes {
					res.Warnings = append(res.Warnings, fmt.Sprintf("capture %s: %s", name, n))
				}
			}
		}
		res.spans[name] = spans
		res.series[name] = newSampleSeries(samples)
		res.Setup.Samples += len(samples)
		res.recorder[name] = recorderOf(metas)
		for _, m := range metas {
			tools[strings.TrimSpace(m.Tool+" "+m.ToolVersion)] = true
			hosts[m.Host] = true
			for k, v := range m.Extra {
				facts[k+"="+v] = true
			}
			for k, v := range m.Labels {
				facts[k+"="+v] = true
			}
		}
	}
	res.Setup.Records = len(res.Requests)
	res.Setup.Variants = sortedSet(variants)
	res.Setup.Models = sortedSet(models)
	res.labelledModels = sortedSet(labelled)
	switch {
	case !byModel:
	case len(labelled) >= 2:
		res.Warnings = append(res.Warnings, fmt.Sprintf("the captures hold %d models (%s): grouped by model too (%s)",
			len(labelled), strings.Join(res.labelledModels, ", "), strings.Join(cfg.By, ",")))
	case len(labelled) == 1 && unlabelled:
		return analyze(ctx, orig, false)
	default: // one model at most: the groups are the plain grouping's
		rekey := make(map[string]string, len(order))
		for _, a := range order {
			delete(a.g.Labels, "model")
			parts := make([]string, len(plainBy))
			for i, f := range plainBy {
				parts[i] = a.g.Labels[f]
			}
			rekey[a.g.Key] = strings.Join(parts, "/")
			a.g.Key = rekey[a.g.Key]
		}
		for i := range res.Requests {
			res.Requests[i].Key = rekey[res.Requests[i].Key]
		}
		cfg.By = plainBy
	}
	for _, a := range order {
		if len(a.mixed) > 0 {
			res.Warnings = append(res.Warnings, fmt.Sprintf("group %s pools the requests of models %s and %s: group by model too (--by model,%s)",
				a.g.Key, a.g.Model, strings.Join(a.mixed, ", "), strings.Join(cfg.By, ",")))
		}
	}
	res.Setup.TraceHashes = sortedSet(hashes)
	res.Setup.Tools = sortedSet(tools)
	res.Setup.Hosts = sortedSet(hosts)
	res.Setup.Facts = sortedSet(facts)
	res.Setup.By = cfg.By
	res.Setup.Window = cfg.Window
	res.Setup.SLO = cfg.SLO.String()
	res.Setup.Saturation = cfg.Saturation.Seconds()
	if len(res.Requests) == 0 {
		return nil, fmt.Errorf("analyze: %s: %w (is the capture empty, or did the proxy see no traffic?)", strings.Join(cfg.Captures, ", "), ErrNoRecords)
	}
	if len(res.Setup.TraceHashes) > 1 {
		msg := fmt.Sprintf("the requests replayed %d different traces (%s)", len(res.Setup.TraceHashes), strings.Join(res.Setup.TraceHashes, ", "))
		if !cfg.AllowMixed {
			return nil, fmt.Errorf("analyze: %w: %s; comparing them is meaningless unless you mean it: pass --allow-mixed", ErrMixedTraces, msg)
		}
		res.Warnings = append(res.Warnings, msg+": compared anyway (--allow-mixed)")
	}

	var warmOnly []string
	for _, a := range order {
		if a.g.Count == 0 {
			// only warm-up traffic (the replayer's preflight and warm-up
			// levels): nothing to measure
			// (the preflight, one request per endpoint before the load,
			// is no news)
			if a.g.Level != "preflight" {
				warmOnly = append(warmOnly, fmt.Sprintf("%s (%d)", a.g.Key, a.g.Warmup))
			}
			continue
		}
		spans, series := res.groupInputs(a)
		a.finish(res.Requests, &cfg, series, spans)
		res.recorderFigures(a.g)
		res.Groups = append(res.Groups, a.g)
	}
	slices.Sort(warmOnly)
	if len(warmOnly) > 0 {
		res.Warnings = append(res.Warnings, "groups with only warm-up requests, not reported: "+strings.Join(warmOnly, ", "))
	}
	if len(res.Groups) == 0 {
		return nil, fmt.Errorf("analyze: %s: %w: all %d requests are warm-up requests (use --window all to measure them)", strings.Join(cfg.Captures, ", "), ErrNoRecords, len(res.Requests))
	}
	sortGroups(res.Groups)
	res.by = slices.Clone(cfg.By)
	res.Aggregates = aggregate(res.Groups, cfg.By)
	res.Saturation = saturation(res.Aggregates, cfg.Saturation.Seconds())
	for _, g := range res.Groups {
		if g.Completed == 0 && g.Count > 0 {
			res.Warnings = append(res.Warnings, fmt.Sprintf("group %s: no request completed", g.Key))
		}
	}
	return res, nil
}

// addGaps adds one request's chunk gaps. The per-token list is kept apart
// only once a chunk carried other than one token: until then it equals the
// per-chunk list (saving memory on the common one-token stream).
func (a *groupAcc) addGaps(gaps []float64, tokens []int) {
	a.itl = append(a.itl, gaps...)
	if !a.split {
		if !slices.ContainsFunc(tokens, func(t int) bool { return t != 1 }) {
			return
		}
		a.split = true
		a.itlToken = slices.Clone(a.itl[:len(a.itl)-len(gaps)])
	}
	for i, g := range gaps {
		// A content chunk without token adds no per-token gap; a chunk
		// claiming more than maxChunkTokens (corrupt data: engines send a
		// few per chunk) is clamped so it cannot exhaust memory.
		t := min(tokens[i], maxChunkTokens)
		for range t {
			a.itlToken = append(a.itlToken, g/float64(t))
		}
	}
}

// modelOf returns the "model" of an OpenAI request body ("" when the body
// was not recorded or has none). Called until a group knows its model.
func modelOf(body []byte) string {
	if len(body) == 0 {
		return ""
	}
	var v struct {
		Model string `json:"model"`
	}
	if json.Unmarshal(body, &v) != nil {
		return ""
	}
	return v.Model
}

// addTokenTimes counts a completed request's output tokens into 1-second
// buckets of wall-clock time by the arrival (Unix ns) of the chunk that
// carried them.
func (a *groupAcc) addTokenTimes(at []int64, tokens []int) {
	if a.perSecond == nil {
		a.perSecond = map[int64]int64{}
	}
	// consecutive chunks mostly share a second: add to the map once per run
	bucket, run := int64(math.MinInt64), int64(0)
	for i, t := range at {
		if b := t / int64(nsPerSec); b != bucket {
			if run > 0 {
				a.perSecond[bucket] += run
			}
			bucket, run = b, 0
		}
		run += int64(min(tokens[i], maxChunkTokens))
	}
	if run > 0 {
		a.perSecond[bucket] += run
	}
}

const nsPerSec = 1e9

func secs(ns int64) float64 { return float64(ns) / nsPerSec }

// maxChunkTokens caps the tokens one chunk may add to the per-token ITL.
const maxChunkTokens = 4096

// groupInputs returns the exchanges and server samples of the captures a
// group came from.
func (res *Result) groupInputs(a *groupAcc) ([]span, *sampleSeries) {
	caps := sortedSet(a.captures)
	if len(caps) == 1 {
		return res.spans[caps[0]], res.series[caps[0]]
	}
	var spans []span
	var samples []capture.Sample
	for _, c := range caps {
		spans = append(spans, res.spans[c]...)
		for _, xs := range res.series[c].byName {
			samples = append(samples, xs...)
		}
	}
	return spans, newSampleSeries(samples)
}

// Aggregate merges the trials of a group: the mean of each per-trial value
// with its 95% confidence interval.
type Aggregate struct {
	// Key is the group key without the trial field.
	Key string `json:"key"`
	// Model is the model of its groups (one model when the grouping has
	// model; else that of the first group).
	Model   string  `json:"model,omitempty"`
	Variant string  `json:"variant"`
	Level   string  `json:"level"`
	Rate    float64 `json:"rate"`
	Trials  int     `json:"trials"`
	// Completed, Cut and Failed are totals over the trials.
	Completed int `json:"completed"`
	Cut       int `json:"cut"`
	Failed    int `json:"failed"`

	RequestThroughput metric.CI `json:"request_throughput"`
	OutputThroughput  metric.CI `json:"output_throughput"`
	Goodput           metric.CI `json:"goodput"`
	NormLatency       metric.CI `json:"norm_latency_mean"`
	// NormLatencyWithCut is the mean over trials of each trial's
	// normalized latency with its cut requests at their lower bound: what
	// saturation is decided on.
	NormLatencyWithCut metric.CI `json:"norm_latency_with_cut_mean"`
	TTFTMean           metric.CI `json:"ttft_mean"`
	TTFTP50            metric.CI `json:"ttft_p50"`
	TTFTP99            metric.CI `json:"ttft_p99"`
	TPOTMean           metric.CI `json:"tpot_mean"`
	ITLMean            metric.CI `json:"itl_mean"`
	E2EMean            metric.CI `json:"e2e_mean"`
	E2EP99             metric.CI `json:"e2e_p99"`
	InFlightMean       metric.CI `json:"inflight_mean"`
	DecodingMean       metric.CI `json:"decoding_mean"`
	Running            metric.CI `json:"running_mean"`
	Preemptions        metric.CI `json:"preemptions"`
	// The server's own figures (Group's Waiting, KVUsage and server
	// internals), the mean over trials that have them: NaN where the server
	// exposed none.
	Waiting       metric.CI `json:"waiting_mean"`
	KVUsage       metric.CI `json:"kv_usage_mean"`
	StepsPerS     metric.CI `json:"steps_per_s"`
	StepTime      metric.CI `json:"step_time_mean_s"`
	KVReserved    metric.CI `json:"kv_reserved_mean_tokens"`
	KVFilled      metric.CI `json:"kv_filled_mean_tokens"`
	KVLargestHole metric.CI `json:"kv_largest_hole_mean_tokens"`
}

func aggregate(groups []*Group, by []string) []*Aggregate {
	keep := make([]int, 0, len(by))
	for i, f := range by {
		if f != "trial" {
			keep = append(keep, i)
		}
	}
	byKey := map[string][]*Group{}
	var keys []string
	for _, g := range groups {
		// The group's value of each field (a value may hold "/", as a
		// model named org/name does, so the key is not split).
		k := make([]string, 0, len(keep))
		for _, i := range keep {
			k = append(k, g.Labels[by[i]])
		}
		key := strings.Join(k, "/")
		if _, ok := byKey[key]; !ok {
			keys = append(keys, key)
		}
		byKey[key] = append(byKey[key], g)
	}
	out := make([]*Aggregate, 0, len(keys))
	for _, key := range keys {
		gs := byKey[key]
		ci := func(f func(*Group) float64) metric.CI {
			xs := make([]float64, len(gs))
			for i, g := range gs {
				xs[i] = f(g)
			}
			return metric.MeanCI(xs)
		}
		a := &Aggregate{Key: key, Model: gs[0].Model, Variant: gs[0].Variant, Level: gs[0].Level, Rate: gs[0].Rate, Trials: len(gs)}
		for _, g := range gs {
			a.Completed += g.Completed
			a.Cut += g.Cut
			a.Failed += g.Failed
		}
		a.RequestThroughput = ci(func(g *Group) float64 { return g.RequestThroughput })
		a.OutputThroughput = ci(func(g *Group) float64 { return g.OutputThroughput })
		a.Goodput = ci(func(g *Group) float64 { return g.Goodput })
		a.NormLatency = ci(func(g *Group) float64 { return g.NormLatency.Mean })
		a.NormLatencyWithCut = ci(func(g *Group) float64 { return g.NormLatencyWithCut.Mean })
		a.TTFTMean = ci(func(g *Group) float64 { return g.TTFT.Mean })
		a.TTFTP50 = ci(func(g *Group) float64 { return g.TTFT.P50 })
		a.TTFTP99 = ci(func(g *Group) float64 { return g.TTFT.P99 })
		a.TPOTMean = ci(func(g *Group) float64 { return g.TPOT.Mean })
		a.ITLMean = ci(func(g *Group) float64 { return g.ITL.Mean })
		a.E2EMean = ci(func(g *Group) float64 { return g.E2E.Mean })
		a.E2EP99 = ci(func(g *Group) float64 { return g.E2E.P99 })
		a.InFlightMean = ci(func(g *Group) float64 { return g.InFlightMean })
		a.DecodingMean = ci(func(g *Group) float64 { return g.DecodingMean })
		a.Running = ci(func(g *Group) float64 { return g.Running })
		a.Preemptions = ci(func(g *Group) float64 { return g.Preemptions })
		a.Waiting = ci(func(g *Group) float64 { return g.Waiting })
		a.KVUsage = ci(func(g *Group) float64 { return g.KVUsage })
		a.StepsPerS = ci(func(g *Group) float64 { return g.StepsPerS })
		a.StepTime = ci(func(g *Group) float64 { return g.StepTime })
		a.KVReserved = ci(func(g *Group) float64 { return g.KVReserved })
		a.KVFilled = ci(func(g *Group) float64 { return g.KVFilled })
		a.KVLargestHole = ci(func(g *Group) float64 { return g.KVLargestHole })
		out = append(out, a)
	}
	slices.SortStableFunc(out, func(x, y *Aggregate) int {
		return cmp.Or(cmp.Compare(x.Variant, y.Variant), CompareLevels(x.Level, x.Rate, y.Level, y.Rate), cmp.Compare(x.Key, y.Key))
	})
	return out
}

// Saturation is the highest rate a variant sustains: the highest rate
// level such that the mean normalized latency — with the requests cut at
// the drain deadline counted at their lower bound (NormLatencyWithCut) —
// stays under the threshold, and at most maxFailedShare of the measured
// requests failed, at that level and at every lower level (NaN when even
// the lowest level is over). Cut requests are censored, not failed: a few
// long requests outlasting the drain do not make a level saturated, while
// a queue that grows without bound does, through their latency.
type Saturation struct {
	Variant string  `json:"variant"`
	Rate    float64 `json:"rate"`
	Level   string  `json:"level,omitempty"`
	// NormLatency is the normalized latency (with cut requests) at that
	// rate.
	NormLatency float64 `json:"norm_latency"`
	// Over reports that even the lowest rate exceeded the threshold;
	// Never that the highest measured rate stayed under it (the real
	// saturation rate may be higher).
	Over  bool `json:"over"`
	Never bool `json:"never_saturated"`
	// Next is the first measured rate not sustained (the lowest one when
	// Over; 0 when Never): the knee lies between Rate (0 when Over) and it.
	Next float64 `json:"next_rate,omitempty"`
	// Limit says why the next level is not sustained ("" when Never).
	Limit string `json:"limit,omitempty"`
}

// maxFailedShare is the largest share of failed requests a sustained
// rate level may have.
const maxFailedShare = 0.01

// failedShare is the share of the measured requests that failed (cut ones
// are censored, not failed).
func failedShare(a *Aggregate) float64 {
	if n := a.Completed + a.Cut + a.Failed; n > 0 {
		return float64(a.Failed) / float64(n)
	}
	return 0
}

// Sustains reports whether an aggregate's level is under the threshold
// and why not.
func Sustains(a *Aggregate, threshold float64) (bool, string) {
	if !(a.NormLatencyWithCut.Mean <= threshold) {
		why := fmt.Sprintf("at %s req/s the normalized latency is %.4f s/token", fmtNum(a.Rate, -1), a.NormLatencyWithCut.Mean)
		if a.Cut > 0 {
			why += fmt.Sprintf(" counting its %d cut requests at their lower bound (%.4f over completed ones)", a.Cut, a.NormLatency.Mean)
		}
		return false, why
	}
	if f := failedShare(a); f > maxFailedShare {
		return false, fmt.Sprintf("at %s req/s %.1f%% of the requests failed", fmtNum(a.Rate, -1), 100*f)
	}
	return true, ""
}

// SaturationAt is each variant's sustained rate among the aggregates at
// another normalized-latency threshold (s/token) than the analysis's own
// (Result.Saturation): the same rule, for a second view of one study.
func SaturationAt(aggs []*Aggregate, threshold float64) []Saturation {
	return saturation(aggs, threshold)
}

// RateRatio is x's sustained rate over y's and what the number is: bound
// "" when both crossed the threshold (as exact as their ladders), "≥" a
// lower bound (x never crossed it), "≤" an upper bound (y never did). ok
// is false when no ratio means anything: either sustained none of its
// rates, or neither crossed.
func RateRatio(x, y Saturation) (ratio float64, bound string, ok bool) {
	if x.Over || y.Over || !(y.Rate > 0) || x.Never && y.Never {
		return 0, "", false
	}
	switch {
	case x.Never:
		bound = "≥"
	case y.Never:
		bound = "≤"
	}
	return x.Rate / y.Rate, bound, true
}

func saturation(aggs []*Aggregate, threshold float64) []Saturation {
	var out []Saturation
	byVariant := map[string][]*Aggregate{}
	var names []string
	for _, a := range aggs {
		if a.Rate <= 0 || math.IsNaN(a.NormLatencyWithCut.Mean) {
			continue
		}
		if _, ok := byVariant[a.Variant]; !ok {
			names = append(names, a.Variant)
		}
		byVariant[a.Variant] = append(byVariant[a.Variant], a)
	}
	slices.Sort(names)
	for _, v := range names {
		as := byVariant[v] // sorted by rate already
		s := Saturation{Variant: v, Rate: math.NaN(), NormLatency: math.NaN()}
		for _, a := range as {
			if ok, why := Sustains(a, threshold); !ok {
				s.Limit, s.Next = why, a.Rate
				break
			}
			s.Rate, s.Level, s.NormLatency = a.Rate, a.Level, a.NormLatencyWithCut.Mean
		}
		s.Over = math.IsNaN(s.Rate)
		s.Never = !s.Over && s.Rate == as[len(as)-1].Rate
		out = append(out, s)
	}
	return out
}

// DamageError is nil when every capture read whole, else an error wrapping
// capture.ErrDamaged that names each damaged capture and what was wrong:
// Run returns it after writing everything.
func (res *Result) DamageError() error {
	if len(res.damage) == 0 {
		return nil
	}
	return fmt.Errorf("analyze: %w: %s; the results cover what could be read", capture.ErrDamaged, strings.Join(res.damage, "; "))
}

// AllWarnings returns the analysis warnings followed by each group's,
// prefixed with the group key.
func (res *Result) AllWarnings() []string {
	out := slices.Clone(res.Warnings)
	for _, g := range res.Groups {
		for _, w := range g.Warnings {
			out = append(out, g.Key+": "+w)
		}
	}
	return out
}
