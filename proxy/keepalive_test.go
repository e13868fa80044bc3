package proxy

import (
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestUpstreamClosedIdleConnIsRetried reproduces what the first GPU study hit
// with transformers serve (uvicorn closes keep-alive connections idle for 5 s,
// as vLLM's server does): the proxy's pool still held connections the
// upstream had closed, the next POST went out on one of them and got EOF
// before any response byte, and the client saw a 502. The upstream here
// closes idle connections after 100 ms while the proxy keeps them for 10 s;
// every request after the pause must still succeed, and the retries are
// counted.
func TestUpstreamClosedIdleConnIsRetried(t *testing.T) {
	uln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; i < 3; i++ {
			io.WriteString(w, "data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n")
			w.(http.Flusher).Flush()
		}
		io.WriteString(w, "data: [DONE]\n\n")
	})
	// open counts the upstream's connections that are not closed yet.
	var open atomic.Int64
	srv := &http.Server{Handler: h, IdleTimeout: 100 * time.Millisecond, ConnState: func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			open.Add(1)
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}}
	go srv.Serve(uln)
	t.Cleanup(func() { srv.Close() })
	addr := uln.Addr().String()
	sink := newMemSink()
	// The pool keeps idle connections far longer than the upstream does.
	p, base := startProxy(t, Config{Upstream: addr, idleConns: 10 * time.Second}, sink)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	post := func() (int, string) {
		resp, err := client.Post(base+"/v1/chat/completions", "application/json",
			strings.NewReader(`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// Fill the proxy's pool with several upstream connections.
	const n = 6
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if code, body := post(); code != 200 {
				t.Errorf("warm request: %d %s", code, body)
			}
		}()
	}
	wg.Wait()
	for round := 0; round < 2; round++ {
		// The upstream closes every pooled connection after its 100-ms idle timeout.
		for deadline := time.Now().Add(10 * time.Second); open.Load() > 0; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: the upstream still has %d connections open after 10 s", round, open.Load())
			}
		}
		for i := 0; i < n; i++ {
			if code, body := post(); code != 200 {
				t.Fatalf("round %d request %d after the upstream closed its idle connections: %d %s", round, i, code, body)
			}
		}
	}
	if st := p.Stats(); st.UpstreamRetries == 0 {
		t.Errorf("UpstreamRetries = 0; want the stale-connection retries counted (stats %+v)", st)
	}
	sink.wait(t, 3*n)
}
