package synth

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"testing"

	"github.com/vbench/vbench/trace"
)

// Published means of the vLLM paper (Kwon et al., SOSP 2023, Fig. 11),
// as recorded in shared/data/vllm-paper/published_stats.json.
var published = map[string][2]float64{
	"sharegpt": {161.31, 337.99},
	"alpaca":   {19.31, 58.45},
}

func TestProfileMeansMatchPublished(t *testing.T) {
	// When the shared data is present, check the constants above against it.
	if b, err := os.ReadFile("../../shared/data/vllm-paper/published_stats.json"); err == nil {
		var v struct {
			D map[string]json.RawMessage `json:"datasets_fig11"`
		}
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
		for name, want := range published {
			var got struct {
				In  float64 `json:"input_mean_tokens"`
				Out float64 `json:"output_mean_tokens"`
			}
			if err := json.Unmarshal(v.D[name], &got); err != nil {
				t.Fatal(err)
			}
			if got.In != want[0] || got.Out != want[1] {
				t.Errorf("published_stats.json %s = %v/%v, test has %v", name, got.In, got.Out, want)
			}
		}
	}
	for name, want := range published {
		p, err := BuiltinProfile(name)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Pairs) < 1000 {
			t.Errorf("%s: only %d pairs", name, len(p.Pairs))
		}
		in, out := p.Means()
		if d := math.Abs(in-want[0]) / want[0]; d > 0.10 {
			t.Errorf("%s: input mean %.2f is %.1f%% from the published %.2f (limit 10%%)", name, in, 100*d, want[0])
		}
		if d := math.Abs(out-want[1]) / want[1]; d > 0.10 {
			t.Errorf("%s: output mean %.2f is %.1f%% from the published %.2f (limit 10%%)", name, out, 100*d, want[1])
		}
		for i, q := range p.Pairs {
			if !DefaultFilter().Keep(q.In, q.Out) {
				t.Fatalf("%s: pair %d (%d, %d) fails vLLM's filter", name, i, q.In, q.Out)
			}
		}
	}
	// The ratios the paper stresses: ShareGPT prompts ~8.4x and outputs ~5.8x Alpaca's.
	s, _ := BuiltinProfile("sharegpt")
	a, _ := BuiltinProfile("alpaca")
	si, so := s.Means()
	ai, ao := a.Means()
	if r := si / ai; r < 7 || r > 10 {
		t.Errorf("sharegpt/alpaca input ratio %.2f, paper 8.35", r)
	}
	if r := so / ao; r < 4.8 || r > 6.8 {
		t.Errorf("sharegpt/alpaca output ratio %.2f, paper 5.78", r)
	}
}

func TestProfilesAreJoint(t *testing.T) {
	// A joint profile keeps pairs: the pairs must not be the sorted
	// marginals zipped together (which would give correlation ~1).
	for _, name := range Profiles() {
		p, _ := BuiltinProfile(name)
		in := make([]float64, len(p.Pairs))
		out := make([]float64, len(p.Pairs))
		for i, q := range p.Pairs {
			in[i], out[i] = float64(q.In), float64(q.Out)
		}
		if r := pearson(in, out); math.Abs(r) > 0.5 {
			t.Errorf("%s: correlation %.3f looks like zipped marginals", name, r)
		}
	}
	if _, err := BuiltinProfile("nope"); err == nil {
		t.Error("unknown profile accepted")
	}
}

func TestSampledLengthMeansMatchProfile(t *testing.T) {
	for _, name := range Profiles() {
		cfg := DefaultConfig()
		cfg.Dataset, cfg.Requests = name, 20000
		s, err := New(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		var in, out float64
		var req trace.Request
		n := 0
		for s.Next(&req) {
			in += float64(req.InputTokens)
			out += float64(req.OutputTokens)
			if len(req.PromptTokenIDs) != int(req.InputTokens) {
				t.Fatalf("request %d: %d token ids for %d input tokens", req.Index, len(req.PromptTokenIDs), req.InputTokens)
			}
			n++
		}
		p, _ := BuiltinProfile(name)
		pi, po := p.Means()
		in, out = in/float64(n), out/float64(n)
		if math.Abs(in-pi)/pi > 0.02 || math.Abs(out-po)/po > 0.02 {
			t.Errorf("%s: sampled means %.2f/%.2f, profile %.2f/%.2f (limit 2%%)", name, in, out, pi, po)
		}
	}
}
