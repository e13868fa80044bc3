package replay_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"time"

	"github.com/vbench/vbench/backends/sim"
	"github.com/vbench/vbench/replay"
	"github.com/vbench/vbench/trace"
)

// Run plays a trace open loop at each rate against a server (here a
// simulated engine). Every level sends the same requests in the same order:
// a synthesized trace has a mean rate of 1 request/s, so level R plays it R
// times faster, cut at Duration. The result holds what was sent and how it
// went, and the replayer's own lateness (lag).
func ExampleRun() {
	engine, err := sim.New(sim.Config{Preset: "tiny", Speed: 100})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer engine.Close()
	srv := httptest.NewServer(engine)
	defer srv.Close()

	var reqs []trace.Request
	for i := range 40 {
		reqs = append(reqs, trace.Request{Index: int64(i), Offset: time.Duration(i) * time.Second, Endpoint: trace.EndpointCompletions,
			PromptTokenIDs: []int32{1000, 1001, 1002}, InputTokens: 3, OutputTokens: 8,
			Sampling: trace.Sampling{MaxTokens: 8, MinTokens: 8, IgnoreEOS: true}})
	}
	hdr := trace.Header{Generator: "example", MeanRate: 1, Arrival: trace.ArrivalConstant}

	res, err := replay.Run(context.Background(), replay.Config{Target: srv.URL, Rates: []float64{20, 40}, Duration: 500 * time.Millisecond}, hdr, reqs)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("model", res.Model)
	for _, lv := range res.Levels {
		fmt.Printf("level %s req/s: sent %d, ok %d, %d output tokens\n", lv.Label, lv.Sent, lv.OK, lv.OutputTokens)
	}
	// Output:
	// model sim-tiny
	// level 20 req/s: sent 10, ok 10, 80 output tokens
	// level 40 req/s: sent 20, ok 20, 160 output tokens
}
