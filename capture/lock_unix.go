//go:build unix

package capture

import (
	"errors"
	"os"
	"syscall"
)

// errLocked is lockShared's error when a writer holds the directory.
var errLocked = errors.New("locked by a writer")

// lockShared takes the shared lock Badger's read-only open takes on the
// capture directory (flock LOCK_SH, never blocking): it fails while a
// writer (LOCK_EX) holds the capture, and keeps a writer out while held.
// Taking it writes nothing.
func lockShared(dir string) (release func(), err error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errLocked
		}
		return nil, err
	}
	return func() { f.Close() }, nil
}
