package replay

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

func TestScale(t *testing.T) {
	tests := []struct {
		meanRate, rate, speed float64
		want                  float64
		wantErr               bool
	}{
		{meanRate: 1, rate: 10, speed: 1, want: 0.1},     // synth trace at 10 req/s
		{meanRate: 1, rate: 1, speed: 0, want: 1},        // speed 0 means 1
		{meanRate: 5, rate: 10, speed: 1, want: 0.5},     // recorded at 5/s, asked 10/s
		{meanRate: 2, rate: 0, speed: 1, want: 1},        // own pace
		{meanRate: 2, rate: 0, speed: 4, want: 0.25},     // own pace, 4x faster
		{meanRate: 1, rate: 10, speed: 2, want: 0.05},    // speed multiplies pace
		{meanRate: 0, rate: 0, speed: 1, want: 1},        // no mean rate needed at own pace
		{meanRate: 0, rate: 10, speed: 1, wantErr: true}, // cannot rescale
		{meanRate: 1, rate: -1, speed: 1, wantErr: true},
		{meanRate: 1, rate: 1, speed: -2, wantErr: true},
	}
	for _, tt := range tests {
		got, err := Scale(tt.meanRate, tt.rate, tt.speed)
		if (err != nil) != tt.wantErr || (err == nil && got != tt.want) {
			t.Errorf("Scale(%v, %v, %v) = %v, %v; want %v (error %v)", tt.meanRate, tt.rate, tt.speed, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestDueAndPace(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		offset time.Duration
		scale  float64
		want   time.Duration // due − start
	}{
		{0, 0.1, 0},
		{time.Second, 0.1, 100 * time.Millisecond},
		{10 * time.Second, 0.1, time.Second},
		{3 * time.Nanosecond, 0.5, 2 * time.Nanosecond}, // 1.5 ns rounds half away from zero
		{time.Hour * 24 * 30, 0.001, 43*time.Minute + 12*time.Second},
		{1234567891, 1, 1234567891},
	}
	for _, tt := range tests {
		if got := Due(start, tt.offset, tt.scale).Sub(start); got != tt.want {
			t.Errorf("Due(start, %v, %v) = start+%v; want start+%v", tt.offset, tt.scale, got, tt.want)
		}
	}
	paces := []struct{ elapsed, at, want time.Duration }{
		{4900 * time.Millisecond, 5 * time.Second, 100 * time.Millisecond},
		{5 * time.Second, 5 * time.Second, 0},
		{6 * time.Second, 5 * time.Second, -time.Second}, // late: send now, lag is data
	}
	for _, tt := range paces {
		if got := Pace(tt.elapsed, tt.at); got != tt.want {
			t.Errorf("Pace(%v, %v) = %v; want %v", tt.elapsed, tt.at, got, tt.want)
		}
	}
}

func TestCutIndex(t *testing.T) {
	offs := []time.Duration{0, time.Second, 2 * time.Second, 3 * time.Second, 10 * time.Second}
	at := func(i int) time.Duration { return offs[i] }
	tests := []struct {
		scale    float64
		duration time.Duration
		want     int
	}{
		{1, 0, 5},               // no duration: all
		{1, 2 * time.Second, 2}, // due strictly before the end
		{1, 2*time.Second + 1, 3},
		{0.1, 300 * time.Millisecond, 3}, // at rate 10 the 3s request is due at 300ms: cut
		{0.1, time.Second, 4},
		{0.1, time.Hour, 5},
		{1, 1, 1}, // only the request at 0
	}
	for _, tt := range tests {
		if got := CutIndex(at, len(offs), tt.scale, tt.duration); got != tt.want {
			t.Errorf("CutIndex(scale %v, duration %v) = %d; want %d", tt.scale, tt.duration, got, tt.want)
		}
	}
}

// TestWaiterSynctest: in a bubble the fake clock makes every wake-up exact,
// so the waiter must hit every due time to the nanosecond and never drift.
func TestWaiterSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWaiter(PacerTimer, 0)
		start := time.Now()
		for i, at := range []time.Duration{0, time.Millisecond, time.Millisecond, 7 * time.Millisecond, time.Second} {
			due := start.Add(at)
			if err := w.until(context.Background(), due); err != nil {
				t.Fatal(err)
			}
			if now := time.Now(); !now.Equal(due) {
				t.Errorf("wake %d at start+%v; want start+%v", i, now.Sub(start), at)
			}
		}
		// A due time in the past returns at once.
		before := time.Now()
		if err := w.until(context.Background(), before.Add(-time.Hour)); err != nil || !time.Now().Equal(before) {
			t.Errorf("past due: err %v, waited %v", err, time.Since(before))
		}
		// Cancellation ends a wait early.
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(10*time.Millisecond, cancel)
		if err := w.until(ctx, time.Now().Add(time.Hour)); err != context.Canceled {
			t.Errorf("cancelled wait: err %v", err)
		}
	})
}
