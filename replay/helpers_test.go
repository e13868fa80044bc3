package replay

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/vbench/vbench/internal/testserver"
	"github.com/vbench/vbench/trace"
)

// testTrace returns n requests with Poisson arrivals at mean rate 1/s
// (seeded), alternating completions text, token ids and chat prompts.
func testTrace(n int, outTokens int32) (trace.Header, []trace.Request) {
	rng := rand.New(rand.NewPCG(7, uint64(n)))
	reqs := make([]trace.Request, n)
	var t time.Duration
	for i := range reqs {
		if i > 0 {
			t += time.Duration(rng.ExpFloat64() * float64(time.Second))
		}
		r := trace.Request{Index: int64(i), Offset: t, Endpoint: trace.EndpointCompletions, InputTokens: 4, OutputTokens: outTokens,
			Sampling: trace.Sampling{MaxTokens: outTokens, IgnoreEOS: true}}
		switch i % 3 {
		case 0:
			r.Prompt = "prompt number " + string(rune('a'+i%26))
		case 1:
			r.PromptTokenIDs = []int32{1, 2, int32(i)}
		case 2:
			r.Endpoint = trace.EndpointChat
			r.Messages = []trace.Message{{Role: "user", Content: "hello"}}
		}
		reqs[i] = r
	}
	hdr := trace.Header{Generator: "replay-test", MeanRate: 1, Arrival: trace.ArrivalPoisson, Count: int64(n), Span: t}
	hdr.Hash[0], hdr.Hash[31] = 0xab, 0xcd
	return hdr, reqs
}

// constTrace returns n requests exactly gap apart (mean rate 1/gap).
func constTrace(n int, gap time.Duration, outTokens int32) (trace.Header, []trace.Request) {
	hdr, reqs := testTrace(n, outTokens)
	for i := range reqs {
		reqs[i].Offset = time.Duration(i) * gap
	}
	hdr.MeanRate = float64(time.Second) / float64(gap)
	hdr.Arrival = trace.ArrivalConstant
	return hdr, reqs
}

func startServer(t testing.TB, cfg testserver.Config) *testserver.Server {
	t.Helper()
	s, err := testserver.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
