package apptraffic

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vbench/vbench/capture"
	"github.com/vbench/vbench/internal/testbin"
	"github.com/vbench/vbench/internal/testenv"
	"github.com/vbench/vbench/trace"
)

func TestMain(m *testing.M) { os.Exit(testbin.Main(m)) }

// arrivalTolerance bounds how far a replayed request's arrival (relative to
// the first) may be from the recorded one. Generous: CI shares two cores.
const arrivalTolerance = 100 * time.Millisecond

func TestAppTrafficCaptureExportReplay(t *testing.T) {
	if testing.Short() {
		t.Skip("builds four binaries and runs node: not in -short")
	}
	nodeDir, _ := filepath.Abs("../testdata/node")
	if _, err := os.Stat(filepath.Join(nodeDir, "node_modules", "openai")); err != nil {
		testenv.Missing(t, "the OpenAI Node SDK is not installed: run 'npm ci' in %s (.ci/run does)", nodeDir)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		testenv.Missing(t, "node is not on PATH")
	}
	bin := buildTools(t, "vbsim", "vbproxy", "vbanalyze", "vbreplay")
	dir := t.TempDir()

	// 1. The application talks to variant A through vbproxy.
	simA := startProc(t, filepath.Join(bin, "vbsim"), []string{"--preset", "tiny", "--listen", "127.0.0.1:0", "--model", "sim-a"}, `on (http://[0-9.:]+)`)
	capA := filepath.Join(dir, "capA")
	px := startProc(t, filepath.Join(bin, "vbproxy"), []string{"--upstream", simA.url, "--listen", "127.0.0.1:0", "--capture", capA, "--label", "variant=a"}, `listening on (http://[0-9.:]+)`)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	out, err := exec.CommandContext(ctx, node, filepath.Join(nodeDir, "apptraffic.mjs"), px.url+"/v1", "sim-a").CombinedOutput()
	cancel()
	if err != nil {
		t.Fatalf("node apptraffic.mjs: %v\n%s", err, out)
	}
	var app struct {
		Requests []struct{ Name, Text string }
	}
	if err := json.Unmarshal(out, &app); err != nil || len(app.Requests) != 6 {
		t.Fatalf("node output %q: %v", out, err)
	}
	px.stop(t) // SIGINT: drain and close the capture

	// 2. Export the capture to a trace.
	tr := filepath.Join(dir, "app.bin")
	runTool(t, filepath.Join(bin, "vbanalyze"), "export-trace", capA, "-o", tr)
	hdr, reqs, err := trace.ReadFile(tr)
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 6 || hdr.Arrival != trace.ArrivalRecorded || hdr.Params["conversations"] != "1" {
		t.Fatalf("exported %d requests, header %+v; want 6 and one conversation", len(reqs), hdr)
	}
	orig := records(t, capA, false)
	byID := map[string]*capture.Record{}
	for _, r := range orig {
		byID[strconv.FormatUint(r.ID, 10)] = r
	}
	var turns []trace.Request
	for i, q := range reqs {
		r := byID[q.Source.Row]
		if r == nil {
			t.Fatalf("trace request %d: source record %q not in the capture", i, q.Source.Row)
		}
		if !bytes.Equal(q.Body, r.RequestBody) {
			t.Errorf("trace request %d: body not verbatim:\n%s\n%s", i, q.Body, r.RequestBody)
		}
		if bytes.Contains(q.Body, []byte("sk-app-secret")) {
			t.Errorf("trace request %d carries the API key", i)
		}
		if q.Conversation != "" {
			turns = append(turns, q)
		}
	}
	// The conversation: 3 turns in order, think times as the app slept
	// (the sleep starts after the app read the answer, so after the
	// proxy's end: at least the sleep).
	if len(turns) != 3 || turns[0].Turn != 0 || turns[1].Turn != 1 || turns[2].Turn != 2 {
		t.Fatalf("conversation turns: %+v", turns)
	}
	for k, sleep := range map[int]time.Duration{1: 300 * time.Millisecond, 2: 400 * time.Millisecond} {
		if th := turns[k].ThinkTime; th < sleep || th > sleep+250*time.Millisecond {
			t.Errorf("turn %d think time %v; the app slept %v", k, th, sleep)
		}
	}

	// 3. Replay against variant B (another model name, another KV policy)
	// through a second capture.
	simB := startProc(t, filepath.Join(bin, "vbsim"), []string{"--preset", "tiny", "--listen", "127.0.0.1:0", "--model", "sim-b", "--policy", "contiguous"}, `on (http://[0-9.:]+)`)
	capB := filepath.Join(dir, "capB")
	runTool(t, filepath.Join(bin, "vbreplay"), tr, "--capture", capB, "--upstream", simB.url, "--model", "sim-b", "-q", "--label", "variant=b")
	got := records(t, capB, true)
	if len(got) != len(reqs) {
		t.Fatalf("replayed %d requests, want %d", len(got), len(reqs))
	}
	var worst time.Duration
	for i, r := range got {
		q := &reqs[i]
		if r.Tags.Index != q.Index {
			t.Fatalf("replay order: arrival %d is trace request %d, want %d", i, r.Tags.Index, q.Index)
		}
		if r.Outcome != capture.OutcomeOK || r.Status != 200 || r.Path != q.Endpoint {
			t.Errorf("replayed %d: %s %s status %d outcome %s (%s)", i, r.Method, r.Path, r.Status, r.Outcome, r.Error)
		}
		want, have := bodyMap(t, q.Body), bodyMap(t, r.RequestBody)
		if have["stream"] != true || !reflect.DeepEqual(have["stream_options"], map[string]any{"include_usage": true, "continuous_usage_stats": true}) || have["model"] != "sim-b" {
			t.Errorf("replayed %d: stream/usage not forced or model not overridden: %s", i, r.RequestBody)
		}
		for _, k := range []string{"stream", "stream_options", "model"} {
			delete(want, k)
			delete(have, k)
		}
		if !reflect.DeepEqual(want, have) {
			t.Errorf("replayed %d: body differs beyond stream/usage/model:\n got %s\nwant %s", i, r.RequestBody, q.Body)
		}
		off := time.Duration(r.Received - got[0].Received)
		e := (off - q.Offset).Abs()
		worst = max(worst, e)
		t.Logf("request %d %-22s conv %q turn %d: recorded at %7.1f ms, replayed at %7.1f ms (error %5.1f ms)",
			i, q.Endpoint, q.Conversation, q.Turn, ms(q.Offset), ms(off), ms(e))
		if e > arrivalTolerance {
			t.Errorf("request %d arrived at %v, recorded %v: off by %v (tolerance %v)", i, off, q.Offset, e, arrivalTolerance)
		}
	}
	t.Logf("worst arrival error %v", worst)
	checkTurns(t, reqs, got)

	// 4. A 10× slower variant: the conversation's turns wait for the slow
	// answers (closed loop), the independent requests keep their recorded
	// arrival times (open loop).
	simSlow := startProc(t, filepath.Join(bin, "vbsim"), []string{"--preset", "tiny", "--listen", "127.0.0.1:0", "--model", "sim-slow", "--speed", "0.1"}, `on (http://[0-9.:]+)`)
	capS := filepath.Join(dir, "capSlow")
	runTool(t, filepath.Join(bin, "vbreplay"), tr, "--capture", capS, "--upstream", simSlow.url, "--model", "sim-slow", "-q")
	slow := records(t, capS, true)
	if len(slow) != len(reqs) {
		t.Fatalf("slow variant: replayed %d requests, want %d", len(slow), len(reqs))
	}
	first := slow[0].Received // request 0 (turn 0) is sent on schedule
	delayed := 0
	for _, r := range slow {
		q := &reqs[r.Tags.Index]
		off := time.Duration(r.Received - first)
		t.Logf("slow variant: request %d conv %q turn %d: recorded at %7.1f ms, replayed at %7.1f ms", q.Index, q.Conversation, q.Turn, ms(q.Offset), ms(off))
		switch {
		case q.Conversation == "" || q.Turn == 0:
			if e := (off - q.Offset).Abs(); e > arrivalTolerance {
				t.Errorf("slow variant: independent request %d off its recorded arrival by %v", q.Index, e)
			}
		case off > q.Offset+arrivalTolerance:
			delayed++
		}
	}
	if delayed == 0 {
		t.Error("slow variant: no conversation turn waited for the slower answers")
	}
	byIndex := make([]*capture.Record, len(reqs))
	for _, r := range slow {
		byIndex[r.Tags.Index] = r
	}
	checkTurns(t, reqs, byIndex)

	// 5. --exact-output: every variant generates the recorded lengths.
	capC := filepath.Join(dir, "capC")
	runTool(t, filepath.Join(bin, "vbreplay"), tr, "--capture", capC, "--upstream", simB.url, "--model", "sim-b", "-q", "--exact-output")
	for i, r := range records(t, capC, true) {
		q := &reqs[i]
		b := bodyMap(t, r.RequestBody)
		n := json.Number(strconv.Itoa(int(q.OutputTokens)))
		if q.OutputTokens <= 0 || b["max_tokens"] != n || b["min_tokens"] != n || b["ignore_eos"] != true {
			t.Errorf("exact output %d: recorded %d tokens, body %s", i, q.OutputTokens, r.RequestBody)
		}
		if _, ok := bodyMap(t, q.Body)["max_completion_tokens"]; ok && b["max_completion_tokens"] != n {
			t.Errorf("exact output %d: max_completion_tokens not set: %s", i, r.RequestBody)
		}
		if r.CompletionTokens != q.OutputTokens {
			t.Errorf("exact output %d: generated %d tokens, recorded %d", i, r.CompletionTokens, q.OutputTokens)
		}
	}
}

// checkTurns checks the closed loop inside conversations: each turn arrived
// no earlier than the previous turn's end plus its think time (all on the
// embedded proxy's clock). got[i] is the record of trace request i.
func checkTurns(t *testing.T, reqs []trace.Request, got []*capture.Record) {
	t.Helper()
	prev := map[string]*capture.Record{}
	for i, r := range got {
		q := &reqs[i]
		if q.Conversation == "" {
			continue
		}
		if p := prev[q.Conversation]; p != nil {
			if earliest := p.Received + p.End + int64(q.ThinkTime); r.Received < earliest {
				t.Errorf("turn %d arrived %v before the previous answer's end + think time", q.Turn, time.Duration(earliest-r.Received))
			}
		}
		prev[q.Conversation] = r
	}
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func bodyMap(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("body %s: %v", b, err)
	}
	return m
}

// records returns the capture's POST records in arrival order; measured
// drops the replayer's preflight and warm-up requests.
func records(t *testing.T, dir string, measured bool) []*capture.Record {
	t.Helper()
	s, err := capture.Open(dir, capture.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var out []*capture.Record
	err = s.Records(func(r *capture.Record) error {
		if r.Method == "POST" && !(measured && r.Tags.Warmup) {
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortStableFunc(out, func(a, b *capture.Record) int { return int(a.Received - b.Received) })
	return out
}

// buildTools builds the named commands (once per test process) and returns
// the directory that holds them.
func buildTools(t *testing.T, names ...string) string {
	t.Helper()
	pkgs := make([]string, len(names))
	for i, n := range names {
		pkgs[i] = "cmd/" + n
	}
	return testbin.Dir(t, pkgs...)
}

func runTool(t *testing.T, path string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(path), strings.Join(args, " "), err, out)
	}
}

// proc is a server process started by startProc.
type proc struct {
	cmd  *exec.Cmd
	url  string
	mu   sync.Mutex
	log  bytes.Buffer
	done chan error
}

// startProc starts a server and waits for the line (on stdout or stderr)
// whose first regexp group is its base URL.
func startProc(t *testing.T, path string, args []string, ready string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(path, args...), done: make(chan error, 1)}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout, p.cmd.Stderr = pw, pw
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	re := regexp.MustCompile(ready)
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			p.mu.Lock()
			fmt.Fprintln(&p.log, sc.Text())
			p.mu.Unlock()
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case urls <- m[1]:
				default:
				}
			}
		}
	}()
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	select {
	case p.url = <-urls:
	case err := <-p.done:
		t.Fatalf("%s exited before it was ready: %v\n%s", filepath.Base(path), err, p.output())
	case <-time.After(30 * time.Second):
		t.Fatalf("%s not ready after 30 s:\n%s", filepath.Base(path), p.output())
	}
	return p
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// stop sends SIGINT and waits for a clean exit.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("%s: %v\n%s", p.cmd.Path, err, p.output())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not stop after SIGINT:\n%s", p.cmd.Path, p.output())
	}
}
