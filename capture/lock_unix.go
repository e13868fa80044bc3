//go:build unix

package capture

import (
	"errors"
	"os"
	"syscall"
	"time"
)

// errLocked is lockShared's error when a writer holds the directory.
var errLocked = errors.New("locked by a writer")

// lockShared takes the shared lock Badger's read-only open takes on the
// capture directory (flock LOCK_SH, never blocking): it fails while a
// writer (LOCK_EX) holds the capture, and keeps a writer out while held.
// Taking it writes nothing.
//
// A lock found held is tried again for up to lockPatience: a process that
// starts a child (os/exec) while a writer's directory is open shares that
// open directory with the child until the child's exec closes it, so for
// those milliseconds a capture that its writer has just closed still looks
// held (a test that reopened its capture while others started processes
// saw "in use" under load). A real writer holds the lock far longer.
func lockShared(dir string) (release func(), err error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(lockPatience)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, err
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, errLocked
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// lockPatience is how long lockShared tries a held lock again.
const lockPatience = time.Second
