package replay

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/vbench/vbench/internal/testserver"
	"github.com/vbench/vbench/metric"
	"github.com/vbench/vbench/trace"
)

// BenchmarkScheduleLag plays one 2-second level per iteration against an
// in-process fast server (1-token replies) and reports the schedule lag.
// The server shares the process and its cores: bench/scripts/replay_bench.sh
// measures the same with the server in its own process. Run with
// -benchtime=1x.
func BenchmarkScheduleLag(b *testing.B) {
	srv := startServer(b, testserver.Config{Tokens: 1})
	for _, rate := range []float64{100, 1000, 5000} {
		b.Run(fmt.Sprintf("rate=%g", rate), func(b *testing.B) {
			hdr, reqs := testTrace(int(rate*3), 1)
			var lag metric.Dist
			var achieved float64
			for b.Loop() {
				res, err := Run(context.Background(), Config{Target: srv.URL, Model: "m", Rates: []float64{rate}, Duration: 2 * time.Second}, hdr, reqs)
				if err != nil {
					b.Fatal(err)
				}
				lag, achieved = res.Levels[0].Lag, res.Levels[0].AchievedRate
			}
			b.ReportMetric(lag.P50*1e6, "lag-p50-µs")
			b.ReportMetric(lag.P99*1e6, "lag-p99-µs")
			b.ReportMetric(achieved, "req/s")
		})
	}
}

// BenchmarkSend measures one request's client-side cost (build, send,
// stream a 16-token reply to its end) against an in-process server.
func BenchmarkSend(b *testing.B) {
	srv := startServer(b, testserver.Config{Tokens: 16})
	hdr, reqs := testTrace(1, 16)
	cfg := Config{Target: srv.URL, Model: "m"}.WithDefaults()
	r := newRunner(&cfg, &hdr, reqs)
	body, err := Render(&reqs[0], RenderOptions{Model: "m"})
	if err != nil {
		b.Fatal(err)
	}
	r.prepare(0, body, srv.URL+trace.EndpointCompletions)
	r.base = r.baseHeader()
	ph := &phase{label: "1", rate: 1}
	deadline := []string{"0"}
	res := new(metric.Request)
	b.ReportAllocs()
	for b.Loop() {
		r.send(context.Background(), res, time.Now(), 0, ph, deadline)
		if !res.Completed() {
			b.Fatalf("%s: %s", res.ErrorKind, res.Error)
		}
	}
	r.client.Transport.(*http.Transport).CloseIdleConnections()
}
