package sim

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// runLive submits reqs to a live engine at their arrival times (divided by
// speed) inside a synctest bubble and returns each token's emission time,
// scaled back to simulated time.
func runLive(t *testing.T, cfg Config, reqs []VirtualRequest) [][]time.Duration {
	t.Helper()
	out := make([][]time.Duration, len(reqs))
	synctest.Test(t, func(t *testing.T) {
		eng, err := NewEngine(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go eng.Run(ctx)
		start := time.Now()
		var wg sync.WaitGroup
		for i, r := range reqs {
			time.Sleep(time.Until(start.Add(time.Duration(float64(r.Arrival) / cfg.Speed))))
			sq, err := eng.Submit(r.Prompt, max(r.MaxTokens, r.Output), r.Output, FinishLength)
			if err != nil {
				t.Fatal(err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				seen := 0
				for range sq.Notify() {
					g, done := sq.Progress()
					now := time.Duration(float64(time.Since(start)) * cfg.Speed)
					for ; seen < g; seen++ {
						out[i] = append(out[i], now)
					}
					if done {
						return
					}
				}
			}()
		}
		wg.Wait()
		st := eng.Stats()
		if st.Running != 0 || st.Waiting != 0 || st.KVUsed != 0 {
			t.Errorf("after the load: running %d, waiting %d, kv used %d; want 0", st.Running, st.Waiting, st.KVUsed)
		}
	})
	return out
}

func TestEngineMatchesVirtualSimulation(t *testing.T) {
	for _, speed := range []float64{1, 8} {
		for _, policy := range []string{PolicyPaged, PolicyContiguous} {
			cfg := testConfig(t, Config{Policy: policy, Reservation: ReservePow2, Speed: speed, KVTokens: 1024, MaxModelLen: 512})
			reqs := []VirtualRequest{
				{Arrival: 0, Prompt: 100, Output: 20},
				{Arrival: 3 * time.Millisecond, Prompt: 300, Output: 40},
				{Arrival: 5 * time.Millisecond, Prompt: 200, Output: 60},
				{Arrival: 9 * time.Millisecond, Prompt: 250, Output: 30},
				{Arrival: 400 * time.Millisecond, Prompt: 10, Output: 5}, // after an idle gap
			}
			want, _, err := Simulate(cfg, reqs)
			if err != nil {
				t.Fatal(err)
			}
			got := runLive(t, cfg, reqs)
			for i := range reqs {
				if len(got[i]) != reqs[i].Output {
					t.Fatalf("speed %g %s: request %d got %d tokens; want %d", speed, policy, i, len(got[i]), reqs[i].Output)
				}
				for j := range got[i] {
					// Speed scaling rounds to the nanosecond.
					if d := got[i][j] - want[i].Tokens[j]; d < -time.Microsecond || d > time.Microsecond {
						t.Fatalf("speed %g %s: request %d token %d at %v; virtual simulation says %v", speed, policy, i, j, got[i][j], want[i].Tokens[j])
					}
				}
			}
		}
	}
}

func TestEngineStepTiming(t *testing.T) {
	// One request alone: prefill step, then decode steps, each as the
	// step model says.
	cfg := testConfig(t, Config{})
	got := runLive(t, cfg, []VirtualRequest{{Prompt: 100, Output: 3}})[0]
	m := cfg.Step
	t1 := m.Duration(100, 0, 100)
	t2 := t1 + m.Duration(0, 1, 101)
	t3 := t2 + m.Duration(0, 1, 102)
	want := []time.Duration{t1, t2, t3}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("token %d at %v; want %v", i, got[i], want[i])
		}
	}
}

func TestEngineAbortFreesMemory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		eng, _ := NewEngine(testConfig(t, Config{}))
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go eng.Run(ctx)
		sq, _ := eng.Submit(200, 400, 400, FinishLength)
		<-sq.Notify()
		time.Sleep(50 * time.Millisecond)
		if st := eng.Stats(); st.Running != 1 || st.KVUsed == 0 {
			t.Fatalf("while running: %+v", st)
		}
		sq.Abort()
		time.Sleep(50 * time.Millisecond)
		synctest.Wait()
		st := eng.Stats()
		if st.Running != 0 || st.KVUsed != 0 || st.Finished[FinishAbort] != 1 {
			t.Fatalf("after abort: running %d, kv used %d, aborted %d; want 0, 0, 1", st.Running, st.KVUsed, st.Finished[FinishAbort])
		}
		if g, _ := sq.Progress(); g >= 400 {
			t.Fatalf("aborted sequence finished anyway (%d tokens)", g)
		}
	})
}

func TestEngineStopAbortsAndRefuses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		eng, _ := NewEngine(testConfig(t, Config{}))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { eng.Run(ctx); close(done) }()
		sq, _ := eng.Submit(10, 400, 400, FinishLength)
		time.Sleep(20 * time.Millisecond)
		cancel()
		<-done
		if g, d := sq.Progress(); !d || g >= 400 {
			t.Fatalf("after stop: generated %d, done %v; want done early", g, d)
		}
		if _, err := eng.Submit(1, 1, 1, FinishLength); err != ErrClosed {
			t.Fatalf("Submit after stop: %v; want ErrClosed", err)
		}
	})
}
