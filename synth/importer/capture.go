package importer

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/vbench/vbench/analyze"
	"github.com/vbench/vbench/capture"
	"github.com/vbench/vbench/synth"

	"github.com/vbench/vbench/trace"
)

// CaptureOptions select and shape the requests FromCapture turns into a
// trace. The zero value exports every POST request with a complete recorded
// body, verbatim.
type CaptureOptions struct {
	// Labels keeps records whose labels include every given key=value.
	Labels map[string]string
	// Paths keeps records whose path (without the query) is one of these.
	Paths []string
	// Since and Until keep records received in [Since, Until) (zero:
	// unbounded).
	Since, Until time.Time
	// From and To keep records received in [From, To) after the first
	// record of the capture (To zero: unbounded).
	From, To time.Duration
	// Statuses keeps records whose HTTP status is one of these.
	Statuses []int
	// Outcomes keeps records whose outcome is one of these.
	Outcomes []capture.Outcome
	// SkipWarmup leaves out requests the replayer tagged as warm-up.
	SkipWarmup bool
	// Anonymize replaces prompt text with synthetic prompts of the same
	// length in tokens (see anonymize).
	Anonymize bool
	// Seed seeds the synthetic prompts of Anonymize.
	Seed int64
	// Generator, Created and Dataset fill the trace header (defaults:
	// "vbench capture export", now, "capture:" + the store's directory).
	Generator string
	Created   time.Time
	Dataset   string
}

// FromCapture turns the captured requests of s into a trace that replays
// them: requests in arrival order with their original arrival offsets
// (Received minus the first exported request's), their endpoint (the
// recorded path) and their verbatim request body in trace.Request.Body.
// Request headers are never exported, so credentials cannot leak into a
// trace. Records that cannot be replayed verbatim (not POST, a body cut by
// the proxy's limit, a Content-Encoding body) are skipped and counted in the
// header's Params.
//
// InputTokens and OutputTokens are the record's prompt and output lengths
// as the analysis measures them (analyze.Measure: the one OpenAI decoder,
// which reads the streamed usage, a non-streamed body's usage, token ids,
// else counts content events as an estimate);
// Sampling is read from the body. Chat requests that continue an earlier one
// are linked into conversations (see linkConversations).
//
// The header has Arrival "recorded", MeanRate = (count-1)/span (1 for a
// trace of fewer than two requests or a zero span), the filters in Params,
// and Count, Span and Hash as the trace writer computes them.
func FromCapture(s *capture.Store, opt CaptureOptions) (trace.Header, []trace.Request, error) {
	var (
		recs    []*capture.Record
		skipped = map[string]int{}
	)
	wantPath := make(map[string]bool, len(opt.Paths))
	for _, p := range opt.Paths {
		wantPath[p] = true
	}
	// Read only the window asked for: From/To relative to the capture's
	// first record, Since/Until absolute, whichever is narrower.
	first, haveFirst, err := s.FirstReceived()
	if err != nil {
		return trace.Header{}, nil, fmt.Errorf("importer: capture: %w", err)
	}
	lo, hi := first+int64(opt.From), int64(0)
	if opt.To > 0 {
		hi = first + int64(opt.To)
	}
	if !opt.Since.IsZero() {
		lo = max(lo, opt.Since.UnixNano())
	}
	if !opt.Until.IsZero() && (hi == 0 || opt.Until.UnixNano() < hi) {
		hi = opt.Until.UnixNano()
	}
	scan := func(fn func(*capture.Record) error) error { return s.RecordsBetween(lo, hi, fn) }
	switch {
	case !haveFirst || (lo == first && hi == 0):
		scan = s.Records
	case hi != 0 && hi <= lo:
		scan = func(func(*capture.Record) error) error { return nil } // empty window
	}
	total, _, err := s.Counts()
	if err != nil {
		return trace.Header{}, nil, fmt.Errorf("importer: capture: %w", err)
	}
	scanned := 0
	err = scan(func(r *capture.Record) error {
		scanned++
		switch {
		case !matchLabels(r.Labels, opt.Labels):
			skipped["filtered"]++
		case len(wantPath) > 0 && !wantPath[pathOnly(r.Path)]:
			skipped["filtered"]++
		case !opt.Since.IsZero() && r.Received < opt.Since.UnixNano(),
			!opt.Until.IsZero() && r.Received >= opt.Until.UnixNano(),
			r.Received-first < int64(opt.From),
			opt.To > 0 && r.Received-first >= int64(opt.To):
			skipped["filtered"]++
		case len(opt.Statuses) > 0 && !slices.Contains(opt.Statuses, r.Status):
			skipped["filtered"]++
		case len(opt.Outcomes) > 0 && !slices.Contains(opt.Outcomes, r.Outcome):
			skipped["filtered"]++
		case opt.SkipWarmup && r.Tags.Warmup:
			skipped["filtered"]++
		case r.Method != "POST":
			skipped["skipped_not_post"]++
		case len(r.RequestBody) == 0 || int64(len(r.RequestBody)) < r.RequestSize:
			skipped["skipped_body_truncated"]++
		case encodedBody(r.RequestHeaders):
			// Headers are not exported, so a compressed body would be
			// replayed without its Content-Encoding.
			skipped["skipped_body_encoded"]++
		case endpointOf(r.Path) == "":
			skipped["skipped_bad_path"]++
		default:
			recs = append(recs, r)
		}
		return nil
	})
	if err != nil {
		return trace.Header{}, nil, fmt.Errorf("importer: capture: %w", err)
	}
	if outside := int(total) - scanned; outside > 0 {
		skipped["filtered"] += outside
	}

	reqs := make([]trace.Request, len(recs))
	for i, r := range recs {
		q := &reqs[i]
		q.Index = int64(i)
		q.Offset = time.Duration(r.Received - recs[0].Received)
		q.Endpoint = endpointOf(r.Path)
		q.Body = append([]byte(nil), r.RequestBody...)
		q.InputTokens = promptTokens(r)
		q.OutputTokens = outputTokens(r)
		q.Sampling = samplingOf(r.RequestBody)
		q.Source = trace.Source{Dataset: "capture", Row: strconv.FormatUint(r.ID, 10)}
	}
	convs := linkConversations(recs, reqs)
	if opt.Anonymize {
		anonymize(recs, reqs, opt.Seed)
	}

	hdr := trace.Header{
		Generator: opt.Generator,
		Created:   opt.Created.UTC(),
		Dataset:   opt.Dataset,
		Arrival:   trace.ArrivalRecorded,
		MeanRate:  1,
		Params: map[string]string{
			"source":        "capture",
			"records":       strconv.FormatInt(total, 10),
			"exported":      strconv.Itoa(len(reqs)),
			"conversations": strconv.Itoa(convs),
			"anonymized":    strconv.FormatBool(opt.Anonymize),
		},
	}
	if hdr.Generator == "" {
		hdr.Generator = "vbench capture export"
	}
	if opt.Created.IsZero() {
		hdr.Created = time.Now().UTC()
	}
	if hdr.Dataset == "" {
		hdr.Dataset = "capture:" + s.Dir()
	}
	for k, v := range skipped {
		hdr.Params[k] = strconv.Itoa(v)
	}
	addFilterParams(hdr.Params, &opt)
	if n := len(reqs); n >= 2 && reqs[n-1].Offset > 0 {
		hdr.MeanRate = float64(n-1) / reqs[n-1].Offset.Seconds()
	}
	// Count, Span and Hash exactly as a trace file of these requests has.
	tw, err := trace.NewWriter(io.Discard, hdr)
	if err != nil {
		return trace.Header{}, nil, fmt.Errorf("importer: capture: %w", err)
	}
	for i := range reqs {
		if err := tw.Write(&reqs[i]); err != nil {
			return trace.Header{}, nil, fmt.Errorf("importer: capture: record %s: %w", reqs[i].Source.Row, err)
		}
	}
	if err := tw.Close(); err != nil {
		return trace.Header{}, nil, fmt.Errorf("importer: capture: %w", err)
	}
	return tw.Header(), reqs, nil
}

func addFilterParams(p map[string]string, opt *CaptureOptions) {
	if len(opt.Labels) > 0 {
		keys := slices.Sorted(func(yield func(string) bool) {
			for k := range opt.Labels {
				if !yield(k) {
					return
				}
			}
		})
		var b strings.Builder
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(k + "=" + opt.Labels[k])
		}
		p["filter_labels"] = b.String()
	}
	if len(opt.Paths) > 0 {
		p["filter_paths"] = strings.Join(opt.Paths, ",")
	}
	if !opt.Since.IsZero() {
		p["filter_since"] = opt.Since.UTC().Format(time.RFC3339Nano)
	}
	if !opt.Until.IsZero() {
		p["filter_until"] = opt.Until.UTC().Format(time.RFC3339Nano)
	}
	if opt.From > 0 || opt.To > 0 {
		p["filter_window"] = opt.From.String() + "," + opt.To.String()
	}
	if len(opt.Statuses) > 0 {
		var s []string
		for _, v := range opt.Statuses {
			s = append(s, strconv.Itoa(v))
		}
		p["filter_status"] = strings.Join(s, ",")
	}
	if len(opt.Outcomes) > 0 {
		var s []string
		for _, v := range opt.Outcomes {
			s = append(s, string(v))
		}
		p["filter_outcome"] = strings.Join(s, ",")
	}
	if opt.SkipWarmup {
		p["skip_warmup"] = "true"
	}
	if opt.Anonymize {
		p["anonymize_seed"] = strconv.FormatInt(opt.Seed, 10)
	}
}

// encodedBody reports whether the request body had a Content-Encoding
// other than identity.
func encodedBody(hs []capture.Header) bool {
	for _, h := range hs {
		if strings.EqualFold(h.Name, "Content-Encoding") {
			v := strings.TrimSpace(h.Value)
			if v != "" && !strings.EqualFold(v, "identity") {
				return true
			}
		}
	}
	return false
}

func matchLabels(have, want map[string]string) bool {
	for k, v := range want {
		if hv, ok := have[k]; !ok || hv != v {
			return false
		}
	}
	return true
}

func pathOnly(p string) string {
	if i := strings.IndexByte(p, '?'); i >= 0 {
		return p[:i]
	}
	return p
}

// endpointOf returns the request URI to replay: the recorded path and query,
// or "" when it is not usable.
func endpointOf(p string) string {
	if strings.HasPrefix(p, "/") {
		return p
	}
	u, err := url.Parse(p) // absolute-form request target
	if err != nil || u.Path == "" || !strings.HasPrefix(u.RequestURI(), "/") {
		return ""
	}
	return u.RequestURI()
}

// promptTokens and outputTokens are a record's prompt and output lengths
// as the analysis measures them (0 when unknown).
func promptTokens(r *capture.Record) int32 { return max(analyze.Measure(r, "").PromptTokens, 0) }

func outputTokens(r *capture.Record) int32 { return max(analyze.Measure(r, "").OutputTokens, 0) }

// samplingOf reads the sampling parameters from an OpenAI-style body.
func samplingOf(body []byte) trace.Sampling {
	var b struct {
		MaxTokens           *int32   `json:"max_tokens"`
		MaxCompletionTokens *int32   `json:"max_completion_tokens"`
		MinTokens           int32    `json:"min_tokens"`
		IgnoreEOS           bool     `json:"ignore_eos"`
		Temperature         *float64 `json:"temperature"`
		TopP                *float64 `json:"top_p"`
	}
	var s trace.Sampling
	if json.Unmarshal(body, &b) != nil {
		return s
	}
	switch {
	case b.MaxTokens != nil:
		s.MaxTokens = max(*b.MaxTokens, 0)
	case b.MaxCompletionTokens != nil:
		s.MaxTokens = max(*b.MaxCompletionTokens, 0)
	}
	s.MinTokens = max(b.MinTokens, 0)
	s.IgnoreEOS = b.IgnoreEOS
	if b.Temperature != nil {
		s.HasTemperature, s.Temperature = true, *b.Temperature
	}
	if b.TopP != nil {
		s.HasTopP, s.TopP = true, *b.TopP
	}
	return s
}

// chatMessage is a chat message as recorded: its role and its content kept
// as compact JSON, so any content shape (string, parts) compares exactly.
type chatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

func chatMessages(body []byte) ([]chatMessage, bool) {
	var b struct {
		Messages []chatMessage `json:"messages"`
	}
	if json.Unmarshal(body, &b) != nil || len(b.Messages) == 0 {
		return nil, false
	}
	for i := range b.Messages {
		var c bytes.Buffer
		if json.Compact(&c, b.Messages[i].Content) == nil {
			b.Messages[i].Content = c.Bytes()
		}
	}
	return b.Messages, true
}

// prefixHashes returns h[k] = hash of messages[:k] for k = 0..len.
func prefixHashes(ms []chatMessage) [][32]byte {
	h := make([][32]byte, len(ms)+1)
	for k, m := range ms {
		sum := sha256.New()
		sum.Write(h[k][:])
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(m.Role)))
		sum.Write(n[:])
		sum.Write([]byte(m.Role))
		sum.Write(m.Content)
		copy(h[k+1][:], sum.Sum(nil))
	}
	return h
}

/*
linkConversations recognises multi-turn chat conversations and sets
Conversation and Turn. The rule: a chat request B continues an earlier
exported chat request A when

  - A's messages are exactly B's first k messages (same roles, same content
    JSON), and
  - B's message k is an assistant message, and
  - if A's answer can be read from its complete recorded response (streamed
    deltas or a whole message), that message's content equals it.

When several earlier requests match, the one with the longest message list
wins, and among equal ones the latest. A conversation gets the ID
"c<record ID of its first turn>"; turns count from 0; two requests that
continue the same turn (a regenerated answer) both get the next turn
number. A continuing turn's ThinkTime is its arrival minus the end of the
request it continues (0 when it arrived before that end). Requests that neither continue nor are continued stay single (empty
Conversation). It returns the number of conversations.
*/
func linkConversations(recs []*capture.Record, reqs []trace.Request) int {
	type node struct {
		parent int // index into recs, -1: none
		answer *string
	}
	nodes := make([]node, len(recs))
	last := make(map[[32]byte]int) // full-list hash → latest request index
	hasChild := make([]bool, len(recs))
	for i, r := range recs {
		nodes[i].parent = -1
		if pathOnly(reqs[i].Endpoint) != trace.EndpointChat {
			continue
		}
		ms, ok := chatMessages(r.RequestBody)
		if !ok {
			continue
		}
		h := prefixHashes(ms)
		for k := len(ms) - 1; k >= 1; k-- {
			if ms[k].Role != "assistant" {
				continue
			}
			a, ok := last[h[k]]
			if !ok {
				continue
			}
			if ans := nodes[a].answer; ans != nil {
				var content string
				if json.Unmarshal(ms[k].Content, &content) != nil || content != *ans {
					continue
				}
			}
			nodes[i].parent = a
			hasChild[a] = true
			break
		}
		nodes[i].answer = answerOf(r)
		last[h[len(ms)]] = i
	}
	n := 0
	for i := range recs {
		p := nodes[i].parent
		switch {
		case p >= 0:
			reqs[i].Conversation = reqs[p].Conversation
			reqs[i].Turn = reqs[p].Turn + 1
			// Think time: this turn's arrival − the previous turn's end.
			reqs[i].ThinkTime = max(0, time.Duration(recs[i].Received-(recs[p].Received+recs[p].End)))
		case hasChild[i]:
			reqs[i].Conversation = "c" + strconv.FormatUint(recs[i].ID, 10)
			n++
		}
	}
	return n
}

// answerOf returns the assistant text of a complete recorded chat response
// (streamed or not), or nil when it cannot be known.
func answerOf(r *capture.Record) *string {
	if len(r.ResponseBody) == 0 || int64(len(r.ResponseBody)) < r.ResponseSize || r.Outcome != capture.OutcomeOK || r.Status/100 != 2 {
		return nil
	}
	type choice struct {
		Index   int `json:"index"`
		Message *struct {
			Content *string `json:"content"`
		} `json:"message"`
		Delta *struct {
			Content *string `json:"content"`
		} `json:"delta"`
	}
	var resp struct {
		Choices []choice `json:"choices"`
	}
	body := bytes.TrimSpace(r.ResponseBody)
	if len(body) > 0 && body[0] == '{' {
		if json.Unmarshal(body, &resp) != nil || len(resp.Choices) == 0 || resp.Choices[0].Message == nil || resp.Choices[0].Message.Content == nil {
			return nil
		}
		return resp.Choices[0].Message.Content
	}
	var text strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, len(body)+1)
	for sc.Scan() {
		line, ok := bytes.CutPrefix(sc.Bytes(), []byte("data:"))
		if !ok {
			continue
		}
		line = bytes.TrimSpace(line)
		if string(line) == "[DONE]" {
			break
		}
		resp.Choices = resp.Choices[:0]
		if json.Unmarshal(line, &resp) != nil {
			return nil
		}
		for _, c := range resp.Choices {
			if c.Index == 0 && c.Delta != nil && c.Delta.Content != nil {
				text.WriteString(*c.Delta.Content)
			}
		}
	}
	s := text.String()
	return &s
}

// estimateTokens estimates the tokens of a text: about four bytes of
// English per token, at least one.
func estimateTokens(s string) float64 { return max(1, float64(utf8.RuneCountInString(s))/4) }

/*
anonymize replaces prompt text with synthetic prompts of the same length in
tokens, so the trace can be shared without the application's data:

  - /v1/completions: "prompt" (text, a list of texts, or token ids) becomes a
    list of random token ids in [1000, 30000), as many as the recorded
    usage prompt_tokens (or the estimated length when unknown).
  - chat: every message's content becomes filler words, as many as the
    message's estimated tokens times the capture-wide ratio of recorded
    prompt_tokens to estimated tokens. The words are drawn from a generator
    seeded by the seed and the message's role and content, so the same
    message becomes the same filler in every request: shared conversation
    prefixes stay shared (prefix caching behaves as recorded).
  - fields that can carry application data and are not needed to generate
    the same amount of work are removed: user, metadata, tools,
    tool_choice, functions, function_call, response_format, logit_bias,
    suffix, name (of messages).

Other body fields (model, max_tokens, stream, sampling) are kept. The body
is re-encoded with sorted keys.
*/
func anonymize(recs []*capture.Record, reqs []trace.Request, seed int64) {
	// The capture-wide ratio of recorded to estimated prompt tokens.
	var known, est float64
	for i, r := range recs {
		if promptTokens(r) <= 0 {
			continue
		}
		if e, ok := estimateBody(reqs[i].Body); ok {
			known += float64(promptTokens(r))
			est += e
		}
	}
	scale := 1.0
	if known > 0 && est > 0 {
		scale = known / est
	}
	for i, r := range recs {
		var body map[string]json.RawMessage
		if json.Unmarshal(reqs[i].Body, &body) != nil {
			// Not JSON: nothing we can keep; send a same-size filler.
			reqs[i].Body = []byte(strings.Repeat("x", len(reqs[i].Body)))
			continue
		}
		for _, k := range []string{"user", "metadata", "tools", "tool_choice", "functions", "function_call", "response_format", "logit_bias", "suffix"} {
			delete(body, k)
		}
		if p, ok := body["prompt"]; ok {
			n := int(promptTokens(r))
			if n <= 0 {
				est, exact := estimatePrompt(p)
				if !exact {
					est *= scale
				}
				n = int(math.Round(est))
			}
			rng := rand.New(rand.NewPCG(uint64(seed), r.ID))
			ids := make([]int32, max(n, 1))
			for j := range ids {
				ids[j] = 1000 + rng.Int32N(29000)
			}
			body["prompt"], _ = json.Marshal(ids)
			reqs[i].InputTokens = int32(len(ids))
		}
		if raw, ok := body["messages"]; ok {
			var ms []map[string]json.RawMessage
			if json.Unmarshal(raw, &ms) == nil {
				for _, m := range ms {
					delete(m, "name")
					content := string(m["content"])
					role := string(m["role"])
					words := int(math.Round(estimateContent(m["content"]) * scale))
					m["content"], _ = json.Marshal(synth.FillerWords(seed, role, content, max(words, 1)))
					delete(m, "tool_calls")
				}
				body["messages"], _ = json.Marshal(ms)
			} else {
				delete(body, "messages")
			}
		}
		reqs[i].Body, _ = json.Marshal(body)
	}
}

// estimateContent estimates the tokens of a message content: a string or
// a list of parts whose text parts count.
func estimateContent(raw json.RawMessage) float64 {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return estimateTokens(s)
	}
	var parts []struct {
		Text string `json:"text"`
	}
	if json.Unmarshal(raw, &parts) == nil {
		var t float64
		for _, p := range parts {
			t += estimateTokens(p.Text)
		}
		return max(t, 1)
	}
	return estimateTokens(string(raw))
}

// estimatePrompt estimates the tokens of a completions prompt: text, texts
// or token ids (exact: their count).
func estimatePrompt(raw json.RawMessage) (tokens float64, exact bool) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return estimateTokens(s), false
	}
	var ids []int64
	if json.Unmarshal(raw, &ids) == nil {
		return max(1, float64(len(ids))), true
	}
	var texts []string
	if json.Unmarshal(raw, &texts) == nil {
		var t float64
		for _, x := range texts {
			t += estimateTokens(x)
		}
		return max(t, 1), false
	}
	return estimateTokens(string(raw)), false
}

// estimateBody estimates the prompt tokens of a request body the way
// anonymize rebuilds it (chat: the sum over messages).
func estimateBody(body []byte) (float64, bool) {
	var b struct {
		Prompt   json.RawMessage `json:"prompt"`
		Messages []struct {
			Content json.RawMessage `json:"content"`
		} `json:"messages"`
	}
	if json.Unmarshal(body, &b) != nil {
		return 0, false
	}
	if len(b.Prompt) > 0 {
		return 0, false // completions use prompt_tokens directly
	}
	var t float64
	for _, m := range b.Messages {
		t += estimateContent(m.Content)
	}
	return t, len(b.Messages) > 0
}

// importCapture is ImportFile for a capture directory: it reads the store
// read-only (never writing it) and writes the requests FromCapture keeps.
func importCapture(ctx context.Context, dir, out string, o Options) (*Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	st, err := capture.Open(dir, capture.Options{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("importer: %w", err)
	}
	copt := o.Capture
	if copt.Created.IsZero() {
		copt.Created = o.Created
	}
	if copt.Seed == 0 {
		copt.Seed = o.Seed
	}
	hdr, reqs, err := FromCapture(st, copt)
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	if len(reqs) == 0 {
		return nil, fmt.Errorf("importer: capture %s: no request with a complete recorded body matches (record bodies with the proxy's --record-request-body)", dir)
	}
	hdr, err = trace.WriteFile(out, hdr, reqs)
	if err != nil {
		return nil, err
	}
	skipped := map[string]int{}
	for k, v := range hdr.Params {
		if n, err := strconv.Atoi(v); err == nil && (k == "filtered" || strings.HasPrefix(k, "skipped_")) && n > 0 {
			skipped[strings.TrimPrefix(k, "skipped_")] = n
		}
	}
	rows, _ := strconv.Atoi(hdr.Params["records"])
	return &Result{Header: hdr, Rows: rows, Skipped: skipped, Kept: len(reqs)}, nil
}
