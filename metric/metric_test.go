package metric

import (
	"encoding/json"
	"math"
	"testing"
	"time"
)

func near(a, b float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b))
}

func check(t *testing.T, what string, got, want float64) {
	t.Helper()
	if !near(got, want) {
		t.Errorf("%s = %v; want %v", what, got, want)
	}
}

// done is a completed streamed request: first content at ttft, last byte
// at e2e, out output tokens in out content chunks evenly spaced.
func done(start int64, ttft, e2e time.Duration, out int32) Request {
	r := Request{Start: start, FirstContent: ttft, End: e2e, OutputTokens: out, TokenSource: SourceUsage,
		Streamed: true, ContentChunks: out, ContentEvents: out, Outcome: OK, PromptTokens: 10}
	if out > 1 {
		r.ITLSum, r.ITLGaps = e2e-ttft, out-1
	}
	return r
}

// TestRequestDefinitions checks each per-request metric against a hand
// computation and `vllm bench serve`'s formulas (vllm/benchmarks/serve.py
// calculate_metrics: ttft = first chunk − start; tpot = (latency − ttft) /
// (output_len − 1) for output_len > 1; itl = gaps between chunks; e2el =
// latency) and the vLLM paper's normalized latency (latency / output
// length per request).
func TestRequestDefinitions(t *testing.T) {
	r := done(1e9, 100*time.Millisecond, 500*time.Millisecond, 5)
	r.Scheduled, r.Sent = 1e9-3e6, 1e9-1e6
	check(t, "ttft", r.TTFT(), 0.1)
	check(t, "ttft_sched", r.TTFTScheduled(), 0.103) // (start + 0.1 s) − scheduled
	check(t, "e2e", r.E2E(), 0.5)
	check(t, "tpot", r.TPOT(), (0.5-0.1)/(5-1))
	check(t, "itl", r.ITLMean(), 0.1)
	check(t, "norm", r.NormLatency(), 0.5/5)
	check(t, "bound", r.NormLatencyBound(), 0.5/5)
	check(t, "lag", r.Lag(), 0.002)

	one := done(0, 100*time.Millisecond, 100*time.Millisecond, 1)
	check(t, "tpot of one token", one.TPOT(), math.NaN()) // vLLM: 0 when output_len == 1; we leave it undefined
	check(t, "norm of one token", one.NormLatency(), 0.1)

	nonStreamed := done(0, 0, 2*time.Second, 40)
	nonStreamed.Streamed, nonStreamed.ContentChunks = false, 0
	check(t, "non-streamed ttft", nonStreamed.TTFT(), math.NaN())
	check(t, "non-streamed tpot", nonStreamed.TPOT(), math.NaN())
	check(t, "non-streamed norm", nonStreamed.NormLatency(), 2.0/40)

	failed := done(0, 100*time.Millisecond, 300*time.Millisecond, 3)
	failed.Outcome, failed.ErrorKind = Failed, HTTPKind(500)
	for name, v := range map[string]float64{"e2e": failed.E2E(), "tpot": failed.TPOT(), "norm": failed.NormLatency(), "bound": failed.NormLatencyBound()} {
		check(t, "failed "+name, v, math.NaN())
	}
	check(t, "failed elapsed", failed.Elapsed(), 0.3)

	// A cut request: running for 30 s with 20 of its 600 asked tokens; it
	// would have taken at least 30 s for at most 600 tokens.
	cut := done(0, 10*time.Second, 30*time.Second, 20)
	cut.Outcome, cut.ErrorKind, cut.ExpectedOutput = Cut, KindCut, 600
	check(t, "cut e2e", cut.E2E(), math.NaN())
	check(t, "cut bound", cut.NormLatencyBound(), 30.0/600)
	cut.ExpectedOutput = 0
	check(t, "cut bound, no asked length", cut.NormLatencyBound(), 30.0/20)
	cut.OutputTokens = 0
	check(t, "cut bound, nothing known", cut.NormLatencyBound(), math.NaN())

	if OutcomeOf("") != OK || OutcomeOf(KindCut) != Cut || OutcomeOf(KindDropped) != Dropped || OutcomeOf("http_400") != Failed {
		t.Error("OutcomeOf")
	}
}

// TestNormalizedLatencyIsMeanOfRatios: the normalized latency is the mean
// of per-request E2E / output tokens (the vLLM paper), not the mean E2E
// over the mean output (what vbbench's early stop used to compute: issue
// 18). Short requests weigh as much as long ones.
func TestNormalizedLatencyIsMeanOfRatios(t *testing.T) {
	reqs := []Request{done(0, 0, time.Second, 10), done(0, 0, 10*time.Second, 1000)}
	s := Summarize(reqs)
	check(t, "normalized latency", s.NormLatency.Mean, (1.0/10+10.0/1000)/2) // 0.055
	ratioOfMeans := (1.0 + 10) / 2 / ((10.0 + 1000) / 2)                     // 0.0109: not this
	if near(s.NormLatency.Mean, ratioOfMeans) {
		t.Fatal("normalized latency is the ratio of means")
	}
}

func TestSummarize(t *testing.T) {
	cut := done(0, time.Second, 4*time.Second, 2)
	cut.Outcome, cut.ErrorKind, cut.ExpectedOutput = Cut, KindCut, 8
	failed := Request{Outcome: Failed, ErrorKind: "http_400", Status: 400, End: time.Millisecond}
	reqs := []Request{
		done(0, 100*time.Millisecond, 500*time.Millisecond, 5),  // norm 0.1, tpot 0.1
		done(0, 200*time.Millisecond, 1200*time.Millisecond, 3), // norm 0.4, tpot 0.5
		done(0, 100*time.Millisecond, 100*time.Millisecond, 0),  // empty output: no norm
		cut,    // bound 4/8 = 0.5
		failed, // not in any latency
		{Outcome: Dropped, ErrorKind: KindDropped},
	}
	reqs[2].TokenSource = SourceNone
	s := Summarize(reqs)
	if s.Count != 5 || s.Completed != 3 || s.Cut != 1 || s.Failed != 1 || s.Dropped != 1 || s.FailedBy["http_400"] != 1 || s.FailedBy[KindCut] != 0 {
		t.Errorf("counts %+v", s)
	}
	if s.EstimatedTokens != 1 || s.EmptyOutput != 1 || s.OutputTokens != 8 {
		t.Errorf("estimated %d empty %d output %d; want 1 1 8", s.EstimatedTokens, s.EmptyOutput, s.OutputTokens)
	}
	check(t, "norm", s.NormLatency.Mean, (0.1+0.4)/2)
	check(t, "norm with cut", s.NormLatencyWithCut.Mean, (0.1+0.4+0.5)/3)
	check(t, "ttft", s.TTFT.Mean, (0.1+0.2)/2) // the empty one had no content chunk
	check(t, "tpot", s.TPOT.Mean, (0.1+0.5)/2)
	check(t, "e2e", s.E2E.Mean, (0.5+1.2+0.1)/3)
	check(t, "cut elapsed", s.CutElapsed.Mean, 4)
	if s.TTFT.N != 2 || s.E2E.N != 3 || s.NormLatencyWithCut.N != 3 {
		t.Errorf("n: ttft %d e2e %d norm-with-cut %d", s.TTFT.N, s.E2E.N, s.NormLatencyWithCut.N)
	}
}

// TestDistAsNumpy: mean, population std and linear percentiles as numpy
// (np.mean, np.std, np.percentile), which `vllm bench serve` reports.
func TestDistAsNumpy(t *testing.T) {
	d := DistOf([]float64{10, 1, math.NaN(), 4, 3, 2})
	// np.mean = 4, np.std = sqrt(10), np.percentile(.., 50) = 3, 90 → 7.6, 95 → 8.8, 99 → 9.76
	if d.N != 5 || !near(d.Mean, 4) || !near(d.Std, math.Sqrt(10)) || d.Min != 1 || !near(d.P50, 3) ||
		!near(d.P90, 7.6) || !near(d.P95, 8.8) || !near(d.P99, 9.76) || d.Max != 10 {
		t.Errorf("DistOf = %+v", d)
	}
	e := DistOf(nil)
	if e.N != 0 || !math.IsNaN(e.Mean) || !math.IsNaN(e.P99) || !math.IsNaN(e.Min) {
		t.Errorf("DistOf(nil) = %+v; want N 0 and NaNs", e)
	}
}

// TestDistJSON: NaN is null, and null reads back as NaN.
func TestDistJSON(t *testing.T) {
	b, err := json.Marshal(struct{ D Dist }{DistOf(nil)})
	if err != nil || string(b) != `{"D":{"n":0,"mean":null,"std":null,"min":null,"p50":null,"p90":null,"p95":null,"p99":null,"max":null}}` {
		t.Fatalf("%s, %v", b, err)
	}
	in := DistOf([]float64{1, 2, 3})
	b, err = json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out Dist
	if err := json.Unmarshal(b, &out); err != nil || out != in {
		t.Errorf("round trip %s: %+v, %v", b, out, err)
	}
	var nan Dist
	if err := json.Unmarshal([]byte(`{"n":0,"mean":null}`), &nan); err != nil || !math.IsNaN(nan.Mean) {
		t.Errorf("null: %+v %v", nan, err)
	}
	if b, err := json.Marshal(CI{Mean: 1, Half: math.NaN()}); err != nil || string(b) != `{"n":0,"mean":1,"ci95":null}` {
		t.Errorf("CI: %s %v", b, err)
	}
}

func TestMeanCI(t *testing.T) {
	// scipy: t.ppf(0.975, 4) = 2.7764; s = 1.5811 for 1..5 → half 1.9632
	c := MeanCI([]float64{1, 2, 3, 4, 5})
	if c.N != 5 || !near(c.Mean, 3) || math.Abs(c.Half-2.776*math.Sqrt(2.5)/math.Sqrt(5)) > 1e-9 {
		t.Errorf("MeanCI = %+v", c)
	}
	if c := MeanCI([]float64{2}); c.N != 1 || c.Mean != 2 || !math.IsNaN(c.Half) {
		t.Errorf("one trial: %+v; want mean 2, NaN half", c)
	}
	// df > 30: expansion vs the table value t(0.975, 40) = 2.0211, t(0.975, 120) = 1.9799
	for _, tt := range []struct {
		df   int
		want float64
	}{{40, 2.0211}, {120, 1.9799}, {1000, 1.9623}} {
		if got := tQuantile975(tt.df); math.Abs(got-tt.want) > 0.001 {
			t.Errorf("t(0.975, %d) = %v; want %v", tt.df, got, tt.want)
		}
	}
}

// TestWindowThroughput: the window runs from the first start to the last
// end, cut at the deadline; throughput counts completed requests ending
// inside.
func TestWindowThroughput(t *testing.T) {
	const s = int64(time.Second)
	late := done(3*s, 0, 5*time.Second, 7) // ends at 8 s, after the 6-s deadline
	cut := Request{Start: 4 * s, End: 2 * time.Second, Outcome: Cut, ErrorKind: KindCut, Deadline: 6 * s}
	reqs := []Request{done(0, 0, time.Second, 10), done(1*s, 0, time.Second, 20), late, cut}
	from, to := Window(reqs, false)
	if from != 0 || to != 6*s {
		t.Fatalf("window [%d, %d]; want [0, 6 s]", from, to)
	}
	if f, to := Window(reqs, true); f != 0 || to != 4*s {
		t.Errorf("steady window ends at %d; want the last start, 4 s", to)
	}
	tp := ThroughputIn(reqs, from, to, func(r *Request) bool { return r.OutputTokens >= 20 })
	if tp.Completed != 2 || tp.OutputTokens != 30 || tp.InputTokens != 20 || tp.Good != 1 {
		t.Errorf("%+v", tp)
	}
	check(t, "req/s", tp.Requests, 2.0/6)
	check(t, "tok/s", tp.Output, 30.0/6)
	check(t, "goodput", tp.Goodput, 1.0/6)
	check(t, "no SLO", ThroughputIn(reqs, from, to, nil).Goodput, math.NaN())
}

// TestWorkIn: a request counts by the fraction of its lifetime inside the
// window, its tokens by the fraction of its decode time (a probe's step).
func TestWorkIn(t *testing.T) {
	const s = int64(time.Second)
	cut := done(2*s, 0, time.Second, 5)
	cut.Outcome = Cut
	reqs := []Request{
		done(0, 100*time.Millisecond, time.Second, 11), // inside: 1 request, 11 tokens
		done(1*s, time.Second, 2*time.Second, 10),      // ends at the window's end: all inside
		done(2*s, time.Second, 2*time.Second, 10),      // half its life inside; its decode starts at the end: 0 tokens
		cut, // not completed: not counted
	}
	rps, tps := WorkIn(reqs, 0, 3*s)
	check(t, "req/s", rps, (1+1+0.5)/3.0)
	check(t, "tok/s", tps, (11.0+10)/3)
}
