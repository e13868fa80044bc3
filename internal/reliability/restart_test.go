package reliability

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vbench/vbench/capture"
	"github.com/vbench/vbench/internal/testserver"
)

// TestReliabilityProxyKillRestart: vbproxy is SIGKILLed under load, then
// restarted on the same capture, several times. Asserts: every request
// that completed more than the flush interval (+ slack) before a kill is
// in the capture; the restarted proxy recovers the store and serves (the
// recovery time, exec to healthy, is reported); requests served after the
// last restart are all there after a clean stop.
func TestReliabilityProxyKillRestart(t *testing.T) {
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
	kills := make([]time.Time, cycles)
	var recoveries []time.Duration
	next := 0
	var p *vbproxyProc
	load := func(cycle int, d time.Duration) {
		client := newClient(t, 8)
		ctx, cancel := context.WithTimeout(context.Background(), d)
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
					mu.Unlock()
					_, b, err := post(context.Background(), client, p.url, i, `{"model":"m","prompt":"x","max_tokens":5,"stream":true}`)
					if err == nil && strings.HasSuffix(string(b), "data: [DONE]\n\n") {
						mu.Lock()
						completed[i] = done{time.Now(), cycle}
						mu.Unlock()
					}
				}
			}()
		}
		<-ctx.Done()
		if cycle < cycles {
			kills[cycle] = time.Now()
			p.cmd.Process.Signal(syscall.SIGKILL)
		}
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
	st.Records(func(r *capture.Record) error { have[r.Tags.Index] = true; return nil })
	slack := flush + 100*time.Millisecond
	var lost, lateLost, lastCycle int
	var missing []string
	for i, d := range completed {
		if have[int64(i)] {
			continue
		}
		if d.cycle == cycles {
			lost++
			missing = append(missing, fmt.Sprintf("%d (after the last restart)", i))
		} else if kills[d.cycle].Sub(d.at) > slack {
			lost++
			missing = append(missing, fmt.Sprintf("%d (%v before kill %d)", i, kills[d.cycle].Sub(d.at), d.cycle))
		} else {
			lateLost++
		}
		if d.cycle == cycles {
			lastCycle++
		}
	}
	if lost > 0 {
		t.Errorf("%d completed requests missing from the capture: %v", lost, missing)
	}
	var maxRec time.Duration
	for _, r := range recoveries {
		maxRec = max(maxRec, r)
	}
	if len(completed) < 100 {
		t.Errorf("only %d requests completed: not under load", len(completed))
	}
	t.Logf("%d kills under load (8 clients); %d requests completed, %d records; lost = %d (completed > %v before a kill or after the last restart), %d completed within %v of a kill not recorded (allowed); recovery (exec → healthy on the recovered capture) %v, max %v",
		cycles, len(completed), len(have), lost, slack, lateLost, slack, recoveries, maxRec)
}
