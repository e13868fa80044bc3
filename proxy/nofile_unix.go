//go:build unix

package proxy

import "syscall"

// maxStreams is how many client connections the proxy serves at once: each
// open stream holds two descriptors (client and upstream), and the capture
// (Badger) must still be able to open files. Running out of descriptors
// would make Badger's next file open fail, and Badger ends the process on
// that; past this limit fasthttp answers 503 instead. Go raises the soft
// RLIMIT_NOFILE to the hard limit at start-up, so this is usually large.
func maxStreams() int {
	var r syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r) != nil || r.Cur > 1<<22 {
		return 1 << 20
	}
	return max(int(r.Cur)-fdReserve, 2*64) / 2
}

// fdReserve is the descriptors kept for the capture's files, listeners,
// scrapes and logs.
const fdReserve = 256
