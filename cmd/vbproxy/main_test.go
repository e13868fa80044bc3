package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vbench/vbench/capture"
	"github.com/vbench/vbench/internal/testserver"
)

// syncBuf is a goroutine-safe buffer for stderr.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var listenRE = regexp.MustCompile(`listening on (http://\S+)`)

// startRun runs vbproxy with args until the returned cancel; it returns the
// proxy's URL and a function that stops it and returns the exit code.
func startRun(t *testing.T, args ...string) (string, *syncBuf, func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	stderr := &syncBuf{}
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, args, nil, pw, stderr)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		cancel()
		t.Fatalf("vbproxy did not start: %v\nstderr: %s", err, stderr)
	}
	go io.Copy(io.Discard, pr)
	m := listenRE.FindStringSubmatch(line)
	if m == nil {
		cancel()
		t.Fatalf("no listen address in %q", line)
	}
	stop := func() int {
		cancel()
		select {
		case c := <-code:
			return c
		case <-time.After(30 * time.Second):
			t.Fatal("vbproxy did not stop")
			return -1
		}
	}
	return m[1], stderr, stop
}

func TestRunRecordsAndDumps(t *testing.T) {
	srv, err := testserver.Start(testserver.Config{ITL: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	dir := filepath.Join(t.TempDir(), "cap")
	url, stderr, stop := startRun(t, "--upstream", srv.URL, "--listen", "127.0.0.1:0", "--capture", dir,
		"--label", "variant=sim", "--scrape-interval", "20ms")
	client := &http.Client{Transport: &http.Transport{}}
	for i := 0; i < 5; i++ {
		req, _ := http.NewRequest("POST", url+"/v1/completions", strings.NewReader(`{"model":"m","prompt":"x","max_tokens":4,"stream":true}`))
		req.Header.Set("X-VB-Index", fmt.Sprint(i))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	type stats struct {
		Requests int64 `json:"requests"`
		Scrapes  int64 `json:"scrapes"`
		Capture  *struct {
			Queued int `json:"queued"`
		} `json:"capture"`
	}
	getStats := func() stats {
		t.Helper()
		resp, err := client.Get(url + "/vb/stats")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var st stats
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			t.Fatalf("/vb/stats: %v", err)
		}
		return st
	}
	if st := getStats(); st.Requests != 5 || st.Capture == nil {
		t.Errorf("/vb/stats: requests %d capture %v; want 5 and capture stats", st.Requests, st.Capture)
	}
	// A few scrapes of the upstream's /metrics (every 20 ms) before the stop.
	for deadline := time.Now().Add(10 * time.Second); getStats().Scrapes < 3; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("fewer than 3 scrapes of /metrics in 10 s: %+v", getStats())
		}
	}
	client.CloseIdleConnections()
	if code := stop(); code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr)
	}
	if !strings.Contains(stderr.String(), "5 recorded in the capture, 0 dropped (queue full), 0 lost") {
		t.Errorf("stderr lacks the summary:\n%s", stderr)
	}

	var out bytes.Buffer
	if code := run(context.Background(), []string{"dump", dir}, nil, &out, &out); code != 0 {
		t.Fatalf("dump: exit %d: %s", code, out.String())
	}
	kinds := map[string]int{}
	idx := []int64{}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var v struct {
			Kind   string            `json:"kind"`
			Tool   string            `json:"tool"`
			Labels map[string]string `json:"labels"`
			Tags   capture.Tags      `json:"tags"`
			Chunks []capture.Chunk   `json:"chunks"`
		}
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("dump line %q: %v", line, err)
		}
		kinds[v.Kind]++
		if v.Kind == "meta" && v.Tool != "vbproxy" {
			t.Errorf("meta tool %q", v.Tool)
		}
		if v.Kind == "record" {
			idx = append(idx, v.Tags.Index)
			if v.Labels["variant"] != "sim" || len(v.Chunks) < 4 {
				t.Errorf("record labels %v chunks %d", v.Labels, len(v.Chunks))
			}
		}
	}
	if kinds["meta"] != 1 || kinds["record"] != 5 || kinds["sample"] < 1 {
		t.Errorf("dump has %v; want 1 meta, 5 records, samples", kinds)
	}
	if fmt.Sprint(idx) != "[0 1 2 3 4]" {
		t.Errorf("records in order %v; want arrival order", idx)
	}
}

func TestRunUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{nil, "--upstream is required"},
		{[]string{"--upstream", "ftp://x"}, "scheme"},
		{[]string{"--upstream", ":1", "--max-body", "lots"}, "--max-body"},
		{[]string{"--upstream", ":1", "--label", "novalue"}, "key=value"},
		{[]string{"--upstream", ":1", "--scrape-metrics", "1ms"}, "at least 10ms"},
		{[]string{"--upstream", ":1", "--scrape-interval", "1ms"}, "at least 10ms"},
		{[]string{"--upstream", ":1", "--scrape-interval", "0", "--scrape-metric", "vbsim:*"}, "--scrape-metric needs --scrape-interval"},
		{[]string{"--upstream", "http://"}, `--upstream "http://": no host`},
		{[]string{"--upstream", "127.0.0.1:99999"}, `--upstream "127.0.0.1:99999": port 99999 out of range`},
		{[]string{"--upstream", "http://127.0.0.1:8000/v1"}, "without a path"},
		{[]string{"--upstream", ":1", "--listen", "127.0.0.1:99999"}, `--listen "127.0.0.1:99999": port 99999 out of range`},
		{[]string{"--upstream", ":1", "--queue-size", "0"}, "--queue-size 0"},
		{[]string{"--upstream", ":1", "--max-conns", "0"}, "--max-conns 0"},
		{[]string{"--upstream", ":1", "--flush-interval", "0s"}, "--flush-interval 0s"},
		{[]string{"--upstream", ":1", "--idle-timeout", "-1s"}, "--idle-timeout -1s"},
		{[]string{"--upstream", ":1", "--dial-timeout", "-1s"}, "--dial-timeout -1s: must be positive\nRun"},
		{[]string{"--upstream", ":1", "--max-conns-per-client", "-1"}, "--max-conns-per-client -1"},
		{[]string{"--upstream", ":1", "--record-header", "bad header"}, `--record-header "bad header": not a header name`},
		{[]string{"--upstream", ":1", "--header-timeout", "-1s"}, "--header-timeout"},
		{[]string{"--upstream", ":1", "--header-timeout", "1us"}, "header timeout 1µs: must be at least 1ms"},
		{[]string{"--upstream", ":1", "extra"}, "unexpected arguments"},
		{[]string{"dump"}, "want one CAPTURE_DIR"},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		code := run(context.Background(), tt.args, nil, &out, &out)
		if code != 2 || !strings.Contains(out.String(), tt.want) || strings.Contains(out.String(), "vbproxy: vbproxy") || strings.Contains(out.String(), "usage: ") {
			t.Errorf("vbproxy %q: exit %d, output %q; want exit 2 mentioning %q once", tt.args, code, out.String(), tt.want)
		}
	}
}

func TestNonLoopbackWarning(t *testing.T) {
	srv, err := testserver.Start(testserver.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	// A short drain: a port on 0.0.0.0 can be reached by any stray
	// connection on the machine (CI runs packages in parallel), and a
	// connection that sends nothing would hold the default 30-s drain.
	_, stderr, stop := startRun(t, "--upstream", srv.URL, "--listen", "0.0.0.0:0", "--capture", "", "--drain", "2s")
	if code := stop(); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(stderr.String(), "WARNING") {
		t.Errorf("no warning for 0.0.0.0:\n%s", stderr)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "1048576": 1 << 20, "64KiB": 64 << 10, "1MiB": 1 << 20, "2GiB": 2 << 30, "10MB": 10e6, "5K": 5 << 10} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "1.5MiB", "x", "99999999999GiB"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q): want an error", in)
		}
	}
}

func mustListenTCP(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// TestQuiet: --quiet leaves out the shutdown summary (vbreplay --capture
// reports its capture itself), and still exits cleanly.
func TestQuiet(t *testing.T) {
	_, stderr, stop := startRun(t, "--upstream", "127.0.0.1:1", "--listen", "127.0.0.1:0", "--capture", filepath.Join(t.TempDir(), "cap"), "--scrape-interval", "0", "--quiet")
	if code := stop(); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if s := stderr.String(); strings.Contains(s, "shutting down") || strings.Contains(s, "closed:") || strings.Contains(s, "requests,") {
		t.Errorf("--quiet printed the summary:\n%s", s)
	}
}
