package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vbench/vbench/capture"
)

// The 10,000-stream test needs about 20,000 descriptors in the proxy
// (client side + upstream side), so the clients and the upstream run in
// child processes: this test binary re-executed with VBPROXY_HELPER set.
func TestMain(m *testing.M) {
	switch os.Getenv("VBPROXY_HELPER") {
	case "upstream":
		helperUpstream()
		os.Exit(0)
	case "clients":
		helperClients()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func raiseNoFile() uint64 {
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) != nil {
		return 1024
	}
	lim.Cur = lim.Max
	syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	return lim.Cur
}

// helperUpstream serves idle SSE streams: headers and one event, then
// nothing until a line arrives on stdin, then [DONE] and the end.
func helperUpstream() {
	raiseNoFile()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("error", err)
		return
	}
	fmt.Println(ln.Addr())
	release := make(chan struct{})
	go func() {
		bufio.NewReader(os.Stdin).ReadString('\n')
		close(release)
		ln.Close()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			select {
			case <-release:
				time.Sleep(time.Hour) // the parent kills us
			default:
			}
			continue
		}
		go func() {
			defer c.Close()
			br := bufio.NewReader(c)
			for {
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				io.Copy(io.Discard, req.Body)
				ev := "data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n"
				fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n", len(ev), ev)
				<-release
				done := "data: [DONE]\n\n"
				fmt.Fprintf(c, "%x\r\n%s\r\n0\r\n\r\n", len(done), done)
			}
		}()
	}
}

// helperClients opens N streams to the proxy at ADDR, waits for the first
// event of each, prints "open", waits for a line on stdin, reads every
// stream to its end and prints "done <n complete>".
func helperClients() {
	raiseNoFile()
	n, _ := strconv.Atoi(os.Getenv("VBPROXY_N"))
	addr := os.Getenv("VBPROXY_ADDR")
	conns := make([]net.Conn, 0, n)
	readers := make([]*bufio.Reader, 0, n)
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			fmt.Println("error dial", i, err)
			return
		}
		fmt.Fprintf(c, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
		conns = append(conns, c)
		readers = append(readers, bufio.NewReaderSize(c, 512))
	}
	for i, br := range readers {
		conns[i].SetReadDeadline(time.Now().Add(60 * time.Second))
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				fmt.Println("error read", i, err)
				return
			}
			if strings.HasPrefix(line, "data: ") {
				break
			}
		}
	}
	fmt.Println("open")
	bufio.NewReader(os.Stdin).ReadString('\n')
	complete := 0
	for i, br := range readers {
		conns[i].SetReadDeadline(time.Now().Add(60 * time.Second))
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				break
			}
			if strings.HasPrefix(line, "0\r") { // terminal chunk
				complete++
				break
			}
		}
		conns[i].Close()
	}
	fmt.Println("done", complete)
}

type helper struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

func startHelper(t *testing.T, kind string, env ...string) *helper {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append(env, "VBPROXY_HELPER="+kind)...)
	cmd.Stderr = os.Stderr
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return &helper{cmd: cmd, in: in, out: bufio.NewReader(out)}
}

func (h *helper) line(t *testing.T) string {
	t.Helper()
	s, err := h.out.ReadString('\n')
	if err != nil {
		t.Fatalf("helper %v: %v", h.cmd.Args, err)
	}
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "error") {
		t.Fatalf("helper: %s", s)
	}
	return s
}

// TestManyIdleStreams holds 10,000 concurrent idle streams open through the
// proxy (fewer when the descriptor limit cannot fit 2 per stream, 3,000
// under the race detector), then
// finishes them all: every stream gets a record, and goroutines and
// descriptors come back to the baseline.
func TestManyIdleStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping 10,000 streams")
	}
	limit := raiseNoFile()
	n := 10000
	if raceEnabled {
		// The race detector allows at most 8128 live goroutines per process
		// and the proxy needs one per stream.
		t.Logf("-race: 3,000 streams instead of 10,000 (run without -race for the full count)")
		n = 3000
	}
	if max := int(limit-300) / 2; max < n {
		t.Logf("RLIMIT_NOFILE is %d: the proxy needs 2 descriptors per stream, so %d streams instead of 10,000", limit, max)
		n = max
	}
	leakCheck(t)
	up := startHelper(t, "upstream")
	addr := up.line(t)
	sink := newMemSink()
	p, url := startProxy(t, Config{Upstream: addr}, sink)
	var m0 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	start := time.Now()
	cl := startHelper(t, "clients", "VBPROXY_N="+strconv.Itoa(n), "VBPROXY_ADDR="+strings.TrimPrefix(url, "http://"))
	if s := cl.line(t); s != "open" {
		t.Fatalf("clients: %q", s)
	}
	opened := time.Since(start)
	if st := p.Stats(); st.InFlight != int64(n) {
		t.Errorf("in flight %d; want %d", st.InFlight, n)
	}
	var m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m1)
	perStream := (float64(m1.HeapInuse+m1.StackInuse) - float64(m0.HeapInuse+m0.StackInuse)) / float64(n)
	t.Logf("%d idle streams open in %v; proxy heap+stack per open stream: %.1f KiB; goroutines %d", n, opened.Round(time.Millisecond), perStream/1024, runtime.NumGoroutine())
	fmt.Fprintln(up.in, "release")
	fmt.Fprintln(cl.in, "release")
	if s := cl.line(t); s != fmt.Sprint("done ", n) {
		t.Errorf("clients: %q; want done %d", s, n)
	}
	recs := sink.wait(t, n)
	bad := 0
	for _, r := range recs {
		if r.Outcome != capture.OutcomeOK || len(r.Chunks) != 2 {
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d records are not ok with 2 chunks", bad, n)
	}
}
