package main

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/vbench/vbench/capture"
	"github.com/vbench/vbench/trace"
)

func TestMeasure(t *testing.T) {
	const start = int64(1_000_000_000_000)
	reqs := []trace.Request{{Index: 0}, {Index: 1, Offset: time.Second}, {Index: 2, Offset: 2 * time.Second}, {Index: 3, Offset: 3 * time.Second}}
	// Played at speed 2: due at start, +500 ms, +1 s, +1.5 s. Request 2
	// is missing; request 3 is sent 4 ms late and arrives 1 ms after that.
	rec := func(i int64, sentLate, arrLate time.Duration) *capture.Record {
		due := start + int64(reqs[i].Offset)/2
		return &capture.Record{ID: uint64(i + 1), Tags: capture.Tags{Index: i, Scheduled: due, Sent: due + int64(sentLate)}, Received: due + int64(sentLate+arrLate)}
	}
	recs := []*capture.Record{rec(0, 0, time.Millisecond), rec(1, 0, time.Millisecond), rec(3, 4*time.Millisecond, time.Millisecond)}
	rep, err := measure(reqs, recs, 2)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Matched != 3 || rep.Missing != 1 || rep.Span != 1500*time.Millisecond {
		t.Fatalf("report %+v", rep)
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	if !near(rep.Send.Max, 4) || !near(rep.Arrival.Max, 5) || !near(rep.Arrival.P50, 1) || !near(rep.Gap.Max, 4) || !near(rep.Gap.P50, 0) {
		t.Fatalf("send %+v arrival %+v gap %+v", rep.Send, rep.Arrival, rep.Gap)
	}
	if md := rep.markdown(); !strings.Contains(md, "3 of 4 trace requests") {
		t.Fatalf("markdown:\n%s", md)
	}
}

func TestMeasureRejectsForeignCaptures(t *testing.T) {
	reqs := []trace.Request{{Index: 0}}
	for name, recs := range map[string][]*capture.Record{
		"index past the trace": {{Tags: capture.Tags{Index: 5}}},
		"two levels":           {{Tags: capture.Tags{Index: 0}}, {Tags: capture.Tags{Index: 0}}},
		"nothing replayed":     nil,
	} {
		if _, err := measure(reqs, recs, 1); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
