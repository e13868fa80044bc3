package backends_test

import (
	"fmt"

	"github.com/vbench/vbench/backends"
)

// A variant is a backend kind plus settings; the presets are the study's
// variants (vbbench presets prints them). New turns a Spec into a Backend
// whose Prepare, Start, WaitHealthy and Stop run the server's life cycle.
func ExamplePreset() {
	for _, name := range []string{"torch-baseline", "vllm-page", "sim-contiguous"} {
		spec, err := backends.Preset(name)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("%s: kind %s, scrape %v\n", name, spec.Kind, spec.ScrapeMetrics)
	}
	// Output:
	// torch-baseline: kind torch, scrape [vbtorch:*]
	// vllm-page: kind vllm, scrape [vllm:iteration_tokens_total vllm:prefix_cache_queries vllm:prefix_cache_hits]
	// sim-contiguous: kind sim, scrape [vbsim:*]
}
