package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"syscall"
	"time"
)

// --capture runs vbproxy as a child process in front of --upstream and
// points the replayer at it: the replayer knows only a target URL, and
// vbreplay links neither Badger nor fasthttp (`go list -deps`). The child
// is the vbproxy next to this executable, else the one on PATH, else
// $VBPROXY.

// captureConfig is what --capture needs.
type captureConfig struct {
	Dir            string
	Upstream       string
	Labels         map[string]string
	ScrapeInterval time.Duration
	ScrapeMetrics  []string
}

// childProxy is a running vbproxy.
type childProxy struct {
	cmd    *exec.Cmd
	url    string
	dir    string
	exited chan error
}

// vbproxyPath finds the vbproxy binary: $VBPROXY, next to this
// executable, or on PATH.
func vbproxyPath() (string, error) {
	if p := os.Getenv("VBPROXY"); p != "" {
		return p, nil
	}
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), "vbproxy")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	if p, err := exec.LookPath("vbproxy"); err == nil {
		return p, nil
	}
	return "", errors.New("--capture runs vbproxy, which is neither next to vbreplay nor on PATH (build it: make build; or set VBPROXY=/path/to/vbproxy, or run vbproxy yourself and pass --target)")
}

var listening = regexp.MustCompile(`^vbproxy: listening on (http://\S+) `)

// startProxy starts vbproxy on a free loopback port recording into c.Dir
// and returns once it listens. Its log lines go to log.
func startProxy(ctx context.Context, c captureConfig, log io.Writer) (*childProxy, error) {
	bin, err := vbproxyPath()
	if err != nil {
		return nil, err
	}
	args := []string{"--upstream", c.Upstream, "--listen", "127.0.0.1:0", "--capture", c.Dir, "--log-level", "warn", "--drain", "10s", "--quiet"}
	for _, k := range slices.Sorted(maps.Keys(c.Labels)) {
		args = append(args, "--label", k+"="+c.Labels[k])
	}
	if c.ScrapeInterval > 0 {
		args = append(args, "--scrape-interval", c.ScrapeInterval.String())
	}
	for _, m := range c.ScrapeMetrics {
		args = append(args, "--scrape-metric", m)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stderr = log
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("--capture: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("--capture: start %s: %w", bin, err)
	}
	p := &childProxy{cmd: cmd, dir: c.Dir, exited: make(chan error, 1)}
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				urls <- m[1]
			}
		}
		io.Copy(io.Discard, out)
		p.exited <- cmd.Wait()
	}()
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	select {
	case p.url = <-urls:
		return p, nil
	case err := <-p.exited:
		return nil, fmt.Errorf("--capture: vbproxy (%s) exited before it listened: %v (its messages are above)", bin, err)
	case <-ctx.Done():
		p.kill()
		return nil, ctx.Err()
	case <-timeout.C:
		p.kill()
		return nil, fmt.Errorf("--capture: vbproxy (%s) did not listen within 30 s", bin)
	}
}

func (p *childProxy) kill() {
	p.cmd.Process.Kill()
	<-p.exited
}

// proxyStats is what vbreplay reads of vbproxy's /vb/stats.
type proxyStats struct {
	InFlight int64 `json:"in_flight"`
	Dropped  int64 `json:"dropped"`
	Capture  *struct {
		Queued  int    `json:"queued"`
		Written uint64 `json:"written"`
		Dropped uint64 `json:"dropped"`
		Lost    uint64 `json:"lost"`
	} `json:"capture"`
}

func (p *childProxy) stats() (proxyStats, error) {
	var s proxyStats
	resp, err := http.Get(p.url + "/vb/stats")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return s, err
	}
	if s.Capture == nil {
		return s, errors.New("vbproxy reports no capture")
	}
	return s, nil
}

// stop waits until vbproxy has committed every record (its writer queue is
// empty, up to 10 s), reads how many it wrote and dropped, and shuts it
// down with SIGTERM; vbproxy closes the capture cleanly before it exits.
func (p *childProxy) stop() (written, dropped int64, err error) {
	var s proxyStats
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err = p.stats()
		if err != nil || (s.InFlight == 0 && s.Capture.Queued == 0) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // polls a condition, with the deadline above
	}
	if err == nil {
		written, dropped = int64(s.Capture.Written), s.Dropped+int64(s.Capture.Dropped+s.Capture.Lost)
	}
	if serr := p.cmd.Process.Signal(syscall.SIGTERM); serr != nil {
		return written, dropped, errors.Join(err, fmt.Errorf("stop vbproxy: %w", serr))
	}
	select {
	case werr := <-p.exited:
		if werr != nil {
			err = errors.Join(err, fmt.Errorf("vbproxy exited: %w", werr))
		}
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		err = errors.Join(err, fmt.Errorf("vbproxy did not exit 30 s after SIGTERM; killed (the capture %s may need a recovery on next open)", p.dir))
		<-p.exited
	}
	if err != nil {
		return written, dropped, fmt.Errorf("--capture %s: %w", p.dir, err)
	}
	return written, dropped, nil
}
