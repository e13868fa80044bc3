package testserver

import (
	"bufio"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestStreamTiming(t *testing.T) {
	s, err := Start(Config{TTFT: 30 * time.Millisecond, ITL: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	resp, err := http.Post(s.URL+"/v1/completions", "application/json",
		strings.NewReader(`{"model":"m","prompt":"hi","max_tokens":5,"stream":true,"stream_options":{"include_usage":true}}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	var events []string
	var first time.Duration
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "data: ") {
			if first == 0 {
				first = time.Since(start)
			}
			events = append(events, line)
		}
	}
	if len(events) != 7 || events[6] != "data: [DONE]" || !strings.Contains(events[5], `"completion_tokens":5`) {
		t.Fatalf("events = %q", events)
	}
	if first < 30*time.Millisecond {
		t.Fatalf("first token after %v, want >= 30ms", first)
	}
	if s.Requests() != 1 || len(s.Bodies()) != 1 {
		t.Fatal("request not counted")
	}
}
