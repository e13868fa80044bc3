//go:build !linux

package capture

// freeBytes cannot tell on this system: the disk-space guard is off.
func freeBytes(string) (int64, bool) { return 0, false }

// fsBytes cannot tell on this system.
func fsBytes(string) (int64, bool) { return 0, false }
