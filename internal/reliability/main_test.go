package reliability

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vbench/vbench/capture"
	"github.com/vbench/vbench/internal/testbin"
	"github.com/vbench/vbench/internal/testserver"
	"github.com/vbench/vbench/proxy"
)

// mode is the suite's size: "short" (CI, the default) or "long".
var mode = flag.String("reliability", "short", "suite size: short (CI, a few minutes) or long (10,000 streams, 10-minute soaks)")

// Overrides of the soak's size (0 = the mode's).
var (
	soakStreams  = flag.Int("soak-streams", 0, "concurrent streams of the soak (default: 1,000 short, 10,000 long)")
	soakDuration = flag.Duration("soak-duration", 0, "soak and max-rate replay duration (default: 20s short, 10m long)")
)

func long() bool { return *mode == "long" }

// pick returns short or long by the suite's mode.
func pick[T any](short, lng T) T {
	if long() {
		return lng
	}
	return short
}

// TestMain doubles as the helper processes the suite kills: with
// VB_REL_HELPER=upstream the test binary is a streaming test server
// that prints its URL and serves until killed.
func TestMain(m *testing.M) {
	switch os.Getenv("VB_REL_HELPER") {
	case "upstream":
		itl, _ := time.ParseDuration(os.Getenv("VB_REL_ITL"))
		srv, err := testserver.Start(testserver.Config{ITL: itl, Tokens: 50})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(srv.URL)
		select {}
	case "clients":
		raiseNoFile()
		soakClients()
		os.Exit(0)
	case "slowloris":
		raiseNoFile()
		slowlorisHelper()
		os.Exit(0)
	}
	flag.Parse()
	raiseNoFile()
	if *mode != "short" && *mode != "long" {
		fmt.Fprintf(os.Stderr, "-reliability %q: want short or long\n", *mode)
		os.Exit(2)
	}
	os.Exit(testbin.Main(m))
}

// raiseNoFile lifts the open-files limit to its hard maximum: the long
// soak holds 10,000 client, 10,000 accepted and 10,000 upstream
// connections in this process.
func raiseNoFile() {
	var r syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r) != nil {
		return
	}
	// Root may raise the hard limit too (three fds per stream here).
	if r.Max < 1<<17 && syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: 1 << 17, Max: 1 << 17}) == nil {
		return
	}
	if r.Cur < r.Max {
		r.Cur = r.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r)
	}
}

// helperUpstream starts this test binary as an upstream server process
// (its own process, so it can be killed with SIGKILL).
func helperUpstream(t testing.TB, itl time.Duration) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "VB_REL_HELPER=upstream", "VB_REL_ITL="+itl.String())
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("helper upstream did not start: %v", err)
	}
	return cmd, strings.TrimSpace(line)
}

// rig is a proxy in this process recording into a real capture store.
type rig struct {
	p     *proxy.Proxy
	st    *capture.Store
	url   string
	dir   string
	ln    net.Listener
	done  chan error
	once  sync.Once
	stats proxy.Stats
}

// startRig opens a capture in dir (a temp dir when empty) and serves a
// proxy to upstream on loopback. Stop it with r.stop before reading the
// capture; the test's cleanup stops it too.
func startRig(t testing.TB, upstream, dir string, cfg proxy.Config, opt capture.Options) *rig {
	t.Helper()
	if dir == "" {
		dir = filepath.Join(t.TempDir(), "cap")
	}
	st, err := capture.Open(dir, opt)
	if err != nil {
		t.Fatalf("capture.Open(%s): %v", dir, err)
	}
	cfg.Upstream = upstream
	p, err := proxy.New(cfg, st.Writer())
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{p: p, st: st, dir: dir, ln: ln, url: "http://" + ln.Addr().String(), done: make(chan error, 1)}
	go func() { r.done <- p.Serve(ln) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop shuts the proxy down (cutting what is left after 5 s), closes the
// capture's writer and reopens it read-only for the assertions.
func (r *rig) stop(t testing.TB) {
	r.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r.p.Shutdown(ctx)
		<-r.done
		r.stats = r.p.Stats()
		if err := r.st.Close(); err != nil {
			t.Logf("capture close: %v", err)
		}
	})
}

// records stops the rig and returns every record of its capture.
func (r *rig) records(t testing.TB) []*capture.Record {
	t.Helper()
	r.stop(t)
	st, err := capture.Open(r.dir, capture.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("reopen capture: %v", err)
	}
	defer st.Close()
	var recs []*capture.Record
	if err := st.Records(func(rec *capture.Record) error { recs = append(recs, rec); return nil }); err != nil {
		t.Fatal(err)
	}
	return recs
}

// readRecords returns every record of a closed capture.
func readRecords(t testing.TB, dir string) []*capture.Record {
	t.Helper()
	st, err := capture.Open(dir, capture.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("open capture %s: %v", dir, err)
	}
	defer st.Close()
	var recs []*capture.Record
	if err := st.Records(func(rec *capture.Record) error { recs = append(recs, rec); return nil }); err != nil {
		t.Fatal(err)
	}
	return recs
}

// byIndex maps records by their X-VB-Index tag.
func byIndex(recs []*capture.Record) map[int64]*capture.Record {
	m := make(map[int64]*capture.Record, len(recs))
	for _, r := range recs {
		m[r.Tags.Index] = r
	}
	return m
}

// post sends a tagged streaming completion and returns the status, the
// body bytes read and the read error.
func post(ctx context.Context, c *http.Client, url string, index int, body string) (int, []byte, error) {
	if body == "" {
		body = `{"model":"m","prompt":"x","max_tokens":20,"stream":true}`
	}
	req, _ := http.NewRequestWithContext(ctx, "POST", url+"/v1/completions", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-VB-Index", fmt.Sprint(index))
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// newClient is an HTTP client with its own transport, closed at cleanup.
func newClient(t testing.TB, conns int) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: 0, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// rawUpstream serves every connection with fn (the request head already
// read) on loopback until the test ends: for hand-written faulty replies.
func rawUpstream(t testing.TB, fn func(c net.Conn, head string)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
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
				defer c.Close()
				br := bufio.NewReader(c)
				head, n := readHead(br)
				if n > 0 {
					io.CopyN(io.Discard, br, int64(n))
				}
				fn(c, head)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String()
}

var contentLengthRE = regexp.MustCompile(`(?i)\r\ncontent-length:\s*(\d+)`)

// readHead reads one HTTP request head and returns it with its body length.
func readHead(br *bufio.Reader) (string, int) {
	var b strings.Builder
	for {
		line, err := br.ReadString('\n')
		b.WriteString(line)
		if err != nil || line == "\r\n" {
			break
		}
	}
	head := b.String()
	n := 0
	if m := contentLengthRE.FindStringSubmatch(head); m != nil {
		fmt.Sscan(m[1], &n)
	}
	return head, n
}

// waitFor polls cond every 10 ms until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if cond() {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return cond()
}

var (
	idRE      = regexp.MustCompile(`"id":"[^"]*"`)
	createdRE = regexp.MustCompile(`"created":\d+`)
)
