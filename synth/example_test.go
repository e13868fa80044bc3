package synth_test

import (
	"context"
	"fmt"

	"github.com/vbench/vbench/synth"
	"github.com/vbench/vbench/trace"
)

// New draws requests from the embedded ShareGPT length profile with Poisson
// arrivals at a mean of 1 request/s; the same configuration gives the same
// requests (and bytes) every time. Write sends them to a trace file
// (trace.Create); Next draws them one by one.
func ExampleNew() {
	cfg := synth.DefaultConfig() // ShareGPT profile, Poisson, seed 1, token-id prompts
	cfg.Requests = 3
	s, err := synth.New(context.Background(), cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(s.Header().Dataset, s.Header().Arrival, s.Header().MeanRate)
	var req trace.Request
	for s.Next(&req) {
		fmt.Printf("request %d at %v: %d prompt tokens, %d output tokens (max_tokens %d, ignore_eos %v)\n",
			req.Index, req.Offset.Round(1e6), req.InputTokens, req.OutputTokens, req.Sampling.MaxTokens, req.Sampling.IgnoreEOS)
	}
	// Output:
	// sharegpt poisson 1
	// request 0 at 0s: 150 prompt tokens, 74 output tokens (max_tokens 74, ignore_eos true)
	// request 1 at 483ms: 8 prompt tokens, 369 output tokens (max_tokens 369, ignore_eos true)
	// request 2 at 1.478s: 52 prompt tokens, 7 output tokens (max_tokens 7, ignore_eos true)
}
