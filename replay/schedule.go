package replay

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"syscall"
	"time"
)

// The schedule of a level is a pure function of absolute state: request n
// is due at start + offset(n)·scale, where scale maps trace time to wall
// time. The pacer never sleeps "one gap": it computes how long is left
// until the next due time from the current clock, so a late wake-up or a
// slow send never shifts the requests after it (no drift).

// Scale returns the factor that maps trace offsets to wall-clock time when a
// trace whose offsets have mean rate meanRate (requests/s) is played at rate
// requests/s and speed times its pace. rate 0 means the trace's own pace;
// speed 0 means 1. A synthesized trace has meanRate 1, so Scale(1, 10, 1) is
// 0.1: a rate-10 run is the rate-1 run ten times faster.
func Scale(meanRate, rate, speed float64) (float64, error) {
	if speed == 0 {
		speed = 1
	}
	switch {
	case math.IsNaN(speed) || math.IsInf(speed, 0) || speed < 0:
		return 0, fmt.Errorf("replay: speed %v is not a positive number", speed)
	case math.IsNaN(rate) || math.IsInf(rate, 0) || rate < 0:
		return 0, fmt.Errorf("replay: rate %v is not a positive number", rate)
	}
	if rate == 0 {
		return 1 / speed, nil
	}
	if !(meanRate > 0) || math.IsInf(meanRate, 0) {
		return 0, fmt.Errorf("replay: the trace header's mean rate %v is not positive, so --rate cannot rescale it (use --speed)", meanRate)
	}
	return meanRate / rate / speed, nil
}

// ScaleOffset returns offset·scale rounded to the nanosecond.
func ScaleOffset(offset time.Duration, scale float64) time.Duration {
	return time.Duration(math.Round(float64(offset) * scale))
}

// Due returns the absolute time at which a request with the given trace
// offset is due in a level that started at start.
func Due(start time.Time, offset time.Duration, scale float64) time.Time {
	return start.Add(ScaleOffset(offset, scale))
}

// Pace returns how long the pacer still has to wait, elapsed after the
// level's start, before sending a request whose scaled offset is at; zero
// or less means "send now". Pace(4.9s, 5s) = 100ms.
func Pace(elapsed, at time.Duration) time.Duration { return at - elapsed }

// CutIndex returns how many of the requests (sorted by offset) fall inside
// a level of the given duration at the given scale: those whose scaled
// offset is strictly less than duration. duration 0 keeps them all.
func CutIndex(offsets func(i int) time.Duration, n int, scale float64, duration time.Duration) int {
	if duration <= 0 {
		return n
	}
	lo, hi := 0, n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if ScaleOffset(offsets(m), scale) < duration {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// Pacing modes (Config.Pacer): how the pacer waits for a due time.
const (
	// PacerPrecise sleeps on a runtime timer until about a millisecond
	// before the due time, then in the nanosleep system call for the rest.
	// The runtime's timers wake up as much as a millisecond late on Linux
	// (the poller waits in whole milliseconds); nanosleep is accurate to
	// tens of microseconds and, unlike spinning, costs no CPU.
	PacerPrecise = "precise"
	// PacerTimer sleeps on runtime timers only (accurate to ~1 ms; the
	// only mode that follows testing/synctest's fake clock).
	PacerTimer = "timer"
	// PacerSpin sleeps on a timer, then spins (yielding the processor)
	// for the last Config.Spin: the most accurate on an idle core, a
	// burden on a busy one.
	PacerSpin = "spin"
)

// coarseMargin is how long before a due time the precise pacer hands over
// from the runtime timer to nanosleep: the timer's worst lateness.
const coarseMargin = 1100 * time.Microsecond

// waiter sleeps until absolute due times with one reusable timer.
type waiter struct {
	timer *time.Timer
	mode  string
	spin  time.Duration
}

func newWaiter(mode string, spin time.Duration) *waiter {
	t := time.NewTimer(time.Hour)
	t.Stop()
	if mode == PacerSpin && spin <= 0 {
		spin = time.Millisecond
	}
	return &waiter{timer: t, mode: mode, spin: spin}
}

// until returns when due has come (nil) or ctx is done (its error).
func (w *waiter) until(ctx context.Context, due time.Time) error {
	margin := time.Duration(0)
	switch w.mode {
	case PacerPrecise:
		margin = coarseMargin
	case PacerSpin:
		margin = w.spin
	}
	if d := time.Until(due) - margin; d > 0 {
		w.timer.Reset(d)
		select {
		case <-w.timer.C:
		case <-ctx.Done():
			w.timer.Stop()
			return ctx.Err()
		}
	}
	switch w.mode {
	case PacerPrecise:
		for d := time.Until(due); d > 0; d = time.Until(due) {
			nanosleep(d)
		}
	case PacerSpin:
		for i := 0; time.Now().Before(due); i++ {
			if i&63 == 63 && ctx.Err() != nil {
				return ctx.Err()
			}
			runtime.Gosched()
		}
	}
	return ctx.Err()
}

func (w *waiter) stop() { w.timer.Stop() }

// nanosleep blocks the calling thread for d (EINTR ends it early; the
// caller loops on the clock).
func nanosleep(d time.Duration) {
	ts := syscall.NsecToTimespec(int64(d))
	syscall.Nanosleep(&ts, nil)
}
