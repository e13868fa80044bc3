package capture

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// TestDiskReserve: below the reserve the writer counts records as lost
// with ErrDiskFull instead of committing (internal/reliability fills a
// real tmpfs; this forces it with an impossible reserve).
func TestDiskReserve(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the disk-space guard uses statfs (linux)")
	}
	dir := filepath.Join(t.TempDir(), "cap")
	st, err := Open(dir, Options{DiskReserve: 1 << 62})
	if err != nil {
		t.Fatal(err)
	}
	if !st.Writer().Put(&Record{Received: 1, Method: "POST", Path: "/v1/completions"}) {
		t.Fatal("Put refused")
	}
	err = st.Close()
	if !errors.Is(err, ErrDiskFull) {
		t.Fatalf("Close = %v; want ErrDiskFull", err)
	}
	ws := st.Writer().Stats()
	if ws.Lost != 1 || ws.Written != 0 || ws.Errors == 0 {
		t.Errorf("stats %+v; want lost 1, written 0, errors > 0", ws)
	}
	// A negative reserve turns the check off.
	dir2 := filepath.Join(t.TempDir(), "cap")
	st2, err := Open(dir2, Options{DiskReserve: -1})
	if err != nil {
		t.Fatal(err)
	}
	st2.Writer().Put(&Record{Received: 1})
	if err := st2.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestOpenRefusesForeignDir: a capture is never created among a user's
// files; an empty directory is fine.
func TestOpenRefusesForeignDir(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o600)
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrNotCapture) {
		t.Fatalf("Open(non-empty dir) = %v; want ErrNotCapture", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("Open wrote into the user's directory: %v", ents)
	}
	empty := t.TempDir()
	st, err := Open(empty, Options{})
	if err != nil {
		t.Fatalf("Open(empty dir): %v", err)
	}
	st.Close()
}
