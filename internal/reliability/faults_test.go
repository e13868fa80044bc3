package reliability

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vbench/vbench/capture"
	"github.com/vbench/vbench/internal/testserver"
	"github.com/vbench/vbench/proxy"
)

const sseHead = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"

// chunk frames b as one HTTP/1.1 chunk.
func chunk(b string) string { return fmt.Sprintf("%x\r\n%s\r\n", len(b), b) }

const event = `data: {"choices":[{"index":0,"text":"hi","finish_reason":null}]}` + "\n\n"

// TestReliabilityUpstreamFaults: hand-written faulty upstream replies.
// Each asserts what the client got and what the capture holds.
func TestReliabilityUpstreamFaults(t *testing.T) {
	t.Parallel() // its own servers, processes and directories
	malformed := []string{"data: {not json\n\n", "garbage line without a field\n\n", "data: \x00\xff\xfe\n\n", ": comment only\n\n", "event: error\ndata: {\"error\":{\"message\":\"boom\"}}\n\n", "data: [DONE]\n\n"}
	tests := []struct {
		name       string
		reply      func(c net.Conn)
		idle       time.Duration
		header     time.Duration // --header-timeout (0: 10s)
		wantStatus int           // what the client sees
		wantBody   string        // exact bytes the client must get ("" = not checked)
		clientErr  bool          // the client's read must fail (broken stream)
		outcome    capture.Outcome
		noteError  bool // the record's Error must say something
		minEnd     time.Duration
	}{
		{name: "malformed SSE passes byte-identical, ok with a note",
			reply: func(c net.Conn) {
				c.Write([]byte(sseHead))
				for _, e := range malformed {
					c.Write([]byte(chunk(e)))
					time.Sleep(2 * time.Millisecond)
				}
				c.Write([]byte("0\r\n\r\n"))
			},
			wantStatus: 200, wantBody: strings.Join(malformed, ""), outcome: capture.OutcomeOK, noteError: true},
		{name: "truncated chunked encoding",
			reply: func(c net.Conn) {
				c.Write([]byte(sseHead + chunk(event) + "64\r\n" + event[:10]))
			},
			wantStatus: 200, clientErr: true, outcome: capture.OutcomeUpstreamError, noteError: true},
		{name: "bad chunk size line",
			reply: func(c net.Conn) {
				c.Write([]byte(sseHead + chunk(event) + "zz\r\nxx\r\n"))
			},
			wantStatus: 200, clientErr: true, outcome: capture.OutcomeUpstreamError, noteError: true},
		{name: "content-length longer than the body",
			reply: func(c net.Conn) {
				c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"partial\":"))
			},
			wantStatus: 200, clientErr: true, outcome: capture.OutcomeUpstreamError, noteError: true},
		{name: "content-length shorter than the body",
			reply: func(c net.Conn) {
				c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\n{\"a\":1}trailing garbage"))
			},
			wantStatus: 200, wantBody: `{"a":`, outcome: capture.OutcomeOK},
		{name: "hang after headers past the idle timeout",
			reply: func(c net.Conn) {
				c.Write([]byte(sseHead))
				time.Sleep(2 * time.Second)
			},
			idle: 300 * time.Millisecond, wantStatus: 200, clientErr: true, outcome: capture.OutcomeIdleTimeout, noteError: true, minEnd: 300 * time.Millisecond},
		{name: "hang mid-stream past the idle timeout",
			reply: func(c net.Conn) {
				c.Write([]byte(sseHead + chunk(event) + chunk(event)))
				time.Sleep(2 * time.Second)
			},
			idle: 300 * time.Millisecond, wantStatus: 200, clientErr: true, outcome: capture.OutcomeIdleTimeout, noteError: true, minEnd: 300 * time.Millisecond},
		{name: "hang before headers past the header timeout",
			reply: func(c net.Conn) {
				time.Sleep(2 * time.Second)
			},
			header: 300 * time.Millisecond, wantStatus: 504, outcome: capture.OutcomeUpstreamHeaderTimeout, noteError: true, minEnd: 300 * time.Millisecond},
		{name: "not HTTP at all",
			reply: func(c net.Conn) {
				c.Write([]byte("SSH-2.0-OpenSSH_9.6\r\n\r\n"))
			},
			wantStatus: 502, outcome: capture.OutcomeUpstreamUnreachable, noteError: true},
		{name: "closed before any byte",
			reply:      func(c net.Conn) {},
			wantStatus: 502, outcome: capture.OutcomeUpstreamUnreachable, noteError: true},
		{name: "reset before any byte",
			reply: func(c net.Conn) {
				if tc, ok := c.(*net.TCPConn); ok {
					tc.SetLinger(0)
				}
			},
			wantStatus: 502, outcome: capture.OutcomeUpstreamUnreachable, noteError: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			up := rawUpstream(t, func(c net.Conn, _ string) { tt.reply(c) })
			idle := tt.idle
			if idle == 0 {
				idle = 10 * time.Second
			}
			header := tt.header
			if header == 0 {
				header = 10 * time.Second
			}
			r := startRig(t, up, "", proxy.Config{IdleTimeout: idle, HeaderTimeout: header}, capture.Options{})
			status, body, err := post(context.Background(), newClient(t, 1), r.url, 7, "")
			if status != tt.wantStatus {
				t.Errorf("client status %d; want %d (body %q, err %v)", status, tt.wantStatus, body, err)
			}
			if tt.clientErr && err == nil {
				t.Errorf("client read %q without error; the broken upstream must reach the client as a broken stream", body)
			}
			if !tt.clientErr && err != nil {
				t.Errorf("client read error %v", err)
			}
			if tt.wantBody != "" && string(body) != tt.wantBody {
				t.Errorf("client body %q; want byte-identical %q", body, tt.wantBody)
			}
			recs := r.records(t)
			if len(recs) != 1 {
				t.Fatalf("capture holds %d records; want 1", len(recs))
			}
			rec := recs[0]
			if rec.Outcome != tt.outcome || rec.Tags.Index != 7 {
				t.Errorf("record outcome %q index %d (error %q); want %q index 7", rec.Outcome, rec.Tags.Index, rec.Error, tt.outcome)
			}
			if tt.noteError && rec.Error == "" {
				t.Errorf("record has no error text; want the reason")
			}
			if tt.wantStatus == 200 && !bytes.Equal(rec.ResponseBody, body) && tt.wantBody != "" {
				t.Errorf("recorded body %q differs from what the client got %q", rec.ResponseBody, body)
			}
			if end := time.Duration(rec.End); end < tt.minEnd {
				t.Errorf("record ends at %v; want >= %v", end, tt.minEnd)
			}
		})
	}
}

// TestReliabilityErrorBursts: bursts of 5xx and 429 replies under
// concurrency; each is passed through unchanged (status, Retry-After, body)
// and recorded with its status.
func TestReliabilityErrorBursts(t *testing.T) {
	t.Parallel() // its own servers, processes and directories
	codes := []int{500, 502, 503, 504, 429}
	up := rawUpstream(t, func(c net.Conn, head string) {
		var idx int
		for _, line := range strings.Split(head, "\r\n") {
			if strings.HasPrefix(strings.ToLower(line), "x-burst:") {
				fmt.Sscan(strings.TrimSpace(line[len("x-burst:"):]), &idx)
			}
		}
		code := codes[idx%len(codes)]
		body := fmt.Sprintf(`{"error":{"message":"burst %d","code":%d}}`, idx, code)
		fmt.Fprintf(c, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nRetry-After: 2\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", code, http.StatusText(code), len(body), body)
	})
	r := startRig(t, up, "", proxy.Config{}, capture.Options{})
	n := pick(200, 2000)
	client := newClient(t, 64)
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := map[int]int{}
	sem := make(chan struct{}, 64)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			req, _ := http.NewRequest("POST", r.url+"/v1/completions", strings.NewReader(`{"model":"m","prompt":"x"}`))
			req.Header.Set("X-VB-Index", fmt.Sprint(i))
			req.Header.Set("X-Burst", fmt.Sprint(i))
			resp, err := client.Do(req)
			if err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			resp.Body.Close()
			if resp.Header.Get("Retry-After") != "2" {
				t.Errorf("request %d: Retry-After %q not passed through", i, resp.Header.Get("Retry-After"))
			}
			mu.Lock()
			got[i] = resp.StatusCode
			mu.Unlock()
		}()
	}
	wg.Wait()
	recs := r.records(t)
	if len(recs) != n {
		t.Errorf("capture holds %d records of %d requests; want all (lost %d)", len(recs), n, n-len(recs))
	}
	for _, rec := range recs {
		i := int(rec.Tags.Index)
		want := codes[i%len(codes)]
		if rec.Status != want || got[i] != want || rec.Outcome != capture.OutcomeOK {
			t.Errorf("request %d: client %d, record status %d outcome %q; want %d ok", i, got[i], rec.Status, rec.Outcome, want)
		}
		if !strings.Contains(string(rec.ResponseBody), fmt.Sprintf("burst %d", i)) {
			t.Errorf("request %d: recorded body %q", i, rec.ResponseBody)
		}
	}
	t.Logf("%d error replies (5xx and 429) passed through and recorded", len(recs))
}

// TestReliabilityUpstreamKilled: the upstream process is SIGKILLed at a
// random point while streams run through the proxy, several times.
// Asserts: every request the proxy took is in the capture (lost = 0); a
// stream cut by the kill is upstream_error with its partial timeline and
// exactly the bytes the client got; later requests are recorded as
// upstream_unreachable with a 502 to the client.
func TestReliabilityUpstreamKilled(t *testing.T) {
	t.Parallel() // its own servers, processes and directories
	rounds := pick(3, 20)
	for round := range rounds {
		cmd, up := helperUpstream(t, 10*time.Millisecond)
		r := startRig(t, up, "", proxy.Config{}, capture.Options{})
		client := newClient(t, 16)
		ctx, cancel := context.WithCancel(context.Background())
		type result struct {
			status int
			body   []byte
			err    error
		}
		var mu sync.Mutex
		res := map[int]result{}
		var next int
		var streaming atomic.Int64 // clients that have read part of a body, not its end
		var wg sync.WaitGroup
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					mu.Lock()
					i := next
					next++
					mu.Unlock()
					status, body, err := postCounting(client, r.url, i, `{"model":"m","prompt":"x","max_tokens":200,"stream":true}`, &streaming)
					mu.Lock()
					res[i] = result{status, body, err}
					mu.Unlock()
				}
			}()
		}
		killAfter := time.Duration(200+rand.IntN(1000)) * time.Millisecond
		time.Sleep(killAfter) // a random kill point: the behaviour under test
		// ... at which a stream is under way, however slow the machine: a
		// client has its first bytes, and the upstream needs 2 s for the
		// rest (200 tokens, 10 ms apart), so the kill cuts it upstream too
		// (with 500-ms streams a starved client once still read a stream
		// the upstream had finished).
		if !waitFor(30*time.Second, func() bool { return streaming.Load() > 0 }) {
			t.Fatalf("round %d: no stream under way 30 s after the start", round)
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		// Requests after the kill: wait for 16 of their 502s.
		if !waitFor(10*time.Second, func() bool {
			mu.Lock()
			defer mu.Unlock()
			n := 0
			for _, r := range res {
				if r.status == http.StatusBadGateway {
					n++
				}
			}
			return n >= 16
		}) {
			t.Errorf("round %d: fewer than 16 requests got a 502 within 10 s of the kill", round)
		}
		cancel()
		wg.Wait()
		recs := r.records(t)
		idx := byIndex(recs)
		var ok, cut, unreachable int
		for i, cr := range res {
			rec := idx[int64(i)]
			if rec == nil {
				t.Errorf("round %d: request %d (client status %d, err %v) has no record", round, i, cr.status, cr.err)
				continue
			}
			switch rec.Outcome {
			case capture.OutcomeOK:
				ok++
				if !bytes.HasSuffix(cr.body, []byte("data: [DONE]\n\n")) || cr.err != nil {
					t.Errorf("round %d: request %d recorded ok but the client got %d bytes, err %v", round, i, len(cr.body), cr.err)
				}
			case capture.OutcomeUpstreamError:
				cut++
				if cr.err == nil {
					t.Errorf("round %d: request %d cut by the kill but the client saw a clean end", round, i)
				}
			case capture.OutcomeUpstreamUnreachable, capture.OutcomeUpstreamConnect:
				// A pooled connection reset before headers, or no
				// connection at all once the process is gone.
				unreachable++
				if cr.status != 502 {
					t.Errorf("round %d: request %d unreachable but the client got status %d", round, i, cr.status)
				}
			default:
				t.Errorf("round %d: request %d outcome %q (%s)", round, i, rec.Outcome, rec.Error)
			}
			if rec.Outcome != capture.OutcomeUpstreamUnreachable && rec.Outcome != capture.OutcomeUpstreamConnect && rec.ResponseSize != int64(len(cr.body)) {
				t.Errorf("round %d: request %d: record says %d response bytes, the client got %d", round, i, rec.ResponseSize, len(cr.body))
			}
		}
		if len(recs) != len(res) {
			t.Errorf("round %d: %d records for %d requests", round, len(recs), len(res))
		}
		if cut == 0 {
			t.Errorf("round %d: no stream was cut by the kill (ok %d, unreachable %d)", round, ok, unreachable)
		}
		t.Logf("round %d: upstream killed after %v: %d requests, %d ok, %d cut mid-stream (upstream_error), %d unreachable after; records %d, lost %d",
			round, killAfter, len(res), ok, cut, unreachable, len(recs), len(res)-len(recs))
	}
}

// postCounting is post with streaming counting the clients between the
// first byte of the body and its end.
func postCounting(c *http.Client, url string, index int, body string, streaming *atomic.Int64) (int, []byte, error) {
	req, _ := http.NewRequest("POST", url+"/v1/completions", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-VB-Index", fmt.Sprint(index))
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	first := make([]byte, 1)
	n, err := io.ReadFull(resp.Body, first)
	if n == 0 {
		if err == io.EOF {
			err = nil // an empty body, read to its end
		}
		return resp.StatusCode, nil, err
	}
	streaming.Add(1)
	rest, err := io.ReadAll(resp.Body)
	streaming.Add(-1)
	return resp.StatusCode, append(first, rest...), err
}

// TestReliabilityClientDisconnects: clients go away at random points of
// their streams. Every exchange is recorded (client_aborted, or ok when it
// finished first), and the proxy lets go of the upstream: nothing stays in
// flight.
func TestReliabilityClientDisconnects(t *testing.T) {
	t.Parallel() // its own servers, processes and directories
	srv, err := testserver.Start(testserver.Config{ITL: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	r := startRig(t, srv.URL, "", proxy.Config{}, capture.Options{})
	n := pick(100, 2000)
	client := newClient(t, 50)
	var wg sync.WaitGroup
	aborted := make([]bool, n)
	sem := make(chan struct{}, 50)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rand.IntN(700))*time.Millisecond)
			defer cancel()
			_, _, err := post(ctx, client, r.url, i, `{"model":"m","prompt":"x","max_tokens":50,"stream":true}`)
			aborted[i] = err != nil
		}()
	}
	wg.Wait()
	if !waitFor(5*time.Second, func() bool { return r.p.Stats().InFlight == 0 }) {
		t.Errorf("%d exchanges still in flight 5 s after every client left", r.p.Stats().InFlight)
	}
	recs := r.records(t)
	idx := byIndex(recs)
	var nAborted, nOK int
	for i := range n {
		rec := idx[int64(i)]
		if rec == nil {
			// A client that left before its request reached the proxy
			// leaves no record: only then.
			if !aborted[i] {
				t.Errorf("request %d completed but has no record", i)
			}
			continue
		}
		switch rec.Outcome {
		case capture.OutcomeClientAborted:
			nAborted++
		case capture.OutcomeOK:
			nOK++
		default:
			t.Errorf("request %d: outcome %q (%s)", i, rec.Outcome, rec.Error)
		}
	}
	if nAborted == 0 {
		t.Errorf("no client_aborted record among %d", len(recs))
	}
	t.Logf("%d clients, %d records: %d client_aborted, %d ok; in flight after: 0", n, len(recs), nAborted, nOK)
}
