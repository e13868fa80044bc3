package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vbench/vbench/capture"
	"github.com/vbench/vbench/internal/cli"
	"github.com/vbench/vbench/internal/testbin"
	"github.com/vbench/vbench/internal/testserver"
	"github.com/vbench/vbench/replay"
	"github.com/vbench/vbench/trace"
)

func writeTrace(t *testing.T, n int) string {
	t.Helper()
	reqs := make([]trace.Request, n)
	for i := range reqs {
		reqs[i] = trace.Request{Index: int64(i), Offset: time.Duration(i) * time.Second, Endpoint: trace.EndpointCompletions,
			Prompt: "hello", InputTokens: 1, OutputTokens: 3, Sampling: trace.Sampling{MaxTokens: 3, IgnoreEOS: true}}
	}
	path := filepath.Join(t.TempDir(), "trace.bin")
	if _, err := trace.WriteFile(path, trace.Header{Generator: "test", MeanRate: 1, Arrival: trace.ArrivalConstant}, reqs); err != nil {
		t.Fatal(err)
	}
	return path
}

func startServer(t *testing.T, cfg testserver.Config) *testserver.Server {
	t.Helper()
	s, err := testserver.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func call(ctx context.Context, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(ctx, args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestRunLadderJSON(t *testing.T) {
	srv := startServer(t, testserver.Config{Model: "served"})
	tr := writeTrace(t, 100)
	js := filepath.Join(t.TempDir(), "results", "res.json") // --json makes its directory
	code, out, errOut := call(context.Background(), tr, "--target", srv.URL, "--rates", "100,200", "--duration", "200ms",
		"--warmup", "5", "--label", "variant=a", "--header", "Authorization: Bearer k", "--json", js, "--details", "--progress-interval", "50ms")
	if code != cli.ExitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for _, want := range []string{"level", "100", "200", `model "served"`} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errOut, "level 100 req/s done: sent 20/20 ok 20") || !strings.Contains(errOut, "warm-up 200 req/s done: sent 5/5") {
		t.Errorf("progress:\n%s", errOut)
	}
	b, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	var res replay.Result
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Levels) != 2 || res.Levels[0].OK != 20 || res.Levels[1].OK != 40 || len(res.Levels[1].Requests) != 40 || len(res.Warmups) != 2 {
		t.Errorf("result levels %+v", res.Levels)
	}
	if res.Config.Labels["variant"] != "a" || bytes.Contains(b, []byte("Bearer")) {
		t.Errorf("result config labels %v; the API key must not be written", res.Config.Labels)
	}
	if h := srv.Headers()[len(srv.Headers())-1]; h.Get("Authorization") != "Bearer k" {
		t.Errorf("Authorization header %q", h.Get("Authorization"))
	}
}

// TestRunClosedLoop: --concurrency runs one closed-loop level per count
// (label cN, that many in flight), for --duration, and says when the
// trace ran out first.
func TestRunClosedLoop(t *testing.T) {
	srv := startServer(t, testserver.Config{TTFT: 5 * time.Millisecond, ITL: time.Millisecond})
	js := filepath.Join(t.TempDir(), "res.json")
	code, out, errOut := call(context.Background(), writeTrace(t, 400), "--target", srv.URL, "--concurrency", "1,4", "--duration", "300ms",
		"--json", js, "-q")
	if code != cli.ExitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	var res replay.Result
	b, err := os.ReadFile(js)
	if err != nil || json.Unmarshal(b, &res) != nil {
		t.Fatalf("--json: %v\n%s", err, b)
	}
	if len(res.Levels) != 2 || !slices.Equal(res.Config.Concurrency, []int{1, 4}) || len(res.Config.Rates) != 0 {
		t.Fatalf("levels %+v, config %+v", res.Levels, res.Config)
	}
	for i, n := range []int{1, 4} {
		lr := res.Levels[i]
		if lr.Label != replay.ClosedLabel(n) || lr.Concurrency != n || lr.OK == 0 || lr.OK != lr.Sent || lr.Exhausted {
			t.Errorf("level %d: %+v", i, lr)
		}
	}
	if !strings.Contains(out, "c1") || !strings.Contains(out, "c4") || strings.Contains(errOut, "ran out") {
		t.Errorf("stdout:\n%s\nstderr:\n%s", out, errOut)
	}

	// A trace of 10 requests runs out long before 10 s.
	code, _, errOut = call(context.Background(), writeTrace(t, 10), "--target", srv.URL, "--concurrency", "2", "--duration", "10s", "-q")
	if code != cli.ExitOK || !strings.Contains(errOut, "level c2 (2 in flight): the trace's 10 requests ran out before --duration ended") {
		t.Errorf("exhausted: exit %d\nstderr:\n%s", code, errOut)
	}
}

// TestRunCapture: --capture records through a vbproxy process vbreplay
// starts and stops (vbreplay itself links no Badger: TestNoBadger).
func TestRunCapture(t *testing.T) {
	srv := startServer(t, testserver.Config{})
	dir := filepath.Join(t.TempDir(), "cap")
	code, out, errOut := call(context.Background(), writeTrace(t, 50), "--capture", dir, "--upstream", srv.URL, "--rate", "100", "-q")
	if code != cli.ExitOK || !strings.Contains(out, "capture "+dir+": 52 records written, 0 dropped") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	st, err := capture.Open(dir, capture.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if n, _, err := st.Counts(); err != nil || n != 52 {
		t.Errorf("capture holds %d records (%v); want 52", n, err)
	}
}

func TestRunErrors(t *testing.T) {
	srv := startServer(t, testserver.Config{Model: "served"})
	tr := writeTrace(t, 10)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no trace", []string{"--target", srv.URL}, cli.ExitUsage, "want exactly one TRACE"},
		{"rate and rates", []string{tr, "--target", srv.URL, "--rate", "1", "--rates", "1,2"}, cli.ExitUsage, "exclude each other"},
		{"bad policy", []string{tr, "--target", srv.URL, "--on-full", "maybe"}, cli.ExitUsage, "--on-full"},
		{"bad warmup", []string{tr, "--target", srv.URL, "--warmup", "soon"}, cli.ExitUsage, "--warmup"},
		{"bad header", []string{tr, "--target", srv.URL, "--header", "novalue"}, cli.ExitUsage, "--header"},
		{"no target", []string{tr}, cli.ExitUsage, "no target"},
		{"missing trace", []string{"/nonexistent/trace.bin", "--target", srv.URL}, cli.ExitFailure, "no such file"},
		{"model rejected", []string{tr, "--target", srv.URL, "--model", "nope"}, cli.ExitFailure, "HTTP 404"},
		{"too short", []string{tr, "--target", srv.URL, "--rate", "1", "--duration", "1m"}, cli.ExitFailure, "trace too short"},
		{"capture without upstream", []string{tr, "--capture", t.TempDir()}, cli.ExitUsage, "--upstream"},
		{"concurrency and rate", []string{tr, "--target", srv.URL, "--concurrency", "4", "--rate", "1"}, cli.ExitUsage, "--concurrency (closed loop"},
		{"concurrency and rates", []string{tr, "--target", srv.URL, "--rates", "1,2", "--concurrency", "4"}, cli.ExitUsage, "and --rates (open loop"},
		{"concurrency and speed", []string{tr, "--target", srv.URL, "--concurrency", "4", "--speed", "2"}, cli.ExitUsage, "and --speed"},
		{"concurrency and cap", []string{tr, "--target", srv.URL, "--concurrency", "4", "--max-concurrency", "2"}, cli.ExitUsage, "--max-concurrency"},
		{"concurrency zero", []string{tr, "--target", srv.URL, "--concurrency", "0"}, cli.ExitUsage, "concurrency 0: want 1 or more"},
		{"concurrency not a number", []string{tr, "--target", srv.URL, "--concurrency", "x"}, cli.ExitUsage, "--concurrency"},
		{"target with a path", []string{tr, "--target", srv.URL + "/v1"}, cli.ExitUsage, "without a path"},
		{"target port out of range", []string{tr, "--target", "127.0.0.1:99999"}, cli.ExitUsage, `--target "127.0.0.1:99999": port 99999 out of range`},
		{"upstream without host", []string{tr, "--capture", t.TempDir() + "/c", "--upstream", "http://"}, cli.ExitUsage, `--upstream "http://": no host`},
	}
	for _, tt := range tests {
		code, _, errOut := call(context.Background(), tt.args...)
		if code != tt.code || !strings.Contains(errOut, tt.want) || strings.Contains(errOut, "goroutine") {
			t.Errorf("%s: exit %d stderr %q; want exit %d mentioning %q", tt.name, code, errOut, tt.code, tt.want)
		}
	}
}

// TestRunHostPort: --target and --upstream take HOST:PORT as well as a URL.
func TestRunHostPort(t *testing.T) {
	srv := startServer(t, testserver.Config{Model: "served"})
	hostport := strings.TrimPrefix(srv.URL, "http://")
	code, out, errOut := call(context.Background(), writeTrace(t, 10), "--target", hostport, "--rate", "100", "-q")
	if code != cli.ExitOK || !strings.Contains(out, "target "+srv.URL) {
		t.Errorf("--target %s: exit %d\nstdout:\n%s\nstderr:\n%s", hostport, code, out, errOut)
	}
	dir := filepath.Join(t.TempDir(), "cap")
	code, out, errOut = call(context.Background(), writeTrace(t, 10), "--capture", dir, "--upstream", hostport, "--rate", "100", "-q")
	if code != cli.ExitOK || !strings.Contains(out, "capture "+dir) {
		t.Errorf("--upstream %s: exit %d\nstdout:\n%s\nstderr:\n%s", hostport, code, out, errOut)
	}
}

// TestRunDeadTarget: a server that is not running is reported in one line:
// no empty table, no model "", no capture directory left behind.
func TestRunDeadTarget(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	tr := writeTrace(t, 10)
	dir := filepath.Join(t.TempDir(), "cap")
	for _, args := range [][]string{
		{tr, "--target", dead, "--rate", "1"},
		{tr, "--capture", dir, "--upstream", dead, "--rate", "1"},
	} {
		code, out, errOut := call(context.Background(), args...)
		if code != cli.ExitFailure || out != "" || !strings.Contains(errOut, "unreachable") || strings.Contains(errOut, "--model") ||
			strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("vbreplay %q: exit %d\nstdout:\n%s\nstderr:\n%s\nwant exit 1, nothing on stdout, one line saying unreachable", args, code, out, errOut)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("a dead upstream left %s behind (%v)", dir, err)
	}
}

// TestRunPreflightRejectedRemovesNewCapture: when the server answers but
// rejects the model, the capture this run created holds nothing measured,
// so it is removed; an existing capture is kept.
func TestRunPreflightRejectedRemovesNewCapture(t *testing.T) {
	srv := startServer(t, testserver.Config{Model: "served"})
	tr := writeTrace(t, 10)
	dir := filepath.Join(t.TempDir(), "cap")
	code, out, errOut := call(context.Background(), tr, "--capture", dir, "--upstream", srv.URL, "--model", "nope", "--rate", "1", "-q")
	if code != cli.ExitFailure || out != "" || !strings.Contains(errOut, "HTTP 404") {
		t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the failed preflight left %s behind (%v)", dir, err)
	}
	// An existing capture (an earlier run's) stays.
	if code, _, errOut := call(context.Background(), tr, "--capture", dir, "--upstream", srv.URL, "--rate", "100", "-q"); code != cli.ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	call(context.Background(), tr, "--capture", dir, "--upstream", srv.URL, "--model", "nope", "--rate", "1", "-q")
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("an existing capture was removed: %v", err)
	}
}

func TestUsageShowsBothModes(t *testing.T) {
	code, _, errOut := call(context.Background(), "--help")
	if code != cli.ExitOK || !strings.Contains(errOut, "vbreplay TRACE --capture DIR --upstream ADDR") || !strings.Contains(errOut, "vbreplay TRACE --target ADDR") {
		t.Errorf("--help: exit %d\n%s", code, errOut)
	}
}

func TestRunInterrupted(t *testing.T) {
	srv := startServer(t, testserver.Config{TTFT: time.Millisecond})
	// Interrupt once the load is under way (the preflight and a few
	// requests have reached the server), however slow the machine.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for deadline := time.Now().Add(30 * time.Second); len(srv.Headers()) < 5 && time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		}
		cancel()
	}()
	code, out, errOut := call(ctx, writeTrace(t, 100), "--target", srv.URL, "--rate", "20", "--interrupt-drain", "100ms", "-q")
	if code != cli.ExitInterrupted {
		t.Fatalf("exit %d; want %d\nstdout:\n%s\nstderr:\n%s", code, cli.ExitInterrupted, out, errOut)
	}
	if !strings.Contains(out, "INTERRUPTED") || !strings.Contains(errOut, "interrupted") {
		t.Errorf("stdout:\n%s\nstderr:\n%s", out, errOut)
	}
}

// TestMain gives --capture its vbproxy (VBPROXY), built once.
func TestMain(m *testing.M) {
	dir, err := testbin.Build("cmd/vbproxy")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv("VBPROXY", filepath.Join(dir, "vbproxy"))
	os.Exit(testbin.Main(m))
}

// TestNoBadger: the replayer knows only a target URL; vbreplay links
// neither the capture store (Badger) nor the proxy (fasthttp), and replay
// does not import internal/cli (issue 18).
func TestNoBadger(t *testing.T) {
	for pkg, banned := range map[string][]string{
		".":                               {"github.com/dgraph-io/badger/v4", "github.com/valyala/fasthttp", "github.com/vbench/vbench/capture", "github.com/vbench/vbench/proxy"},
		"github.com/vbench/vbench/replay": {"github.com/vbench/vbench/internal/cli"},
	} {
		out, err := exec.Command("go", "list", "-deps", pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		deps := strings.Fields(string(out))
		for _, b := range banned {
			if slices.Contains(deps, b) {
				t.Errorf("%s depends on %s", pkg, b)
			}
		}
	}
}

func TestNegativeDurationsNamed(t *testing.T) {
	tr := writeTrace(t, 10)
	for _, f := range []string{"drain", "timeout", "interrupt-drain", "lag-threshold", "progress-interval"} {
		code, _, errOut := call(context.Background(), tr, "--target", ":1", "--"+f, "-1s")
		if code != cli.ExitUsage || !strings.Contains(errOut, "--"+f+" -1s: must not be negative") {
			t.Errorf("--%s -1s: exit %d, %q", f, code, errOut)
		}
	}
}
