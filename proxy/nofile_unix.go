//go:build unix

package proxy

import "syscall"

// fdCapacity is how many connections, client and upstream together, the
// proxy keeps open at once: each holds a descriptor, and the capture
// (Badger) must still be able to open files. Running out of descriptors
// would make Badger's next file open fail, and Badger ends the process on
// that; past this limit a new client connection gets a 503 instead (a
// slow client still sending its headers holds one descriptor, an exchange
// being forwarded two). Go raises the soft RLIMIT_NOFILE to the hard limit
// at start-up, so this is usually large.
func fdCapacity() int {
	var r syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r) != nil || r.Cur > 1<<22 {
		return 1 << 21
	}
	return max(int(r.Cur)-fdReserve, 128)
}

// fdReserve is the descriptors kept for the capture's files, listeners,
// scrapes and logs.
const fdReserve = 256
