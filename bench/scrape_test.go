package bench

import (
	"slices"
	"strings"
	"testing"

	"github.com/vbench/vbench/backends"
)

// TestScrapeMetricsPresetAndOverride: the torch-baseline preset stores
// vbtorch:* by default, a variant's scrape_metrics replaces the preset's,
// the level's replay configuration carries them to the embedded proxy, and
// a malformed pattern is a study error.
func TestScrapeMetricsPresetAndOverride(t *testing.T) {
	s, err := ParseStudy(`
name = "t"
[trace]
path = "trace.bin"
[run]
rates = [1]
duration = "10s"
[[models]]
name = "m"
model = "m"
variants = ["torch-baseline", "mine", "none"]
[variants.mine]
preset = "torch-baseline"
scrape_metrics = ["vbtorch:steps", "vllm:iteration_tokens_total"]
[variants.none]
preset = "torch-baseline"
scrape_metrics = []
`)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := s.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"vbtorch:*"}, {"vbtorch:steps", "vllm:iteration_tokens_total"}, {}}
	for i, v := range vs[0] {
		if !slices.Equal(v.Spec.ScrapeMetrics, want[i]) {
			t.Errorf("variant %s: scrape_metrics %q; want %q", v.Name, v.Spec.ScrapeMetrics, want[i])
		}
	}
	b, err := backends.New(vs[0][1].Spec, backends.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ls := levelConfig(s, s.Models[0], vs[0][1], "1", b, t.TempDir(), "run", "trial", nil)
	if !slices.Equal(ls.record.ScrapeMetrics, want[1]) || ls.record.ScrapeInterval <= 0 {
		t.Errorf("levelConfig: scrape %v every %v; want %q", ls.record.ScrapeMetrics, ls.record.ScrapeInterval, want[1])
	}
	if p, _ := backends.Preset(backends.PresetTorchBaseline); !slices.Equal(p.ScrapeMetrics, want[0]) {
		t.Errorf("an override leaked into the preset table: %q", p.ScrapeMetrics)
	}

	_, err = ParseStudy(`
name = "t"
[trace]
path = "trace.bin"
[run]
rates = [1]
duration = "10s"
[[models]]
name = "m"
model = "m"
variants = ["bad"]
[variants.bad]
preset = "sim-paged"
scrape_metrics = ["vbsim:*", "9x", "*"]
`)
	if err == nil || !strings.Contains(err.Error(), `"9x"`) || !strings.Contains(err.Error(), `"*"`) {
		t.Errorf("bad scrape_metrics: err %v; want both patterns named", err)
	}
}
