// Package importer turns recorded traffic into trace files that keep its
// timing: public LLM-serving traces — the Azure LLM inference trace CSV,
// the Mooncake "timed trace" JSONL (with shared prompt prefixes), BurstGPT
// CSV and vLLM's custom JSONL, whose prompts are synthesized to the
// recorded lengths (token ids) unless the file carries text — and vbench's
// own captures (format "capture", FromCapture: the verbatim request bodies,
// conversations linked, prompts optionally anonymized).
package importer

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/vbench/vbench/synth"
	"github.com/vbench/vbench/trace"
)

// Formats Import understands.
const (
	FormatAzure      = "azure"
	FormatMooncake   = "mooncake"
	FormatBurstGPT   = "burstgpt"
	FormatVLLMCustom = "vllm-custom"
	// FormatCapture is a vbench capture directory (FromCapture).
	FormatCapture = "capture"
)

// Formats lists the importable formats (a new slice each call).
func Formats() []string { return append(rowFormats(), FormatCapture) }

// rowFormats are the formats Parse reads (files of rows).
func rowFormats() []string {
	return []string{FormatAzure, FormatMooncake, FormatBurstGPT, FormatVLLMCustom}
}

// ErrRow is wrapped by every error about a malformed input row.
var ErrRow = errors.New("malformed row")

// Row is one request of a public trace, as parsed.
type Row struct {
	// Line is the 1-based line number in the input file.
	Line int
	// At is the arrival time relative to the file's time origin; Timed is
	// false for formats without timestamps (vllm-custom).
	At    time.Duration
	Timed bool
	// In and Out are the prompt and output lengths in tokens.
	In, Out int32
	// HashIDs are Mooncake's prefix block hashes (BlockSize tokens each).
	HashIDs []int64
	// Prompt is the prompt text, when the file has it.
	Prompt string
}

// Options control the import. The zero value keeps the recorded timing.
type Options struct {
	// Speed multiplies the pace (offsets are divided by Speed); 0 or 1
	// keeps it.
	Speed float64
	// Rate rescales the offsets to this mean rate in requests/s; 0 keeps it.
	Rate float64
	// MaxGap compresses every idle gap longer than MaxGap to MaxGap.
	MaxGap time.Duration
	// WindowStart and WindowEnd keep only requests whose recorded offset
	// lies in [WindowStart, WindowEnd) (WindowEnd 0: to the end); the slice
	// is rebased so its first request arrives at 0.
	WindowStart, WindowEnd time.Duration
	// Seed seeds synthesized prompts (and vllm-custom arrivals).
	Seed int64
	// TokenLow and TokenHigh bound synthesized token ids.
	TokenLow, TokenHigh int32
	// BlockSize is the Mooncake hash block size in tokens (512).
	BlockSize int
	// Endpoint is the API path of every request.
	Endpoint string
	// Prompt is how prompts without text are made: "tokens" (token ids of
	// the recorded length, completions only), "words" (about that many
	// one-token words, any endpoint) or "" (tokens for completions, words
	// for chat).
	Prompt string
	// OutputLen is the output length for vllm-custom rows without one.
	OutputLen int32
	// Model keeps only BurstGPT rows of this model ("" keeps all).
	Model string
	// Tokenizer measures vllm-custom prompts exactly (else chars/4).
	Tokenizer *synth.Tokenizer
	// IgnoreEOS and MinTokens enforce output lengths as in synth.
	IgnoreEOS, MinTokens bool
	// Created is the header time; zero is the first recorded arrival (or
	// the Unix epoch plus Seed seconds when the file has no dates).
	Created time.Time
	// Capture selects and shapes the requests of a capture (format
	// "capture"); its zero value exports every replayable request.
	Capture CaptureOptions
}

// DefaultOptions returns the vbsynth import defaults.
func DefaultOptions() Options {
	return Options{Seed: 1, TokenLow: 1000, TokenHigh: 30000, BlockSize: 512, Endpoint: trace.EndpointCompletions,
		OutputLen: 256, IgnoreEOS: true, MinTokens: true}
}

// Validate reports every problem of o at once.
func (o *Options) Validate() error {
	var errs []error
	if o.Speed < 0 || math.IsNaN(o.Speed) || math.IsInf(o.Speed, 0) {
		errs = append(errs, fmt.Errorf("--speed %v must be positive", o.Speed))
	}
	if o.Rate < 0 || math.IsNaN(o.Rate) || math.IsInf(o.Rate, 0) {
		errs = append(errs, fmt.Errorf("--rate %v must be positive", o.Rate))
	}
	if o.Speed > 0 && o.Speed != 1 && o.Rate > 0 {
		errs = append(errs, errors.New("pass --speed or --rate, not both"))
	}
	if o.MaxGap < 0 {
		errs = append(errs, fmt.Errorf("--max-gap %v is negative", o.MaxGap))
	}
	if o.WindowStart < 0 || (o.WindowEnd != 0 && o.WindowEnd <= o.WindowStart) {
		errs = append(errs, fmt.Errorf("--window %v,%v: want 0 <= START < END", o.WindowStart, o.WindowEnd))
	}
	if o.TokenLow < 0 || o.TokenHigh <= o.TokenLow {
		errs = append(errs, fmt.Errorf("token range %d,%d: want 0 <= low < high", o.TokenLow, o.TokenHigh))
	}
	if o.BlockSize <= 0 {
		errs = append(errs, fmt.Errorf("block size %d must be positive", o.BlockSize))
	}
	if o.OutputLen <= 0 {
		errs = append(errs, fmt.Errorf("--output-len %d must be positive", o.OutputLen))
	}
	switch o.Endpoint {
	case trace.EndpointCompletions, trace.EndpointChat:
	default:
		errs = append(errs, fmt.Errorf("endpoint %q: want %s or %s", o.Endpoint, trace.EndpointCompletions, trace.EndpointChat))
	}
	switch o.Prompt {
	case "", "words":
	case "tokens":
		if o.Endpoint == trace.EndpointChat {
			errs = append(errs, errors.New("--prompt tokens needs --endpoint completions (chat requests cannot carry token ids); use --prompt words"))
		}
	default:
		errs = append(errs, fmt.Errorf("--prompt %q: want tokens or words", o.Prompt))
	}
	return errors.Join(errs...)
}

// Parsed is the content of a public trace file.
type Parsed struct {
	// Rows are the usable requests in file order.
	Rows []Row
	// Origin is the absolute time of the first row, when the file has dates.
	Origin time.Time
	// Skipped counts rows left out on purpose, by reason (BurstGPT:
	// "failed" for 0 response tokens, "model" for --model).
	Skipped map[string]int
}

// Parse reads every row of a file in the given format.
func Parse(format string, r io.Reader, o *Options) (*Parsed, error) {
	p := &Parsed{Skipped: map[string]int{}}
	var err error
	switch format {
	case FormatAzure:
		p.Rows, p.Origin, err = parseAzure(r)
	case FormatMooncake:
		p.Rows, err = parseMooncake(r)
	case FormatBurstGPT:
		p.Rows, err = parseBurstGPT(r, o.Model, p.Skipped)
	case FormatVLLMCustom:
		p.Rows, err = parseVLLMCustom(r, o)
	default:
		return nil, fmt.Errorf("importer: unknown format %q (want azure, mooncake, burstgpt or vllm-custom; a capture directory: FromCapture)", format)
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

// Result describes a finished import.
type Result struct {
	Header  trace.Header
	Rows    int            // usable rows read from the file
	Skipped map[string]int // rows left out while parsing, by reason
	Kept    int            // requests written (after --window)
}

// ImportFile reads path in format and writes the trace to out (format by
// extension, see trace.Create).
func ImportFile(ctx context.Context, format, path, out string, o Options) (*Result, error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("importer: %w", err)
	}
	if format == FormatCapture {
		return importCapture(ctx, path, out, o)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("importer: %w", err)
	}
	parsed, err := Parse(format, bufio.NewReaderSize(f, 1<<16), &o)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	rows, origin := parsed.Rows, parsed.Origin
	if len(rows) == 0 {
		return nil, fmt.Errorf("importer: %s: no requests", path)
	}
	total := len(rows)
	arrival := trace.ArrivalRecorded
	if !rows[0].Timed {
		arrival = trace.ArrivalPoisson
		offs := synth.NewOffsets(synth.Arrival{Process: trace.ArrivalPoisson, Burstiness: 1, Rate: 1}, o.Seed)
		for i := range rows {
			rows[i].At = offs.Next()
		}
	}
	rows, err = Retime(rows, o)
	if err != nil {
		return nil, fmt.Errorf("importer: %s: %w", path, err)
	}
	created := o.Created
	if created.IsZero() {
		created = origin
		if created.IsZero() {
			created = time.Unix(o.Seed, 0)
		}
	}
	hdr := trace.Header{
		Generator: "vbsynth " + synth.Version + " import", Created: created.UTC(), Seed: o.Seed,
		Dataset: format + ":" + filepath.Base(path), Arrival: arrival, MeanRate: MeanRate(rows),
		Params: map[string]string{
			"format": format, "rows": strconv.Itoa(total), "kept": strconv.Itoa(len(rows)),
			"speed": fmtF(o.Speed), "rate": fmtF(o.Rate), "max_gap": o.MaxGap.String(),
			"window":      o.WindowStart.String() + "," + o.WindowEnd.String(),
			"token_range": fmt.Sprintf("%d,%d", o.TokenLow, o.TokenHigh), "endpoint": o.Endpoint, "prompt": promptMode(&o),
		},
	}
	if arrival == trace.ArrivalPoisson {
		hdr.Burstiness = 1
	}
	for reason, n := range parsed.Skipped {
		hdr.Params["skipped_"+reason] = strconv.Itoa(n)
	}
	if format == FormatMooncake {
		hdr.Params["block_size"] = strconv.Itoa(o.BlockSize)
	}
	w, closeFn, err := trace.Create(out, hdr)
	if err != nil {
		return nil, err
	}
	var req trace.Request
	for i := range rows {
		if i%1024 == 0 && ctx.Err() != nil {
			closeFn()
			return nil, ctx.Err()
		}
		if err := build(&req, int64(i), &rows[i], format, path, &o); err != nil {
			closeFn()
			return nil, err
		}
		if err := w.Write(&req); err != nil {
			closeFn()
			return nil, err
		}
	}
	if err := closeFn(); err != nil {
		return nil, err
	}
	return &Result{Header: w.Header(), Rows: total, Skipped: parsed.Skipped, Kept: len(rows)}, nil
}

// promptMode is the prompt form used for rows without text.
func promptMode(o *Options) string {
	if o.Prompt == "words" || (o.Prompt == "" && o.Endpoint == trace.EndpointChat) {
		return "words"
	}
	return "tokens"
}

func fmtF(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// MeanRate returns the measured mean rate of rows: (n−1)/span, the rate
// whose inter-arrival mean equals the trace's; 0 for fewer than two rows or
// a zero span.
func MeanRate(rows []Row) float64 {
	if len(rows) < 2 {
		return 0
	}
	span := rows[len(rows)-1].At - rows[0].At
	if span <= 0 {
		return 0
	}
	return float64(len(rows)-1) / span.Seconds()
}

// Retime applies the window, the gap cap and the speed or rate to rows
// (which must be in arrival order), rebasing the first to offset 0.
func Retime(rows []Row, o Options) ([]Row, error) {
	if len(rows) == 0 {
		return rows, nil
	}
	origin := rows[0].At
	kept := rows[:0:0]
	for _, r := range rows {
		rel := r.At - origin
		if rel < o.WindowStart || (o.WindowEnd > 0 && rel >= o.WindowEnd) {
			continue
		}
		kept = append(kept, r)
	}
	if len(kept) == 0 {
		return nil, fmt.Errorf("no request in the window %v..%v (trace spans %v)", o.WindowStart, o.WindowEnd, rows[len(rows)-1].At-origin)
	}
	// Rebase and cap gaps, computing on the original gaps.
	prevOrig := kept[0].At
	var t time.Duration
	for i := range kept {
		gap := kept[i].At - prevOrig
		prevOrig = kept[i].At
		if o.MaxGap > 0 && gap > o.MaxGap {
			gap = o.MaxGap
		}
		t += gap
		kept[i].At = t
	}
	factor := 1.0
	switch {
	case o.Rate > 0:
		if r := MeanRate(kept); r > 0 {
			factor = r / o.Rate
		}
	case o.Speed > 0:
		factor = 1 / o.Speed
	}
	if factor != 1 {
		for i := range kept {
			kept[i].At = time.Duration(math.Round(float64(kept[i].At) * factor))
		}
	}
	return kept, nil
}

// build turns a row into request idx.
func build(req *trace.Request, idx int64, r *Row, format, path string, o *Options) error {
	*req = trace.Request{
		Index: idx, Offset: r.At, Endpoint: o.Endpoint, InputTokens: r.In, OutputTokens: r.Out,
		Sampling: trace.Sampling{MaxTokens: r.Out, IgnoreEOS: o.IgnoreEOS},
		Source:   trace.Source{Dataset: format + ":" + filepath.Base(path), Row: "line " + strconv.Itoa(r.Line)},
	}
	if o.MinTokens {
		req.Sampling.MinTokens = r.Out
	}
	words := promptMode(o) == "words"
	var text string
	switch {
	case r.Prompt != "":
		text = r.Prompt
	case len(r.HashIDs) > 0 && words:
		text = PrefixWords(r.HashIDs, int(r.In), o.BlockSize, o.Seed, int64(r.Line))
	case len(r.HashIDs) > 0:
		req.PromptTokenIDs = PrefixPrompt(r.HashIDs, int(r.In), o.BlockSize, o.Seed, int64(r.Line), o.TokenLow, o.TokenHigh)
	case words:
		text = synth.WordPrompt(rand.New(rand.NewPCG(uint64(o.Seed), uint64(r.Line))), int(r.In))
	default:
		rng := rand.New(rand.NewPCG(uint64(o.Seed), uint64(r.Line)))
		req.PromptTokenIDs = synth.TokenPrompt(rng, int(r.In), o.TokenLow, o.TokenHigh, nil)
	}
	if text != "" {
		if o.Endpoint == trace.EndpointChat {
			req.Messages = []trace.Message{{Role: "user", Content: text}}
		} else {
			req.Prompt = text
		}
	}
	return nil
}

// PrefixWords is PrefixPrompt in words: block i is blockSize one-token
// words drawn from a generator seeded by (seed, hashIDs[i]), so shared hash
// ids give shared text prefixes (token-exact for tokenizers that encode
// each word as one token, as GPT-2's and Llama's do).
func PrefixWords(hashIDs []int64, n, blockSize int, seed, row int64) string {
	var b strings.Builder
	left := n
	for _, h := range hashIDs {
		if left <= 0 {
			break
		}
		k := min(blockSize, left)
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(synth.WordPrompt(rand.New(rand.NewPCG(uint64(seed), uint64(h)^0x9e3779b97f4a7c15)), k))
		left -= k
	}
	if left > 0 {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(synth.WordPrompt(rand.New(rand.NewPCG(uint64(seed), uint64(row))), left))
	}
	return b.String()
}

// PrefixPrompt builds a Mooncake prompt of n token ids: block i is
// blockSize ids drawn from a generator seeded by (seed, hashIDs[i]), so two
// requests that share leading hash ids share exactly those leading blocks,
// and prefix caching sees the same hits as in production. Beyond the last
// hashed block the ids come from a generator seeded by the row, unique to
// the request.
func PrefixPrompt(hashIDs []int64, n, blockSize int, seed, row int64, low, high int32) []int32 {
	ids := make([]int32, 0, n)
	for _, h := range hashIDs {
		if len(ids) >= n {
			break
		}
		rng := rand.New(rand.NewPCG(uint64(seed), uint64(h)^0x9e3779b97f4a7c15))
		ids = append(ids, synth.TokenPrompt(rng, min(blockSize, n-len(ids)), low, high, nil)...)
	}
	if len(ids) < n {
		rng := rand.New(rand.NewPCG(uint64(seed), uint64(row)))
		ids = append(ids, synth.TokenPrompt(rng, n-len(ids), low, high, nil)...)
	}
	return ids
}
