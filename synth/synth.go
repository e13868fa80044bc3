package synth

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/vbench/vbench/trace"
)

// Version is the synthesizer version recorded in trace headers.
const Version = "0.1.0"

// Prompt modes (--prompt).
const (
	// PromptAuto uses dataset text when the dataset has it, token ids
	// otherwise (chat: words, since chat cannot take token ids).
	PromptAuto = "auto"
	// PromptText requires dataset text.
	PromptText = "text"
	// PromptTokens sends token ids of exactly the target length
	// (/v1/completions only; vLLM accepts a list of ids as the prompt).
	PromptTokens = "tokens"
	// PromptWords sends text made of common words that are one token each
	// in GPT-2 and Llama vocabularies: about the target length, for chat
	// endpoints without dataset text.
	PromptWords = "words"
)

// Config is everything that determines a synthesized trace. Same Config,
// same bytes.
type Config struct {
	// Dataset is what --dataset names (see Loader); ignored with Mix.
	Dataset string
	// Mix, when set, draws each request from a weighted dataset.
	Mix *Mix
	// MixDir resolves the mix's relative file paths.
	MixDir string
	// Requests is the number of requests; or, when zero, Span is the
	// length of the trace at 1 req/s and every arrival before it is kept.
	Requests int64
	Span     time.Duration
	// Arrival is the arrival process (Rate is forced to 1).
	Arrival Arrival
	// Seed seeds every random draw.
	Seed int64
	// Prompt is the prompt mode (PromptAuto, ...).
	Prompt string
	// Endpoint is trace.EndpointCompletions or trace.EndpointChat.
	Endpoint string
	// Filter bounds the request lengths.
	Filter Filter
	// Tokenizer, when set, measures dataset text exactly.
	Tokenizer *Tokenizer
	// TokenLow and TokenHigh bound synthesized token ids: [low, high).
	TokenLow, TokenHigh int32
	// IgnoreEOS and MinTokens enforce the output length: the request
	// carries max_tokens = target and, with these, ignore_eos and
	// min_tokens = target.
	IgnoreEOS, MinTokens bool
	// Created is the header's creation time; zero means the Unix epoch
	// plus Seed seconds, so identical flags give identical files.
	Created time.Time
	// Hub downloads hf: datasets; nil uses the environment.
	Hub *Hub
}

// DefaultConfig returns the defaults of the vbsynth flags.
func DefaultConfig() Config {
	return Config{
		Dataset: "sharegpt", Requests: 1000, Arrival: Arrival{Process: trace.ArrivalPoisson, Burstiness: 1, Rate: 1},
		Seed: 1, Prompt: PromptAuto, Endpoint: trace.EndpointCompletions, Filter: DefaultFilter(),
		TokenLow: 1000, TokenHigh: 30000, IgnoreEOS: true, MinTokens: true,
	}
}

// Validate reports every problem of c at once.
func (c *Config) Validate() error {
	var errs []error
	if c.Mix == nil && strings.TrimSpace(c.Dataset) == "" {
		errs = append(errs, errors.New("no dataset: pass --dataset NAME|FILE or --mix FILE"))
	}
	if c.Mix != nil {
		if err := c.Mix.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("mix: %w", err))
		}
	}
	switch {
	case c.Requests < 0:
		errs = append(errs, fmt.Errorf("--requests %d is negative", c.Requests))
	case c.Requests > 0 && c.Span > 0:
		errs = append(errs, errors.New("pass --requests or --span, not both"))
	case c.Span < 0:
		errs = append(errs, fmt.Errorf("--span %v: must be positive", c.Span))
	case c.Requests == 0 && c.Span == 0:
		errs = append(errs, errors.New("pass --requests N or --span DURATION"))
	}
	switch c.Arrival.Process {
	case trace.ArrivalPoisson, trace.ArrivalGamma, trace.ArrivalConstant:
	default:
		errs = append(errs, fmt.Errorf("unknown arrival process %q", c.Arrival.Process))
	}
	if c.Arrival.Process == trace.ArrivalGamma && !(c.Arrival.Burstiness > 0) {
		errs = append(errs, fmt.Errorf("--burstiness %v must be positive", c.Arrival.Burstiness))
	}
	switch c.Prompt {
	case PromptAuto, PromptText, PromptTokens, PromptWords:
	default:
		errs = append(errs, fmt.Errorf("--prompt %q: want auto, text, tokens or words", c.Prompt))
	}
	switch c.Endpoint {
	case trace.EndpointCompletions, trace.EndpointChat:
	default:
		errs = append(errs, fmt.Errorf("--endpoint %q: want %s or %s", c.Endpoint, trace.EndpointCompletions, trace.EndpointChat))
	}
	if c.Endpoint == trace.EndpointChat && c.Prompt == PromptTokens {
		errs = append(errs, errors.New("--prompt tokens needs --endpoint completions (chat requests cannot carry token ids); use --prompt words"))
	}
	if err := c.Filter.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.TokenLow < 0 || c.TokenHigh <= c.TokenLow {
		errs = append(errs, fmt.Errorf("--token-range %d,%d: want 0 <= low < high", c.TokenLow, c.TokenHigh))
	}
	if len(errs) > 0 {
		return fmt.Errorf("synth: %w", errors.Join(errs...))
	}
	return nil
}

// Synth produces the requests of one configuration in arrival order.
type Synth struct {
	cfg     Config
	hdr     trace.Header
	pools   []*pool
	cum     []float64 // cumulative normalised mix weights
	offsets *Offsets
	rSample *rand.Rand
	rMix    *rand.Rand
	rTokens *rand.Rand
	ids     []int32 // token-id prompt buffer, reused by Next
	n       int64
	notes   []string
}

// New validates cfg, loads its datasets and returns a Synth ready to draw.
func New(ctx context.Context, cfg Config) (*Synth, error) {
	cfg.Arrival.Rate = 1
	if cfg.Arrival.Process == trace.ArrivalPoisson {
		cfg.Arrival.Burstiness = 1
	}
	if cfg.Arrival.Process == trace.ArrivalConstant {
		cfg.Arrival.Burstiness = 0
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Synth{cfg: cfg, offsets: NewOffsets(cfg.Arrival, cfg.Seed),
		rSample: newRand(cfg.Seed, streamSample), rMix: newRand(cfg.Seed, streamMix), rTokens: newRand(cfg.Seed, streamTokens)}
	loader := &Loader{Tokenizer: cfg.Tokenizer, Filter: cfg.Filter, Hub: cfg.Hub}
	desc := cfg.Dataset
	specs := []MixComponent{{Dataset: cfg.Dataset, Weight: 1}}
	if cfg.Mix != nil {
		specs, desc, loader.BaseDir = cfg.Mix.Components, cfg.Mix.String(), cfg.MixDir
	}
	total := 0.0
	for _, c := range specs {
		total += c.Weight
	}
	params := map[string]string{}
	acc := 0.0
	for i, c := range specs {
		p, err := loader.load(ctx, c.Dataset)
		if err != nil {
			return nil, err
		}
		if cfg.Prompt == PromptText && !p.text {
			return nil, fmt.Errorf("synth: --prompt text: %s is a length profile without text; pass a dataset file or hf:%s, or use --prompt auto|tokens|words", c.Dataset, c.Dataset)
		}
		if !p.text && (cfg.Filter.MaxInput == 0 || cfg.Filter.MaxInput > DefaultFilter().MaxInput || cfg.Filter.MaxTotal == 0 || cfg.Filter.MaxTotal > DefaultFilter().MaxTotal) {
			s.notes = append(s.notes, fmt.Sprintf("%s: the embedded profile only holds requests within vLLM's filter (prompt <= %d, total <= %d); a looser --max-input/--max-total adds none (use a dataset file for longer requests)", c.Dataset, DefaultFilter().MaxInput, DefaultFilter().MaxTotal))
		}
		s.pools = append(s.pools, p)
		acc += c.Weight / total
		s.cum = append(s.cum, acc)
		params["source."+strconv.Itoa(i)] = p.details
	}
	s.cum[len(s.cum)-1] = 1
	if cfg.Requests > 0 {
		params["requests"] = strconv.FormatInt(cfg.Requests, 10)
	} else {
		params["span"] = cfg.Span.String()
	}
	params["prompt"] = cfg.Prompt
	params["endpoint"] = cfg.Endpoint
	params["filter"] = cfg.Filter.String()
	params["token_range"] = fmt.Sprintf("%d,%d", cfg.TokenLow, cfg.TokenHigh)
	params["ignore_eos"] = strconv.FormatBool(cfg.IgnoreEOS)
	params["min_tokens"] = strconv.FormatBool(cfg.MinTokens)
	if cfg.Tokenizer != nil {
		params["tokenizer"] = cfg.Tokenizer.Name
	}
	created := cfg.Created
	if created.IsZero() {
		created = time.Unix(cfg.Seed, 0)
	}
	s.hdr = trace.Header{
		Generator: "vbsynth " + Version, Created: created.UTC(), Seed: cfg.Seed, Dataset: desc,
		Arrival: cfg.Arrival.Process, Burstiness: cfg.Arrival.Burstiness, MeanRate: 1, Params: params,
	}
	return s, nil
}

// Notes returns warnings about the configuration worth showing a user.
func (s *Synth) Notes() []string { return s.notes }

// Header returns the trace header (Count, Span and Hash are filled by the
// trace writer).
func (s *Synth) Header() trace.Header { return s.hdr }

// Next fills req with the next request; false once the trace is complete.
// A token-id prompt lives in a buffer that the next call reuses: write or
// Clone the request before calling Next again.
func (s *Synth) Next(req *trace.Request) bool {
	if s.cfg.Requests > 0 && s.n >= s.cfg.Requests {
		return false
	}
	off := s.offsets.Next()
	if s.cfg.Requests == 0 && off > s.cfg.Span {
		return false
	}
	pi := 0
	if len(s.pools) > 1 {
		u := s.rMix.Float64()
		for pi < len(s.cum)-1 && u >= s.cum[pi] {
			pi++
		}
	}
	p := s.pools[pi]
	it := p.next(s.rSample)
	*req = trace.Request{
		Index: s.n, Offset: off, Endpoint: s.cfg.Endpoint,
		InputTokens: it.in, OutputTokens: it.out,
		Sampling: trace.Sampling{MaxTokens: it.out, IgnoreEOS: s.cfg.IgnoreEOS},
		Source:   trace.Source{Dataset: p.name, Row: it.row},
	}
	if s.cfg.MinTokens {
		req.Sampling.MinTokens = it.out
	}
	mode := s.cfg.Prompt
	if mode == PromptAuto {
		switch {
		case p.text:
			mode = PromptText
		case s.cfg.Endpoint == trace.EndpointChat:
			mode = PromptWords
		default:
			mode = PromptTokens
		}
	}
	var text string
	switch mode {
	case PromptText:
		text = it.prompt
	case PromptWords:
		text = wordPrompt(s.rTokens, int(it.in))
	case PromptTokens:
		s.ids = TokenPrompt(s.rTokens, int(it.in), s.cfg.TokenLow, s.cfg.TokenHigh, s.ids)
		req.PromptTokenIDs = s.ids
	}
	if mode != PromptTokens {
		if s.cfg.Endpoint == trace.EndpointChat {
			req.Messages = []trace.Message{{Role: "user", Content: text}}
		} else {
			req.Prompt = text
		}
	}
	s.n++
	return true
}

// Write draws every request into w (which the caller closes).
func (s *Synth) Write(ctx context.Context, w trace.RecordWriter) error {
	var req trace.Request
	for s.Next(&req) {
		if req.Index%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if err := w.Write(&req); err != nil {
			return err
		}
	}
	return nil
}

// TokenPrompt returns n token ids drawn uniformly from [low, high),
// appended to buf[:0]. Each 64-bit draw gives two ids by the
// multiply-shift map of its 32-bit halves (Lemire), whose bias for a range
// of r ids is below r/2³² (under 1e-5 for 30,000 ids): irrelevant for
// prompts, and twice as fast as exact rejection sampling.
func TokenPrompt(r *rand.Rand, n int, low, high int32, buf []int32) []int32 {
	buf = buf[:0]
	span := uint64(high - low)
	for len(buf)+1 < n {
		x := r.Uint64()
		buf = append(buf, low+int32(((x&0xffffffff)*span)>>32), low+int32(((x>>32)*span)>>32))
	}
	if len(buf) < n {
		buf = append(buf, low+int32(((r.Uint64()&0xffffffff)*span)>>32))
	}
	return buf
}

// promptWords are frequent English words that GPT-2's and Llama's
// tokenizers each encode as a single token when preceded by a space.
var promptWords = [...]string{
	"the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "was", "with", "be", "by", "on",
	"not", "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an", "had", "they", "you",
}

// WordPrompt returns n words drawn from a list of frequent English words
// that GPT-2's and Llama's tokenizers each encode as one token (with the
// leading space): a text prompt of about n tokens for chat endpoints,
// which cannot take token ids.
func WordPrompt(r *rand.Rand, n int) string { return wordPrompt(r, n) }

func wordPrompt(r *rand.Rand, n int) string {
	var b strings.Builder
	b.Grow(n * 4)
	for i := range n {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(promptWords[r.IntN(len(promptWords))])
	}
	return b.String()
}
