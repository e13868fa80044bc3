// Command vbreplay plays a trace against an OpenAI-compatible server, open
// loop and on absolute time (or closed loop at fixed concurrencies), and
// reports its own schedule lag alongside client-side TTFT and E2E. See
// docs/vbreplay.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/vbench/vbench/internal/addr"
	"github.com/vbench/vbench/internal/cli"
	"github.com/vbench/vbench/internal/progress"
	"github.com/vbench/vbench/replay"
	"github.com/vbench/vbench/trace"
)

func main() { os.Exit(cli.Main("vbreplay", run)) }

const usage = `vbreplay TRACE --target ADDR [--rate R | --rates 1,5,10 | --concurrency 1,8,64] [--duration 60s] [flags]
       vbreplay TRACE --capture DIR --upstream ADDR [--rate R | --rates ... | --concurrency ...] [flags]

Plays TRACE (trace.bin or .jsonl, '-' = stdin) against a server, open loop
at each rate (or closed loop at each concurrency). --target sends straight to
the server (or to a running vbproxy); --capture records every exchange through
a vbproxy that vbreplay runs in front of --upstream (the vbproxy next to
vbreplay, else on PATH, else $VBPROXY). ADDR is HOST:PORT, :PORT or a URL.`

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return cli.Exit(stderr, "vbreplay", runErr(ctx, args, stdout, stderr))
}

func runErr(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("vbreplay", usage, stderr)
	var cfg replay.Config
	fs.StringVar(&cfg.Target, "target", "", "the server or a running vbproxy: HOST:PORT, :PORT or a base URL such as http://127.0.0.1:8000")
	rate := fs.Float64("rate", 0, "mean request rate in requests/s (0 = the trace's own pace)")
	fs.Float64SliceVar(&cfg.Rates, "rates", nil, "rate ladder: one level per rate, same requests in the same order (e.g. 1,5,10,20)")
	fs.IntSliceVar(&cfg.Concurrency, "concurrency", nil, "closed loop instead of a rate: one level per N, each keeping N requests in flight (the next trace request goes out as one ends, arrival times ignored; e.g. 1,8,64)")
	fs.Float64Var(&cfg.Speed, "speed", 1, "multiply the pace of every level (2 = twice as fast)")
	fs.DurationVar(&cfg.Duration, "duration", 0, "length of each level; the trace is cut there (0 = play it all)")
	fs.DurationVar(&cfg.Drain, "drain", 0, "how long in-flight requests may run after a level ends before they are cut (and reported as cut, with their partial latency); 0 = long enough for the level's longest expected request at the measured TPOT")
	fs.DurationVar(&cfg.MaxDrain, "max-drain", replay.DefaultMaxDrain, "cap on the automatic --drain")
	warmup := fs.String("warmup", "", "warm-up before measuring: a duration (10s) or a request count (50), taken from the trace's end")
	fs.StringVar(&cfg.WarmupMode, "warmup-mode", replay.WarmupLevel, "warm up before every level (level) or once (run)")
	fs.IntVar(&cfg.MaxConcurrency, "max-concurrency", 0, "cap on requests in flight (0 = open loop, no cap)")
	fs.StringVar(&cfg.OnFull, "on-full", replay.OnFullWait, "at the cap: wait (shows as lag) or drop (counted)")
	fs.DurationVar(&cfg.Timeout, "timeout", 0, "cut one request after this long (0 = only the drain limit)")
	fs.StringVar(&cfg.Model, "model", "", "model name in every body (default: the first of GET /v1/models)")
	fs.StringVar(&cfg.ChatMaxTokens, "chat-max-tokens", replay.ChatMaxTokensBoth, "length field of chat requests: both, max_tokens or max_completion_tokens")
	fs.BoolVar(&cfg.ExactOutput, "exact-output", false, "ask for exactly the trace's output length (max_tokens = min_tokens, ignore_eos), verbatim bodies too")
	fs.BoolVar(&cfg.NoEOSFields, "no-eos-fields", false, "never send ignore_eos or min_tokens (transformers serve rejects them with HTTP 422); lengths rest on max_tokens")
	headers := fs.StringArray("header", nil, "extra header 'Name: value' (repeatable; e.g. 'Authorization: Bearer KEY')")
	labels := fs.StringArray("label", nil, "label k=v sent as X-VB-Label-k (repeatable)")
	fs.StringVar(&cfg.Run, "run", "", "run id for the X-VB-Run tag (default: a UTC timestamp)")
	fs.StringVar(&cfg.Trial, "trial", "", "trial id for the X-VB-Trial tag")
	fs.DurationVar(&cfg.LagThreshold, "lag-threshold", replay.DefaultLagThreshold, "warn and mark the level when schedule lag p99 exceeds this")
	fs.StringVar(&cfg.Pacer, "pacer", replay.PacerPrecise, "how the pacer waits: precise (timer, then nanosleep for the last ms), timer (runtime timers only, ~1ms late) or spin")
	fs.DurationVar(&cfg.Spin, "spin", 0, "with --pacer spin: spin for this long before each due time (default 1ms)")
	fs.BoolVar(&cfg.AllowShort, "allow-short", false, "accept a trace shorter than rate × duration (the level ends early)")
	noPreflight := fs.Bool("no-preflight", false, "skip the 1-token request that checks target and model before the load")
	fs.DurationVar(&cfg.InterruptDrain, "interrupt-drain", replay.DefaultInterruptDrain, "after Ctrl-C, how long in-flight requests may finish before they are cut")
	fs.DurationVar(&cfg.ProgressInterval, "progress-interval", replay.DefaultProgressInterval, "how often the live progress line is printed")
	quiet := fs.BoolP("quiet", "q", false, "no progress lines")
	jsonOut := fs.String("json", "", "write the result as JSON to this file ('-' = stdout)")
	fs.BoolVar(&cfg.KeepRequests, "details", false, "include every request's measurements in --json")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run to this file")
	var capCfg captureConfig
	fs.StringVar(&capCfg.Dir, "capture", "", "record into this capture directory through a vbproxy that vbreplay runs in front of --upstream")
	fs.StringVar(&capCfg.Upstream, "upstream", "", "with --capture: the server the recording proxy forwards to (HOST:PORT, :PORT or a URL)")
	fs.DurationVar(&capCfg.ScrapeInterval, "scrape-interval", time.Second, "with --capture: how often the proxy scrapes the upstream's /metrics (0 = never)")
	fs.StringSliceVar(&capCfg.ScrapeMetrics, "scrape-metric", nil, "with --capture: also store this server metric (NAME or PREFIX*, e.g. 'vbtorch:*'; as vbproxy --scrape-metric; repeatable or comma-separated)")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return cli.Usagef("want exactly one TRACE argument (trace.bin or .jsonl, '-' = stdin), got %d", fs.NArg())
	}
	if fs.Changed("rate") && fs.Changed("rates") {
		return cli.Usagef("--rate and --rates exclude each other")
	}
	if fs.Changed("concurrency") {
		for _, open := range []string{"rate", "rates", "speed"} {
			if fs.Changed(open) {
				return cli.Usagef("--concurrency (closed loop: each level keeps N requests in flight and sends the next as one ends) and --%s (open loop: requests go out on the trace's schedule) exclude each other", open)
			}
		}
	}
	if fs.Changed("rate") {
		cfg.Rates = []float64{*rate}
	}
	var err error
	if cfg.WarmupDuration, cfg.WarmupRequests, err = replay.ParseWarmup(*warmup); err != nil {
		return cli.Usagef("%v", err)
	}
	if cfg.Labels, err = cli.ParseKV("label", *labels); err != nil {
		return err
	}
	if len(*headers) > 0 {
		cfg.Headers = http.Header{}
		for _, h := range *headers {
			k, v, ok := strings.Cut(h, ":")
			if !ok || strings.TrimSpace(k) == "" {
				return cli.Usagef("--header %q: want 'Name: value'", h)
			}
			cfg.Headers.Add(strings.TrimSpace(k), strings.TrimSpace(v))
		}
	}
	cfg.SkipPreflight = *noPreflight
	// A live line per phase on a terminal, plain lines elsewhere; the
	// recording proxy's messages go through it too.
	var disp *progress.Display
	log := stderr
	if !*quiet {
		disp = progress.New(stderr)
		defer disp.Close()
		if disp.Live() && !fs.Changed("progress-interval") {
			cfg.ProgressInterval = time.Second // a live bar moves every second
		}
		cfg.OnProgress = progress.Replay(disp, "", "")
		log = disp
	}
	if err := validate(cfg, capCfg); err != nil {
		return err
	}
	capCfg.Labels = cfg.Labels
	hdr, reqs, err := trace.ReadFile(fs.Arg(0))
	if err != nil {
		return err // "trace: open PATH: ..." or "trace: PATH: record N: ..."
	}
	newCapture := false
	if capCfg.Dir != "" {
		// A dead upstream fails here, before a capture directory exists.
		if err := checkUpstream(ctx, capCfg.Upstream); err != nil {
			return err
		}
		_, statErr := os.Stat(capCfg.Dir)
		newCapture = errors.Is(statErr, os.ErrNotExist)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	var px *childProxy
	if capCfg.Dir != "" {
		if px, err = startProxy(ctx, capCfg, log); err != nil {
			return err
		}
		cfg.Target = px.url
	}
	res, err := replay.Run(ctx, cfg, hdr, reqs)
	var written, dropped int64
	if px != nil {
		var perr error
		written, dropped, perr = px.stop()
		if errors.Is(err, replay.ErrPreflight) && newCapture {
			// Nothing was measured: the capture holds only the failed
			// preflight request, which the error describes.
			os.RemoveAll(capCfg.Dir)
		} else {
			err = errors.Join(err, perr)
		}
	}
	disp.Close() // the live lines end before the summary
	if res == nil || len(res.Levels) == 0 {
		return err // nothing ran: no table, only what went wrong
	}
	if px != nil {
		defer fmt.Fprintf(stdout, "capture %s: %d records written, %d dropped\n", capCfg.Dir, written, dropped)
	}
	if werr := replay.WriteSummary(stdout, res); werr != nil {
		return errors.Join(err, werr)
	}
	if *jsonOut != "" {
		if werr := writeJSON(*jsonOut, stdout, res); werr != nil {
			return errors.Join(err, werr)
		}
	}
	if err != nil {
		return err
	}
	for _, lr := range res.Levels {
		if lr.Exhausted && cfg.Duration > 0 {
			fmt.Fprintf(stderr, "vbreplay: level %s: the trace's %d requests ran out before --duration ended; the level is shorter than asked (a longer trace measures the whole window)\n",
				levelName(&lr), res.TraceLen)
		}
	}
	for _, lr := range res.Levels {
		if lr.Sent > 0 && lr.OK == 0 {
			return fmt.Errorf("level %s: none of the %d requests succeeded (%s)", levelName(&lr), lr.Sent, errorKinds(lr.Errors))
		}
	}
	return nil
}

// checkUpstream dials the embedded proxy's upstream once, so that a server
// that is not running is reported as such (not as a proxy's 502).
func checkUpstream(ctx context.Context, upstream string) error {
	srv, err := addr.ParseServer(upstream)
	if err != nil {
		return cli.Usagef("--upstream %w", err)
	}
	d := net.Dialer{Timeout: 5 * time.Second}
	c, err := d.DialContext(ctx, "tcp", srv.HostPort())
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Err != nil {
			err = op.Err
		}
		return fmt.Errorf("upstream %s unreachable: %w (is the server running?)", srv.URL(), err)
	}
	c.Close()
	return nil
}

// levelName names a level in messages: "5 req/s" or "c8 (8 in flight)".
func levelName(lr *replay.LevelResult) string {
	if lr.Concurrency > 0 {
		return fmt.Sprintf("%s (%d in flight)", lr.Label, lr.Concurrency)
	}
	return lr.Label + " req/s"
}

// validate checks the config before the trace is read, so flag mistakes
// are usage errors.
func validate(cfg replay.Config, cc captureConfig) error {
	var errs []error
	switch {
	case cfg.Target != "" && cc.Dir != "":
		errs = append(errs, errors.New("--target and --capture exclude each other: with --capture the replayer targets the vbproxy it runs, which forwards to --upstream"))
	case cc.Dir != "" && cc.Upstream == "":
		errs = append(errs, errors.New("--capture needs --upstream ADDR (the server the recording proxy forwards to)"))
	case cc.Dir == "" && cc.Upstream != "":
		errs = append(errs, errors.New("--upstream needs --capture DIR (without recording, give the server as --target)"))
	}
	if len(cc.ScrapeMetrics) > 0 {
		if cc.Dir == "" {
			errs = append(errs, errors.New("--scrape-metric needs --capture (the recording proxy scrapes; with --target give it to vbproxy)"))
		}
		if cc.ScrapeInterval <= 0 {
			errs = append(errs, errors.New("--scrape-metric needs a positive --scrape-interval"))
		}
	}
	if cc.Upstream != "" {
		if _, err := addr.ParseServer(cc.Upstream); err != nil {
			errs = append(errs, fmt.Errorf("--upstream %w", err))
		}
	}
	c := cfg.WithDefaults()
	if cc.Dir != "" {
		c.Target = "127.0.0.1:1" // the recording proxy's, once it runs
	}
	if err := c.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return cli.Usagef("%v", err)
	}
	return nil
}

func errorKinds(m map[string]int) string {
	var parts []string
	for _, k := range cli.SortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func writeJSON(path string, stdout io.Writer, res *replay.Result) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	b = append(b, '\n')
	if path == "-" {
		_, err = stdout.Write(b)
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("--json %s: %w", path, err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("--json %s: %w", path, err)
	}
	return nil
}
