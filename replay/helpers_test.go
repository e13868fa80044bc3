package replay

import (
	"testing"
	"time"

	"github.com/vbench/vbench/internal/testserver"
	"github.com/vbench/vbench/trace"
)

// testTrace is testserver.Trace: n requests, Poisson arrivals at 1/s.
func testTrace(n int, outTokens int32) (trace.Header, []trace.Request) {
	return testserver.Trace(n, outTokens)
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
