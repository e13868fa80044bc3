package analyze

import (
	"bufio"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/vbench/vbench/capture"
)

// t0 is the fixture's time origin (Unix ns).
const t0 int64 = 1_700_000_000_000_000_000

const ms = int64(time.Millisecond)

// chunk builds a chunk: at ms since received, content events, tokens
// (-1 unknown), cumulative usage (-1 none).
func chunk(atMs int64, content int16, tokens, usage int32) capture.Chunk {
	ev := content
	if ev == 0 {
		ev = 1
	}
	return capture.Chunk{At: atMs * ms, Size: 100, Events: ev, Content: content, Tokens: tokens, Usage: usage}
}

func tagged(id uint64, received int64) *capture.Record {
	return &capture.Record{
		ID:       id,
		Labels:   map[string]string{"variant": "a"},
		Tags:     capture.Tags{Run: "r1", Trial: "1", Level: "1", Rate: 1, Index: int64(id), TraceHash: "h1", Deadline: t0 + 1000*ms},
		Method:   "POST",
		Path:     "/v1/completions",
		Status:   200,
		Received: received,
		Outcome:  capture.OutcomeOK, PromptTokens: 10, CompletionTokens: -1,
	}
}

// smallFixture is the hand-computed capture of metrics_test.go: every kind
// of request the analysis must handle.
func smallFixture() ([]*capture.Record, []capture.Sample, []capture.Meta) {
	var recs []*capture.Record
	// 1: per-chunk usage; role chunk, three content chunks, the last with
	// two tokens (chunk ≠ token), then the usage-only chunk.
	r := tagged(1, t0)
	r.Tags.Scheduled, r.Tags.Sent = t0-2*ms, t0-1*ms
	r.Chunks = []capture.Chunk{chunk(10, 0, -1, 0), chunk(100, 1, 1, 1), chunk(150, 1, 1, 2), chunk(250, 2, 2, 4), chunk(251, 0, -1, 4)}
	r.CompletionTokens, r.End = 4, 252*ms
	recs = append(recs, r)
	// 2: final usage only.
	r = tagged(2, t0+100*ms)
	r.Tags.Scheduled, r.Tags.Sent = t0+100*ms, t0+100*ms
	r.Chunks = []capture.Chunk{chunk(200, 1, -1, -1), chunk(300, 1, -1, -1), chunk(400, 1, -1, -1), chunk(401, 0, -1, 3)}
	r.CompletionTokens, r.End = 3, 402*ms
	recs = append(recs, r)
	// 3: missing usage: the content-chunk count is an estimate.
	r = tagged(3, t0+200*ms)
	r.Chunks = []capture.Chunk{chunk(100, 1, -1, -1), chunk(300, 1, -1, -1)}
	r.End = 300 * ms
	recs = append(recs, r)
	// 4: HTTP 500.
	r = tagged(4, t0+300*ms)
	r.Status, r.End = 500, 5*ms
	r.Chunks = []capture.Chunk{{At: 5 * ms, Size: 40, Tokens: -1, Usage: -1}}
	recs = append(recs, r)
	// 5: cut by the replayer at the deadline.
	r = tagged(5, t0+500*ms)
	r.Outcome, r.End = capture.OutcomeClientAborted, 600*ms
	r.Chunks = []capture.Chunk{chunk(100, 1, 1, 1)}
	recs = append(recs, r)
	// 6: client went away before the deadline.
	r = tagged(6, t0+600*ms)
	r.Outcome, r.End = capture.OutcomeClientAborted, 50*ms
	recs = append(recs, r)
	// 7: completed with no output token.
	r = tagged(7, t0+700*ms)
	r.CompletionTokens, r.End = 0, 10*ms
	r.Chunks = []capture.Chunk{chunk(10, 0, -1, 0)}
	recs = append(recs, r)
	// 8: warm-up, excluded.
	r = tagged(8, t0-1000*ms)
	r.Tags.Warmup = true
	r.Chunks = []capture.Chunk{chunk(50, 1, 1, 1)}
	r.CompletionTokens, r.End = 1, 50*ms
	recs = append(recs, r)
	// 9: no outcome: a record from a crashed proxy.
	r = tagged(9, t0+800*ms)
	r.Outcome = ""
	recs = append(recs, r)

	samples := []capture.Sample{
		{At: t0 - 500*ms, Name: capture.MetricRunning, Value: 1},
		{At: t0 + 250*ms, Name: capture.MetricRunning, Value: 3},
		{At: t0 + 750*ms, Name: capture.MetricRunning, Value: 2},
		{At: t0 + 250*ms, Name: capture.MetricWaiting, Value: 1},
		{At: t0 + 250*ms, Name: capture.MetricKVUsage, Value: 0.5},
		{At: t0 - 500*ms, Name: capture.MetricPreemptions, Value: 2},
		{At: t0 + 500*ms, Name: capture.MetricPreemptions, Value: 5},
		{At: t0 + 1500*ms, Name: capture.MetricPreemptions, Value: 9},
	}
	metas := []capture.Meta{{Version: 1, Tool: "vbproxy", ToolVersion: "test", Started: t0 - 2000*ms, Upstream: "http://127.0.0.1:8000", Labels: map[string]string{"variant": "a"}, Host: "testhost", Extra: map[string]string{"gpu": "none"}}}
	return recs, samples, metas
}

// writeDump writes records, samples and metas as a JSON Lines dump.
func writeDump(t testing.TB, path string, recs []*capture.Record, samples []capture.Sample, metas []capture.Meta) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for _, m := range metas {
		if err := enc.Encode(struct {
			Kind string `json:"kind"`
			capture.Meta
		}{"meta", m}); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range recs {
		if err := enc.Encode(struct {
			Kind string `json:"kind"`
			*capture.Record
		}{"record", r}); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range samples {
		if err := enc.Encode(struct {
			Kind string `json:"kind"`
			capture.Sample
		}{"sample", s}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// writeStore writes records, samples and metas into a real capture store.
func writeStore(t testing.TB, dir string, recs []*capture.Record, samples []capture.Sample, metas []capture.Meta) {
	t.Helper()
	st, err := capture.Open(dir, capture.Options{SyncInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range metas {
		if err := st.PutMeta(m); err != nil {
			t.Fatal(err)
		}
	}
	w := st.Writer()
	for _, r := range recs {
		for !w.Put(r) {
			time.Sleep(time.Millisecond) // queue full: wait for the writer
		}
	}
	for _, s := range samples {
		for !w.PutSample(s) {
			time.Sleep(time.Millisecond)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}

// engine models a serving engine for synthetic captures: each request
// takes prefill + out × decode, slowed by the load once the rate passes
// the engine's capacity.
type engine struct {
	name     string
	capacity float64 // req/s it sustains
	decode   time.Duration
}

// synthCapture builds the records and samples of one trial of a variant
// at a rate: n Poisson arrivals, latencies growing past capacity, server
// gauges every 250 ms. Deterministic for a seed.
func synthCapture(e engine, rate float64, trial, n int, seed uint64) ([]*capture.Record, []capture.Sample) {
	rng := rand.New(rand.NewPCG(seed, uint64(rate*1000)+uint64(trial)))
	load := rate / e.capacity
	slow := 1 + 6*max(0, load-0.8)
	var recs []*capture.Record
	var at int64
	start := t0 + int64(trial)*3600*int64(time.Second)
	var lastEnd int64
	for i := range n {
		at += int64(rng.ExpFloat64() / rate * 1e9)
		out := 20 + rng.IntN(80)
		r := &capture.Record{
			ID:     uint64(i + 1),
			Labels: map[string]string{"variant": e.name, "model": "opt-125m"},
			Tags: capture.Tags{Run: "run", Trial: strconv.Itoa(trial), Level: strconv.FormatFloat(rate, 'g', -1, 64), Rate: rate,
				Index: int64(i), TraceHash: "trace-1", Scheduled: start + at, Sent: start + at + int64(rng.IntN(300))*1000},
			Method: "POST", Path: "/v1/completions", Status: 200, Received: start + at + 400*1000,
			Outcome: capture.OutcomeOK, PromptTokens: int32(50 + rng.IntN(200)), CompletionTokens: int32(out),
		}
		ttft := int64(float64(30*ms) * slow * (0.8 + 0.4*rng.Float64()))
		t := ttft
		for k := range out {
			r.Chunks = append(r.Chunks, capture.Chunk{At: t, Size: 120, Events: 1, Content: 1, Tokens: 1, Usage: int32(k + 1)})
			t += int64(float64(e.decode) * slow * (0.7 + 0.6*rng.Float64()))
		}
		r.Chunks = append(r.Chunks, capture.Chunk{At: t, Size: 200, Events: 2, Tokens: -1, Usage: int32(out)})
		r.End = t + 100*1000
		lastEnd = max(lastEnd, r.Received+r.End)
		recs = append(recs, r)
	}
	var samples []capture.Sample
	for ts := start; ts <= lastEnd; ts += 250 * ms {
		open := 0
		for _, r := range recs {
			if r.Received <= ts && r.Received+r.End > ts {
				open++
			}
		}
		run := math.Min(float64(open), 8)
		samples = append(samples,
			capture.Sample{At: ts, Name: capture.MetricRunning, Value: run},
			capture.Sample{At: ts, Name: capture.MetricWaiting, Value: float64(open) - run},
			capture.Sample{At: ts, Name: capture.MetricKVUsage, Value: run / 8})
	}
	return recs, samples
}

// writeSweep writes one dump per variant × rate × trial under dir and
// returns their paths.
func writeSweep(t testing.TB, dir string, engines []engine, rates []float64, trials, n int) []string {
	t.Helper()
	var paths []string
	for _, e := range engines {
		for _, rate := range rates {
			for tr := 1; tr <= trials; tr++ {
				recs, samples := synthCapture(e, rate, tr, n, 42)
				p := filepath.Join(dir, e.name+"-"+strconv.FormatFloat(rate, 'g', -1, 64)+"-"+strconv.Itoa(tr)+".jsonl")
				writeDump(t, p, recs, samples, nil)
				paths = append(paths, p)
			}
		}
	}
	return paths
}
