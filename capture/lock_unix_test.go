//go:build unix

package capture

import (
	"errors"
	"os"
	"syscall"
	"testing"
	"time"
)

// TestLockSharedWaitsOutABriefHolder: an exclusive lock released within
// lockPatience (a child between fork and exec still sharing a writer's
// directory) delays lockShared; one held longer is errLocked.
func TestLockSharedWaitsOutABriefHolder(t *testing.T) {
	dir := t.TempDir()
	hold := func() *os.File {
		f, err := os.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			t.Fatal(err)
		}
		return f
	}
	brief := hold()
	go func() {
		time.Sleep(50 * time.Millisecond) // the brief holder
		brief.Close()
	}()
	start := time.Now()
	release, err := lockShared(dir)
	if err != nil {
		t.Fatalf("lockShared with a holder that lets go after 50 ms: %v", err)
	}
	// A lower bound only: it had to wait for the holder (the lock is
	// released inside Close, so a signal sent after it could come late).
	if d := time.Since(start); d < 40*time.Millisecond {
		t.Errorf("lockShared returned after %v, while the exclusive lock was held", d)
	}
	release()

	f := hold()
	defer f.Close()
	start = time.Now()
	if _, err := lockShared(dir); !errors.Is(err, errLocked) {
		t.Fatalf("lockShared with a writer holding on: %v; want errLocked", err)
	}
	if d := time.Since(start); d < lockPatience {
		t.Errorf("gave up after %v; want to try for %v", d, lockPatience)
	}
}
