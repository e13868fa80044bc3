//go:build unix

package capture

import (
	"os"
	"syscall"
)

// dirUnlinked reports whether the open directory f has been removed (its
// link count is 0); ok is false when it cannot tell.
func dirUnlinked(f *os.File) (unlinked, ok bool) {
	fi, err := f.Stat()
	if err != nil {
		return false, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return false, false
	}
	return st.Nlink == 0, true
}
