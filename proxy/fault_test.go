package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vbench/vbench/capture"
)

// hijackUpstream answers with a chunked SSE response written by hand, then
// kills the connection after `events` events (the engine dying mid-stream).
func hijackUpstream(t *testing.T, events int) string {
	return mustListen(t, func(c net.Conn) {
		defer c.Close()
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
		for i := 0; i < events; i++ {
			ev := fmt.Sprintf("data: {\"choices\":[{\"delta\":{\"content\":\"t%d\"}}]}\n\n", i)
			fmt.Fprintf(c, "%x\r\n%s\r\n", len(ev), ev)
			time.Sleep(5 * time.Millisecond)
		}
		// Half a chunk, then the process "dies": RST instead of FIN.
		io.WriteString(c, "40\r\ndata: {\"cho")
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
	})
}

// mustListen serves each connection with fn on loopback until the test ends.
func mustListen(t *testing.T, fn func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go fn(c)
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

func TestUpstreamKilledMidStream(t *testing.T) {
	leakCheck(t)
	addr := hijackUpstream(t, 3)
	sink := newMemSink()
	_, url := startProxy(t, Config{Upstream: addr}, sink)
	resp, err := newClient(t).Post(url+"/v1/chat/completions", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil {
		t.Errorf("client read the whole body without error; the upstream failure must reach the client as a broken stream")
	}
	if n := strings.Count(string(got), "data: "); n < 3 {
		t.Errorf("client got %d events before the failure; want the 3 sent (%q)", n, got)
	}
	rec := sink.wait(t, 1)[0]
	if rec.Outcome != capture.OutcomeUpstreamError || rec.Status != 200 {
		t.Errorf("record outcome %q status %d error %q; want upstream_error 200", rec.Outcome, rec.Status, rec.Error)
	}
	content := 0
	for _, c := range rec.Chunks {
		content += int(c.Content)
	}
	if content != 3 {
		t.Errorf("partial timeline has %d content events; want 3 (%+v)", content, rec.Chunks)
	}
}

func TestUpstreamRefused(t *testing.T) {
	leakCheck(t)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	sink := newMemSink()
	_, url := startProxy(t, Config{Upstream: addr}, sink)
	resp, err := newClient(t).Post(url+"/v1/completions", "application/json", strings.NewReader(`{"prompt":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "cannot connect") {
		t.Errorf("status %d body %q; want 502 saying it cannot connect", resp.StatusCode, body)
	}
	rec := sink.wait(t, 1)[0]
	if rec.Outcome != capture.OutcomeUpstreamConnect || rec.Status != 0 || rec.Error == "" || string(rec.RequestBody) != `{"prompt":"x"}` {
		t.Errorf("record %+v; want upstream_connect_error, status 0, an error and the request body", rec)
	}
}

func TestClientDisconnectMidStream(t *testing.T) {
	leakCheck(t)
	upstreamSawClose := make(chan int, 1)
	addr, _ := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		streamUntilClosed(w, r, upstreamSawClose)
	})
	sink := newMemSink()
	_, url := startProxy(t, Config{Upstream: addr}, sink)
	c := newClient(t)
	resp, err := c.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	for i := 0; i < 6; i++ { // 3 events = 6 lines
		if _, err := br.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	resp.Body.Close() // the client goes away mid-stream
	select {
	case i := <-upstreamSawClose:
		if i < 0 {
			t.Fatal("the upstream streamed to the end: the proxy did not close the upstream request")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream never saw the client leave")
	}
	rec := sink.wait(t, 1)[0]
	if rec.Outcome != capture.OutcomeClientAborted || !strings.HasPrefix(rec.Error, "client") {
		t.Errorf("record outcome %q error %q; want client_aborted", rec.Outcome, rec.Error)
	}
	if len(rec.Chunks) < 3 {
		t.Errorf("record has %d chunks; want the partial timeline", len(rec.Chunks))
	}
}

func TestOversizeRequestBody(t *testing.T) {
	leakCheck(t)
	var hits atomic.Int64
	addr, _ := startUpstream(t, func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })
	sink := newMemSink()
	_, url := startProxy(t, Config{Upstream: addr, MaxRequestBody: 1000}, sink)
	resp, err := newClient(t).Post(url+"/v1/completions", "application/json", strings.NewReader(strings.Repeat("x", 5000)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), "--max-body") {
		t.Errorf("status %d body %q; want 413 naming --max-body", resp.StatusCode, body)
	}
	rec := sink.wait(t, 1)[0]
	if rec.Outcome != capture.OutcomeTooLarge || rec.RequestSize != 5000 || rec.Path != "/v1/completions" || hits.Load() != 0 {
		t.Errorf("record %+v, upstream hits %d; want too_large, size 5000, not forwarded", rec, hits.Load())
	}
}

func TestOversizeResponseBody(t *testing.T) {
	leakCheck(t)
	addr, _ := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		for i := 0; i < 100; i++ {
			w.Write([]byte(strings.Repeat("y", 100)))
			w.(http.Flusher).Flush()
		}
	})
	sink := newMemSink()
	_, url := startProxy(t, Config{Upstream: addr, MaxResponseBody: 1000, RecordResponseBody: 500}, sink)
	resp, err := newClient(t).Get(url + "/big")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil || len(got) > 1000 {
		t.Errorf("client got %d bytes, err %v; want a cut stream of at most 1000 bytes", len(got), err)
	}
	rec := sink.wait(t, 1)[0]
	if rec.Outcome != capture.OutcomeTooLarge || len(rec.ResponseBody) != 500 || rec.ResponseSize <= 1000 {
		t.Errorf("record outcome %q body %d size %d; want too_large, 500 recorded bytes, size over 1000", rec.Outcome, len(rec.ResponseBody), rec.ResponseSize)
	}
}

func TestIdleTimeout(t *testing.T) {
	leakCheck(t)
	release := make(chan struct{})
	addr, _ := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: {\"choices\":[{\"text\":\"a\"}]}\n\n")
		w.(http.Flusher).Flush()
		select { // stall
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	sink := newMemSink()
	_, url := startProxy(t, Config{Upstream: addr, IdleTimeout: 150 * time.Millisecond}, sink)
	start := time.Now()
	resp, err := newClient(t).Get(url + "/v1/completions")
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil {
		t.Error("client saw a complete body; an idle cut must show as a broken stream")
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > 5*time.Second {
		t.Errorf("cut after %v; want about 150ms", d)
	}
	rec := sink.wait(t, 1)[0]
	if rec.Outcome != capture.OutcomeIdleTimeout || len(rec.Chunks) != 1 {
		t.Errorf("record outcome %q chunks %d; want idle_timeout with 1 chunk", rec.Outcome, len(rec.Chunks))
	}
}

func TestShutdownDrainsThenCuts(t *testing.T) {
	leakCheck(t)
	addr, _ := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		n := 3
		if r.URL.Path == "/long" {
			n = 1000
		}
		for i := 0; i < n; i++ {
			fmt.Fprintf(w, "data: {\"choices\":[{\"text\":\"%d\"}]}\n\n", i)
			w.(http.Flusher).Flush()
			select {
			case <-time.After(20 * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
	})
	sink := newMemSink()
	p, err := New(Config{Upstream: addr, idleConns: 100 * time.Millisecond}, sink)
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	served := make(chan error, 1)
	go func() { served <- p.Serve(ln) }()
	url := "http://" + ln.Addr().String()
	c := newClient(t)
	results := make(chan error, 2)
	for _, path := range []string{"/short", "/long"} {
		resp, err := c.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			_, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			results <- err
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err = p.Shutdown(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v; want the drain deadline to pass", err)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve = %v; want nil after Shutdown", err)
	}
	<-results
	<-results
	recs := sink.wait(t, 2)
	got := map[string]capture.Outcome{}
	for _, r := range recs {
		got[r.Path] = r.Outcome
	}
	if got["/short"] != capture.OutcomeOK || got["/long"] != capture.OutcomeShutdown {
		t.Errorf("outcomes %v; want /short ok (drained), /long proxy_shutdown (cut)", got)
	}
	if _, err := c.Get(url + "/short"); err == nil {
		t.Error("the proxy still accepts requests after Shutdown")
	}
}

func TestSinkFullCountsDrops(t *testing.T) {
	addr, _ := startUpstream(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	sink := newMemSink()
	sink.limit = 2
	p, url := startProxy(t, Config{Upstream: addr}, sink)
	c := newClient(t)
	for i := 0; i < 5; i++ {
		resp, err := c.Get(url + "/x")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	st := p.Stats()
	for deadline := time.Now().Add(5 * time.Second); st.Completed < 5 && time.Now().Before(deadline); st = p.Stats() {
		time.Sleep(5 * time.Millisecond)
	}
	if st.Recorded != 2 || st.Dropped != 3 || st.Requests != 5 || st.InFlight != 0 {
		t.Errorf("stats %+v; want 2 recorded, 3 dropped", st)
	}
	resp, err := c.Get(url + "/vb/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"vbproxy_records_dropped_total 3", "vbproxy_in_flight 0", `vbproxy_outcomes_total{outcome="ok"} 5`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/vb/metrics lacks %q:\n%s", want, body)
		}
	}
}
