package reliability

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vbench/vbench/internal/testserver"
)

// tmpfs mounts a tmpfs of size bytes on a new temp dir (root only) and
// unmounts it at cleanup; it skips the test where mounting is not allowed.
func tmpfs(t *testing.T, size int64) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0700", size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v: %s); the disk-full scenario needs root", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

// TestReliabilityDiskFull: the capture directory's file system fills up
// while traffic flows. The proxy must keep forwarding every stream in
// full, say that it cannot record (log), and count what it lost
// (/vb/stats capture.lost and errors); it must not crash.
func TestReliabilityDiskFull(t *testing.T) {
	t.Parallel() // its own servers, processes and directories
	mnt := tmpfs(t, 128<<20)
	srv, err := testserver.Start(testserver.Config{ITL: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	dir := filepath.Join(mnt, "cap")
	p := startVbproxy(t, "--upstream", srv.URL, "--capture", dir, "--log-level", "warn", "--record-request-body", "4MiB")
	// Fill what is left of the file system but the capture's reserve
	// (capture.Options.DiskReserve: 4 × the 16 MiB memtable) and 6 MiB.
	var st = func() (free int64) {
		out, _ := exec.Command("df", "-B1", "--output=avail", mnt).Output()
		f := strings.Fields(string(out))
		fmt.Sscan(f[len(f)-1], &free)
		return free
	}
	filler := filepath.Join(mnt, "filler")
	const reserve = 64 << 20
	if free := st(); free > reserve+(6<<20) {
		if err := os.WriteFile(filler, make([]byte, free-reserve-(6<<20)), 0o600); err != nil {
			t.Logf("filler: %v", err)
		}
	}
	t.Logf("free on the capture's file system after the filler: %d bytes", st())
	// Random text: the capture compresses bodies, so repeated bytes would
	// not fill anything.
	raw := make([]byte, 3<<18)
	rand.Read(raw)
	big := base64.StdEncoding.EncodeToString(raw)
	body := `{"model":"m","prompt":"` + big + `","max_tokens":20,"stream":true}`
	client := newClient(t, 8)
	n := 80
	var wg sync.WaitGroup
	var mu sync.Mutex
	var bad []string
	sem := make(chan struct{}, 8)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			status, b, err := post(context.Background(), client, p.url, i, body)
			if err != nil || status != 200 || !strings.HasSuffix(string(b), "data: [DONE]\n\n") {
				mu.Lock()
				bad = append(bad, fmt.Sprintf("request %d: status %d err %v, %d bytes", i, status, err, len(b)))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(bad) > 0 {
		t.Errorf("%d of %d requests were not forwarded in full while the disk was full: %v", len(bad), n, bad)
	}
	if _, err := http.Get(p.url + "/vb/health"); err != nil {
		p.cmd.Wait()
		t.Fatalf("vbproxy died when the capture's disk filled up (%v); its log:\n%s", err, head(p.stderr.String(), 3000))
	}
	var lostSeen bool
	waitFor(30*time.Second, func() bool { // returns as soon as it holds; a busy machine flushes late
		s := p.stats(t)
		lostSeen = s.Capture != nil && s.Capture.Lost > 0 && s.Capture.Errors > 0
		return lostSeen
	})
	full := p.stats(t)
	// Free the space: recording resumes.
	os.Remove(filler)
	for i := range 5 {
		if status, _, err := post(context.Background(), client, p.url, n+i, `{"model":"m","prompt":"after","max_tokens":5,"stream":true}`); status != 200 || err != nil {
			t.Errorf("request after freeing space: %d %v", status, err)
		}
	}
	resumed := waitFor(30*time.Second, func() bool { // returns as soon as it holds; a busy machine flushes late
		s := p.stats(t)
		return s.Capture != nil && s.Capture.Written >= full.Capture.Written+5
	})
	if !resumed {
		t.Errorf("recording did not resume once space was freed: %+v", p.stats(t).Capture)
	}
	s := p.stats(t)
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatalf("vbproxy died under a full disk: %v\n%s", err, p.stderr.String())
	}
	werr := p.cmd.Wait()
	log := p.stderr.String()
	for _, bad := range []string{"panic:", "goroutine ", "SIGBUS", "fatal error"} {
		if strings.Contains(log, bad) {
			t.Errorf("vbproxy crashed on a full disk (%q in its log):\n%s", bad, tail(log, 3000))
			break
		}
	}
	// Whether any record fit before the disk was full depends on what Badger
	// had preallocated (1 of 10 runs here wrote none): losses are the point.
	if s.Capture == nil || !lostSeen {
		t.Errorf("/vb/stats does not count what the full disk lost: capture %+v", s.Capture)
	} else {
		t.Logf("/vb/stats while full: requests %d forwarded in full %d, capture written %d, lost %d, errors %d, last_error %q", full.Requests, n-len(bad), full.Capture.Written, full.Capture.Lost, full.Capture.Errors, full.Capture.LastError)
		t.Logf("after freeing space: written %d (recording resumed: %v)", s.Capture.Written, resumed)
	}
	if !strings.Contains(strings.ToLower(log), "no space") {
		t.Errorf("vbproxy's log does not say the disk is full:\n%s", tail(log, 3000))
	}
	t.Logf("vbproxy exit: %v; log tail:\n%s", werr, tail(log, 1500))
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

func head(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
