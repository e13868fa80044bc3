package testserver

import (
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/vbench/vbench/trace"
)

// Trace returns n requests of out output tokens with Poisson arrivals at
// mean rate 1/s (seeded by n), alternating completions text, token ids
// and chat prompts: the trace the replayer's and recorder's tests send.
func Trace(n int, out int32) (trace.Header, []trace.Request) {
	rng := rand.New(rand.NewPCG(7, uint64(n)))
	reqs := make([]trace.Request, n)
	var at time.Duration
	for i := range reqs {
		if i > 0 {
			at += time.Duration(rng.ExpFloat64() * float64(time.Second))
		}
		r := trace.Request{Index: int64(i), Offset: at, Endpoint: trace.EndpointCompletions, InputTokens: 4, OutputTokens: out,
			Sampling: trace.Sampling{MaxTokens: out, IgnoreEOS: true}}
		switch i % 3 {
		case 0:
			r.Prompt = "prompt " + strconv.Itoa(i)
		case 1:
			r.PromptTokenIDs = []int32{1, 2, int32(i)}
		case 2:
			r.Endpoint = trace.EndpointChat
			r.Messages = []trace.Message{{Role: "user", Content: "hello"}}
		}
		reqs[i] = r
	}
	hdr := trace.Header{Generator: "testserver", MeanRate: 1, Arrival: trace.ArrivalPoisson, Count: int64(n), Span: at}
	hdr.Hash[0], hdr.Hash[31] = 0xab, 0xcd
	return hdr, reqs
}
