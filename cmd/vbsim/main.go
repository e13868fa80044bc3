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
	"time"

	"github.com/vbench/vbench/backends/sim"
	"github.com/vbench/vbench/internal/cli"
)

func main() { os.Exit(cli.Main(run)) }

const usage = "vbsim [flags]"

func run(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	return cli.Exit(stderr, "vbsim", serve(ctx, args, stdout, stderr))
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("vbsim", usage, stderr)
	var cfg sim.Config
	listen := fs.String("listen", "127.0.0.1:8000", "address to listen on (host:port; port 0 picks a free one)")
	port := fs.Int("port", 0, "port on 127.0.0.1 (shorthand; overrides the port of --listen)")
	fs.StringVar(&cfg.Model, "model", "", "served model name (default sim-<preset>)")
	fs.StringVar(&cfg.Preset, "preset", sim.DefaultPreset, "engine preset: "+fmt.Sprint(sim.PresetNames()))
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
	if !(cfg.Speed > 0) {
		return cli.Usagef("--speed %v: want > 0", cfg.Speed)
	}
	addr := *listen
	if fs.Changed("port") {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = "127.0.0.1"
		}
		addr = net.JoinHostPort(host, strconv.Itoa(*port))
	}
	resolved, err := cfg.Resolve()
	if err != nil {
		return cli.Usagef("%v", err)
	}
	if *printCfg {
		fmt.Fprintf(stdout, "%+v\n", resolved)
		return nil
	}
	srv, err := sim.New(cfg)
	if err != nil {
		return cli.Usagef("%v", err)
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("vbsim: listen on %s: %w", addr, err)
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
		return fmt.Errorf("vbsim: serve: %w", err)
	case <-ctx.Done():
	}
	// Graceful: stop accepting, abort the engine so streams end, then wait.
	srv.Close()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("vbsim: shutdown: %w", err)
	}
	fmt.Fprintln(stderr, "vbsim: stopped")
	return nil
}
