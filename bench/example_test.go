package bench_test

import (
	"context"
	"fmt"

	"github.com/vbench/vbench/bench"
)

// A study is a TOML file: the trace, the rates, the models and their
// variants. ParseStudy (LoadStudy for a file) reads it strictly: every
// problem at once, unknown keys included. MakePlan resolves the matrix,
// checks each model against the GPU and the trace against the rates, and
// estimates the time; Run runs it.
func ExampleMakePlan() {
	s, err := bench.ParseStudy(`
name = "example"
[trace]
path = "trace.bin"
generate = ["vbsynth", "--dataset", "sharegpt", "--span", "10m", "-o", "{path}"]
[run]
rates = [2, 8, 24]
duration = "8s"
[[models]]
name = "sim-8b"
model = "sim"
variants = ["sim-paged", "sim-contiguous"]
`)
	if err != nil {
		fmt.Println(err)
		return
	}
	p, err := bench.MakePlan(context.Background(), s)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, t := range p.Trials {
		fmt.Println(t.Key(), t.Variant.Spec.Kind, t.Rates)
	}
	fmt.Println("errors:", len(p.Errors))
	// Output:
	// sim-8b/sim-paged/rep1 sim [2 8 24]
	// sim-8b/sim-contiguous/rep1 sim [2 8 24]
	// errors: 0
}
