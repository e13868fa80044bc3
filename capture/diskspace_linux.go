//go:build linux

package capture

import "syscall"

// freeBytes returns the bytes an unprivileged writer may still use on the
// file system holding dir; ok is false when it cannot tell.
func freeBytes(dir string) (free int64, ok bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, false
	}
	return int64(st.Bavail) * int64(st.Bsize), true
}

// fsBytes returns the total size of the file system holding dir.
func fsBytes(dir string) (total int64, ok bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, false
	}
	return int64(st.Blocks) * int64(st.Bsize), true
}
