package analyze

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/vbench/vbench/capture"
)

// TestClientBatchThreeRequests checks the client-side batch estimate on a
// hand-made capture of three streams from a server without /metrics (no
// samples). Times are ms after t0:
//
//	A: request 0,   first token 100, end 550 → queued [0,100),   decoding [100,550)
//	B: request 200, first token 500, end 600 → queued [200,500), decoding [500,600)
//	C: request 300, first token 400, end 900 → queued [300,400), decoding [400,900)
//
// The window is [0, 900). Decoding area 450+100+500 = 1050 ms → mean
// 1050/900, max 3 on [500,550); queued area 100+300+100 = 500 ms → mean
// 500/900, max 2 on [300,400); the two add up to the in-flight area.
func TestClientBatchThreeRequests(t *testing.T) {
	stream := func(id uint64, atMs, firstMs, endMs int64) *capture.Record {
		r := tagged(id, t0+atMs*ms)
		first, end := firstMs-atMs, endMs-atMs
		r.Chunks = []capture.Chunk{chunk(first, 1, 1, 1), chunk((first+end)/2, 1, 1, 2), chunk(end, 1, 1, 3)}
		r.CompletionTokens, r.End = 3, end*ms
		return r
	}
	recs := []*capture.Record{stream(1, 0, 100, 550), stream(2, 200, 500, 600), stream(3, 300, 400, 900)}
	metas := []capture.Meta{{Version: 1, Tool: "vbproxy", ToolVersion: "test", Started: t0 - 1000*ms, Labels: map[string]string{"variant": "a"}}}
	path := filepath.Join(t.TempDir(), "three.jsonl")
	writeDump(t, path, recs, nil, metas)
	res, err := Analyze(context.Background(), Config{Captures: []string{path}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Groups) != 1 {
		t.Fatalf("%d groups; want 1", len(res.Groups))
	}
	g := res.Groups[0]
	if g.WindowStart != t0 || g.WindowEnd != t0+900*ms || g.Completed != 3 {
		t.Fatalf("window [%d, %d] ms, %d completed; want [0, 900], 3", (g.WindowStart-t0)/ms, (g.WindowEnd-t0)/ms, g.Completed)
	}
	checkF(t, "decoding mean", g.DecodingMean, 1050.0/900)
	checkF(t, "queued mean", g.QueuedMean, 500.0/900)
	checkF(t, "inflight mean", g.InFlightMean, 1550.0/900)
	if g.DecodingMax != 3 || g.QueuedMax != 2 || g.InFlightMax != 3 {
		t.Errorf("max decoding %d queued %d in flight %d; want 3, 2, 3", g.DecodingMax, g.QueuedMax, g.InFlightMax)
	}
	if g.Samples != 0 {
		t.Errorf("%d server samples; want 0 (no /metrics)", g.Samples)
	}

	// The batch chart exists without server metrics: the client-side
	// series only. 600 steps over 900 ms: step 200 is 300 ms, step 350 is
	// 525 ms.
	series := res.Timeline(g, 600)
	got := map[string][]float64{}
	for _, s := range series {
		got[s.Name] = s.Y
	}
	if len(series) != 3 {
		t.Fatalf("timeline series %v; want in flight, decoding and queued only", len(series))
	}
	dec, que := got["decoding (client-side estimate)"], got["queued or in prefill (client-side)"]
	if len(dec) != 601 || len(que) != 601 {
		t.Fatalf("decoding %d, queued %d points; want 601", len(dec), len(que))
	}
	if dec[200] != 1 || que[200] != 2 || dec[350] != 3 || que[350] != 0 {
		t.Errorf("at 300 ms decoding %v queued %v, at 525 ms decoding %v queued %v; want 1, 2, 3, 0", dec[200], que[200], dec[350], que[350])
	}
}
