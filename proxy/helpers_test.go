package proxy

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vbench/vbench/capture"
)

// memSink is an in-memory Sink with a bounded queue, like capture.Writer.
type memSink struct {
	mu      sync.Mutex
	recs    []*capture.Record
	samples []capture.Sample
	limit   int // records accepted before refusing; 0 = no limit
	notify  chan struct{}
}

func newMemSink() *memSink { return &memSink{notify: make(chan struct{}, 1)} }

func (m *memSink) Put(r *capture.Record) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.limit > 0 && len(m.recs) >= m.limit {
		return false
	}
	m.recs = append(m.recs, r)
	select {
	case m.notify <- struct{}{}:
	default:
	}
	return true
}

func (m *memSink) PutSample(s capture.Sample) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.samples = append(m.samples, s)
	return true
}

func (m *memSink) records() []*capture.Record {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]*capture.Record(nil), m.recs...)
}

// wait returns the records once there are n of them, or fails the test.
func (m *memSink) wait(t testing.TB, n int) []*capture.Record {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		if r := m.records(); len(r) >= n {
			return r
		}
		select {
		case <-m.notify:
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			t.Fatalf("got %d records; want %d", len(m.records()), n)
		}
	}
}

// startProxy runs a proxy on a loopback port until the test ends. Idle
// upstream connections are kept 100 ms unless cfg says otherwise.
func startProxy(t testing.TB, cfg Config, sink Sink) (*Proxy, string) {
	t.Helper()
	if cfg.idleConns == 0 {
		cfg.idleConns = 100 * time.Millisecond
	}
	p, err := New(cfg, sink)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p.Shutdown(ctx)
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return p, "http://" + ln.Addr().String()
}

// startUpstream runs an net/http handler on loopback until the test ends.
func startUpstream(t testing.TB, h http.HandlerFunc) (string, *http.Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), srv
}

// openFDs counts this process's open file descriptors.
func openFDs(t testing.TB) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count fds: %v", err)
	}
	return len(ents)
}

// leakCheck records goroutines and fds now and, at cleanup (registered
// first, so it runs after every server was closed), waits for both to come
// back to the baseline.
func leakCheck(t *testing.T) {
	t.Helper()
	g0, fd0 := goroutines(), openFDs(t)
	t.Cleanup(func() {
		http.DefaultClient.CloseIdleConnections()
		deadline := time.Now().Add(10 * time.Second)
		for {
			g, fd := goroutines(), openFDs(t)
			if g <= g0 && fd <= fd0 {
				t.Logf("leak check: goroutines %d -> %d, fds %d -> %d after %v", g0, g, fd0, fd, time.Until(deadline))
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("leak: goroutines %d -> %d, fds %d -> %d\n%s", g0, g, fd0, fd, buf)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// goroutines counts live goroutines, leaving out fasthttp's process-wide
// singletons (the server date ticker and the dialer's address cache), which
// start with the first server or client and never stop, and two cleaners
// that end by themselves after their sleep: the server worker pool's
// (MaxIdleWorkerDuration after the server stopped; a server left running
// still shows in its accept loop and workers) and a HostClient's idle
// connection cleaner (MaxIdleConnDuration, 10 s for the scraper's, after
// its last connection closed; a connection left open shows in the fds).
func goroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "updateServerDate") || strings.Contains(g, "tcpAddrsClean") ||
			strings.Contains(g, "created by github.com/valyala/fasthttp.(*workerPool).Start") ||
			strings.Contains(g, "fasthttp.(*HostClient).connsCleaner") {
			continue
		}
		n++
	}
	return n
}

// streamUntilClosed streams up to 1,000 events 5 ms apart and sends on
// sawClose the index of the event at which the proxy closed the upstream
// request, or -1 if it never did.
func streamUntilClosed(w http.ResponseWriter, r *http.Request, sawClose chan<- int) {
	w.Header().Set("Content-Type", "text/event-stream")
	for i := 0; i < 1000; i++ {
		fmt.Fprintf(w, "data: {\"choices\":[{\"delta\":{\"content\":\"t%d\"}}]}\n\n", i)
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
			sawClose <- i
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
	sawClose <- -1
}
