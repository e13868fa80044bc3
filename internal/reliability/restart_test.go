package reliability

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vbench/vbench/capture"
	"github.com/vbench/vbench/internal/testbin"
	"github.com/vbench/vbench/internal/testserver"
)

// TestReliabilityProxyKillRestart: vbproxy is SIGKILLed under load, then
// restarted on the same capture, several times. Asserts: every record the
// proxy had reported committed (/vb/stats capture.written, read just
// before the kill) is in the capture after the restart; the restarted
// proxy recovers the store and serves (the recovery time, exec to healthy,
// is reported); requests served after the last restart are all there after
// a clean stop. How many requests that completed within the flush interval
// (+ slack) of a kill were lost is reported: on a starved machine the
// writer's flush comes later, so that figure is a measurement, not a bound.
func TestReliabilityProxyKillRestart(t *testing.T) { killRestart(t, 0) }

// TestReliabilityProxyKillRestartLarge is the same with ~1 MiB request
// bodies (recorded in full): ~1 MB records, whose commits Badger stalls on
// (value-log rotation msyncs the old file; a slow disk). Records waiting
// for Badger were lost at a kill: two responses finished 315 and 490 ms
// before it. The writer's journal keeps them (capture/journal.go); this
// variant asserts that no request completed more than 250 ms before a
// kill is missing, so it skips under -short (make slow runs it).
func TestReliabilityProxyKillRestartLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: a timing bound under 1-MiB bodies (make slow runs it)")
	}
	killRestart(t, 1<<20)
}

// largePrompt is a prompt of n pseudo-random base64 characters (little
// for S2 to compress).
func largePrompt(n, seed int) string {
	b := make([]byte, n*3/4)
	x := uint64(seed)*0x9E3779B97F4A7C15 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	return base64.StdEncoding.EncodeToString(b)
}

func killRestart(t *testing.T, bodySize int) {
	if bodySize == 0 {
		// Its own servers, processes and directories. The large variant
		// runs alone: its bound is on the journal goroutine's latency,
		// which a starved CPU stretches (two kill tests at once lost
		// records completed 255-548 ms before a kill, alone none).
		t.Parallel()
	}
	srv, err := testserver.Start(testserver.Config{ITL: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	dir := filepath.Join(t.TempDir(), "cap")
	const flush = 20 * time.Millisecond
	args := []string{"--upstream", srv.URL, "--capture", dir, "--flush-interval", flush.String(), "--log-level", "warn"}
	cycles := pick(3, 10)
	type done struct {
		at    time.Time
		cycle int
	}
	var mu sync.Mutex
	completed := map[int]done{}
	sentIn := map[int]int{}             // request index → the cycle that sent it
	perCycle := make([]int, cycles+1)   // requests completed per cycle
	committed := make([]uint64, cycles) // capture.written just before each kill
	kills := make([]time.Time, cycles)
	var recoveries []time.Duration
	next := 0
	var p *vbproxyProc
	// load streams with 8 clients for at least d and until 30 requests of
	// this cycle completed (a condition, so a busy machine changes when the
	// kill comes, not whether there was load), then kills the proxy.
	load := func(cycle int, d time.Duration) {
		client := newClient(t, 8)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					mu.Lock()
					i := next
					next++
					sentIn[i] = cycle
					mu.Unlock()
					body := `{"model":"m","prompt":"x","max_tokens":5,"stream":true}`
					if bodySize > 0 {
						body = `{"model":"m","prompt":"` + largePrompt(bodySize, i) + `","max_tokens":5,"stream":true}`
					}
					_, b, err := post(context.Background(), client, p.url, i, body)
					if err == nil && strings.HasSuffix(string(b), "data: [DONE]\n\n") {
						mu.Lock()
						completed[i] = done{time.Now(), cycle}
						perCycle[cycle]++
						mu.Unlock()
					}
				}
			}()
		}
		time.Sleep(d) // the load's length: the behaviour under test, not a wait for an event
		if !waitFor(60*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return perCycle[cycle] >= 30 }) {
			t.Errorf("cycle %d: only %d requests completed in 60 s", cycle, perCycle[cycle])
		}
		if cycle < cycles {
			committed[cycle] = testbin.ProxyWritten(t, p.url)
			kills[cycle] = time.Now()
			p.cmd.Process.Signal(syscall.SIGKILL)
		}
		cancel()
		wg.Wait()
		if cycle < cycles {
			p.cmd.Wait()
		}
	}
	for c := range cycles + 1 {
		p = startVbproxy(t, args...)
		if c > 0 {
			recoveries = append(recoveries, p.ready)
		}
		load(c, pick(1500*time.Millisecond, 5*time.Second))
	}
	// Clean stop of the last proxy.
	p.cmd.Process.Signal(os.Interrupt)
	if err := p.cmd.Wait(); err != nil {
		t.Errorf("last vbproxy exit: %v\n%s", err, p.stderr.String())
	}
	st, err := capture.Open(dir, capture.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("open the capture after %d kills: %v", cycles, err)
	}
	defer st.Close()
	have := map[int64]bool{}
	present := make([]uint64, cycles+1) // records in the capture per cycle
	st.Records(func(r *capture.Record) error {
		have[r.Tags.Index] = true
		present[sentIn[int(r.Tags.Index)]]++
		return nil
	})
	for c := range cycles {
		if committed[c] == 0 {
			t.Errorf("cycle %d: the proxy had committed no record before the kill (flush interval %v)", c, flush)
		}
		if present[c] < committed[c] {
			t.Errorf("cycle %d: %d records in the capture; the proxy had reported %d committed before the kill -9", c, present[c], committed[c])
		}
	}
	slack := flush + 100*time.Millisecond
	const journalBound = 250 * time.Millisecond
	var lostAfterRestart, early, late int
	var beyond []string
	for i, d := range completed {
		switch {
		case have[int64(i)]:
		case d.cycle == cycles:
			lostAfterRestart++
		case kills[d.cycle].Sub(d.at) > slack:
			early++
			if before := kills[d.cycle].Sub(d.at); before > journalBound {
				beyond = append(beyond, fmt.Sprintf("%d (%v before kill %d)", i, before.Round(time.Millisecond), d.cycle))
			}
		default:
			late++
		}
	}
	if bodySize > 0 && len(beyond) > 0 {
		t.Errorf("%d requests completed more than %v before a kill are missing: %v", len(beyond), journalBound, beyond)
	}
	if lostAfterRestart > 0 {
		t.Errorf("%d requests completed after the last restart are missing after a clean stop", lostAfterRestart)
	}
	var maxRec time.Duration
	for _, r := range recoveries {
		maxRec = max(maxRec, r)
	}
	t.Logf("%d-byte bodies: %d kills under load (8 clients); %d requests completed, %d records; committed before each kill %v, in the capture %v; not recorded: %d completed more than %v before a kill, %d within %v of one; recovery (exec → healthy on the recovered capture) %v, max %v",
		bodySize, cycles, len(completed), len(have), committed, present[:cycles], early, slack, late, slack, recoveries, maxRec)
}
