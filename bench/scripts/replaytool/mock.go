package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

// mock is an OpenAI-compatible streaming server with a known TTFT and
// inter-token gap (the shape of internal/testserver, vLLM's chunks) that
// also measures itself: for every request it records when it actually
// flushed the first token, relative to when it had the request. GET
// /stats returns that server-side TTFT distribution, so a benchmark can
// split a client's TTFT overstatement into the server's own lateness (a
// loaded machine delays its timers too) and the client's share.
type mock struct {
	ttft, itl time.Duration
	tokens    int
	mu        sync.Mutex
	firsts    []time.Duration // server-side TTFT of each request
	delivers  []time.Duration // request had − X-VB-Sent (vbreplay only)
}

func (m *mock) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/completions", m.complete)
	mux.HandleFunc("POST /v1/chat/completions", m.complete)
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, `{"object":"list","data":[{"id":"mock-model","object":"model","owned_by":"vbench"}]}`)
	})
	mux.HandleFunc("GET /health", func(http.ResponseWriter, *http.Request) {})
	mux.HandleFunc("GET /stats", m.stats)
	mux.HandleFunc("POST /stats/reset", func(http.ResponseWriter, *http.Request) {
		m.mu.Lock()
		m.firsts, m.delivers = m.firsts[:0], m.delivers[:0]
		m.mu.Unlock()
	})
	return mux
}

func (m *mock) complete(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	start := time.Now()
	if sent, err := strconv.ParseInt(r.Header.Get("X-VB-Sent"), 10, 64); err == nil {
		// Both clocks are Go wall clocks of one host.
		m.mu.Lock()
		m.delivers = append(m.delivers, time.Duration(start.UnixNano()-sent))
		m.mu.Unlock()
	}
	var req struct {
		MaxTokens     *int `json:"max_tokens"`
		StreamOptions *struct {
			IncludeUsage    bool `json:"include_usage"`
			ContinuousUsage bool `json:"continuous_usage_stats"`
		} `json:"stream_options"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		http.Error(w, `{"error":{"message":"invalid JSON"}}`, http.StatusBadRequest)
		return
	}
	n := m.tokens
	if req.MaxTokens != nil {
		n = *req.MaxTokens
	}
	// Like vLLM: per-chunk usage only with continuous_usage_stats, a final
	// usage chunk only with include_usage.
	usage := req.StreamOptions != nil && req.StreamOptions.IncludeUsage
	cont := usage && req.StreamOptions.ContinuousUsage
	object, choice := "text_completion", `{"index":0,"text":"tok ","finish_reason":null}`
	if r.URL.Path == "/v1/chat/completions" {
		object, choice = "chat.completion.chunk", `{"index":0,"delta":{"content":"tok "},"finish_reason":null}`
	}
	w.Header().Set("Content-Type", "text/event-stream")
	fl := w.(http.Flusher)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	buf := make([]byte, 0, 256)
	for i := 0; i < n; i++ {
		if d := time.Until(start.Add(m.ttft + time.Duration(i)*m.itl)); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-r.Context().Done():
				return
			}
		}
		buf = append(buf[:0], `data: {"id":"cmpl-mock","object":"`...)
		buf = append(buf, object...)
		buf = append(buf, `","created":1,"model":"mock-model","choices":[`...)
		buf = append(buf, choice...)
		buf = append(buf, ']')
		if cont {
			buf = append(buf, `,"usage":{"prompt_tokens":8,"completion_tokens":`...)
			buf = strconv.AppendInt(buf, int64(i+1), 10)
			buf = append(buf, '}')
		}
		buf = append(buf, "}\n\n"...)
		if _, err := w.Write(buf); err != nil {
			return
		}
		fl.Flush()
		if i == 0 {
			first := time.Since(start)
			m.mu.Lock()
			m.firsts = append(m.firsts, first)
			m.mu.Unlock()
		}
	}
	if usage {
		fmt.Fprintf(w, "data: {\"id\":\"cmpl-mock\",\"object\":%q,\"created\":1,\"model\":\"mock-model\",\"choices\":[],\"usage\":{\"prompt_tokens\":8,\"completion_tokens\":%d,\"total_tokens\":%d}}\n\n", object, n, n+8)
	}
	io.WriteString(w, "data: [DONE]\n\n")
	fl.Flush()
}

// stats reports the server-side TTFT distribution in milliseconds.
func (m *mock) stats(w http.ResponseWriter, _ *http.Request) {
	m.mu.Lock()
	v, dv := slices.Clone(m.firsts), slices.Clone(m.delivers)
	m.mu.Unlock()
	out := map[string]float64{"count": float64(len(v))}
	summarize(out, "ttft", v)
	summarize(out, "deliver", dv)
	json.NewEncoder(w).Encode(out)
}

// summarize adds NAME_mean_ms, NAME_p50_ms and NAME_p99_ms of v to out.
func summarize(out map[string]float64, name string, v []time.Duration) {
	slices.Sort(v)
	if len(v) > 0 {
		var sum float64
		for _, x := range v {
			sum += float64(x)
		}
		ms := func(d float64) float64 { return math.Round(d/1e3) / 1e3 }
		pct := func(p float64) float64 {
			rank := p / 100 * float64(len(v)-1)
			lo := int(rank)
			if lo >= len(v)-1 {
				return float64(v[len(v)-1])
			}
			return float64(v[lo]) + (rank-float64(lo))*float64(v[lo+1]-v[lo])
		}
		out[name+"_mean_ms"], out[name+"_p50_ms"], out[name+"_p99_ms"] = ms(sum/float64(len(v))), ms(pct(50)), ms(pct(99))
	}
}

func serveMock(addr string, m *mock) (string, func() error, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: m.handler(), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String(), srv.Close, nil
}
