package analyze

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vbench/vbench/capture"
)

// TestTwoModelsOneVariantName: captures of two models whose variants share
// a name (a dense and an MoE study, both "vllm-page") are grouped by model
// too under the default grouping, never pooled, with a warning; under an
// explicit grouping without model each pooled group is named in a warning.
func TestTwoModelsOneVariantName(t *testing.T) {
	dir := t.TempDir()
	var caps []string
	for i, model := range []string{"dense", "moe"} {
		var recs []*capture.Record
		for k := range 4 {
			r := tagged(uint64(k+1), t0+int64(k)*100*ms)
			r.Labels = map[string]string{"variant": "vllm-page", "model": model}
			// The MoE model's requests take twice as long.
			end := int64(200 * (i + 1))
			r.Chunks = []capture.Chunk{chunk(end/2, 1, 1, 1), chunk(end, 1, 1, 2)}
			r.CompletionTokens, r.End = 2, end*ms
			recs = append(recs, r)
		}
		path := filepath.Join(dir, model+".jsonl")
		writeDump(t, path, recs, nil, []capture.Meta{{Version: 1, Tool: "vbproxy", ToolVersion: "test", Started: t0 - 1000*ms}})
		caps = append(caps, path)
	}
	res, err := Analyze(context.Background(), Config{Captures: caps})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Setup.By, []string{"model", "variant", "rate", "trial"}) || len(res.Groups) != 2 {
		t.Fatalf("grouped by %v into %d groups; want model,variant,rate,trial and 2", res.Setup.By, len(res.Groups))
	}
	for _, g := range res.Groups {
		want := map[string]float64{"dense": 0.2, "moe": 0.4}[g.Model]
		if g.Completed != 4 || g.E2E.Mean < want-1e-9 || g.E2E.Mean > want+1e-9 {
			t.Errorf("group %s (model %q): %d completed, E2E mean %v; want 4, %v", g.Key, g.Model, g.Completed, g.E2E.Mean, want)
		}
	}
	if !slices.ContainsFunc(res.Warnings, func(w string) bool {
		return strings.Contains(w, "the captures hold 2 models (dense, moe): grouped by model too")
	}) {
		t.Errorf("no warning of the regrouping: %q", res.Warnings)
	}

	// Asked to pool them: done, and said.
	res, err = Analyze(context.Background(), Config{Captures: caps, By: []string{"variant", "rate", "trial"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Groups) != 1 || res.Groups[0].Completed != 8 {
		t.Fatalf("%d groups; want 1 of 8 requests", len(res.Groups))
	}
	if !slices.ContainsFunc(res.Warnings, func(w string) bool {
		return strings.Contains(w, "pools the requests of models dense and moe: group by model too (--by model,variant,rate,trial)")
	}) {
		t.Errorf("no warning of the pooled group: %q", res.Warnings)
	}

	// One labelled model beside unlabelled requests of the same variant:
	// the default grouping pools them, as before (nothing tells them apart).
	var recs []*capture.Record
	for k := range 2 {
		r := tagged(uint64(k+1), t0+int64(k)*100*ms)
		r.Labels = map[string]string{"variant": "vllm-page"}
		r.Chunks = []capture.Chunk{chunk(100, 1, 1, 1), chunk(200, 1, 1, 2)}
		r.CompletionTokens, r.End = 2, 200*ms
		recs = append(recs, r)
	}
	plain := filepath.Join(dir, "plain.jsonl")
	writeDump(t, plain, recs, nil, []capture.Meta{{Version: 1, Tool: "vbproxy", ToolVersion: "test", Started: t0 - 1000*ms}})
	res, err = Analyze(context.Background(), Config{Captures: []string{caps[0], plain}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Setup.By, DefaultBy) || len(res.Groups) != 1 || res.Groups[0].Completed != 6 || res.Groups[0].Key != "vllm-page/1/1" {
		t.Errorf("labelled and unlabelled: by %v, %d groups (%+v); want the default grouping, one group of 6", res.Setup.By, len(res.Groups), res.Groups[0].Key)
	}

	// One model: the default grouping, no warning.
	res, err = Analyze(context.Background(), Config{Captures: caps[:1]})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Setup.By, DefaultBy) || slices.ContainsFunc(res.Warnings, func(w string) bool { return strings.Contains(w, "model") }) {
		t.Errorf("one model: by %v, warnings %q", res.Setup.By, res.Warnings)
	}
	// Its keys are the plain grouping's, the requests' too.
	if len(res.Groups) != 1 || res.Groups[0].Key != "vllm-page/1/1" || res.Requests[0].Key != "vllm-page/1/1" || len(res.Aggregates) != 1 || res.Aggregates[0].Key != "vllm-page/1" {
		t.Errorf("one model: group %q, request %q, aggregates %d", res.Groups[0].Key, res.Requests[0].Key, len(res.Aggregates))
	}
}

// TestAggregateModelWithSlash: a model named org/name (as Hugging Face
// names are) keeps its aggregates apart by rate: the aggregate key is made
// from each group's fields, not by splitting its key at "/".
func TestAggregateModelWithSlash(t *testing.T) {
	var recs []*capture.Record
	id := uint64(0)
	for _, level := range []string{"1", "2"} {
		for _, trial := range []string{"1", "2"} {
			for k := range 3 {
				id++
				r := tagged(id, t0+int64(id)*50*ms)
				r.Labels = map[string]string{"variant": "v", "model": "org/m"}
				r.Tags.Level, r.Tags.Trial = level, trial
				r.Tags.Rate = map[string]float64{"1": 1, "2": 2}[level]
				r.Chunks = []capture.Chunk{chunk(50, 1, 1, 1), chunk(int64(100*(k+1)), 1, 1, 2)}
				r.CompletionTokens, r.End = 2, int64(100*(k+1))*ms
				recs = append(recs, r)
			}
		}
	}
	path := filepath.Join(t.TempDir(), "slash.jsonl")
	writeDump(t, path, recs, nil, []capture.Meta{{Version: 1, Tool: "vbproxy", ToolVersion: "test", Started: t0 - 1000*ms}})
	res, err := Analyze(context.Background(), Config{Captures: []string{path}, By: []string{"model", "variant", "rate", "trial"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Groups) != 4 || len(res.Aggregates) != 2 {
		t.Fatalf("%d groups, %d aggregates; want 4, 2 (one per rate)", len(res.Groups), len(res.Aggregates))
	}
	for _, a := range res.Aggregates {
		if a.Trials != 2 || a.Model != "org/m" || a.Key != "org/m/v/"+a.Level {
			t.Errorf("aggregate %q: model %q, level %s, %d trials; want org/m, 2 trials, key org/m/v/LEVEL", a.Key, a.Model, a.Level, a.Trials)
		}
	} // AggregatesOf: all the groups give Aggregates again; one trial's give
	// the same keys over that trial alone.
	all := res.AggregatesOf(func(*Group) bool { return true })
	if a, b := fmt.Sprint(keysOf(all)), fmt.Sprint(keysOf(res.Aggregates)); a != b || all[0].NormLatency.Mean != res.Aggregates[0].NormLatency.Mean {
		t.Errorf("AggregatesOf(all): %s, want %s", a, b)
	}
	one := res.AggregatesOf(func(g *Group) bool { return g.Trial == "1" })
	if len(one) != 2 || one[0].Trials != 1 || one[0].Key != "org/m/v/1" || one[0].Model != "org/m" {
		t.Fatalf("AggregatesOf(trial 1): %d aggregates, first %+v", len(one), one[0])
	}
	for _, g := range res.Groups {
		if g.Trial == "1" && g.Level == "1" && one[0].NormLatency.Mean != g.NormLatency.Mean {
			t.Errorf("AggregatesOf(trial 1) at level 1: norm latency %g, want the trial's %g", one[0].NormLatency.Mean, g.NormLatency.Mean)
		}
	}
}

func keysOf(as []*Aggregate) []string {
	var ks []string
	for _, a := range as {
		ks = append(ks, a.Key)
	}
	return ks
}
