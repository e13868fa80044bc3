package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// MaxRequestBody caps a request body (32 MiB).
const MaxRequestBody = 32 << 20

// Server is the simulated inference server: an http.Handler over a running
// Engine. Create it with New and stop it with Close.
type Server struct {
	cfg       Config
	eng       *Engine
	mux       *http.ServeMux
	modelJSON []byte // the model name as a JSON string
	created   int64
	idPrefix  string
	nextID    atomic.Uint64
	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
}

// New resolves cfg (preset and defaults), starts the engine and returns the
// server. The engine runs until Close.
func New(cfg Config) (*Server, error) {
	cfg, err := cfg.Resolve()
	if err != nil {
		return nil, err
	}
	eng, err := NewEngine(cfg)
	if err != nil {
		return nil, err
	}
	mj, _ := json.Marshal(cfg.Model)
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg: cfg, eng: eng, modelJSON: mj, created: time.Now().Unix(),
		idPrefix: strconv.FormatUint(rand.Uint64()>>16, 16),
		cancel:   cancel, done: make(chan struct{}),
	}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("POST /v1/completions", func(w http.ResponseWriter, r *http.Request) { s.complete(w, r, false) })
	s.mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) { s.complete(w, r, true) })
	s.mux.HandleFunc("GET /v1/models", s.models)
	s.mux.HandleFunc("GET /health", func(http.ResponseWriter, *http.Request) {})
	s.mux.HandleFunc("GET /metrics", s.metrics)
	go func() {
		defer close(s.done)
		eng.Run(ctx)
	}()
	return s, nil
}

// Config returns the resolved configuration.
func (s *Server) Config() Config { return s.cfg }

// Engine returns the server's engine.
func (s *Server) Engine() *Engine { return s.eng }

// Close stops the engine; requests in flight end with finish reason abort.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		<-s.done
	})
	return nil
}

// ServeHTTP serves the OpenAI-compatible API, /health and /metrics.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func (s *Server) models(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"object":"list","data":[{"id":%s,"object":"model","created":%d,"owned_by":"vbsim","root":%s,"parent":null,"max_model_len":%d,"permission":[]}]}`,
		s.modelJSON, s.created, s.modelJSON, s.cfg.MaxModelLen)
}

func (s *Server) metrics(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	var b bytes.Buffer
	_ = WriteMetrics(&b, s.cfg, s.eng.Stats())
	w.Write(b.Bytes())
}

// apiRequest holds the fields of a completions or chat request vbsim reads;
// the others (temperature, top_p, ...) are accepted and ignored.
type apiRequest struct {
	Model               string          `json:"model"`
	Prompt              json.RawMessage `json:"prompt"`
	Messages            []chatMessage   `json:"messages"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	MinTokens           int             `json:"min_tokens"`
	IgnoreEOS           bool            `json:"ignore_eos"`
	N                   *int            `json:"n"`
	Stream              bool            `json:"stream"`
	StreamOptions       *struct {
		IncludeUsage         bool `json:"include_usage"`
		ContinuousUsageStats bool `json:"continuous_usage_stats"`
	} `json:"stream_options"`
	Temperature *float64 `json:"temperature"`
}

// apiError is a vLLM-shaped error.
type apiError struct {
	status int
	typ    string
	param  string
	msg    string
}

func badRequest(param, format string, args ...any) *apiError {
	return &apiError{http.StatusBadRequest, "BadRequestError", param, fmt.Sprintf(format, args...)}
}

func writeAPIError(w http.ResponseWriter, e *apiError) {
	body := struct {
		Error struct {
			Message string  `json:"message"`
			Type    string  `json:"type"`
			Param   *string `json:"param"`
			Code    int     `json:"code"`
		} `json:"error"`
	}{}
	body.Error.Message, body.Error.Type, body.Error.Code = e.msg, e.typ, e.status
	if e.param != "" {
		body.Error.Param = &e.param
	}
	b, _ := json.Marshal(body)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.status)
	w.Write(b)
}

// job is a validated request.
type job struct {
	chat                bool
	prompt, max, min    int
	ignoreEOS           bool
	stream, usage, cont bool
	hash                uint64
}

// parse validates a request body the way vLLM does.
func (s *Server) parse(body []byte, chat bool) (job, *apiError) {
	var req apiRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return job{}, badRequest("", "invalid request body: %v", err)
	}
	j := job{chat: chat, stream: req.Stream, min: req.MinTokens, ignoreEOS: req.IgnoreEOS}
	if req.Model != "" && req.Model != s.cfg.Model {
		return j, &apiError{http.StatusNotFound, "NotFoundError", "model", fmt.Sprintf("The model `%s` does not exist.", req.Model)}
	}
	if req.StreamOptions != nil {
		if !req.Stream {
			return j, badRequest("stream_options", "Stream options can only be defined when `stream=True`.")
		}
		j.usage = req.StreamOptions.IncludeUsage
		j.cont = j.usage && req.StreamOptions.ContinuousUsageStats
	}
	if req.N != nil && *req.N != 1 {
		return j, badRequest("n", "vbsim serves n=1 only (got n=%d)", *req.N)
	}
	var promptBytes []byte
	if chat {
		if len(req.Messages) == 0 {
			return j, badRequest("messages", "messages: a chat request needs at least one message")
		}
		j.prompt = chatTokens(req.Messages)
		for _, m := range req.Messages {
			promptBytes = append(promptBytes, m.Content...)
		}
	} else {
		n, err := promptTokens(req.Prompt)
		if err != nil {
			return j, badRequest("prompt", "%v", err)
		}
		j.prompt = n
		promptBytes = req.Prompt
	}
	mt := req.MaxTokens
	if chat && req.MaxCompletionTokens != nil {
		mt = req.MaxCompletionTokens
	}
	switch {
	case mt != nil:
		j.max = *mt
	case chat:
		j.max = s.cfg.MaxModelLen - j.prompt
	default:
		j.max = 16 // vLLM's default for /v1/completions
	}
	if j.prompt >= s.cfg.MaxModelLen || j.prompt+j.max > s.cfg.MaxModelLen {
		return j, badRequest("input_tokens", "This model's maximum context length is %d tokens. However, you requested %d output tokens and your prompt contains %d input tokens, for a total of %d tokens. Please reduce the length of the input prompt or the number of requested output tokens.",
			s.cfg.MaxModelLen, j.max, j.prompt, j.prompt+j.max)
	}
	if j.max < 1 {
		return j, badRequest("max_tokens", "max_tokens must be at least 1, got %d.", j.max)
	}
	if j.min < 0 || j.min > j.max {
		return j, badRequest("min_tokens", "min_tokens must be greater than or equal to 0 and less than or equal to max_tokens=%d, got %d.", j.max, j.min)
	}
	j.hash = contentHash(promptBytes, strconv.AppendInt(nil, int64(j.max), 10))
	return j, nil
}

// promptTokens counts a completions prompt: a string, a list of token ids,
// or a one-element list of either.
func promptTokens(raw json.RawMessage) (int, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, errors.New("prompt: missing")
	}
	var text string
	if json.Unmarshal(raw, &text) == nil {
		return TextTokens(utf8.RuneCountInString(text)), nil
	}
	var ids []int64
	if json.Unmarshal(raw, &ids) == nil {
		if len(ids) == 0 {
			return 0, errors.New("prompt: empty token list")
		}
		for _, id := range ids {
			if id < 0 {
				return 0, fmt.Errorf("prompt: token id %d is negative", id)
			}
		}
		return len(ids), nil
	}
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) == nil {
		if len(list) != 1 {
			return 0, fmt.Errorf("prompt: vbsim serves one prompt per request (got a batch of %d)", len(list))
		}
		return promptTokens(list[0])
	}
	return 0, errors.New("prompt: want a string, a list of token ids, or a one-element list of either")
}

func (s *Server) complete(w http.ResponseWriter, r *http.Request, chat bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRequestBody))
	if err != nil {
		writeAPIError(w, badRequest("", "reading request body: %v", err))
		return
	}
	j, aerr := s.parse(body, chat)
	if aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	target, reason := outputLength(s.cfg.Seed, j.hash, j.max, j.min, j.ignoreEOS)
	if !s.eng.Fits(j.prompt, j.max, target) {
		writeAPIError(w, badRequest("input_tokens", "This request needs %d KV-cache tokens (prompt %d + output %d) but the simulated cache holds only %d (--kv-tokens).",
			j.prompt+target, j.prompt, target, s.eng.sched.capacity()))
		return
	}
	sq, err := s.eng.Submit(j.prompt, j.max, target, reason)
	if err != nil {
		writeAPIError(w, &apiError{http.StatusServiceUnavailable, "ServiceUnavailableError", "", err.Error()})
		return
	}
	o := &output{s: s, j: &j, sq: sq, created: time.Now().Unix()}
	if chat {
		o.id = "chatcmpl-"
	} else {
		o.id = "cmpl-"
	}
	o.id += s.idPrefix + strconv.FormatUint(s.nextID.Add(1), 16)
	if j.stream {
		o.stream(w, r)
	} else {
		o.whole(w, r)
	}
}

// output writes one request's response.
type output struct {
	s       *Server
	j       *job
	sq      *Seq
	id      string
	created int64
	buf     []byte
}

// wait blocks until the sequence makes progress or the client leaves.
func (o *output) wait(r *http.Request) bool {
	select {
	case <-o.sq.Notify():
		return true
	case <-r.Context().Done():
		o.sq.Abort()
		return false
	}
}

func (o *output) whole(w http.ResponseWriter, r *http.Request) {
	for {
		if !o.wait(r) {
			return
		}
		if g, done := o.sq.Progress(); done {
			reason := o.sq.Reason
			if g < o.sq.Target {
				reason = FinishAbort
			}
			b := o.buf[:0]
			b = append(b, `{"id":"`...)
			b = append(b, o.id...)
			if o.j.chat {
				b = append(b, `","object":"chat.completion"`...)
			} else {
				b = append(b, `","object":"text_completion"`...)
			}
			b = o.appendHead(b)
			if o.j.chat {
				b = append(b, `"message":{"role":"assistant","content":"`...)
			} else {
				b = append(b, `"text":"`...)
			}
			for i := 0; i < g; i++ {
				b = appendToken(b, o.j.hash, i)
			}
			if o.j.chat {
				b = append(b, '"', '}')
			} else {
				b = append(b, '"')
			}
			b = append(b, `,"logprobs":null,"finish_reason":"`...)
			b = append(b, reason...)
			b = append(b, `","stop_reason":null}],"usage":`...)
			b = o.appendUsage(b, g)
			b = append(b, '}')
			w.Header().Set("Content-Type", "application/json")
			w.Write(b)
			return
		}
	}
}

// appendHead appends `,"created":…,"model":…,"choices":[{"index":0,`.
func (o *output) appendHead(b []byte) []byte {
	b = append(b, `,"created":`...)
	b = strconv.AppendInt(b, o.created, 10)
	b = append(b, `,"model":`...)
	b = append(b, o.s.modelJSON...)
	return append(b, `,"choices":[{"index":0,`...)
}

func (o *output) appendUsage(b []byte, completion int) []byte {
	b = append(b, `{"prompt_tokens":`...)
	b = strconv.AppendInt(b, int64(o.j.prompt), 10)
	b = append(b, `,"total_tokens":`...)
	b = strconv.AppendInt(b, int64(o.j.prompt+completion), 10)
	b = append(b, `,"completion_tokens":`...)
	b = strconv.AppendInt(b, int64(completion), 10)
	return append(b, '}')
}

// appendChunk appends one SSE event with tokens [from, to) of the output,
// the role delta when role is set, and finish when not empty.
func (o *output) appendChunk(b []byte, from, to int, role bool, finish string, usage int) []byte {
	b = append(b, `data: {"id":"`...)
	b = append(b, o.id...)
	if o.j.chat {
		b = append(b, `","object":"chat.completion.chunk"`...)
	} else {
		b = append(b, `","object":"text_completion"`...)
	}
	b = o.appendHead(b)
	if o.j.chat {
		if role {
			b = append(b, `"delta":{"role":"assistant","content":"`...)
		} else {
			b = append(b, `"delta":{"content":"`...)
		}
	} else {
		b = append(b, `"text":"`...)
	}
	for i := from; i < to; i++ {
		b = appendToken(b, o.j.hash, i)
	}
	if o.j.chat {
		b = append(b, '"', '}')
	} else {
		b = append(b, '"')
	}
	b = append(b, `,"logprobs":null,"finish_reason":`...)
	if finish == "" {
		b = append(b, `null`...)
		if !o.j.chat {
			b = append(b, `,"stop_reason":null`...)
		}
	} else {
		b = append(b, '"')
		b = append(b, finish...)
		b = append(b, `","stop_reason":null`...)
	}
	b = append(b, `}]`...)
	if usage >= 0 {
		b = append(b, `,"usage":`...)
		b = o.appendUsage(b, usage)
	}
	return append(b, "}\n\n"...)
}

func (o *output) stream(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	fl, _ := w.(http.Flusher)
	if fl != nil {
		fl.Flush()
	}
	contUsage := func(n int) int {
		if o.j.cont {
			return n
		}
		return -1
	}
	sent := 0
	for {
		if !o.wait(r) {
			return
		}
		g, done := o.sq.Progress()
		b := o.buf[:0]
		if g > sent {
			if o.j.chat && sent == 0 {
				b = o.appendChunk(b, 0, 0, true, "", contUsage(0))
			}
			finish := ""
			if done && g == o.sq.Target {
				finish = o.sq.Reason
			}
			b = o.appendChunk(b, sent, g, false, finish, contUsage(g))
			sent = g
		}
		if done {
			if g < o.sq.Target { // engine stopped under the request
				b = o.appendChunk(b, g, g, false, FinishAbort, contUsage(g))
			}
			if o.j.usage {
				b = append(b, `data: {"id":"`...)
				b = append(b, o.id...)
				if o.j.chat {
					b = append(b, `","object":"chat.completion.chunk"`...)
				} else {
					b = append(b, `","object":"text_completion"`...)
				}
				b = append(b, `,"created":`...)
				b = strconv.AppendInt(b, o.created, 10)
				b = append(b, `,"model":`...)
				b = append(b, o.s.modelJSON...)
				b = append(b, `,"choices":[],"usage":`...)
				b = o.appendUsage(b, g)
				b = append(b, "}\n\n"...)
			}
			b = append(b, "data: [DONE]\n\n"...)
		}
		if len(b) > 0 {
			if _, err := w.Write(b); err != nil {
				o.sq.Abort()
				return
			}
			if fl != nil {
				fl.Flush()
			}
		}
		o.buf = b
		if done {
			return
		}
	}
}
