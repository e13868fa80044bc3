package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vbench/vbench/capture"
)

// TestSecondSignalCutsAndFlushes: after the first signal (ctx cancelled)
// the proxy drains; a second SIGINT cuts the open stream at once, and its
// record (proxy_shutdown) and the completed one are in the capture.
func TestSecondSignalCutsAndFlushes(t *testing.T) {
	up := startSlowUpstream(t)
	dir := filepath.Join(t.TempDir(), "cap")
	url, stderr, stop := startRun(t, "--upstream", up, "--listen", "127.0.0.1:0", "--capture", dir, "--drain", "10m")
	client := &http.Client{Transport: &http.Transport{}}
	// One complete exchange, one endless stream.
	resp, err := client.Get(url + "/short")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = client.Get(url + "/endless")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	go func() {
		buf := make([]byte, 512)
		for {
			if _, err := resp.Body.Read(buf); err != nil {
				return
			}
		}
	}()
	exited := make(chan int, 1)
	go func() { exited <- stop() }() // first signal: ctx cancelled, drain starts
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(stderr.String(), "shutting down") {
		if time.Now().After(deadline) {
			t.Fatalf("no drain message:\n%s", stderr)
		}
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	syscall.Kill(syscall.Getpid(), syscall.SIGINT) // second signal
	select {
	case code := <-exited:
		if code != 0 {
			t.Errorf("exit %d; stderr:\n%s", code, stderr)
		}
	case <-time.After(2 * time.Minute): // far less than the 10-minute drain, far more than a busy machine needs
		t.Fatalf("the second signal did not cut the drain:\n%s", stderr)
	}
	t.Logf("exit %v after the second signal (the drain was 10 minutes)", time.Since(start))
	var out bytes.Buffer
	if code := run(context.Background(), []string{"dump", "--no-bodies", dir}, nil, &out, &out); code != 0 {
		t.Fatalf("dump: %s", out.String())
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var r struct {
			Kind    string          `json:"kind"`
			Path    string          `json:"path"`
			Outcome capture.Outcome `json:"outcome"`
		}
		json.Unmarshal([]byte(line), &r)
		if r.Kind == "record" {
			got[r.Path] = string(r.Outcome)
		}
	}
	if got["/short"] != "ok" || got["/endless"] != "proxy_shutdown" {
		t.Errorf("records %v; want /short ok and /endless proxy_shutdown\n%s", got, stderr)
	}
}

// startSlowUpstream serves /short (one line) and /endless (an event every
// 10 ms until the client leaves).
func startSlowUpstream(t *testing.T) string {
	t.Helper()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		if r.URL.Path == "/short" {
			fmt.Fprint(w, "data: [DONE]\n\n")
			return
		}
		for i := 0; ; i++ {
			fmt.Fprintf(w, "data: {\"choices\":[{\"text\":\"%d\"}]}\n\n", i)
			w.(http.Flusher).Flush()
			select {
			case <-time.After(10 * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
	})}
	ln := mustListenTCP(t)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}
