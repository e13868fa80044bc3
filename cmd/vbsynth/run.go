package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/vbench/vbench/internal/cli"
	"github.com/vbench/vbench/metric"
	"github.com/vbench/vbench/synth"
	"github.com/vbench/vbench/synth/importer"
	"github.com/vbench/vbench/trace"
)

const name = "vbsynth"

const topUsage = `vbsynth — make and read request traces.

Usage:
  vbsynth [flags] -o trace.bin          synthesize a trace (see flags below)
  vbsynth inspect TRACE                 header and summary statistics
  vbsynth stats DATASET [flags]         length distribution of a dataset
  vbsynth convert IN OUT                trace.bin <-> .jsonl (byte-identical round trip)
  vbsynth import FORMAT FILE -o OUT     azure | mooncake | burstgpt | vllm-custom | capture (a capture directory)

Run 'vbsynth COMMAND --help' for a command's flags.
`

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "inspect":
			return cli.Exit(stderr, name+" inspect", inspect(args[1:], stdout, stderr))
		case "stats":
			return cli.Exit(stderr, name+" stats", stats(ctx, args[1:], stdout, stderr))
		case "convert":
			return cli.Exit(stderr, name+" convert", convert(args[1:], stdout, stderr))
		case "import":
			return cli.Exit(stderr, name+" import", importCmd(ctx, args[1:], stdout, stderr))
		case "help":
			fmt.Fprint(stdout, topUsage)
			return cli.ExitOK
		}
	}
	return cli.Exit(stderr, name, synthesize(ctx, args, stdout, stderr))
}

// datasetFlags are the flags that choose and measure a dataset, shared by
// synthesis and stats.
type datasetFlags struct {
	dataset, tokenizer string
	minTokens          int32
	maxInput, maxTotal int32
}

func (d *datasetFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&d.dataset, "dataset", "sharegpt", "dataset: sharegpt|alpaca (embedded length profiles, no network), a ShareGPT/Alpaca JSON file, or hf:sharegpt|hf:alpaca|hf:ORG/NAME[@REV]/PATH (Hugging Face Hub, cached)")
	fs.StringVar(&d.tokenizer, "tokenizer", "", "Hugging Face tokenizer.json for exact token counts of dataset text (default: chars/4 estimate)")
	fs.Int32Var(&d.minTokens, "min-tokens", synth.DefaultFilter().MinTokens, "drop requests whose prompt or output is shorter")
	fs.Int32Var(&d.maxInput, "max-input", synth.DefaultFilter().MaxInput, "drop requests with longer prompts (0: no limit)")
	fs.Int32Var(&d.maxTotal, "max-total", synth.DefaultFilter().MaxTotal, "drop requests with longer prompt+output (0: no limit)")
}

func (d *datasetFlags) filter() synth.Filter {
	return synth.Filter{MinTokens: d.minTokens, MaxInput: d.maxInput, MaxTotal: d.maxTotal}
}

func (d *datasetFlags) loadTokenizer() (*synth.Tokenizer, error) {
	if d.tokenizer == "" {
		return nil, nil
	}
	return synth.LoadTokenizer(d.tokenizer)
}

func synthesize(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet(name, "vbsynth [--dataset D | --mix FILE] (--requests N | --span D) [flags] -o trace.bin\n       vbsynth inspect|stats|convert|import ... (see 'vbsynth help')", stderr)
	var df datasetFlags
	df.add(fs)
	def := synth.DefaultConfig()
	mixPath := fs.String("mix", "", "weighted mix of datasets (JSON, see examples/mix.json); replaces --dataset")
	requests := fs.Int64("requests", 0, "number of requests (default 1000 unless --span is given)")
	span := fs.Duration("span", 0, "trace length at 1 req/s instead of a count (e.g. 10m)")
	arrival := fs.String("arrival", "", "arrival process: poisson, gamma or constant (default: poisson, or gamma when --burstiness != 1)")
	burst := fs.Float64("burstiness", 1, "gamma shape k: 1 = Poisson, < 1 burstier, > 1 smoother (CV = 1/sqrt(k))")
	seed := fs.Int64("seed", def.Seed, "random seed (same flags + seed = same bytes)")
	prompt := fs.String("prompt", def.Prompt, "prompt form: auto (dataset text, else token ids), text, tokens (token ids of the exact length), words")
	endpoint := fs.String("endpoint", "completions", "API: completions (/v1/completions) or chat (/v1/chat/completions)")
	tokenRange := fs.String("token-range", fmt.Sprintf("%d,%d", def.TokenLow, def.TokenHigh), "LOW,HIGH: synthesized token ids are drawn from [LOW, HIGH)")
	noIgnoreEOS := fs.Bool("no-ignore-eos", false, "do not set ignore_eos (output may end before max_tokens)")
	noMinTokens := fs.Bool("no-min-tokens", false, "do not set min_tokens = max_tokens")
	created := fs.String("created", "", "header creation time, RFC 3339 or 'now' (default: Unix epoch + seed seconds, so output is reproducible)")
	out := fs.StringP("output", "o", "", "output trace (.jsonl for JSON Lines, - for stdout; --out also works)")
	quiet := fs.BoolP("quiet", "q", false, "no summary on stderr")
	fs.SetNormalizeFunc(outAlias)
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return cli.Usagef("unexpected argument %q (commands: inspect, stats, convert, import)", fs.Arg(0))
	}
	if *out == "" {
		return cli.Usagef("-o OUTPUT is required")
	}
	cfg := def
	cfg.Dataset, cfg.Filter, cfg.Seed, cfg.Prompt = df.dataset, df.filter(), *seed, *prompt
	cfg.Requests, cfg.Span = *requests, *span
	if cfg.Requests == 0 && cfg.Span == 0 {
		cfg.Requests = 1000
	}
	cfg.IgnoreEOS, cfg.MinTokens = !*noIgnoreEOS, !*noMinTokens
	var err error
	if cfg.Endpoint, err = parseEndpoint(*endpoint); err != nil {
		return err
	}
	if cfg.TokenLow, cfg.TokenHigh, err = parseRange(*tokenRange); err != nil {
		return err
	}
	if cfg.Arrival, err = synth.ParseArrival(*arrival, *burst); err != nil {
		return cli.Usagef("%v", err)
	}
	if cfg.Created, err = parseCreated(*created); err != nil {
		return err
	}
	if *mixPath != "" {
		if fs.Changed("dataset") {
			return cli.Usagef("pass --dataset or --mix, not both")
		}
		if cfg.Mix, err = synth.LoadMix(*mixPath); err != nil {
			return err
		}
		cfg.MixDir = filepath.Dir(*mixPath)
	}
	if err := cfg.Validate(); err != nil {
		return cli.Usagef("%v", err)
	}
	if cfg.Tokenizer, err = df.loadTokenizer(); err != nil {
		return err
	}
	cfg.Hub = synth.HubFromEnv(nil)
	cfg.Hub.Progress = stderr
	s, err := synth.New(ctx, cfg)
	if err != nil {
		return err
	}
	for _, n := range s.Notes() {
		fmt.Fprintf(stderr, "vbsynth: note: %s\n", n)
	}
	w, closeFn, err := trace.Create(*out, s.Header())
	if err != nil {
		return err
	}
	if err := s.Write(ctx, w); err != nil {
		closeFn()
		return err
	}
	if err := closeFn(); err != nil {
		return err
	}
	if !*quiet {
		h := w.Header()
		fmt.Fprintf(stderr, "wrote %s: %d requests over %v at 1 req/s (%s, %s), hash %s\n", *out, h.Count, h.Span.Round(time.Millisecond), h.Dataset, describeArrival(h), h.ShortHash())
	}
	return nil
}

// outAlias lets --out stand for --output.
func outAlias(_ *pflag.FlagSet, name string) pflag.NormalizedName {
	if name == "out" {
		name = "output"
	}
	return pflag.NormalizedName(name)
}

func describeArrival(h trace.Header) string {
	if h.Arrival == trace.ArrivalGamma {
		return fmt.Sprintf("gamma k=%g", h.Burstiness)
	}
	return h.Arrival
}

func parseEndpoint(s string) (string, error) {
	switch s {
	case "completions", trace.EndpointCompletions:
		return trace.EndpointCompletions, nil
	case "chat", trace.EndpointChat:
		return trace.EndpointChat, nil
	}
	return "", cli.Usagef("--endpoint %q: want completions or chat", s)
}

func parseRange(s string) (int32, int32, error) {
	a, b, ok := strings.Cut(s, ",")
	lo, err1 := strconv.ParseInt(strings.TrimSpace(a), 10, 32)
	hi, err2 := strconv.ParseInt(strings.TrimSpace(b), 10, 32)
	if !ok || err1 != nil || err2 != nil || lo < 0 || hi <= lo {
		return 0, 0, cli.Usagef("--token-range %q: want LOW,HIGH with 0 <= LOW < HIGH", s)
	}
	return int32(lo), int32(hi), nil
}

func parseCreated(s string) (time.Time, error) {
	switch s {
	case "":
		return time.Time{}, nil
	case "now":
		return time.Now().UTC().Truncate(time.Second), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, cli.Usagef("--created %q: want RFC 3339 (2024-01-02T15:04:05Z) or now", s)
	}
	return t, nil
}

func inspect(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet(name+" inspect", "vbsynth inspect TRACE (trace.bin or .jsonl, - for stdin)", stderr)
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return cli.Usagef("want exactly one trace file")
	}
	f, err := trace.Open(fs.Arg(0))
	if err != nil {
		return err
	}
	defer f.Close()
	s, err := synth.SummarizeTrace(f)
	if err != nil {
		return fmt.Errorf("%s: %w", fs.Arg(0), err)
	}
	h := s.Header
	fmt.Fprintf(stdout, "trace       %s\n", fs.Arg(0))
	fmt.Fprintf(stdout, "generator   %s\ncreated     %s\nseed        %d\ndataset     %s\n", h.Generator, h.Created.Format(time.RFC3339Nano), h.Seed, h.Dataset)
	fmt.Fprintf(stdout, "arrival     %s (burstiness %g)\nmean rate   %g req/s (header); measured %.4f req/s\n", h.Arrival, h.Burstiness, h.MeanRate, s.MeasuredRate)
	fmt.Fprintf(stdout, "count       %d\nspan        %v\nhash        %s\n", s.Count, h.Span, h.HashHex())
	for _, k := range cli.SortedKeys(h.Params) {
		fmt.Fprintf(stdout, "param       %s = %s\n", k, h.Params[k])
	}
	fmt.Fprintf(stdout, "endpoints   %s\nprompts     %s\n", countsLine(s.Endpoints), countsLine(s.PromptKinds))
	fmt.Fprintf(stdout, "input tok   %s\noutput tok  %s\n", distLine(s.Input), distLine(s.Output))
	fmt.Fprintf(stdout, "gaps (s)    mean %.4f  p50 %.4f  p90 %.4f  p99 %.4f  CV %.3f\n", s.Gaps.Mean, s.Gaps.P50, s.Gaps.P90, s.Gaps.P99, s.Gaps.CV())
	return nil
}

func countsLine(m map[string]int64) string {
	keys := cli.SortedKeys(m)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

func stats(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet(name+" stats", "vbsynth stats DATASET [--tokenizer tokenizer.json] [filter flags]", stderr)
	var df datasetFlags
	df.add(fs)
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() == 1 && !fs.Changed("dataset"):
		df.dataset = fs.Arg(0)
	case fs.NArg() > 1 || (fs.NArg() == 1 && fs.Changed("dataset")):
		return cli.Usagef("want one dataset")
	}
	filter := df.filter()
	if err := filter.Validate(); err != nil {
		return cli.Usagef("%v", err)
	}
	tok, err := df.loadTokenizer()
	if err != nil {
		return err
	}
	hub := synth.HubFromEnv(nil)
	hub.Progress = stderr
	st, err := synth.DatasetStats(ctx, df.dataset, &synth.Loader{Tokenizer: tok, Filter: filter, Hub: hub})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "dataset     %s\nsource      %s\nrequests    %d\n", df.dataset, st.Details, st.Input.N)
	fmt.Fprintf(stdout, "input tok   %s\noutput tok  %s\n", distLine(st.Input), distLine(st.Output))
	fmt.Fprintf(stdout, "correlation %.3f (Pearson, input vs output)\n", st.Correlation)
	fmt.Fprintf(stdout, "\n%s", st.Histogram)
	return nil
}

func convert(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet(name+" convert", "vbsynth convert IN OUT   (format by extension: .jsonl = JSON Lines, else trace.bin)", stderr)
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return cli.Usagef("want IN and OUT")
	}
	h, err := trace.Convert(fs.Arg(0), fs.Arg(1))
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "wrote %s: %d requests, hash %s\n", fs.Arg(1), h.Count, h.ShortHash())
	return nil
}

func importCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet(name+" import", "vbsynth import azure|mooncake|burstgpt|vllm-custom FILE -o trace.bin [flags]", stderr)
	o := importer.DefaultOptions()
	out := fs.StringP("output", "o", "", "output trace (.jsonl for JSON Lines; --out also works)")
	fs.SetNormalizeFunc(outAlias)
	fs.Float64Var(&o.Speed, "speed", 0, "play X times faster (offsets / X)")
	fs.Float64Var(&o.Rate, "rate", 0, "rescale offsets to this mean rate, req/s")
	fs.DurationVar(&o.MaxGap, "max-gap", 0, "compress idle gaps longer than this")
	window := fs.String("window", "", "START,END: keep requests recorded in [START, END) from the trace start (e.g. 10m,20m; END may be empty)")
	fs.Int64Var(&o.Seed, "seed", o.Seed, "seed of synthesized prompts (and of vllm-custom's Poisson arrivals)")
	tokenRange := fs.String("token-range", fmt.Sprintf("%d,%d", o.TokenLow, o.TokenHigh), "LOW,HIGH: synthesized token ids are drawn from [LOW, HIGH)")
	fs.IntVar(&o.BlockSize, "block-size", o.BlockSize, "mooncake: tokens per hash_ids block")
	endpoint := fs.String("endpoint", "completions", "API: completions or chat")
	fs.StringVar(&o.Prompt, "prompt", "", "prompts of traces without text: tokens (token ids, completions only) or words (one-token words, any endpoint); default tokens for completions, words for chat")
	fs.Int32Var(&o.OutputLen, "output-len", o.OutputLen, "vllm-custom: output tokens of rows without output_tokens")
	fs.StringVar(&o.Model, "model", "", "burstgpt: keep only rows of this Model (e.g. GPT-4)")
	tokPath := fs.String("tokenizer", "", "vllm-custom: tokenizer.json for exact prompt lengths (default chars/4)")
	created := fs.String("created", "", "header time, RFC 3339 or now (default: the first timestamp, or epoch + seed)")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return cli.Usagef("want FORMAT and FILE (formats: %s)", strings.Join(importer.Formats(), ", "))
	}
	if *out == "" {
		return cli.Usagef("-o OUTPUT is required")
	}
	format := fs.Arg(0)
	known := false
	for _, f := range importer.Formats() {
		known = known || f == format
	}
	if !known {
		return cli.Usagef("unknown format %q (want %s)", format, strings.Join(importer.Formats(), ", "))
	}
	var err error
	if o.Endpoint, err = parseEndpoint(*endpoint); err != nil {
		return err
	}
	if o.TokenLow, o.TokenHigh, err = parseRange(*tokenRange); err != nil {
		return err
	}
	if *window != "" {
		a, b, ok := strings.Cut(*window, ",")
		var e1, e2 error
		o.WindowStart, e1 = time.ParseDuration(strings.TrimSpace(a))
		if strings.TrimSpace(b) != "" {
			o.WindowEnd, e2 = time.ParseDuration(strings.TrimSpace(b))
		}
		if !ok || e1 != nil || e2 != nil {
			return cli.Usagef("--window %q: want START,END durations, e.g. 10m,20m", *window)
		}
	}
	if o.Created, err = parseCreated(*created); err != nil {
		return err
	}
	if err := o.Validate(); err != nil {
		return cli.Usagef("%v", err)
	}
	if *tokPath != "" {
		if o.Tokenizer, err = synth.LoadTokenizer(*tokPath); err != nil {
			return err
		}
	}
	res, err := importer.ImportFile(ctx, format, fs.Arg(1), *out, o)
	if err != nil {
		return err
	}
	h := res.Header
	skipped := ""
	for _, k := range cli.SortedKeys(res.Skipped) {
		skipped += fmt.Sprintf(", %d skipped (%s)", res.Skipped[k], k)
	}
	fmt.Fprintf(stderr, "wrote %s: %d of %d rows%s, span %v, mean rate %.4f req/s (%s), hash %s\n", *out, res.Kept, res.Rows, skipped, h.Span.Round(time.Millisecond), h.MeanRate, h.Arrival, h.ShortHash())
	return nil
}

// distLine is one line of token-length statistics.
func distLine(d metric.Dist) string {
	return fmt.Sprintf("mean %.2f  std %.2f  p50 %.1f  p90 %.1f  p99 %.1f  min %.0f  max %.0f", d.Mean, d.Std, d.P50, d.P90, d.P99, d.Min, d.Max)
}
