package reliability

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vbench/vbench/internal/testserver"
)

// TestReliabilityDescriptorLimit: more clients than the proxy has file
// descriptors for. vbproxy runs with RLIMIT_NOFILE 400 (room for 400 − 256
// = 144 connections, client and upstream together; one client address may
// hold half of them, 72) and gets 150 concurrent streams from one address:
// the ones past its limit are refused at once (a 503 in answer to their
// request; a reset only past the 64 being answered at a time), the others
// stream to the end and are recorded,
// and the proxy stays up and keeps recording afterwards. (Running out of
// descriptors instead made Badger's next file open fail, which ends the
// process.)
func TestReliabilityDescriptorLimit(t *testing.T) {
	t.Parallel() // its own servers, processes and directories
	srv, err := testserver.Start(testserver.Config{ITL: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	dir := filepath.Join(t.TempDir(), "cap")
	sh := exec.Command("sh", "-c", `ulimit -n 400 && exec "$0" "$@"`, bin(t, "vbproxy"), "--listen", "127.0.0.1:0", "--upstream", srv.URL, "--capture", dir, "--log-level", "warn")
	errBuf := &lockedBuf{}
	sh.Stderr = errBuf
	out, _ := sh.StdoutPipe()
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	defer sh.Process.Kill()
	buf := make([]byte, 512)
	nr, _ := out.Read(buf)
	m := listenRE.FindStringSubmatch(string(buf[:nr]))
	if m == nil {
		t.Fatalf("vbproxy did not start: %q %s", buf[:nr], errBuf.String())
	}
	url := m[1]
	const n = 150
	client := newClient(t, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, b, err := post(context.Background(), client, url, i, `{"model":"m","prompt":"x","max_tokens":20,"stream":true}`)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && status == 200 && strings.HasSuffix(string(b), "data: [DONE]\n\n"):
				codes[200]++
			case err == nil:
				codes[status]++
			default:
				codes[-1]++
			}
		}()
	}
	wg.Wait()
	// Still up, still recording.
	if status, _, err := post(context.Background(), client, url, 1000, `{"model":"m","prompt":"x","max_tokens":2,"stream":true}`); status != 200 || err != nil {
		t.Fatalf("vbproxy after the overload: %d %v\n%s", status, err, tail(errBuf.String(), 2000))
	}
	sh.Process.Signal(os.Interrupt)
	werr := sh.Wait()
	log := errBuf.String()
	if strings.Contains(log, "Assert failed") || strings.Contains(log, "goroutine ") || strings.Contains(log, "panic:") {
		t.Errorf("vbproxy crashed:\n%s", tail(log, 3000))
	}
	if werr != nil {
		t.Errorf("vbproxy exit: %v\n%s", werr, tail(log, 2000))
	}
	// Past the limit the proxy reads the request and answers 503 (64 at a
	// time; one past those is closed, a reset): refused at once either way,
	// nothing it sent half-served.
	if refused := n - codes[200]; codes[200] < 50 || codes[200] > 72 || codes[503]+codes[-1] != refused || codes[503] < min(refused, 64)/2 {
		t.Errorf("outcomes %v; want up to 72 complete streams and the rest refused (mostly 503s)", codes)
	}
	recs := readRecords(t, dir)
	if len(recs) != codes[200]+1 {
		t.Errorf("%d records; want one per served stream (%d) + 1", len(recs), codes[200]+1)
	}
	t.Logf("RLIMIT_NOFILE 400: %d streams served to the end and recorded, %d refused with a 503, %d refused by a reset; %d records; proxy up and recording afterwards", codes[200], codes[503], codes[-1], len(recs))
}
