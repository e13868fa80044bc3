// Command replaytool is the helper of bench/scripts/replay_bench.sh: it
// runs an OpenAI-compatible streaming server with a known TTFT and
// inter-token gap as its own process (internal/testserver, or with --mock
// a self-measuring twin that reports when it really flushed each first
// token), and writes the synthetic traces the replayer benchmark plays.
//
//	replaytool server --ttft 50ms --itl 10ms --tokens 100 [--mock]   # prints its URL, serves until killed
//	replaytool trace --out t.bin --n 10000 --arrival poisson --output-tokens 100
//	replaytool stats [--reset] URL   # the mock's GET /stats to stdout (or POST /stats/reset), no curl needed
package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"time"

	"github.com/vbench/vbench/internal/cli"
	"github.com/vbench/vbench/internal/testserver"
	"github.com/vbench/vbench/trace"
)

func main() { os.Exit(cli.Main("replaytool", run)) }

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: replaytool server|trace [flags]")
		return cli.ExitUsage
	}
	var err error
	switch args[0] {
	case "server":
		err = server(ctx, args[1:], stdout, stderr)
	case "trace":
		err = makeTrace(args[1:], stderr)
	case "stats":
		err = stats(ctx, args[1:], stdout, stderr)
	default:
		err = cli.Usagef("unknown subcommand %q (server, trace, stats)", args[0])
	}
	if err != nil && ctx.Err() != nil {
		err = nil
	}
	return cli.Exit(stderr, "replaytool", err)
}

func server(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("replaytool server", "replaytool server [--ttft D] [--itl D] [--tokens N]", stderr)
	var cfg testserver.Config
	fs.DurationVar(&cfg.TTFT, "ttft", 0, "time to first token")
	fs.DurationVar(&cfg.ITL, "itl", 0, "gap between tokens")
	fs.IntVar(&cfg.Tokens, "tokens", 16, "tokens when the request has no max_tokens")
	fs.StringVar(&cfg.Model, "model", "", "the only model accepted (any when empty)")
	useMock := fs.Bool("mock", false, "serve the self-measuring mock (GET /stats: server-side TTFT) instead of internal/testserver")
	addr := fs.String("addr", "127.0.0.1:0", "listen address (--mock)")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if *useMock {
		url, stop, err := serveMock(*addr, &mock{ttft: cfg.TTFT, itl: cfg.ITL, tokens: cfg.Tokens})
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, url)
		<-ctx.Done()
		return stop()
	}
	s, err := testserver.Start(cfg)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, s.URL)
	<-ctx.Done()
	return s.Close()
}

func makeTrace(args []string, stderr io.Writer) error {
	fs := cli.NewFlagSet("replaytool trace", "replaytool trace --out FILE --n N [flags]", stderr)
	out := fs.String("out", "", "trace file to write (.bin or .jsonl)")
	n := fs.Int("n", 1000, "number of requests")
	arrival := fs.String("arrival", "poisson", "poisson or constant (mean rate 1 req/s)")
	outTok := fs.Int32("output-tokens", 1, "output tokens per request (max_tokens)")
	words := fs.Int("prompt-words", 8, "words in each prompt")
	seed := fs.Uint64("seed", 1, "random seed")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if *out == "" || *n <= 0 {
		return cli.Usagef("--out and a positive --n are required")
	}
	rng := rand.New(rand.NewPCG(*seed, 42))
	prompt := ""
	for i := 0; i < *words; i++ {
		prompt += "word "
	}
	reqs := make([]trace.Request, *n)
	var t time.Duration
	for i := range reqs {
		if i > 0 {
			switch *arrival {
			case "constant":
				t += time.Second
			case "poisson":
				t += time.Duration(rng.ExpFloat64() * float64(time.Second))
			default:
				return cli.Usagef("--arrival %q: poisson or constant", *arrival)
			}
		}
		reqs[i] = trace.Request{Index: int64(i), Offset: t, Endpoint: trace.EndpointCompletions, Prompt: prompt,
			InputTokens: int32(*words), OutputTokens: *outTok, Sampling: trace.Sampling{MaxTokens: *outTok, IgnoreEOS: true}}
	}
	arr := trace.ArrivalPoisson
	if *arrival == "constant" {
		arr = trace.ArrivalConstant
	}
	_, err := trace.WriteFile(*out, trace.Header{Generator: "replaytool", Seed: int64(*seed), Dataset: "fixed-prompt", Arrival: arr, MeanRate: 1}, reqs)
	return err
}

// stats copies the mock server's GET /stats to stdout, or with --reset
// clears it (POST /stats/reset), so the benchmark scripts need no curl.
func stats(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("replaytool stats", "replaytool stats [--reset] URL", stderr)
	reset := fs.Bool("reset", false, "clear the server's figures instead of printing them")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return cli.Usagef("one URL expected")
	}
	method, path := http.MethodGet, "/stats"
	if *reset {
		method, path = http.MethodPost, "/stats/reset"
	}
	req, err := http.NewRequestWithContext(ctx, method, fs.Arg(0)+path, nil)
	if err != nil {
		return fmt.Errorf("stats: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("stats: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("stats: %s%s: %s", fs.Arg(0), path, resp.Status)
	}
	_, err = io.Copy(stdout, resp.Body)
	return err
}
