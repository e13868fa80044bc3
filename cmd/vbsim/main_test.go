package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer safe for the server goroutine and the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestServeAndShutdown(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr lockedBuffer
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"--listen", "127.0.0.1:0", "--preset", "tiny", "--policy", "contiguous", "--reservation", "pow2", "--speed", "50", "--model", "m"}, nil, &stdout, &stderr)
	}()
	re := regexp.MustCompile(`on (http://127\.0\.0\.1:\d+)`)
	var url string
	for deadline := time.Now().Add(10 * time.Second); url == ""; {
		if m := re.FindStringSubmatch(stderr.String()); m != nil {
			url = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("no listen line on stderr: %q", stderr.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	resp, err := http.Post(url+"/v1/completions", "application/json", strings.NewReader(`{"model":"m","prompt":"hello","max_tokens":4,"ignore_eos":true}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"completion_tokens":4`) {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	if !strings.Contains(stderr.String(), "policy contiguous/pow2") {
		t.Fatalf("startup line does not describe the engine: %q", stderr.String())
	}
	cancel()
	select {
	case c := <-code:
		if c != 0 {
			t.Fatalf("exit %d after SIGINT-like cancel; stderr %q", c, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
}

func TestBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--policy", "buddy"}, `policy "buddy"`},
		{[]string{"--preset", "gpt5"}, `unknown preset "gpt5"`},
		{[]string{"--speed", "0"}, "--speed 0: want > 0"},
		{[]string{"--speed", "-2"}, "--speed -2"},
		{[]string{"--nope"}, "unknown flag"},
		{[]string{"extra"}, "unexpected argument"},
		{[]string{"--policy", "contiguous", "--kv-tokens", "1000"}, "max model len 2048"},
	} {
		var stderr bytes.Buffer
		if c := run(context.Background(), tc.args, nil, io.Discard, &stderr); c != 2 {
			t.Errorf("%v: exit %d; want 2 (stderr %q)", tc.args, c, stderr.String())
		}
		if !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: stderr %q does not say %q", tc.args, stderr.String(), tc.want)
		}
	}
}

func TestPortInUse(t *testing.T) {
	var stderr bytes.Buffer
	if c := run(context.Background(), []string{"--listen", "256.0.0.1:1"}, nil, io.Discard, &stderr); c != 1 || !strings.Contains(stderr.String(), "listen on 256.0.0.1:1") {
		t.Fatalf("exit %d, stderr %q", c, stderr.String())
	}
}

func TestPrintConfig(t *testing.T) {
	var stdout bytes.Buffer
	if c := run(context.Background(), []string{"--print-config", "--preset", "llama-7b-a100"}, nil, &stdout, io.Discard); c != 0 || !strings.Contains(stdout.String(), "kv-tokens = 44992\n") || !strings.Contains(stdout.String(), `fixed = "14ms"`) {
		t.Fatalf("exit %d: %s", c, stdout.String())
	}
}

func TestAddressErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--port", "99999"}, "--port: port 99999 out of range"},
		{[]string{"--listen", "127.0.0.1:99999"}, `--listen "127.0.0.1:99999": port 99999 out of range`},
		{[]string{"--listen", "nohost"}, `--listen "nohost": want HOST:PORT`},
		{[]string{"--preset", "x", "--speed", "0"}, "--speed 0: want > 0\nvbsim: unknown preset"},
	} {
		var stderr bytes.Buffer
		c := run(context.Background(), tt.args, nil, io.Discard, &stderr)
		if c != 2 || !strings.Contains(stderr.String(), tt.want) || strings.Contains(stderr.String(), "vbsim: vbsim") || strings.Contains(stderr.String(), "usage:") {
			t.Errorf("vbsim %q: exit %d, stderr %q; want exit 2 with %q", tt.args, c, stderr.String(), tt.want)
		}
	}
}

func TestHelpListsPresetsReadably(t *testing.T) {
	var stderr bytes.Buffer
	run(context.Background(), []string{"--help"}, nil, io.Discard, &stderr)
	if !strings.Contains(stderr.String(), "engine preset: llama-7b-a100, opt-13b-a100, tiny") {
		t.Errorf("--help:\n%s", stderr.String())
	}
}
