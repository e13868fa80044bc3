package analyze

import (
	"math"
	"testing"
)

func TestGauge(t *testing.T) {
	s := newSampleSeries(nil)
	if m, _, n := s.gauge("x", 0, 10); !math.IsNaN(m) || n != 0 {
		t.Errorf("no samples: %v %d", m, n)
	}
	if d := s.delta("x", 0, 10); !math.IsNaN(d) {
		t.Errorf("no samples: delta %v", d)
	}
}

func TestInFlight(t *testing.T) {
	spans := []span{{start: 0, first: 0, end: 10}, {start: 5, first: 5, end: 15}, {start: 10, first: 10, end: 20}, {start: 30, first: 30, end: 40}}
	m, mx := inFlight(spans, 0, 20)
	// [0,5):1 [5,10):2 [10,15):2 [15,20):1 → (5+10+10+5)/20 = 1.5
	if !near(m, 1.5) || mx != 2 {
		t.Errorf("inFlight = %v, %d; want 1.5, 2", m, mx)
	}
}
