package reliability

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vbench/vbench/capture"
	"github.com/vbench/vbench/internal/testserver"
	"github.com/vbench/vbench/proxy"
)

// netemAvailable says whether tc netem works here (it needs the sch_netem
// kernel module). The development machine's kernel lacks it, so the suite
// uses its own relay; the check is logged so a reader knows which ran.
func netemAvailable() bool {
	if exec.Command("ip", "netns", "add", "vbrel-probe").Run() != nil {
		return false
	}
	defer exec.Command("ip", "netns", "del", "vbrel-probe").Run()
	return exec.Command("ip", "netns", "exec", "vbrel-probe", "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms").Run() == nil
}

// relay is a TCP relay on loopback that delays every upstream→proxy read
// by delay ± jitter, stalls a fraction `stall` of reads by stallFor (what
// a lost segment costs: a retransmission timeout), and resets a fraction
// `reset` of connections mid-response (a path that dies).
type relay struct {
	addr                    string
	delay, jitter, stallFor time.Duration
	stall, reset            float64
	stalls, resets          atomic.Int64
}

func startRelay(t testing.TB, target string, r *relay) *relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	var wg sync.WaitGroup
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.serve(c, target)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return r
}

func (r *relay) serve(c net.Conn, target string) {
	defer c.Close()
	u, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer u.Close()
	go func() { io.Copy(u, c); u.(*net.TCPConn).CloseWrite() }()
	buf := make([]byte, 32<<10)
	for {
		n, err := u.Read(buf)
		if n > 0 {
			d := r.delay
			if r.jitter > 0 {
				d += time.Duration(rand.Int64N(int64(2*r.jitter))) - r.jitter
			}
			if rand.Float64() < r.stall {
				r.stalls.Add(1)
				d += r.stallFor
			}
			time.Sleep(d)
			if rand.Float64() < r.reset {
				r.resets.Add(1)
				c.(*net.TCPConn).SetLinger(0)
				return
			}
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			c.(*net.TCPConn).CloseWrite()
			return
		}
	}
}

// TestReliabilityNetworkDelayLoss: a slow, lossy path between the proxy
// and the upstream (tc netem where the kernel has it; here our own relay:
// 20 ms ± 10 ms per read, 2% of reads stalled 200 ms, 1% of reads
// reset the connection mid-response). Asserts: every request is recorded; streams not
// reset arrive byte-identical to what the server sent and are ok; reset
// ones are upstream_error with their partial timeline; no request hangs.
func TestReliabilityNetworkDelayLoss(t *testing.T) {
	t.Parallel() // its own servers, processes and directories
	t.Logf("tc netem available: %v (the relay is used either way: it runs without root)", netemAvailable())
	srv, err := testserver.Start(testserver.Config{ITL: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	rl := startRelay(t, srv.Addr, &relay{delay: 20 * time.Millisecond, jitter: 10 * time.Millisecond, stall: 0.02, stallFor: 200 * time.Millisecond, reset: 0.01})
	r := startRig(t, rl.addr, "", proxy.Config{IdleTimeout: 5 * time.Second}, capture.Options{})
	// The reference bytes of a reply, straight from the server.
	_, want, err := post(context.Background(), newClient(t, 1), srv.URL, 0, `{"model":"m","prompt":"x","max_tokens":20,"stream":true}`)
	if err != nil {
		t.Fatal(err)
	}
	n := pick(400, 5000)
	client := newClient(t, 32)
	type res struct {
		status int
		body   []byte
		err    error
	}
	out := make([]res, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	start := time.Now()
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			status, b, err := post(ctx, client, r.url, i+1, `{"model":"m","prompt":"x","max_tokens":20,"stream":true}`)
			out[i] = res{status, b, err}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	recs := r.records(t)
	idx := byIndex(recs)
	var ok, cut int
	var ttft []time.Duration
	for i := range n {
		rec := idx[int64(i+1)]
		if rec == nil {
			t.Errorf("request %d: no record (client err %v)", i+1, out[i].err)
			continue
		}
		switch {
		case out[i].err == nil && out[i].status == 502:
			// Reset before the first response byte: the client gets a
			// 502 and the record says why.
			cut++
			if rec.Outcome != capture.OutcomeUpstreamUnreachable {
				t.Errorf("request %d: client got 502, record %q", i+1, rec.Outcome)
			}
		case out[i].err == nil:
			ok++
			if !bytes.Equal(normalizeIDs(out[i].body), normalizeIDs(want)) {
				t.Errorf("request %d: body differs from the server's", i+1)
			}
			if rec.Outcome != capture.OutcomeOK {
				t.Errorf("request %d: client got it whole, record %q (%s)", i+1, rec.Outcome, rec.Error)
			}
			if len(rec.Chunks) > 0 {
				ttft = append(ttft, time.Duration(rec.Chunks[0].At))
			}
		default:
			cut++
			if rec.Outcome != capture.OutcomeUpstreamError && rec.Outcome != capture.OutcomeUpstreamUnreachable {
				t.Errorf("request %d: client error %v, record %q", i+1, out[i].err, rec.Outcome)
			}
		}
	}
	if int64(cut) > rl.resets.Load() {
		t.Errorf("%d requests failed but the relay reset only %d connections", cut, rl.resets.Load())
	}
	var minFirst time.Duration = time.Hour
	for _, d := range ttft {
		minFirst = min(minFirst, d)
	}
	if len(ttft) > 0 && minFirst < 10*time.Millisecond {
		t.Errorf("a first chunk recorded %v after arrival through a path delaying >= 10 ms", minFirst)
	}
	t.Logf("%d requests in %v through the relay: %d ok byte-identical, %d cut by %d resets, %d reads stalled 200 ms; records %d, lost %d; first chunk >= %v",
		n, took.Round(time.Millisecond), ok, cut, rl.resets.Load(), rl.stalls.Load(), len(recs), n-len(recs), minFirst)
}

// normalizeIDs blanks what differs between two replies of the test server
// (ids and created times derive from the clock).
func normalizeIDs(b []byte) []byte {
	out := idRE.ReplaceAll(b, []byte(`"id":"x"`))
	return createdRE.ReplaceAll(out, []byte(`"created":0`))
}
