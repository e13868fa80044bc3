package backends

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// process is the one implementation of Backend: kinds differ only in the
// command they build.
type process struct {
	spec  Spec
	opt   Options
	build func(ctx context.Context, s Spec, o Options) (Command, error)

	cmdline  Command
	prepared bool
	gpuBase  int // MiB used on the GPU before start; -1 unknown

	mu      sync.Mutex
	cmd     *exec.Cmd
	pgid    int
	tail    *tailBuffer
	exited  chan struct{}
	exitErr error
	stopped bool
}

func (p *process) BaseURL() string {
	return "http://" + net.JoinHostPort(p.opt.Host, strconv.Itoa(p.opt.Port))
}

func (p *process) Command() Command { return p.cmdline }

func (p *process) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pgid
}

func (p *process) Exited() <-chan struct{} { return p.exited }

func (p *process) ExitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exitErr
}

func (p *process) LogTail(n int) string {
	p.mu.Lock()
	t := p.tail
	p.mu.Unlock()
	if t == nil {
		return ""
	}
	return t.Last(n)
}

// Prepare resolves the command line (finding the program, detecting the
// version) and checks the port is free.
func (p *process) Prepare(ctx context.Context) error {
	c, err := p.build(ctx, p.spec, p.opt)
	if err != nil {
		return err
	}
	if len(c.HealthPaths) == 0 {
		c.HealthPaths = []string{"/health", "/v1/models"}
	}
	if len(p.spec.HealthPaths) > 0 {
		c.HealthPaths = append([]string(nil), p.spec.HealthPaths...)
	}
	for k, v := range p.spec.Env {
		c.Env = append(c.Env, k+"="+v)
	}
	if p.opt.GPUs != nil {
		c.Env = slices.DeleteFunc(c.Env, func(e string) bool { return strings.HasPrefix(e, "CUDA_VISIBLE_DEVICES=") })
		c.Env = append(c.Env, "CUDA_VISIBLE_DEVICES="+strings.Join(p.opt.GPUs, ","))
	}
	sortEnv(c.Env)
	if !portFree(p.opt.Host, p.opt.Port) {
		return fmt.Errorf("backends: port %s:%d is already in use; stop what holds it or let vbbench pick one", p.opt.Host, p.opt.Port)
	}
	p.cmdline = c
	p.prepared = true
	p.gpuBase = -1
	if used, err := gpuMemoryUsedMiB(ctx, p.opt.GPUs); err == nil {
		p.gpuBase = used
	}
	return nil
}

// Start launches the command in its own process group.
func (p *process) Start(ctx context.Context, log io.Writer) error {
	if !p.prepared {
		if err := p.Prepare(ctx); err != nil {
			return err
		}
	}
	if log == nil {
		log = io.Discard
	}
	c := p.cmdline
	cmd := exec.Command(c.Argv[0], c.Argv[1:]...)
	cmd.Env = append(os.Environ(), c.Env...)
	cmd.Dir = p.opt.Dir
	tail := newTailBuffer(64 << 10)
	w := io.MultiWriter(log, tail)
	cmd.Stdout = w
	cmd.Stderr = w
	cmd.Stdin = nil
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	fmt.Fprintf(log, "# vbbench: starting %s\n", c)
	if err := cmd.Start(); err != nil {
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("backends: start %s: %w: %v", c.Argv[0], ErrNotInstalled, err)
		}
		return fmt.Errorf("backends: start %s: %w", c.Argv[0], err)
	}
	p.mu.Lock()
	p.cmd = cmd
	p.pgid = cmd.Process.Pid
	p.tail = tail
	p.mu.Unlock()
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		if err != nil {
			p.exitErr = fmt.Errorf("%w: %v", ErrExited, err)
		} else if !p.stopped {
			p.exitErr = fmt.Errorf("%w: exit status 0", ErrExited)
		}
		p.mu.Unlock()
		close(p.exited)
	}()
	return nil
}

// WaitHealthy polls every health path until all answer 200.
func (p *process) WaitHealthy(ctx context.Context, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	if p.spec.StartupTimeout > 0 {
		timeout = p.spec.StartupTimeout.D()
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(p.opt.PollInterval)
	defer tick.Stop()
	client := &http.Client{Timeout: 5 * time.Second}
	var last error
	for {
		if last = p.probe(ctx, client); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.exited:
			return fmt.Errorf("backends: %s exited before it became healthy (%v); last log lines:\n%s",
				p.cmdline.Argv[0], p.ExitErr(), indent(p.LogTail(20)))
		case <-deadline.C:
			return fmt.Errorf("backends: %w after %v waiting for %s (last probe: %v); last log lines:\n%s",
				ErrStartTimeout, timeout, p.BaseURL(), last, indent(p.LogTail(20)))
		case <-tick.C:
		}
	}
}

func (p *process) probe(ctx context.Context, client *http.Client) error {
	for _, path := range p.cmdline.HealthPaths {
		url := path
		if strings.HasPrefix(path, "/") {
			url = p.BaseURL() + path
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", path, resp.Status)
		}
	}
	return nil
}

// Stop ends the whole process group and checks that the port and the GPU
// memory are free again.
func (p *process) Stop(ctx context.Context) error {
	p.mu.Lock()
	cmd, pgid := p.cmd, p.pgid
	already := p.stopped
	p.stopped = true
	p.mu.Unlock()
	if cmd == nil || already {
		return nil
	}
	var errs []error
	// SIGTERM to the group, then wait for the leader, then make sure no
	// member survives: servers such as vLLM run the engine in a child.
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	grace := time.NewTimer(p.opt.StopGrace)
	select {
	case <-p.exited:
	case <-grace.C:
	case <-ctx.Done():
	}
	grace.Stop()
	if groupAlive(pgid) {
		// Members may still be shutting down after the leader left; give
		// them the rest of a short grace, then SIGKILL the group.
		waitUntil(ctx, min(2*time.Second, p.opt.StopGrace), func() bool { return !groupAlive(pgid) })
		if groupAlive(pgid) {
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
		}
	}
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		errs = append(errs, fmt.Errorf("backends: process %d did not exit after SIGKILL", pgid))
	}
	if !waitUntil(ctx, 5*time.Second, func() bool { return !groupAlive(pgid) }) {
		errs = append(errs, fmt.Errorf("backends: process group %d still has members after SIGKILL", pgid))
	}
	if !waitUntil(ctx, p.opt.PortFreeTimeout, func() bool { return portFree(p.opt.Host, p.opt.Port) }) {
		errs = append(errs, fmt.Errorf("backends: port %s:%d still in use %v after stop", p.opt.Host, p.opt.Port, p.opt.PortFreeTimeout))
	}
	if p.gpuBase >= 0 {
		const slackMiB = 512
		var used int
		ok := waitUntil(ctx, p.opt.GPUReleaseTimeout, func() bool {
			u, err := gpuMemoryUsedMiB(ctx, p.opt.GPUs)
			used = u
			return err != nil || u <= p.gpuBase+slackMiB
		})
		if !ok {
			errs = append(errs, fmt.Errorf("backends: GPU memory not released: %d MiB used, %d MiB before start%s", used, p.gpuBase, gpuNote(p.opt.GPUs)))
		}
	}
	return errors.Join(errs...)
}

// groupAlive reports whether any process of the group still exists (zombies
// of our own children count until reaped).
func groupAlive(pgid int) bool {
	err := syscall.Kill(-pgid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// waitUntil polls cond every 50ms until it holds or d passes.
func waitUntil(ctx context.Context, d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return cond()
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// FreePort returns a free TCP port on host for a server to bind. It draws
// from below the kernel's ephemeral range (ip_local_port_range), so that the
// port cannot be handed to an outgoing connection or another listener on :0
// between this check and the server's bind; it falls back to asking the
// kernel when no such port is free.
func FreePort(host string) (int, error) {
	lo, _ := ephemeralRange()
	if lo > 11000 {
		start := 10000 + rand.IntN(lo-10000-1000)
		for i := 0; i < 200; i++ {
			p := start + i
			if portFree(host, p) {
				return p, nil
			}
		}
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("backends: find a free port on %s: %w", host, err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// ephemeralRange reads the kernel's range of ports for outgoing connections
// (default 32768–60999 on Linux).
func ephemeralRange() (int, int) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768, 60999
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 32768, 60999
	}
	lo, err1 := strconv.Atoi(f[0])
	hi, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil {
		return 32768, 60999
	}
	return lo, hi
}

func portFree(host string, port int) bool {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func newTailBuffer(max int) *tailBuffer { return &tailBuffer{max: max} }

func (t *tailBuffer) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(b), nil
}

// Last returns the last n lines.
func (t *tailBuffer) Last(n int) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := bytes.TrimRight(t.buf, "\n")
	i := len(b)
	for ; n > 0 && i > 0; n-- {
		j := bytes.LastIndexByte(b[:i], '\n')
		i = j
		if j < 0 {
			i = 0
			break
		}
	}
	if i > 0 {
		i++
	}
	return strings.TrimLeft(string(b[i:]), "\n")
}

func indent(s string) string {
	if s == "" {
		return "    (the server wrote nothing)"
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

func sortEnv(env []string) {
	for i := 1; i < len(env); i++ {
		for j := i; j > 0 && env[j] < env[j-1]; j-- {
			env[j], env[j-1] = env[j-1], env[j]
		}
	}
}

// gpuNote names the GPUs a memory check looked at, when not GPU 0 alone.
func gpuNote(ids []string) string {
	if len(ids) == 0 {
		return ""
	}
	return " on GPU " + strings.Join(ids, ",")
}
