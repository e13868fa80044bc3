package capture

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// closeWithin runs s.Close and fails the test if it has not returned
// within bound (Close once waited forever for Badger to flush a memtable
// into a removed directory).
func closeWithin(t *testing.T, s *Store, bound time.Duration) (time.Duration, error) {
	t.Helper()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- s.Close() }()
	select {
	case err := <-done:
		return time.Since(start), err
	case <-time.After(bound):
		t.Fatalf("Close did not return within %v (stats %+v)", bound, s.Writer().Stats())
		return 0, nil
	}
}

// TestDirGoneWhileRecording: the capture directory is removed, replaced or
// moved away while the writer runs, with and without records put after.
// The writer commits nothing more (each item counted lost, the reason in
// Stats and the log, Put still never blocks), Close returns at once with
// an error that says what happened and what it cost, and nothing is
// written into a directory made later at the same path. Before the fix
// Close never returned: Badger retried its memtable flush into the missing
// directory once a second, forever, and the records put after the removal
// were counted as written.
func TestDirGoneWhileRecording(t *testing.T) {
	for _, tc := range []struct {
		name  string
		after int // records put after the directory went
		gone  func(t *testing.T, dir string) (moved string)
		want  error
	}{
		{"removed", 30, removeDir, ErrDirRemoved},
		{"removed, Close at once", 0, removeDir, ErrDirRemoved},
		{"replaced", 30, func(t *testing.T, dir string) string {
			removeDir(t, dir)
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			return ""
		}, ErrDirRemoved},
		{"moved", 30, func(t *testing.T, dir string) string {
			to := dir + ".moved"
			if err := os.Rename(dir, to); err != nil {
				t.Fatal(err)
			}
			return to
		}, ErrDirMoved},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs syncBuffer
			dir := filepath.Join(t.TempDir(), "cap")
			s := openTest(t, dir, Options{FlushInterval: time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			w := s.Writer()
			const before = 50
			for i := range before {
				w.Put(&Record{Received: int64(i + 1), Method: "POST", Path: "/v1/completions"})
			}
			w.PutSample(Sample{At: 1, Name: MetricRunning, Value: 1})
			waitFor(t, func() bool { st := w.Stats(); return st.Written == before && st.Samples == 1 })
			if err := s.PutMeta(Meta{Tool: "test"}); err != nil {
				t.Fatal(err)
			}
			moved := tc.gone(t, dir)
			for i := range tc.after {
				if !w.Put(&Record{Received: int64(before + i + 1)}) {
					t.Fatal("Put refused a record after the directory went (the queue has room)")
				}
			}
			w.PutSample(Sample{At: 2, Name: MetricRunning, Value: 2})
			if tc.after > 0 {
				waitFor(t, func() bool { return w.Stats().Lost == uint64(tc.after)+1 })
				if st := w.Stats(); !strings.Contains(st.LastError, tc.want.Error()) || st.Written != before {
					t.Errorf("stats while recording %+v; want last_error %q and written still %d", st, tc.want, before)
				}
			}
			took, err := closeWithin(t, s, 30*time.Second)
			t.Logf("Close after %v: %v", took, err)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Close = %v; want %v", err, tc.want)
			}
			lost := fmt.Sprintf("%d records lost (%d committed before went with the directory, %d accepted after were not stored", before+tc.after, before, tc.after)
			if tc.want == ErrDirMoved {
				lost = fmt.Sprintf("%d records lost (accepted after it and not stored); the %d committed before are in the directory where it went", tc.after, before)
			}
			if !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), lost) {
				t.Errorf("Close = %v\nwant it to name %s and say %q", err, dir, lost)
			}
			if st := w.Stats(); st.Written != before || st.Lost != uint64(tc.after)+1 || st.LostSamples != 1 {
				t.Errorf("final stats %+v; want %d written, %d lost (1 sample)", st, before, tc.after+1)
			}
			if n := strings.Count(logs.String(), "level=ERROR msg=\"capture: "+dir+" was "+tc.want.Error()); n != 1 {
				t.Errorf("the log says it %d times, want once:\n%s", n, logs.String())
			}
			if err2 := s.Close(); err2 != err {
				t.Errorf("second Close = %v; want the first's error", err2)
			}
			if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
				t.Errorf("Close wrote %d files (%s, ...) into the directory made at the old path", len(ents), ents[0].Name())
			}
			if moved != "" {
				// What was committed before the move is in the moved
				// directory, read as a capture whose writer was killed.
				// Badger, never closed, still holds its lock until this
				// process exits: the files are read through hard links
				// in a directory of their own (reading never writes).
				links := filepath.Join(t.TempDir(), "links")
				linkFiles(t, moved, links)
				r := openTest(t, links, Options{ReadOnly: true})
				defer r.Close()
				if got := len(readAll(t, r)); got != before {
					t.Errorf("the moved capture holds %d records; want the %d committed", got, before)
				}
			}
		})
	}
}

// linkFiles hard-links the files of dir into a new directory to.
func linkFiles(t *testing.T, dir, to string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(to, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if err := os.Link(filepath.Join(dir, e.Name()), filepath.Join(to, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
}

func removeDir(t *testing.T, dir string) string {
	t.Helper()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	return ""
}

// TestCloseContextBound: when Badger's Close does not return (here it is
// held), CloseContext stops waiting once its context ends and says the
// capture is left as a killed writer leaves it; what was committed is
// there when Badger is done.
func TestCloseContextBound(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cap")
	s := openTest(t, dir, Options{FlushInterval: time.Millisecond})
	for i := range 20 {
		s.Writer().Put(&Record{Received: int64(i + 1)})
	}
	entered, release := make(chan struct{}), make(chan struct{})
	closeDB := s.closeDB
	s.closeDB = func() error { close(entered); <-release; return closeDB() }
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.CloseContext(ctx) }()
	select {
	case <-entered:
	case <-time.After(30 * time.Second):
		t.Fatal("Close did not reach Badger's close within 30 s")
	}
	cancel(errors.New("second signal"))
	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("CloseContext did not return within 30 s of its context's end")
	}
	if !errors.Is(err, ErrCloseAbandoned) || !strings.Contains(err.Error(), "stopped waiting for Badger's close (second signal)") || !strings.Contains(err.Error(), "left as a killed writer leaves it") {
		t.Errorf("CloseContext = %v; want it to say it stopped waiting, why, and what is left", err)
	}
	close(release)
	waitFor(t, s.db.IsClosed)
	r := openTest(t, dir, Options{ReadOnly: true})
	defer r.Close()
	if got := len(readAll(t, r)); got != 20 {
		t.Errorf("read %d records after Badger closed; want 20", got)
	}
}
