// Package testserver is a small OpenAI-compatible streaming server with a
// known timing (fixed time to first token and inter-token gap), for tests
// and benchmarks of the proxy and the replayer. It speaks vLLM's chunk
// shape: `data: {json}\n\n` events, an optional usage chunk, `data: [DONE]`.
// For a realistic engine model use the simulator (backends/sim) instead.
package testserver

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Config sets the server's behaviour. Zero values give TTFT 0, ITL 0 and
// 16 tokens per request.
type Config struct {
	// TTFT is the delay before the first token.
	TTFT time.Duration
	// ITL is the gap between consecutive tokens.
	ITL time.Duration
	// Tokens is the output length when the request has no max_tokens.
	Tokens int
	// Model is the only model name accepted (any when empty).
	Model string
}

// Server is a running test server.
type Server struct {
	URL  string // base URL, e.g. http://127.0.0.1:PORT
	Addr string // host:port

	cfg      Config
	srv      *http.Server
	ln       net.Listener
	requests atomic.Int64
	mu       sync.Mutex
	bodies   [][]byte
	headers  []http.Header
}

// Start starts a server on 127.0.0.1 with a free port.
func Start(cfg Config) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	if cfg.Tokens == 0 {
		cfg.Tokens = 16
	}
	s := &Server{cfg: cfg, ln: ln, Addr: ln.Addr().String(), URL: "http://" + ln.Addr().String()}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/completions", s.complete)
	mux.HandleFunc("POST /v1/chat/completions", s.complete)
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, _ *http.Request) {
		name := cfg.Model
		if name == "" {
			name = "test-model"
		}
		fmt.Fprintf(w, `{"object":"list","data":[{"id":%q,"object":"model","owned_by":"vbench"}]}`, name)
	})
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{model_name=\"m\"} %d\n", s.requests.Load())
	})
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln)
	return s, nil
}

// Close stops the server and closes every connection.
func (s *Server) Close() error { return s.srv.Close() }

// Requests returns the number of completion requests served so far.
func (s *Server) Requests() int64 { return s.requests.Load() }

// Bodies returns copies of the request bodies received, in arrival order.
func (s *Server) Bodies() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.bodies...)
}

// Headers returns the request headers received, in arrival order.
func (s *Server) Headers() []http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]http.Header(nil), s.headers...)
}

type request struct {
	Model         string `json:"model"`
	MaxTokens     *int   `json:"max_tokens"`
	MaxCompletion *int   `json:"max_completion_tokens"`
	Stream        bool   `json:"stream"`
	StreamOptions *struct {
		IncludeUsage    bool `json:"include_usage"`
		ContinuousUsage bool `json:"continuous_usage_stats"`
	} `json:"stream_options"`
	Messages json.RawMessage `json:"messages"`
}

func (s *Server) complete(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	s.requests.Add(1)
	s.mu.Lock()
	s.bodies = append(s.bodies, body)
	s.headers = append(s.headers, r.Header.Clone())
	s.mu.Unlock()
	var req request
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid JSON: "+err.Error())
		return
	}
	if s.cfg.Model != "" && req.Model != s.cfg.Model {
		writeError(w, http.StatusNotFound, fmt.Sprintf("The model `%s` does not exist.", req.Model))
		return
	}
	n := s.cfg.Tokens
	if req.MaxTokens != nil {
		n = *req.MaxTokens
	} else if req.MaxCompletion != nil {
		n = *req.MaxCompletion
	}
	chat := r.URL.Path == "/v1/chat/completions"
	id := "cmpl-" + strconv.FormatInt(start.UnixNano(), 36)
	if !req.Stream {
		sleepUntil(r, start.Add(s.cfg.TTFT+time.Duration(max(n-1, 0))*s.cfg.ITL))
		text := tokenText(n)
		w.Header().Set("Content-Type", "application/json")
		if chat {
			fmt.Fprintf(w, `{"id":%q,"object":"chat.completion","model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":%q},"finish_reason":"length"}],"usage":{"prompt_tokens":8,"completion_tokens":%d,"total_tokens":%d}}`, id, req.Model, text, n, n+8)
		} else {
			fmt.Fprintf(w, `{"id":%q,"object":"text_completion","model":%q,"choices":[{"index":0,"text":%q,"finish_reason":"length"}],"usage":{"prompt_tokens":8,"completion_tokens":%d,"total_tokens":%d}}`, id, req.Model, text, n, n+8)
		}
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	flusher, _ := w.(http.Flusher)
	usage := req.StreamOptions != nil && req.StreamOptions.IncludeUsage
	cont := usage && req.StreamOptions.ContinuousUsage
	for i := 0; i < n; i++ {
		if !sleepUntil(r, start.Add(s.cfg.TTFT+time.Duration(i)*s.cfg.ITL)) {
			return
		}
		finish := "null"
		if i == n-1 {
			finish = `"length"`
		}
		u := ""
		if cont {
			u = fmt.Sprintf(`,"usage":{"prompt_tokens":8,"completion_tokens":%d,"total_tokens":%d}`, i+1, i+9)
		}
		if chat {
			fmt.Fprintf(w, "data: {\"id\":%q,\"object\":\"chat.completion.chunk\",\"created\":%d,\"model\":%q,\"choices\":[{\"index\":0,\"delta\":{\"content\":\"t%d \"},\"finish_reason\":%s}]%s}\n\n", id, start.Unix(), req.Model, i, finish, u)
		} else {
			fmt.Fprintf(w, "data: {\"id\":%q,\"object\":\"text_completion\",\"created\":%d,\"model\":%q,\"choices\":[{\"index\":0,\"text\":\"t%d \",\"finish_reason\":%s}]%s}\n\n", id, start.Unix(), req.Model, i, finish, u)
		}
		if flusher != nil {
			flusher.Flush()
		}
	}
	if usage {
		fmt.Fprintf(w, "data: {\"id\":%q,\"object\":\"chat.completion.chunk\",\"created\":%d,\"model\":%q,\"choices\":[],\"usage\":{\"prompt_tokens\":8,\"completion_tokens\":%d,\"total_tokens\":%d}}\n\n", id, start.Unix(), req.Model, n, n+8)
	}
	io.WriteString(w, "data: [DONE]\n\n")
	if flusher != nil {
		flusher.Flush()
	}
}

func tokenText(n int) string {
	b := make([]byte, 0, n*4)
	for i := 0; i < n; i++ {
		b = append(b, 't')
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, ' ')
	}
	return string(b)
}

// sleepUntil waits for t or for the client to go away (false).
func sleepUntil(r *http.Request, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return r.Context().Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	fmt.Fprintf(w, `{"error":{"message":%q,"type":"BadRequestError","param":null,"code":%d}}`, msg, code)
}
