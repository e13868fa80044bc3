package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vbench/vbench/internal/testbin"
	"github.com/vbench/vbench/internal/testserver"
)

// streamN sends n streaming completions through the proxy at url and
// fails unless each is forwarded whole.
func streamN(t *testing.T, client *http.Client, url string, n int) {
	t.Helper()
	for i := range n {
		resp, err := client.Post(url+"/v1/completions", "application/json", strings.NewReader(fmt.Sprintf(`{"model":"m","prompt":"%d","max_tokens":3,"stream":true}`, i)))
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || !strings.HasSuffix(string(b), "data: [DONE]\n\n") {
			t.Fatalf("request %d: status %d, %v, body %q", i, resp.StatusCode, err, b)
		}
	}
}

// recordTen streams 10 requests through the proxy at url and waits until
// its writer reports them committed.
func recordTen(t *testing.T, client *http.Client, url string, stderr fmt.Stringer) {
	t.Helper()
	streamN(t, client, url, 10)
	for deadline := time.Now().Add(30 * time.Second); testbin.ProxyWritten(t, url) < 10; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("10 records not committed within 30 s:\n%s", stderr)
		}
	}
}

// recordingBinary starts the vbproxy binary recording into a new capture
// (returned) in front of a test server, with 10 records committed; the
// process is killed at the end of the test if still running.
func recordingBinary(t *testing.T) (cmd *exec.Cmd, dir, url string, stderr *syncBuf, client *http.Client) {
	t.Helper()
	bin := testbin.Path(t, "cmd/vbproxy")
	srv, err := testserver.Start(testserver.Config{ITL: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	dir = filepath.Join(t.TempDir(), "cap")
	cmd = exec.Command(bin, "--upstream", srv.URL, "--listen", "127.0.0.1:0", "--capture", dir, "--scrape-interval", "0")
	stdout, _ := cmd.StdoutPipe()
	stderr = &syncBuf{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	m := listenRE.FindStringSubmatch(line)
	if err != nil || m == nil {
		t.Fatalf("vbproxy did not start: %v %q\n%s", err, line, stderr)
	}
	go io.Copy(io.Discard, stdout)
	client = &http.Client{Transport: &http.Transport{}}
	t.Cleanup(client.CloseIdleConnections)
	recordTen(t, client, m[1], stderr)
	return cmd, dir, m[1], stderr, client
}

// TestCaptureDirRemoved: the capture directory is removed while vbproxy
// records. Streams are still forwarded whole; at shutdown (what SIGTERM
// does: its context ends) vbproxy exits non-zero at once and says that the
// directory was removed and how many records that cost, the summary
// included. Before the fix the shutdown never ended: Badger's Close retried
// its memtable flush into the missing directory forever (and caught
// signals meant it took kill -9).
func TestCaptureDirRemoved(t *testing.T) {
	srv, err := testserver.Start(testserver.Config{ITL: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	dir := filepath.Join(t.TempDir(), "cap")
	url, stderr, stop := startRun(t, "--upstream", srv.URL, "--listen", "127.0.0.1:0", "--capture", dir, "--scrape-interval", "0")
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	recordTen(t, client, url, stderr)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	streamN(t, client, url, 5) // still forwarded
	client.CloseIdleConnections()
	start := time.Now()
	code := stop() // fails the test past 30 s
	out := stderr.String()
	t.Logf("exit %d %v after the shutdown began:\n%s", code, time.Since(start), out)
	if code == 0 {
		t.Errorf("exit 0; want a failure")
	}
	want := "was removed while recording: 15 records lost (10 committed before went with the directory, 5 accepted after were not stored)"
	if !strings.Contains(out, dir+" "+want) {
		t.Errorf("stderr does not say %q", want)
	}
	summary := regexp.MustCompile(`(?m)^vbproxy: 15 requests.*$`).FindString(out)
	if !strings.Contains(summary, "0 recorded in the capture (its directory was removed), 0 dropped (queue full), 15 lost") {
		t.Errorf("summary %q; want 0 recorded and 15 lost", summary)
	}
	if strings.Contains(out, "badger: error flushing") {
		t.Errorf("Badger's flush retries reached the log")
	}
}

// TestSIGTERMAfterCaptureDirRemoved is TestCaptureDirRemoved with the
// vbproxy binary and a real SIGTERM: it exits with status 1 and the
// message within 60 s (it used to ignore SIGTERM and take kill -9).
func TestSIGTERMAfterCaptureDirRemoved(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds vbproxy")
	}
	cmd, dir, url, stderr, client := recordingBinary(t)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	streamN(t, client, url, 5)
	client.CloseIdleConnections()
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var err error
	select {
	case err = <-exited:
	case <-time.After(60 * time.Second):
		t.Fatalf("vbproxy still ran 60 s after SIGTERM:\n%s", stderr)
	}
	out := stderr.String()
	t.Logf("exit %v %v after SIGTERM:\n%s", err, time.Since(start), out)
	if cmd.ProcessState.ExitCode() != 1 {
		t.Errorf("exit status %d; want 1", cmd.ProcessState.ExitCode())
	}
	if want := "vbproxy: closing the capture: capture: " + dir + " was removed while recording: 15 records lost"; !bytes.Contains([]byte(out), []byte(want)) {
		t.Errorf("stderr does not say %q", want)
	}
}

// TestSignalWhileCaptureCloseHangs: Badger cannot create its table files
// (the capture directory made immutable with chattr +i, as a failing or
// read-only file system would), so its Close retries the memtable flush
// forever. After SIGTERM, vbproxy hangs in that close; one more SIGTERM
// makes it stop waiting and exit 1, saying the capture is left as a killed
// proxy leaves it, and the records committed are read back from it.
func TestSignalWhileCaptureCloseHangs(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds vbproxy")
	}
	probe := t.TempDir()
	if out, err := exec.Command("chattr", "+i", probe).CombinedOutput(); err != nil {
		t.Skipf("chattr +i (root, a file system with the immutable flag): %v %s", err, out)
	}
	exec.Command("chattr", "-i", probe).Run()
	cmd, dir, _, stderr, client := recordingBinary(t)
	client.CloseIdleConnections()
	if out, err := exec.Command("chattr", "+i", dir).CombinedOutput(); err != nil {
		t.Fatalf("chattr +i %s: %v %s", dir, err, out)
	}
	t.Cleanup(func() { exec.Command("chattr", "-i", dir).Run() }) // before TempDir's removal
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	cmd.Process.Signal(syscall.SIGTERM)
	// The close is stuck once Badger says its flush failed, and vbproxy
	// says how to stop waiting.
	for deadline := time.Now().Add(60 * time.Second); !strings.Contains(stderr.String(), "badger: error flushing memtable") || !strings.Contains(stderr.String(), "signal again to stop waiting"); time.Sleep(10 * time.Millisecond) {
		select {
		case err := <-exited:
			t.Fatalf("vbproxy exited (%v) though Badger cannot flush:\n%s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failed flush and hint within 60 s:\n%s", stderr.String())
		}
	}
	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	var err error
	select {
	case err = <-exited:
	case <-time.After(60 * time.Second):
		t.Fatalf("vbproxy still ran 60 s after the second SIGTERM:\n%s", stderr.String())
	}
	out := stderr.String()
	t.Logf("exit %v %v after the second SIGTERM:\n%s", err, time.Since(start), out)
	if cmd.ProcessState.ExitCode() != 1 {
		t.Errorf("exit status %d; want 1", cmd.ProcessState.ExitCode())
	}
	for _, want := range []string{"signal while closing the capture", "stopped waiting for Badger's close (a signal while closing): the capture is left as a killed writer leaves it: what was committed (10 records) is kept"} {
		if !strings.Contains(out, want) {
			t.Errorf("stderr does not say %q", want)
		}
	}
	exec.Command("chattr", "-i", dir).Run()
	var dump bytes.Buffer
	if code := run(context.Background(), []string{"dump", "--no-bodies", "--no-samples", dir}, nil, &dump, io.Discard); code != 0 {
		t.Fatalf("dump exit %d", code)
	}
	if n := strings.Count(dump.String(), `"kind":"record"`); n != 10 {
		t.Errorf("the capture holds %d records; want the 10 committed", n)
	}
}
