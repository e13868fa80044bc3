package reliability

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vbench/vbench/internal/testbin"
	"github.com/vbench/vbench/proxy"
)

// commands are the binaries the suite builds once (without -race: the
// suite runs them as users do).
var commands = []string{"cmd/vbsynth", "cmd/vbproxy", "cmd/vbreplay", "cmd/vbanalyze", "cmd/vbbench", "cmd/vbsim"}

// bin returns the path of the named command, building all of them once
// (one go build; TestMain removes them).
func bin(t testing.TB, name string) string {
	t.Helper()
	return filepath.Join(testbin.Dir(t, commands...), name)
}

// lockedBuf is a goroutine-safe buffer for a child's stderr.
type lockedBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var listenRE = regexp.MustCompile(`listening on (http://\S+)`)

// vbproxyProc is a running vbproxy binary.
type vbproxyProc struct {
	cmd    *exec.Cmd
	url    string
	stderr *lockedBuf
	ready  time.Duration // from exec to the first /vb/health 200
}

// startVbproxy runs vbproxy with args and waits until it answers
// /vb/health.
func startVbproxy(t testing.TB, args ...string) *vbproxyProc {
	t.Helper()
	start := time.Now()
	cmd := exec.Command(bin(t, "vbproxy"), append([]string{"--listen", "127.0.0.1:0"}, args...)...)
	errBuf := &lockedBuf{}
	cmd.Stderr = errBuf
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	m := listenRE.FindStringSubmatch(line)
	if err != nil || m == nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("vbproxy did not start (%v, %q): %s", err, line, errBuf.String())
	}
	go io.Copy(io.Discard, out)
	p := &vbproxyProc{cmd: cmd, url: m[1], stderr: errBuf}
	if !waitFor(10*time.Second, func() bool {
		resp, err := http.Get(p.url + "/vb/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}) {
		t.Fatalf("vbproxy never healthy: %s", errBuf.String())
	}
	p.ready = time.Since(start)
	return p
}

// stats reads the proxy's /vb/stats.
func (p *vbproxyProc) stats(t testing.TB) proxy.Stats {
	t.Helper()
	var s proxy.Stats
	resp, err := http.Get(p.url + "/vb/stats")
	if err != nil {
		t.Fatalf("/vb/stats: %v", err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatalf("/vb/stats: %v", err)
	}
	return s
}
