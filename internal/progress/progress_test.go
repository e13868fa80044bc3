package progress

import (
	"bytes"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vbench/vbench/replay"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestPlainLines: off a terminal a task prints a line when what it says
// changed, never the same line twice, and its final line has no ETA.
func TestPlainLines(t *testing.T) {
	var out syncBuf
	d := New(&out) // a buffer is not a terminal
	if d.Live() {
		t.Fatal("a buffer is taken for a terminal")
	}
	clock := time.Unix(1000, 0)
	d.now = func() time.Time { return clock }
	task := d.Task("level 8 req/s")
	task.Update(10, 100, "sent 10/50", 20*time.Second)
	task.Update(10, 100, "sent 10/50", 20*time.Second) // the same: not printed again
	clock = clock.Add(5 * time.Second)
	task.Update(30, 100, "sent 30/50", 15*time.Second)
	d.Printf("a permanent line")
	task.Done("level 8 req/s done: sent 50/50 ok 50")
	task.Update(50, 100, "late update", time.Second) // after Done: ignored
	d.Close()
	want := "level 8 req/s: sent 10/50 | ETA 20s\nlevel 8 req/s: sent 30/50 | ETA 15s\na permanent line\nlevel 8 req/s done: sent 50/50 ok 50\n"
	if out.String() != want {
		t.Errorf("plain output:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestFormatETA(t *testing.T) {
	for d, want := range map[time.Duration]string{
		400 * time.Millisecond: "0s", 45 * time.Second: "45s", 125 * time.Second: "2m05s", 3800 * time.Second: "1h03m",
	} {
		if got := FormatETA(d); got != want {
			t.Errorf("FormatETA(%v) = %q; want %q", d, got, want)
		}
	}
}

// TestReplayAdapter: phases become tasks named after the level, their
// final account replaces the live line, and a finished phase says no ETA.
func TestReplayAdapter(t *testing.T) {
	var out syncBuf
	d := NewPlain(&out)
	on := Replay(d, "sim-paged ", "  ")
	on(replay.Progress{Kind: "warm-up", Label: "8", Rate: 8, Planned: 10, Sent: 4, Finished: 2, LagP99: 0.0002, Norm: "norm latency -", Window: 2 * time.Second, Left: 3 * time.Second})
	on(replay.Progress{Kind: "level", Label: "8", Rate: 8, Planned: 40, Sent: 40, Finished: 30, Draining: true, CutIn: 9 * time.Second, LagP99: math.NaN(), Norm: "norm latency 0.0041 s/token", Left: 2 * time.Second})
	lr := replay.LevelResult{Label: "8"}
	on(replay.Progress{Kind: "warm-up", Label: "8", Final: &lr, Line: "warm-up 8 req/s done: sent 10/10 ok 10"})
	on(replay.Progress{Kind: "level", Label: "8", Final: &lr, Line: "level 8 req/s done: sent 40/40 ok 40\nWARNING: level 8 req/s: lag"})
	d.Close()
	got := out.String()
	for _, want := range []string{
		"  sim-paged warm-up 8 req/s: sent 4/10, 2 in flight | lag p99 200µs | norm latency - | 0 failed | ETA 3s\n",
		"  sim-paged level 8 req/s: draining: 10 in flight (cut in 9s) | norm latency 0.0041 s/token | 0 failed | ETA 2s\n",
		"  sim-paged warm-up 8 req/s done: sent 10/10 ok 10\n",
		"  sim-paged level 8 req/s done: sent 40/40 ok 40\n  sim-paged WARNING: level 8 req/s: lag\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Index(got, "warm-up 8 req/s done") > strings.Index(got, "level 8 req/s done") {
		t.Errorf("warm-up's account after the level's:\n%s", got)
	}
}
