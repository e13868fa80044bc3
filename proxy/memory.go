package proxy

import (
	"sync"
	"sync/atomic"
	"time"
)

// budget is the proxy's memory budget (Config.MaxMemory): the bytes it
// may hold for request bodies being read and forwarded, for the body
// copies of the records of open exchanges and for each open client
// connection (connCost). Reservations past it wait for room (back-pressure
// on request bodies) or are refused (a 503 for a body or a connection; a
// record stops copying body bytes). The capture writer's queue has its own
// bound (capture.Options.QueueBytes), which vbproxy takes out of the same
// --max-memory.
type budget struct {
	mu    sync.Mutex
	max   int64 // ≤ 0: unlimited
	used  int64
	peak  int64
	freed chan struct{} // closed and replaced on every release

	refused atomic.Int64 // reservations refused (bodies, connections)
	skipped atomic.Int64 // record body bytes not copied for want of room
}

func newBudget(max int64) *budget { return &budget{max: max, freed: make(chan struct{})} }

// connCost is what one open client connection is reckoned to hold:
// fasthttp's read (8 KiB) and write (4 KiB) buffers, the request context
// and the serving goroutine's stack.
const connCost = 32 << 10

// try reserves n bytes if there is room now.
func (b *budget) try(n int64) bool {
	if n <= 0 {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.max > 0 && b.used+n > b.max {
		return false
	}
	b.used += n
	b.peak = max(b.peak, b.used)
	return true
}

// wait reserves n bytes, waiting up to d for room; false when there was
// none in time or n can never fit.
func (b *budget) wait(n int64, d time.Duration) bool {
	if b.max > 0 && n > b.max {
		return false
	}
	var timeout <-chan time.Time
	for {
		b.mu.Lock()
		if b.max <= 0 || b.used+n <= b.max {
			b.used += n
			b.peak = max(b.peak, b.used)
			b.mu.Unlock()
			return true
		}
		freed := b.freed
		b.mu.Unlock()
		if timeout == nil {
			if d <= 0 {
				return false
			}
			t := time.NewTimer(d)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-freed:
		case <-timeout:
			return false
		}
	}
}

// release gives back n reserved bytes.
func (b *budget) release(n int64) {
	if n <= 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	close(b.freed)
	b.freed = make(chan struct{})
	b.mu.Unlock()
}

// state returns the bytes reserved now and at most so far.
func (b *budget) state() (used, peak int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used, b.peak
}
