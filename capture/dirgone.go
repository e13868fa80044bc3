package capture

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"time"
)

/*
A capture directory removed (or moved away) while its writer runs.

Badger writes its tables by path: a memtable flush creates DIR/NNNNNN.sst.
With DIR gone, the flush fails and Badger retries it forever, once a
second (db.go flushMemtable), and DB.Close waits for that flush: a process
closing the store hung, ignoring SIGINT/SIGTERM, until kill -9. Meanwhile
commits still succeeded (into the open, unlinked write-ahead log and value
log), so the writer counted as written records that were already gone.

So the store holds the directory open and checks, before every commit and
while closing, that its path still names that directory (stat + SameFile).
Once it does not:
  - the writer commits nothing more: every item is counted lost, and the
    error (Stats.LastError, the log, Close) says what happened;
  - Close neither marks the capture closed nor calls Badger's Close (it
    would never return, or write tables into a new directory made at the
    same path); Badger's goroutines are left behind, idle, and its
    messages muted: the process is expected to exit soon after;
  - a directory whose link count is 0 (fstat of the held descriptor) was
    removed: what was committed is gone with it. Otherwise it was moved or
    replaced: what was committed is in the moved directory, as a killed
    writer leaves it (readable, recovered on a private copy, once the
    process has exited: Badger, never closed, holds its lock till then).
*/

// ErrDirRemoved is wrapped by the writer's error (Stats.LastError, the log,
// Close) when the capture directory was removed while the store was open:
// what it held is gone with it, and every item after is counted as lost.
var ErrDirRemoved = errors.New("removed while recording")

// ErrDirMoved is wrapped by the writer's error when the capture directory
// was moved away or replaced while the store was open (Badger writes by
// path): every item after is counted as lost; what was committed before is
// in the moved directory.
var ErrDirMoved = errors.New("moved away or replaced while recording")

// dirState is what checkDir found; the first finding other than dirHere
// sticks (a directory made later at the same path is another one).
const (
	dirHere int32 = iota
	dirRemoved
	dirMoved
)

// goneGrace is how long Close still waits for the writer (or Badger) once
// the directory is gone: the writer then loses its queue without calling
// Badger, so it ends at once unless Badger holds it.
const goneGrace = 5 * time.Second

// dirPoll is how often a waiting Close checks the directory.
const dirPoll = 100 * time.Millisecond

// checkDir reports whether the capture directory is still at its path.
// One stat per call until it finds it gone; from then on it says so
// without looking.
func (s *Store) checkDir() int32 {
	if st := s.dirState.Load(); st != dirHere || s.dirf == nil {
		return st
	}
	fi, err := os.Stat(s.dir)
	if err == nil && os.SameFile(fi, s.dirInfo) {
		return dirHere
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
		return dirHere // cannot tell (a permission change): go on as before
	}
	st := dirRemoved
	if unlinked, ok := dirUnlinked(s.dirf); ok && !unlinked {
		st = dirMoved
	}
	if s.dirState.CompareAndSwap(dirHere, st) {
		s.mute.Store(true) // Badger's retries would log every second
		s.log.Error(s.goneError(false).Error())
	}
	return s.dirState.Load()
}

// goneError says what the directory's disappearance cost. final: Close
// is saying it, with the writer's final counts.
func (s *Store) goneError(final bool) error {
	var st WriterStats
	if s.writer != nil {
		st = s.writer.Stats()
	}
	lost := st.Lost - st.LostSamples // records: samples are counted apart
	queued := ""
	if st.Queued > 0 {
		queued = fmt.Sprintf(", %d more were still queued", st.Queued)
	}
	if s.dirState.Load() == dirMoved {
		if !final {
			return fmt.Errorf("capture: %s was %w (Badger writes by path): from now on every record is counted as lost, not stored; the %d committed are in the directory where it went (readable, as a capture whose writer was killed, once this process has exited); stop this run and record into a new capture directory", s.dir, ErrDirMoved, st.Written)
		}
		return fmt.Errorf("capture: %s was %w (Badger writes by path): %d records lost (accepted after it and not stored%s); the %d committed before are in the directory where it went, readable (as a capture whose writer was killed) once this process has exited", s.dir, ErrDirMoved, lost, queued, st.Written)
	}
	if !final {
		return fmt.Errorf("capture: %s was %w: the %d records committed to it are gone with it, and from now on every record is counted as lost, not stored; stop this run and record into a new capture directory", s.dir, ErrDirRemoved, st.Written)
	}
	return fmt.Errorf("capture: %s was %w: %d records lost (%d committed before went with the directory, %d accepted after were not stored%s); record again into a new capture directory", s.dir, ErrDirRemoved, st.Written+lost, st.Written, lost, queued)
}

// errGone is await's answer when the directory went away and what it
// waited for did not end within goneGrace.
var errGone = errors.New("capture directory gone")

// await waits until done is closed, ctx ends (its error) or the capture
// directory has been gone for goneGrace (errGone).
func (s *Store) await(ctx context.Context, done <-chan struct{}) error {
	select {
	case <-done:
		return nil
	default:
	}
	tick := time.NewTicker(dirPoll)
	defer tick.Stop()
	var grace <-chan time.Time
	for {
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			if grace == nil && s.checkDir() != dirHere {
				grace = time.After(goneGrace)
			}
		case <-grace:
			return errGone
		}
	}
}
