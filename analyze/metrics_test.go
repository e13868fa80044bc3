package analyze

import (
	"context"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/vbench/vbench/capture"
	"github.com/vbench/vbench/metric"
)

func near(a, b float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b))
}

func checkF(t *testing.T, what string, got, want float64) {
	t.Helper()
	if !near(got, want) {
		t.Errorf("%s = %v; want %v", what, got, want)
	}
}

func TestMeasure(t *testing.T) {
	recs, _, _ := smallFixture()
	nan := math.NaN()
	tests := []struct {
		id                                         int
		completed                                  bool
		kind                                       string
		out                                        int
		source                                     metric.TokenSource
		ttft, ttftSched, e2e, tpot, norm, itl, lag float64
		gaps                                       []float64
		gapTokens                                  []int
	}{
		{1, true, "", 4, metric.SourceUsageChunks, 0.1, 0.102, 0.251, 0.151 / 3, 0.251 / 4, 0.075, 0.001, []float64{0.05, 0.1}, []int{1, 2}},
		{2, true, "", 3, metric.SourceUsage, 0.2, 0.2, 0.401, 0.201 / 2, 0.401 / 3, 0.1, 0, []float64{0.1, 0.1}, []int{1, 1}},
		{3, true, "", 2, metric.SourceChunks, 0.1, nan, 0.3, 0.2, 0.15, 0.2, nan, []float64{0.2}, []int{1}},
		{4, false, "http_500", 0, metric.SourceNone, nan, nan, nan, nan, nan, nan, nan, nil, nil},
		{5, false, metric.KindCut, 1, metric.SourceUsageChunks, 0.1, nan, nan, nan, nan, nan, nan, nil, nil},
		{6, false, string(capture.OutcomeClientAborted), 0, metric.SourceNone, nan, nan, nan, nan, nan, nan, nan, nil, nil},
		{7, true, "", 0, metric.SourceUsage, nan, nan, 0.01, nan, nan, nan, nan, nil, nil},
		{9, false, metric.KindIncomplete, 0, metric.SourceNone, nan, nan, nan, nan, nan, nan, nan, nil, nil},
	}
	byID := map[int]*capture.Record{}
	for _, r := range recs {
		byID[int(r.ID)] = r
	}
	for _, tt := range tests {
		var gaps []float64
		var toks []int
		first := true
		m := Measurer{OnContent: func(_, g time.Duration, n int) {
			if !first {
				gaps = append(gaps, g.Seconds())
				toks = append(toks, n)
			}
			first = false
		}}
		r := m.Measure(byID[tt.id], "fx")
		if !r.Completed() {
			gaps, toks = nil, nil // the analysis pools the gaps of completed requests only
		}
		if r.Completed() != tt.completed || r.ErrorKind != tt.kind {
			t.Errorf("request %d: completed %v kind %q; want %v %q", tt.id, r.Completed(), r.ErrorKind, tt.completed, tt.kind)
		}
		if int(r.OutputTokens) != tt.out || r.TokenSource != tt.source {
			t.Errorf("request %d: output %d from %s; want %d from %s", tt.id, r.OutputTokens, r.TokenSource, tt.out, tt.source)
		}
		for _, c := range []struct {
			name      string
			got, want float64
		}{{"ttft", r.TTFT(), tt.ttft}, {"ttft_sched", r.TTFTScheduled(), tt.ttftSched}, {"e2e", r.E2E(), tt.e2e}, {"tpot", r.TPOT(), tt.tpot}, {"norm", r.NormLatency(), tt.norm}, {"itl_mean", itlIfCompleted(&r), tt.itl}, {"lag", r.Lag(), tt.lag}} {
			if !near(c.got, c.want) {
				t.Errorf("request %d: %s = %v; want %v", tt.id, c.name, c.got, c.want)
			}
		}
		if len(gaps) != len(tt.gaps) {
			t.Errorf("request %d: gaps %v; want %v", tt.id, gaps, tt.gaps)
			continue
		}
		for i := range gaps {
			if !near(gaps[i], tt.gaps[i]) || toks[i] != tt.gapTokens[i] {
				t.Errorf("request %d: gap %d = %v (%d tokens); want %v (%d)", tt.id, i, gaps[i], toks[i], tt.gaps[i], tt.gapTokens[i])
			}
		}
	}
}

// itlIfCompleted is the request's mean chunk gap when it completed (the
// table above gives NaN for the others).
func itlIfCompleted(r *metric.Request) float64 {
	if !r.Completed() {
		return math.NaN()
	}
	return r.ITLMean()
}

func TestAnalyzeSmallFixture(t *testing.T) {
	recs, samples, metas := smallFixture()
	path := filepath.Join(t.TempDir(), "fx.jsonl")
	writeDump(t, path, recs, samples, metas)
	res, err := Analyze(context.Background(), Config{Captures: []string{path}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Groups) != 1 {
		t.Fatalf("%d groups; want 1", len(res.Groups))
	}
	g := res.Groups[0]
	if g.Key != "a/1/1" || g.Count != 8 || g.Warmup != 1 || g.Completed != 4 || g.Failed != 3 || g.Cut != 1 {
		t.Errorf("group %s: count %d warmup %d completed %d failed %d cut %d; want a/1/1 8 1 4 3 1", g.Key, g.Count, g.Warmup, g.Completed, g.Failed, g.Cut)
	}
	// The cut request (5) is censored, not failed: its partial latency is
	// 0.6 s and it asked for no known length, so its bound is 0.6 s over
	// the one token it produced.
	checkF(t, "cut elapsed", g.CutElapsed.Mean, 0.6)
	checkF(t, "norm with cut", g.NormLatencyWithCut.Mean, (0.251/4+0.401/3+0.15+0.6)/4)
	wantKinds := map[string]int{"http_500": 1, "client_aborted": 1, metric.KindIncomplete: 1}
	for k, n := range wantKinds {
		if g.FailedBy[k] != n {
			t.Errorf("failed_by[%s] = %d; want %d (all: %v)", k, g.FailedBy[k], n, g.FailedBy)
		}
	}
	if g.EstimatedTokens != 1 || g.EmptyOutput != 1 {
		t.Errorf("estimated %d, empty %d; want 1, 1", g.EstimatedTokens, g.EmptyOutput)
	}
	// The window ends at the deadline: the cut request ran until then
	// (received at 0.5 s, cut at 1.1 s).
	if g.WindowStart != t0 || g.WindowEnd != t0+1000*ms {
		t.Errorf("window [%d, %d]; want [t0, t0+1000ms]", g.WindowStart-t0, g.WindowEnd-t0)
	}
	checkF(t, "duration", g.Duration, 1)
	checkF(t, "request_throughput", g.RequestThroughput, 4/1.0)
	checkF(t, "output_throughput", g.OutputThroughput, 9/1.0)
	if g.OutputTokens != 9 || g.InputTokens != 40 {
		t.Errorf("tokens out %d in %d; want 9, 40", g.OutputTokens, g.InputTokens)
	}
	checkF(t, "ttft mean", g.TTFT.Mean, 0.4/3)
	checkF(t, "ttft p50", g.TTFT.P50, 0.1)
	checkF(t, "ttft p99", g.TTFT.P99, 0.198)
	checkF(t, "itl mean", g.ITL.Mean, 0.11)
	checkF(t, "itl_token mean", g.ITLToken.Mean, 0.55/6)
	if g.ITLToken.N != 6 || g.ITL.N != 5 {
		t.Errorf("itl n %d, per token %d; want 5, 6", g.ITL.N, g.ITLToken.N)
	}
	checkF(t, "e2e mean", g.E2E.Mean, (0.251+0.401+0.3+0.01)/4)
	checkF(t, "norm mean", g.NormLatency.Mean, (0.251/4+0.401/3+0.15)/3)
	checkF(t, "tpot mean", g.TPOT.Mean, (0.151/3+0.201/2+0.2)/3)
	// spans: 1 [0, 0.251], 2 [0.1, 0.501], 3 [0.2, 0.5], 4 [0.3, 0.305],
	// 5 [0.5, 1.1] (cut at its end), 6 [0.6, 0.65], 7 [0.7, 0.71], 9 no
	// time: 1.517 s of requests over the 1-s window.
	checkF(t, "inflight mean", g.InFlightMean, 1.517/1.0)
	if g.InFlightMax != 3 {
		t.Errorf("inflight max %d; want 3", g.InFlightMax)
	}
	// Split at the first token (window 0–1 s): decoding 1 [0.1, 0.251],
	// 2 [0.3, 0.501], 3 [0.3, 0.5], 5 [0.6, 1.0] (the rest have none);
	// queued 1 [0, 0.1], 2 [0.1, 0.3], 3 [0.2, 0.3], 4 [0.3, 0.305],
	// 5 [0.5, 0.6], 6 [0.6, 0.65], 7 [0.7, 0.71]. The two add up to the
	// in-flight area 1.517.
	checkF(t, "decoding mean", g.DecodingMean, (0.151+0.201+0.2+0.4)/1.0)
	checkF(t, "queued mean", g.QueuedMean, (0.1+0.2+0.1+0.005+0.1+0.05+0.01)/1.0)
	if g.DecodingMax != 2 || g.QueuedMax != 2 {
		t.Errorf("decoding max %d, queued max %d; want 2, 2", g.DecodingMax, g.QueuedMax)
	}
	checkF(t, "running mean", g.Running, (0.25*1+0.5*3+0.25*2)/1.0)
	checkF(t, "running max", g.RunningMax, 3)
	checkF(t, "waiting mean", g.Waiting, 1)
	checkF(t, "kv mean", g.KVUsage, 0.5)
	checkF(t, "preemptions", g.Preemptions, 3)
	checkF(t, "max output tokens per s", g.MaxOutputTokensPerS, 9) // all 9 tokens in t0's second
	checkF(t, "goodput", g.Goodput, math.NaN())
	checkF(t, "lag p99", g.Lag.P99, 0.00099)
}

func TestGoodputSLO(t *testing.T) {
	recs, samples, metas := smallFixture()
	path := filepath.Join(t.TempDir(), "fx.jsonl")
	writeDump(t, path, recs, samples, metas)
	tests := []struct {
		slo  string
		good int
	}{
		{"ttft=150ms", 2},         // r1, r3 (r2 0.2 s; r7 has no TTFT)
		{"tpot=100ms", 2},         // r1 0.0503, r7 (no TPOT, ≤1 token); r2 0.1005, r3 0.2 fail
		{"e2e=350ms", 3},          // r1, r3, r7
		{"ttft=1s,norm=100ms", 1}, // r1 only (0.0628)
		{"ttft_sched=150ms", 1},   // r1 (0.102); r3 has no schedule
	}
	for _, tt := range tests {
		slo, err := ParseSLO(tt.slo)
		if err != nil {
			t.Fatal(err)
		}
		res, err := Analyze(context.Background(), Config{Captures: []string{path}, SLO: slo})
		if err != nil {
			t.Fatal(err)
		}
		g := res.Groups[0]
		if g.GoodCount != tt.good {
			t.Errorf("--slo %s: %d good; want %d", tt.slo, g.GoodCount, tt.good)
		}
		checkF(t, "goodput "+tt.slo, g.Goodput, float64(tt.good)/1.0)
	}
}

func TestParseSLOErrors(t *testing.T) {
	for _, s := range []string{"ttft", "ttft=abc", "speed=1s", "ttft=-1s", "ttft=0s"} {
		if _, err := ParseSLO(s); err == nil {
			t.Errorf("ParseSLO(%q): no error", s)
		}
	}
	s, err := ParseSLO("ttft=1s, tpot=100ms,e2el=5s")
	if err != nil || s.String() != "ttft=1s,tpot=100ms,e2e=5s" {
		t.Errorf("ParseSLO = %v, %v", s, err)
	}
}

func TestWindowSteady(t *testing.T) {
	recs, samples := synthCapture(engine{Name: "v", Capacity: 4, Decode: 40 * time.Millisecond}, 8, 1, 50, 3)
	path := filepath.Join(t.TempDir(), "x.jsonl")
	writeDump(t, path, recs, samples, nil)
	full, err := Analyze(context.Background(), Config{Captures: []string{path}})
	if err != nil {
		t.Fatal(err)
	}
	steady, err := Analyze(context.Background(), Config{Captures: []string{path}, Window: WindowSteady})
	if err != nil {
		t.Fatal(err)
	}
	var lastStart, lastEnd int64
	for i := range full.Requests {
		lastStart = max(lastStart, full.Requests[i].Start)
		lastEnd = max(lastEnd, full.Requests[i].EndUnix())
	}
	f, s := full.Groups[0], steady.Groups[0]
	if f.WindowEnd != lastEnd || s.WindowEnd != lastStart {
		t.Errorf("window ends: skip-warmup %d, steady %d; want last end %d, last start %d", f.WindowEnd, s.WindowEnd, lastEnd, lastStart)
	}
	done := 0
	for i := range full.Requests {
		if full.Requests[i].EndUnix() <= lastStart {
			done++
		}
	}
	checkF(t, "steady request throughput", s.RequestThroughput, float64(done)/secs(lastStart-s.WindowStart))
	if s.NormLatency.Mean != f.NormLatency.Mean {
		t.Errorf("the window changes throughput only: norm %v vs %v", s.NormLatency.Mean, f.NormLatency.Mean)
	}
}

func TestStreamProblems(t *testing.T) {
	good := "data: {\"choices\":[{\"text\":\"hi\"}]}\n\ndata: {\"choices\":[],\"usage\":{\"completion_tokens\":1}}\n\ndata: [DONE]\n\n"
	tests := []struct {
		name, body string
		size       int64 // 0: len(body)
		kind       string
	}{
		{"complete", good, 0, ""},
		{"error event", "data: {\"choices\":[{\"text\":\"hi\"}]}\n\ndata: {\"error\":{\"message\":\"boom\"}}\n\ndata: [DONE]\n\n", 0, metric.KindStreamError},
		{"no DONE", "data: {\"choices\":[{\"text\":\"hi\"}]}\n\n", 0, metric.KindTruncated},
		{"cut at the record limit", "data: {\"choices\":[{\"text\":\"hi\"}]}\n\n", 9999, ""},
		{"not SSE", `{"choices":[{"text":"hi"}]}`, 0, ""},
	}
	for _, tt := range tests {
		r := tagged(1, t0)
		r.Chunks = []capture.Chunk{chunk(10, 1, 1, 1)}
		r.ResponseBody = []byte(tt.body)
		r.ResponseSize = int64(len(tt.body))
		if tt.size > 0 {
			r.ResponseSize = tt.size
		}
		m := Measure(r, "x")
		if m.ErrorKind != tt.kind || m.Completed() != (tt.kind == "") {
			t.Errorf("%s: kind %q completed %v; want %q", tt.name, m.ErrorKind, m.Completed(), tt.kind)
		}
	}
}

// TestNonStreamedUsage (issue 18): a non-streamed response has its token
// counts — from the record when the proxy read them, else from the
// recorded JSON body (captures written before) — not 0 from "none" under a
// content-chunk warning.
func TestNonStreamedUsage(t *testing.T) {
	body := `{"choices":[{"index":0,"text":" a b c d"}],"usage":{"prompt_tokens":6,"completion_tokens":4}}`
	for _, fromRecord := range []bool{true, false} {
		r := tagged(1, t0)
		r.ContentType = "application/json"
		r.Chunks = []capture.Chunk{{At: 200 * ms, Size: int32(len(body)), Tokens: -1, Usage: -1}}
		r.ResponseBody, r.ResponseSize, r.End = []byte(body), int64(len(body)), 201*ms
		r.PromptTokens, r.CompletionTokens = -1, -1
		if fromRecord {
			r.PromptTokens, r.CompletionTokens = 6, 4
			r.ResponseBody = nil
		}
		m := Measure(r, "x")
		if !m.Completed() || m.OutputTokens != 4 || m.PromptTokens != 6 || m.TokenSource != metric.SourceUsage || m.Streamed {
			t.Errorf("from record %v: %+v; want completed, 4 output and 6 prompt tokens from usage, not streamed", fromRecord, m)
		}
		checkF(t, "norm latency", m.NormLatency(), 0.2/4)
		checkF(t, "ttft", m.TTFT(), math.NaN())
	}
}
