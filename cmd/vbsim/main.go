// Command vbsim runs vbench's simulated LLM inference server: an
// OpenAI-compatible API (vLLM's streaming chunk shape and metric names) over
// a discrete-time engine model with continuous batching and a paged or
// contiguous KV cache. See backends/sim and docs/vbsim.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/vbench/vbench/backends/sim"
	"github.com/vbench/vbench/internal/addr"
	"github.com/vbench/vbench/internal/cli"
)

func main() { os.Exit(cli.Main("vbsim", run)) }

const usage = "vbsim [flags]"

func run(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	return cli.Exit(stderr, "vbsim", serve(ctx, args, stdout, stderr))
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("vbsim", usage, stderr)
	var cfg sim.Config
	listen := fs.String("listen", "127.0.0.1:8000", "address to listen on: HOST:PORT or http://HOST:PORT (port 0 picks a free one)")
	port := fs.Int("port", 0, "listen on this port of the --listen host (127.0.0.1 unless --listen says otherwise)")
	fs.StringVar(&cfg.Model, "model", "", "served model name (default sim-<preset>)")
	fs.StringVar(&cfg.Preset, "preset", sim.DefaultPreset, "engine preset: "+strings.Join(sim.PresetNames(), ", "))
	fs.StringVar(&cfg.Policy, "policy", sim.PolicyPaged, "KV policy: paged or contiguous")
	fs.StringVar(&cfg.Reservation, "reservation", sim.ReserveMax, "contiguous reservation: max (max model len), pow2 (prompt + next pow2 of max_tokens) or oracle (prompt + true output)")
	fs.IntVar(&cfg.KVTokens, "kv-tokens", 0, "KV-cache capacity in tokens (default: the preset's)")
	fs.IntVar(&cfg.BlockSize, "block-size", sim.DefaultBlockSize, "paged block size in tokens")
	fs.IntVar(&cfg.MaxNumSeqs, "max-num-seqs", 0, "max sequences per batch (default: the preset's)")
	fs.IntVar(&cfg.MaxBatchTokens, "max-batch-tokens", 0, "token budget per step (default: the preset's)")
	fs.IntVar(&cfg.MaxModelLen, "max-model-len", 0, "max prompt + output tokens (default: the preset's)")
	fs.Float64Var(&cfg.Speed, "speed", 1, "speed-up: simulated durations are divided by this")
	fs.Int64Var(&cfg.Seed, "seed", 0, "seed of the simulated EOS points")
	printCfg := fs.Bool("print-config", false, "print the resolved configuration and exit")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return cli.Usagef("unexpected argument %q", fs.Arg(0))
	}
	var errs []error
	if !(cfg.Speed > 0) {
		errs = append(errs, cli.Usagef("--speed %v: want > 0", cfg.Speed))
	}
	listenAddr, err := addr.ParseListen(*listen)
	if err != nil {
		errs = append(errs, cli.Usagef("--listen %w", err))
	}
	if fs.Changed("port") {
		if err := addr.ValidPort(*port, true); err != nil {
			errs = append(errs, cli.Usagef("--port: %w", err))
		} else if listenAddr != "" {
			host, _, _ := net.SplitHostPort(listenAddr)
			listenAddr = net.JoinHostPort(host, strconv.Itoa(*port))
		}
	}
	resolved, err := cfg.Resolve()
	if err != nil {
		errs = append(errs, cli.Usagef("%w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if *printCfg {
		printConfig(stdout, resolved)
		return nil
	}
	srv, err := sim.New(cfg)
	if err != nil {
		return cli.Usagef("%w", err)
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", listenAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", listenAddr, unwrapOp(err))
	}
	if a, ok := ln.Addr().(*net.TCPAddr); ok && !a.IP.IsLoopback() {
		fmt.Fprintf(stderr, "vbsim: WARNING: listening on %s, which is reachable from other hosts (anyone who reaches it can use the server); use --listen 127.0.0.1:PORT to keep it local\n", ln.Addr())
	}
	c := srv.Config()
	fmt.Fprintf(stderr, "vbsim: serving %s on http://%s (preset %s, policy %s", c.Model, ln.Addr(), c.Preset, c.Policy)
	if c.Policy == sim.PolicyContiguous {
		fmt.Fprintf(stderr, "/%s", c.Reservation)
	}
	fmt.Fprintf(stderr, ", kv %d tokens, max-num-seqs %d, max-batch-tokens %d, max-model-len %d, speed %gx, seed %d)\n",
		c.KVTokens, c.MaxNumSeqs, c.MaxBatchTokens, c.MaxModelLen, c.Speed, c.Seed)
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	// Graceful: stop accepting, abort the engine so streams end, then wait.
	srv.Close()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shutdown: %w", err)
	}
	fmt.Fprintln(stderr, "vbsim: stopped")
	return nil
}

// unwrapOp drops the "listen tcp ADDR:" of a *net.OpError, which repeats
// what the message around it says.
func unwrapOp(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}

// printConfig writes the resolved configuration as TOML, keys named after
// the flags that set them.
func printConfig(w io.Writer, c sim.Config) {
	fmt.Fprintf(w, "# vbsim: the resolved configuration (preset %s with the flags given)\n", c.Preset)
	fmt.Fprintf(w, "model = %q\npreset = %q\npolicy = %q\n", c.Model, c.Preset, c.Policy)
	fmt.Fprintf(w, "reservation = %q%s\n", c.Reservation, map[bool]string{true: "", false: "  # contiguous policy only"}[c.Policy == sim.PolicyContiguous])
	fmt.Fprintf(w, "kv-tokens = %d\nblock-size = %d\nmax-num-seqs = %d\nmax-batch-tokens = %d\nmax-model-len = %d\n",
		c.KVTokens, c.BlockSize, c.MaxNumSeqs, c.MaxBatchTokens, c.MaxModelLen)
	fmt.Fprintf(w, "speed = %g\nseed = %d\n", c.Speed, c.Seed)
	fmt.Fprintf(w, "\n# One engine step lasts fixed + per-prefill-token × prefill tokens\n# + per-decode-seq × decoding sequences + per-context-token × context tokens\n# (simulated time; real time is that divided by speed).\n[step]\n")
	fmt.Fprintf(w, "fixed = %q\nper-prefill-token = %q\nper-decode-seq = %q\nper-context-token = %q\n",
		c.Step.Fixed, c.Step.PerPrefillToken, c.Step.PerDecodeSeq, c.Step.PerContextToken)
}
