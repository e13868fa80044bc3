// Package backends starts, watches and stops inference servers for a
// benchmark trial: vLLM (its CLI), our PyTorch baseline server, transformers
// serve, the built-in simulator (vbsim) and any command a study names.
//
// Every server runs in its own process group with stdout and stderr going to
// the trial's log. The lifecycle is Prepare → Start → WaitHealthy → Stop;
// Stop ends the whole group (SIGTERM, grace, SIGKILL), then confirms that the
// port is free and, where nvidia-smi exists, that the GPU memory came back.
//
// Variants are data: a Spec (what to run and with which knobs) comes from a
// named preset (Presets) that a study may override key by key.
package backends

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Backend is one inference server for the length of a trial.
type Backend interface {
	// Prepare checks the installation, the files and the GPU before anything
	// starts; it may detect versions (vLLM) that shape the command line.
	Prepare(ctx context.Context) error
	// Start launches the server in its own process group, writing its
	// stdout and stderr to log.
	Start(ctx context.Context, log io.Writer) error
	// WaitHealthy polls the health endpoints until they answer 200, the
	// process exits, or timeout passes; errors carry the log's last lines.
	WaitHealthy(ctx context.Context, timeout time.Duration) error
	// Stop ends the process group (SIGTERM, grace, SIGKILL), confirms the
	// port is free and the GPU memory released. It is safe to call twice.
	Stop(ctx context.Context) error
	// BaseURL is the server's root URL, e.g. http://127.0.0.1:41234.
	BaseURL() string
	// Exited is closed when the server process ends, for whatever reason;
	// a trial watches it to tell a crash during a level.
	Exited() <-chan struct{}
	// ExitErr describes how the process ended (nil while it runs or after
	// a clean exit).
	ExitErr() error
	// Command is the resolved command line and extra environment, known
	// after Prepare.
	Command() Command
	// LogTail returns the last n lines the server wrote.
	LogTail(n int) string
	// PID is the server's process id, which is also its process group id
	// (0 before Start).
	PID() int
}

// Command is a resolved command line.
type Command struct {
	// Argv is the program and its arguments.
	Argv []string `json:"argv"`
	// Env holds the variables added to the inherited environment (KEY=VALUE).
	Env []string `json:"env,omitempty"`
	// HealthPaths are polled in order; all must answer 200.
	HealthPaths []string `json:"health_paths"`
	// Version is the detected version of the server's package, if known.
	Version string `json:"version,omitempty"`
}

// String renders the command for logs and error messages.
func (c Command) String() string {
	var b strings.Builder
	for _, e := range c.Env {
		b.WriteString(e)
		b.WriteByte(' ')
	}
	for i, a := range c.Argv {
		if i > 0 {
			b.WriteByte(' ')
		}
		if a == "" || strings.ContainsAny(a, " \t\"'{}$") {
			fmt.Fprintf(&b, "%q", a)
		} else {
			b.WriteString(a)
		}
	}
	return b.String()
}

// Sentinel errors callers branch on.
var (
	// ErrNotInstalled: the server's program or package is missing.
	ErrNotInstalled = errors.New("backend not installed")
	// ErrStartTimeout: the server did not become healthy in time.
	ErrStartTimeout = errors.New("backend start-up timed out")
	// ErrExited: the server process ended on its own.
	ErrExited = errors.New("backend process exited")
	// ErrUnsupported: the variant cannot run here (e.g. flash-attn missing);
	// the orchestrator skips it with the message.
	ErrUnsupported = errors.New("variant unsupported here")
)

// Options are the per-trial settings that do not belong to a variant.
type Options struct {
	// Host is the address the server binds; default 127.0.0.1.
	Host string
	// Port is the server's port; 0 picks a free loopback port.
	Port int
	// Dir is the working directory of the process (default: current).
	Dir string
	// SearchDirs are searched for executables (vbsim) before PATH, e.g.
	// the directory of the vbbench executable.
	SearchDirs []string
	// StopGrace is how long Stop waits after SIGTERM (default 20s).
	StopGrace time.Duration
	// PortFreeTimeout bounds the wait for the port after Stop (default 10s).
	PortFreeTimeout time.Duration
	// GPUReleaseTimeout bounds the wait for GPU memory after Stop
	// (default 60s; only when nvidia-smi exists).
	GPUReleaseTimeout time.Duration
	// PollInterval is the health poll period (default 250ms).
	PollInterval time.Duration
	// GPUs pins the server to these GPUs (indexes or UUIDs, as
	// CUDA_VISIBLE_DEVICES takes them): the variable is set to them, over
	// any value the spec's env gives, and the memory checks of Prepare and
	// Stop look at them alone. nil leaves the environment as inherited and
	// checks GPU 0.
	GPUs []string
}

func (o *Options) defaults() {
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.StopGrace <= 0 {
		o.StopGrace = 20 * time.Second
	}
	if o.PortFreeTimeout <= 0 {
		o.PortFreeTimeout = 10 * time.Second
	}
	if o.GPUReleaseTimeout <= 0 {
		o.GPUReleaseTimeout = 60 * time.Second
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 250 * time.Millisecond
	}
}

// New returns the backend a resolved spec describes. It is the one place
// where kinds are chosen.
func New(spec Spec, opt Options) (Backend, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	opt.defaults()
	if opt.Port == 0 {
		p, err := FreePort(opt.Host)
		if err != nil {
			return nil, err
		}
		opt.Port = p
	}
	var build func(ctx context.Context, s Spec, o Options) (Command, error)
	switch spec.Kind {
	case KindVLLM:
		build = vllmCommand
	case KindTorch:
		build = torchCommand
	case KindTransformers:
		build = transformersCommand
	case KindSim:
		build = simCommand
	case KindExec:
		build = execCommand
	default:
		return nil, fmt.Errorf("backends: unknown kind %q", spec.Kind)
	}
	return &process{spec: spec, opt: opt, build: build, exited: make(chan struct{})}, nil
}
