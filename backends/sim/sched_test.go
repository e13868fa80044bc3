package sim

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func testConfig(t testing.TB, c Config) Config {
	t.Helper()
	if c.Preset == "" {
		c.Preset = "tiny"
	}
	c, err := c.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// checkInvariants verifies the KV accounting of the scheduler.
// After schedule a running sequence holds blocks for its whole context
// (the step fills them); after commit, for the tokens computed.
func checkInvariants(t *testing.T, s *scheduler, afterCommit bool) {
	t.Helper()
	if s.paged() {
		held := 0
		for _, q := range s.running {
			held += q.blocks
			ctx := q.context()
			if afterCommit {
				ctx = q.computed
			}
			if want := s.blocksFor(ctx); q.blocks != want {
				t.Fatalf("seq %d holds %d blocks for context %d, want %d", q.id, q.blocks, ctx, want)
			}
		}
		for _, q := range s.waiting {
			if q.blocks != 0 {
				t.Fatalf("waiting seq %d holds %d blocks", q.id, q.blocks)
			}
		}
		if held+s.freeBlocks != s.totalBlocks || s.freeBlocks < 0 {
			t.Fatalf("blocks: held %d + free %d != total %d", held, s.freeBlocks, s.totalBlocks)
		}
		return
	}
	reserved := 0
	for _, q := range s.running {
		reserved += q.reserved
		if q.reserved < q.prompt+q.target-1 {
			t.Fatalf("seq %d reserves %d < prompt %d + output %d - 1", q.id, q.reserved, q.prompt, q.target)
		}
	}
	if reserved+s.freeTokens != s.cfg.KVTokens || s.freeTokens < 0 {
		t.Fatalf("tokens: reserved %d + free %d != capacity %d", reserved, s.freeTokens, s.cfg.KVTokens)
	}
}

// drive runs a scheduler to completion in steps, checking invariants, and
// returns the steps taken.
func drive(t *testing.T, s *scheduler, check func(st *step)) int {
	t.Helper()
	steps := 0
	for {
		st := s.schedule()
		if st == nil {
			return steps
		}
		checkInvariants(t, s, false)
		if len(s.running) > s.cfg.MaxNumSeqs {
			t.Fatalf("step %d: %d running > max-num-seqs %d", steps, len(s.running), s.cfg.MaxNumSeqs)
		}
		if check != nil {
			check(st)
		}
		s.commit(st)
		checkInvariants(t, s, true)
		steps++
		if steps > 1e6 {
			t.Fatal("no progress")
		}
	}
}

func TestStepModelDuration(t *testing.T) {
	m := StepModel{Fixed: 10 * time.Millisecond, PerPrefillToken: 100 * time.Microsecond, PerDecodeSeq: time.Millisecond, PerContextToken: time.Microsecond}
	for _, tc := range []struct {
		p, d, c int
		want    time.Duration
	}{
		{0, 0, 0, 10 * time.Millisecond},
		{100, 0, 100, 10*time.Millisecond + 10*time.Millisecond + 100*time.Microsecond},
		{0, 8, 4000, 10*time.Millisecond + 8*time.Millisecond + 4*time.Millisecond},
		{50, 2, 300, 10*time.Millisecond + 5*time.Millisecond + 2*time.Millisecond + 300*time.Microsecond},
	} {
		if got := m.Duration(tc.p, tc.d, tc.c); got != tc.want {
			t.Errorf("Duration(%d, %d, %d) = %v; want %v", tc.p, tc.d, tc.c, got, tc.want)
		}
	}
}

func TestBatchLimits(t *testing.T) {
	cfg := testConfig(t, Config{MaxNumSeqs: 3, MaxBatchTokens: 100, KVTokens: 4096})
	s := newScheduler(cfg)
	for i := range 10 {
		s.add(&seq{id: uint64(i), prompt: 40, maxTokens: 5, target: 5})
	}
	maxRun := 0
	drive(t, s, func(st *step) {
		maxRun = max(maxRun, len(st.seqs))
		prefills := 0
		for _, q := range st.seqs {
			if q.prefill {
				prefills++
			}
		}
		// Budget 100: decodes count 1, prefills 40 each; at most two
		// prefills fit an otherwise empty step.
		if prefills > 2 {
			t.Fatalf("%d prefills of 40 tokens in a step with a 100-token budget", prefills)
		}
		if st.prefillTokens+st.decodeSeqs > cfg.MaxBatchTokens {
			t.Fatalf("step of %d prefill + %d decode tokens > budget %d", st.prefillTokens, st.decodeSeqs, cfg.MaxBatchTokens)
		}
	})
	if maxRun != 3 {
		t.Fatalf("largest batch %d; want max-num-seqs 3", maxRun)
	}
}

func TestOversizePrefillRunsAlone(t *testing.T) {
	cfg := testConfig(t, Config{MaxBatchTokens: 64, KVTokens: 4096})
	s := newScheduler(cfg)
	s.add(&seq{id: 1, prompt: 300, maxTokens: 2, target: 2})
	s.add(&seq{id: 2, prompt: 10, maxTokens: 2, target: 2})
	st := s.schedule()
	if len(st.seqs) != 1 || st.prefillTokens != 300 {
		t.Fatalf("first step: %d seqs, %d prefill tokens; want the 300-token prompt alone", len(st.seqs), st.prefillTokens)
	}
}

func TestReservation(t *testing.T) {
	for _, tc := range []struct {
		res                       string
		prompt, maxTokens, target int
		want                      int
	}{
		{ReserveMax, 100, 50, 30, 512},
		{ReservePow2, 100, 50, 30, 164},
		{ReservePow2, 100, 64, 64, 164},
		{ReservePow2, 400, 100, 100, 512}, // capped at max model len
		{ReserveOracle, 100, 50, 30, 130},
	} {
		s := newScheduler(testConfig(t, Config{Policy: PolicyContiguous, Reservation: tc.res}))
		if got := s.reservation(&seq{prompt: tc.prompt, maxTokens: tc.maxTokens, target: tc.target}); got != tc.want {
			t.Errorf("%s reservation(prompt %d, max %d, out %d) = %d; want %d", tc.res, tc.prompt, tc.maxTokens, tc.target, got, tc.want)
		}
	}
}

// randomWorkload queues n random requests that each fit the cache.
func randomWorkload(s *scheduler, n int, seed uint64) []*seq {
	r := rand.New(rand.NewPCG(seed, 7))
	var seqs []*seq
	for i := range n {
		p := 1 + r.IntN(200)
		o := 1 + r.IntN(250)
		q := &seq{id: uint64(i), prompt: p, maxTokens: o + r.IntN(30), target: o}
		seqs = append(seqs, q)
		s.add(q)
	}
	return seqs
}

func TestKVAccountingAndExactLengths(t *testing.T) {
	for _, c := range []Config{
		{Policy: PolicyPaged},
		{Policy: PolicyContiguous, Reservation: ReserveMax},
		{Policy: PolicyContiguous, Reservation: ReservePow2},
		{Policy: PolicyContiguous, Reservation: ReserveOracle},
	} {
		t.Run(c.Policy+"/"+c.Reservation, func(t *testing.T) {
			s := newScheduler(testConfig(t, c))
			seqs := randomWorkload(s, 200, 1)
			emitted := make(map[uint64]int)
			drive(t, s, func(st *step) {
				for _, q := range st.seqs {
					emitted[q.id]++
				}
			})
			for _, q := range seqs {
				if q.generated != q.target || emitted[q.id] != q.target {
					t.Fatalf("seq %d generated %d (emitted %d); want exactly %d", q.id, q.generated, emitted[q.id], q.target)
				}
			}
			if c.Policy == PolicyContiguous && s.preemptions != 0 {
				t.Fatalf("contiguous policy preempted %d times", s.preemptions)
			}
			if s.freeBlocks != s.totalBlocks || s.freeTokens != s.cfg.KVTokens {
				t.Fatalf("memory not returned: free blocks %d/%d, free tokens %d/%d", s.freeBlocks, s.totalBlocks, s.freeTokens, s.cfg.KVTokens)
			}
		})
	}
}

func TestPagedPreemptsNewestFirst(t *testing.T) {
	// 4 blocks of 16 tokens; two sequences that each grow to 3 blocks.
	s := newScheduler(testConfig(t, Config{KVTokens: 64}))
	a := &seq{id: 1, prompt: 15, maxTokens: 40, target: 40}
	b := &seq{id: 2, prompt: 15, maxTokens: 40, target: 40}
	s.add(a)
	s.add(b)
	n := 0
	drive(t, s, func(st *step) {
		n++
		if st.preempted > 0 {
			for _, q := range st.seqs {
				if q.id == b.id {
					t.Fatalf("step %d: preempted b still scheduled", n)
				}
			}
		}
	})
	if s.preemptions == 0 {
		t.Fatal("no preemption although the two sequences need 6 of 4 blocks")
	}
	if a.admitted != 1 || b.admitted <= 2 {
		t.Fatalf("admissions: a %d, b %d; want a first and b re-admitted after preemption", a.admitted, b.admitted)
	}
	if a.generated != 40 || b.generated != 40 {
		t.Fatalf("generated a %d, b %d; want 40 each", a.generated, b.generated)
	}
}

func TestPagedBatchesMoreThanContiguousMax(t *testing.T) {
	// The vLLM paper's effect on a ShareGPT-like load: the same KV budget
	// holds many more paged sequences than max reservations.
	reqs := poissonLoad(400, 1.0, 7)
	batch := map[string]float64{}
	for _, c := range []Config{{Policy: PolicyPaged}, {Policy: PolicyContiguous, Reservation: ReserveMax}} {
		c.Preset = DefaultPreset
		res, st, err := Simulate(c, reqs)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			if len(r.Tokens) != reqs[i].Output {
				t.Fatalf("%s: request %d emitted %d tokens; want %d", c.Policy, i, len(r.Tokens), reqs[i].Output)
			}
		}
		batch[c.Policy] = st.MeanBatch
		if c.Policy == PolicyContiguous && st.MaxBatch > 7 {
			t.Fatalf("contiguous/max batched %d sequences; 15696/2048 allows 7", st.MaxBatch)
		}
	}
	if batch[PolicyPaged] < 1.3*batch[PolicyContiguous] {
		t.Fatalf("mean batch paged %.2f vs contiguous %.2f; want paged clearly larger", batch[PolicyPaged], batch[PolicyContiguous])
	}
}

// poissonLoad returns n ShareGPT-like requests (means ≈ 160 in, 340 out)
// at rate req/s.
func poissonLoad(n int, rate float64, seed uint64) []VirtualRequest {
	r := rand.New(rand.NewPCG(seed, 1))
	var out []VirtualRequest
	t := 0.0
	for range n {
		t += r.ExpFloat64() / rate
		in := min(1+int(r.ExpFloat64()*160), 1024)
		o := min(1+int(r.ExpFloat64()*340), 2048-in)
		out = append(out, VirtualRequest{Arrival: time.Duration(t * 1e9), Prompt: in, Output: o})
	}
	return out
}

func TestSimulateDeterministic(t *testing.T) {
	reqs := poissonLoad(200, 2, 3)
	a, sa, err := Simulate(Config{}, reqs)
	if err != nil {
		t.Fatal(err)
	}
	b, sb, _ := Simulate(Config{}, reqs)
	if sa != sb {
		t.Fatalf("stats differ: %+v vs %+v", sa, sb)
	}
	for i := range a {
		for j := range a[i].Tokens {
			if a[i].Tokens[j] != b[i].Tokens[j] {
				t.Fatalf("request %d token %d: %v vs %v", i, j, a[i].Tokens[j], b[i].Tokens[j])
			}
		}
	}
}

func TestSimulateRejects(t *testing.T) {
	for name, reqs := range map[string][]VirtualRequest{
		"unordered": {{Arrival: 2, Prompt: 1, Output: 1}, {Arrival: 1, Prompt: 1, Output: 1}},
		"empty":     {{Prompt: 1, Output: 0}},
		"too big":   {{Prompt: 2000, Output: 2000}},
	} {
		if _, _, err := Simulate(Config{Preset: "tiny"}, reqs); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestConfigResolve(t *testing.T) {
	c, err := Config{}.Resolve()
	if err != nil || c.Preset != DefaultPreset || c.KVTokens != 15696 || c.Policy != PolicyPaged || c.Speed != 1 {
		t.Fatalf("defaults: %+v, %v", c, err)
	}
	_, err = Config{Preset: "nope", Policy: "x"}.Resolve()
	if err == nil {
		t.Fatal("unknown preset accepted")
	}
	_, err = Config{Policy: "x", Reservation: "y", Speed: -1, KVTokens: -5}.Resolve()
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, want := range []string{`policy "x"`, `reservation "y"`, "speed -1", "kv tokens -5"} {
		if !contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	_, err = Config{Policy: PolicyContiguous, KVTokens: 1000}.Resolve()
	if err == nil || !contains(err.Error(), "max model len 2048") {
		t.Fatalf("contiguous/max with a cache smaller than one reservation: %v", err)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// BenchmarkScheduleStep measures one engine iteration (schedule + commit)
// of a steady batch of ~400 sequences: finished ones are re-queued.
func BenchmarkScheduleStep(b *testing.B) {
	cfg := testConfig(b, Config{Preset: DefaultPreset, KVTokens: 1 << 20, MaxNumSeqs: 512})
	s := newScheduler(cfg)
	for i := range 400 {
		s.add(&seq{id: uint64(i), prompt: 100, maxTokens: 300, target: 100 + i%200})
	}
	var again []*seq
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		st := s.schedule()
		again = append(again[:0], s.commit(st)...)
		for _, q := range again {
			q.generated, q.computed = 0, 0
			s.add(q)
		}
	}
	b.ReportMetric(float64(len(s.running)), "seqs")
}
