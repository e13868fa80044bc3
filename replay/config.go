package replay

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/vbench/vbench/internal/addr"
)

// Concurrency-cap policies (Config.OnFull).
const (
	OnFullWait = "wait" // the pacer waits for a free slot (the wait shows as lag)
	OnFullDrop = "drop" // the request is not sent and is counted as dropped
)

// Warm-up modes (Config.WarmupMode).
const (
	WarmupLevel = "level" // warm up before every level
	WarmupRun   = "run"   // warm up once, before the first level
)

// Defaults applied by Config.WithDefaults.
const (
	DefaultLagThreshold     = 10 * time.Millisecond
	DefaultInterruptDrain   = 5 * time.Second
	DefaultProgressInterval = 5 * time.Second
)

// Config says what to replay, where and how. Fields are named after the
// vbreplay flags.
type Config struct {
	// Target is the base URL of the server, or of a recording proxy in
	// front of it (vbproxy, or the one vbbench runs in-process), e.g.
	// http://127.0.0.1:8000. The replayer knows nothing else of where its
	// requests go.
	Target string `json:"target"`
	// Rates are the asked mean request rates in requests/s, one level each,
	// in order; empty or 0 plays the trace at its own pace.
	Rates []float64 `json:"rates"`
	// Concurrency, when set instead of Rates, makes closed-loop levels:
	// level i keeps Concurrency[i] requests in flight, sending the next
	// trace request (in trace order, arrival times ignored) as soon as one
	// ends, for Duration or until the trace runs out (see closed.go).
	Concurrency []int `json:"concurrency,omitempty"`
	// Speed multiplies the pace of every level (2 = twice as fast).
	Speed float64 `json:"speed"`
	// Duration cuts each level: requests due after it are not sent. 0 plays
	// the whole trace.
	Duration time.Duration `json:"duration_ns"`
	// Drain is how long in-flight requests may run after a level's last
	// send time (or its duration) before they are cut; 0 chooses it per
	// level by the cut policy (drain.go: long enough for the level's
	// longest expected request at the measured TPOT), at most MaxDrain.
	Drain    time.Duration `json:"drain_ns"`
	MaxDrain time.Duration `json:"max_drain_ns,omitempty"`
	// Measured is what the caller already measured of this server (the
	// p90 TTFT and TPOT of earlier levels): the automatic drain starts
	// from it.
	Measured Measured `json:"measured,omitempty"`
	// WarmupDuration and WarmupRequests size the warm-up (one of them, or
	// neither for no warm-up).
	WarmupDuration time.Duration `json:"warmup_duration_ns,omitempty"`
	WarmupRequests int           `json:"warmup_requests,omitempty"`
	// WarmupMode is WarmupLevel or WarmupRun.
	WarmupMode string `json:"warmup_mode"`
	// MaxConcurrency caps the requests in flight (0 = open loop, no cap);
	// OnFull says what happens at the cap (OnFullWait or OnFullDrop).
	MaxConcurrency int    `json:"max_concurrency,omitempty"`
	OnFull         string `json:"on_full,omitempty"`
	// Timeout cuts one request after this long (0 = only the drain limit).
	Timeout time.Duration `json:"timeout_ns,omitempty"`
	// Model overrides the model in every body; empty asks GET /v1/models
	// and takes the first.
	Model string `json:"model"`
	// ChatMaxTokens: ChatMaxTokensBoth (default), ChatMaxTokensLegacy or
	// ChatMaxTokensCompletion.
	ChatMaxTokens string `json:"chat_max_tokens"`
	// ExactOutput asks every request for exactly its trace output length
	// (max_tokens = min_tokens, ignore_eos), verbatim bodies included.
	ExactOutput bool `json:"exact_output"`
	// NoEOSFields never sends ignore_eos or min_tokens (servers that reject
	// unknown fields, e.g. transformers serve); lengths rest on max_tokens.
	NoEOSFields bool `json:"no_eos_fields,omitempty"`
	// Headers are added to every request (API keys); not written to JSON.
	Headers http.Header `json:"-"`
	// Labels become X-VB-Label-<key> headers.
	Labels map[string]string `json:"labels,omitempty"`
	// Run and Trial identify the run in the tags (Run defaults to a
	// timestamp).
	Run   string `json:"run"`
	Trial string `json:"trial,omitempty"`
	// LagThreshold: a level whose schedule-lag p99 exceeds it is marked and
	// warned about.
	LagThreshold time.Duration `json:"lag_threshold_ns"`
	// Pacer is how the pacer waits for due times: PacerPrecise (default),
	// PacerTimer or PacerSpin.
	Pacer string `json:"pacer"`
	// Spin is how long before a due time PacerSpin stops sleeping and
	// spins (default 1ms).
	Spin time.Duration `json:"spin_ns,omitempty"`
	// AllowShort accepts a trace shorter than rate × duration (the level
	// then ends early) instead of failing before the load.
	AllowShort bool `json:"allow_short,omitempty"`
	// SkipPreflight skips the 1-token request before the load.
	SkipPreflight bool `json:"skip_preflight,omitempty"`
	// KeepRequests keeps every RequestResult in the result.
	KeepRequests bool `json:"keep_requests,omitempty"`
	// InterruptDrain is how long in-flight requests may finish after the
	// context is cancelled (Ctrl-C) before they are cut.
	InterruptDrain time.Duration `json:"interrupt_drain_ns"`
	// OnProgress, when set, is given each phase's state (a level or a
	// warm-up) every ProgressInterval while it runs, and once more when it
	// ends (Progress.Final). A warm-up and its level overlap, so it may be
	// called from two goroutines at once.
	OnProgress       func(Progress) `json:"-"`
	ProgressInterval time.Duration  `json:"progress_interval_ns"`
	// Client is the HTTP client to use; nil builds a tuned one.
	Client *http.Client `json:"-"`
}

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Speed == 0 {
		c.Speed = 1
	}
	if c.MaxDrain == 0 {
		c.MaxDrain = DefaultMaxDrain
	}
	if c.WarmupMode == "" {
		c.WarmupMode = WarmupLevel
	}
	if c.OnFull == "" {
		c.OnFull = OnFullWait
	}
	if c.Pacer == "" {
		c.Pacer = PacerPrecise
	}
	if c.ChatMaxTokens == "" {
		c.ChatMaxTokens = ChatMaxTokensBoth
	}
	if c.LagThreshold == 0 {
		c.LagThreshold = DefaultLagThreshold
	}
	if c.InterruptDrain == 0 {
		c.InterruptDrain = DefaultInterruptDrain
	}
	if c.ProgressInterval == 0 {
		c.ProgressInterval = DefaultProgressInterval
	}
	if len(c.Rates) == 0 && len(c.Concurrency) == 0 {
		c.Rates = []float64{0}
	}
	if c.Run == "" {
		c.Run = time.Now().UTC().Format("20060102T150405.000Z")
	}
	// HOST:PORT and URLs alike become a base URL (Validate reports one
	// that does not parse).
	if srv, err := addr.ParseServer(c.Target); err == nil {
		c.Target = srv.URL()
	}
	return c
}

// Validate reports every problem of the configuration at once.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Target == "" {
		bad("no target: give --target ADDR (the server, or a running vbproxy), or --capture DIR with --upstream ADDR (vbreplay records through a vbproxy it runs)")
	} else if _, err := addr.ParseServer(c.Target); err != nil {
		bad("--target %w", err)
	}
	for _, r := range c.Rates {
		if math.IsNaN(r) || math.IsInf(r, 0) || r < 0 {
			bad("rate %v: want a positive number of requests/s (0 = the trace's own pace)", r)
		}
	}
	if len(c.Concurrency) > 0 {
		if len(c.Rates) > 0 {
			bad("--concurrency (closed loop) and --rate (open loop) exclude each other")
		}
		if c.MaxConcurrency > 0 {
			bad("--concurrency (closed loop) and --max-concurrency exclude each other: a closed-loop level already holds its concurrency")
		}
	}
	for _, n := range c.Concurrency {
		if n < 1 {
			bad("concurrency %d: want 1 or more requests in flight", n)
		}
	}
	if math.IsNaN(c.Speed) || math.IsInf(c.Speed, 0) || c.Speed < 0 {
		bad("--speed %v: want a positive factor", c.Speed)
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"duration", c.Duration}, {"drain", c.Drain}, {"max-drain", c.MaxDrain}, {"timeout", c.Timeout}, {"warmup", c.WarmupDuration},
		{"spin", c.Spin}, {"interrupt-drain", c.InterruptDrain}, {"lag-threshold", c.LagThreshold}, {"progress-interval", c.ProgressInterval}} {
		if d.v < 0 {
			bad("--%s %v: must not be negative", d.flag, d.v)
		}
	}
	if c.WarmupRequests < 0 {
		bad("--warmup %d: want a positive count", c.WarmupRequests)
	}
	if c.WarmupDuration > 0 && c.WarmupRequests > 0 {
		bad("warm-up: give a duration or a request count, not both")
	}
	if c.WarmupMode != WarmupLevel && c.WarmupMode != WarmupRun {
		bad("--warmup-mode %q: want level or run", c.WarmupMode)
	}
	if c.MaxConcurrency < 0 {
		bad("--max-concurrency %d: want 0 (no cap) or more", c.MaxConcurrency)
	}
	if c.OnFull != OnFullWait && c.OnFull != OnFullDrop {
		bad("--on-full %q: want wait or drop", c.OnFull)
	}
	switch c.Pacer {
	case PacerPrecise, PacerTimer, PacerSpin:
	default:
		bad("--pacer %q: want precise, timer or spin", c.Pacer)
	}
	switch c.ChatMaxTokens {
	case ChatMaxTokensBoth, ChatMaxTokensLegacy, ChatMaxTokensCompletion:
	default:
		bad("--chat-max-tokens %q: want both, max_tokens or max_completion_tokens", c.ChatMaxTokens)
	}
	for k := range c.Labels {
		if k == "" || strings.ContainsAny(k, " \t\r\n:") {
			bad("--label %q: a key must be a plain header token", k)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return nil
}

// ParseWarmup parses the --warmup value: a duration ("10s") or a request
// count ("50"); "" or "0" means none.
func ParseWarmup(s string) (time.Duration, int, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" {
		return 0, 0, nil
	}
	var n int
	if _, err := fmt.Sscanf(s, "%d", &n); err == nil && fmt.Sprint(n) == s {
		if n < 0 {
			return 0, 0, fmt.Errorf("--warmup %q: negative", s)
		}
		return 0, n, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, 0, fmt.Errorf("--warmup %q: want a duration (10s) or a request count (50)", s)
	}
	return d, 0, nil
}
