// Package progress shows what a long command is doing, the same way in
// every vbench command: one live line per task (a replayer phase, a study
// trial), with a bar and an ETA, updated in place on a terminal; plain
// lines, each printed only when it says something new, anywhere else (a
// log file, CI). Permanent lines (a finished phase, a warning) go through
// the Display too, so on a terminal they print above the live bars instead
// of through them.
//
// The live lines on a terminal are drawn by github.com/vbauerster/mpb/v8
// (several bars at once, lines printed above them); docs/architecture.md
// says why it was chosen.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// Display is where a command's progress goes. Its methods are safe for
// concurrent use; a nil *Display discards everything.
type Display struct {
	mu    sync.Mutex
	w     io.Writer
	bars  *mpb.Progress // nil: plain lines
	tasks map[*Task]bool
	now   func() time.Time
	done  bool // Close was called: lines go straight to w
}

// IsTerminal reports whether w is a terminal that can redraw a line in
// place (a character device, and TERM is not "dumb").
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("TERM") == "dumb" {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// New returns a Display writing to w: live bars when w is a terminal
// (IsTerminal), plain lines otherwise.
func New(w io.Writer) *Display {
	return newDisplay(w, IsTerminal(w))
}

// NewPlain returns a Display that writes plain lines to w, terminal or not.
func NewPlain(w io.Writer) *Display { return newDisplay(w, false) }

func newDisplay(w io.Writer, live bool) *Display {
	d := &Display{w: w, tasks: map[*Task]bool{}, now: time.Now}
	if live {
		d.bars = mpb.New(mpb.WithOutput(w), mpb.WithWidth(28), mpb.WithRefreshRate(250*time.Millisecond), mpb.WithAutoRefresh())
	}
	return d
}

// Live reports whether the display redraws lines in place.
func (d *Display) Live() bool { return d != nil && d.bars != nil }

// Write prints p as permanent lines (io.Writer): above the live bars on a
// terminal.
func (d *Display) Write(p []byte) (int, error) {
	if d == nil {
		return len(p), nil
	}
	d.mu.Lock()
	live := d.bars != nil && !d.done
	d.mu.Unlock()
	if live {
		if n, err := d.bars.Write(p); err == nil {
			return n, nil
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.w.Write(p)
}

// Printf prints one permanent line.
func (d *Display) Printf(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	if !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	d.Write([]byte(s))
}

// Close ends every task still open and stops redrawing. Call it before
// the command exits.
func (d *Display) Close() {
	if d == nil {
		return
	}
	d.mu.Lock()
	if d.done {
		d.mu.Unlock()
		return
	}
	var open []*Task
	for t := range d.tasks {
		open = append(open, t)
	}
	d.mu.Unlock()
	for _, t := range open {
		t.end()
	}
	if d.bars != nil {
		d.bars.Wait()
	}
	d.mu.Lock()
	d.done = true
	d.mu.Unlock()
}

// Task is one live line: a name, a bar of done out of total, what it is
// doing, and the time it still needs.
type Task struct {
	d    *Display
	name string
	bar  *mpb.Bar

	mu     sync.Mutex
	status string    // what is shown after the bar
	until  time.Time // when the task expects to end (zero: unknown); a live ETA counts down to it
	last   string    // the plain line printed last
	ended  bool
}

// Task starts a live line called name (e.g. "level 8 req/s").
func (d *Display) Task(name string) *Task {
	if d == nil {
		return nil
	}
	t := &Task{d: d, name: name}
	if d.bars != nil {
		t.bar = d.bars.New(0, mpb.BarStyle().Lbound("[").Rbound("]"),
			mpb.PrependDecorators(decor.Name(name+" ", decor.WCSyncSpaceR)),
			mpb.AppendDecorators(decor.Any(func(decor.Statistics) string { return t.tail() })),
			mpb.BarRemoveOnComplete())
	}
	d.mu.Lock()
	d.tasks[t] = true
	d.mu.Unlock()
	return t
}

// tail is what follows the bar: the status and the ETA.
func (t *Task) tail() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.until.IsZero() {
		return t.status + " | ETA " + FormatETA(max(t.until.Sub(t.d.now()), 0))
	}
	return t.status
}

// Update sets how much of the task is done (done out of total, any unit)
// and its status; eta is the time it still needs (0: unknown, not shown).
// On a terminal the line redraws; in plain mode it prints
// "name: status | ETA ..." when that text changed since the last one.
func (t *Task) Update(done, total int64, status string, eta time.Duration) {
	if t == nil {
		return
	}
	t.mu.Lock()
	if t.ended {
		t.mu.Unlock()
		return
	}
	t.status, t.until = status, time.Time{}
	if eta > 0 {
		t.until = t.d.now().Add(eta)
	}
	t.mu.Unlock()
	if t.bar != nil {
		if total > 0 {
			t.bar.SetTotal(total, false)
			t.bar.SetCurrent(min(done, total))
		}
		return
	}
	line := t.name + ": " + t.tail()
	t.mu.Lock()
	if line == t.last {
		t.mu.Unlock()
		return
	}
	t.last = line
	t.mu.Unlock()
	t.d.Printf("%s", line)
}

// Done ends the live line and prints final in its place (a permanent
// line; none when final is empty). There is no ETA in a finished line.
func (t *Task) Done(final string) {
	if t == nil {
		return
	}
	t.end()
	if final != "" {
		t.d.Printf("%s", final)
	}
}

func (t *Task) end() {
	t.mu.Lock()
	if t.ended {
		t.mu.Unlock()
		return
	}
	t.ended = true
	t.mu.Unlock()
	if t.bar != nil {
		t.bar.Abort(true) // drop the live line
		t.bar.Wait()
	}
	t.d.mu.Lock()
	delete(t.d.tasks, t)
	t.d.mu.Unlock()
}

// FormatETA formats a remaining time for people: "45s", "2m05s", "1h03m".
func FormatETA(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}
