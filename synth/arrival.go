package synth

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/vbench/vbench/trace"
)

// Arrival describes an arrival process at a mean rate of Rate requests/s.
type Arrival struct {
	// Process is trace.ArrivalPoisson, trace.ArrivalGamma or
	// trace.ArrivalConstant.
	Process string
	// Burstiness is the gamma shape k (k = 1 is Poisson, k < 1 burstier,
	// k > 1 smoother), the convention of `vllm bench serve --burstiness`.
	Burstiness float64
	// Rate is the mean rate in requests/s (synthesized traces use 1).
	Rate float64
}

// ParseArrival returns the arrival process named by a --arrival flag value
// and a --burstiness value: "poisson" (burstiness must be 1), "gamma",
// "constant", or "" (poisson when burstiness is 1, gamma otherwise).
func ParseArrival(name string, burstiness float64) (Arrival, error) {
	if !(burstiness > 0) || math.IsInf(burstiness, 0) {
		return Arrival{}, fmt.Errorf("synth: burstiness %v must be a positive number", burstiness)
	}
	a := Arrival{Burstiness: burstiness, Rate: 1}
	switch name {
	case "":
		a.Process = trace.ArrivalGamma
		if burstiness == 1 {
			a.Process = trace.ArrivalPoisson
		}
	case trace.ArrivalPoisson:
		if burstiness != 1 {
			return Arrival{}, fmt.Errorf("synth: --arrival poisson has burstiness 1 (got %v); use --arrival gamma", burstiness)
		}
		a.Process = name
	case trace.ArrivalGamma, trace.ArrivalConstant:
		a.Process = name
	default:
		return Arrival{}, fmt.Errorf("synth: unknown arrival process %q (want poisson, gamma or constant)", name)
	}
	if a.Process == trace.ArrivalConstant {
		a.Burstiness = 0
	}
	return a, nil
}

// Gaps draws inter-arrival gaps of an arrival process.
type Gaps struct {
	a Arrival
	r *rand.Rand
}

// NewGaps returns a gap source for a seeded from its own stream.
func NewGaps(a Arrival, seed int64) *Gaps {
	if a.Rate <= 0 {
		a.Rate = 1
	}
	return &Gaps{a: a, r: newRand(seed, streamArrivals)}
}

// Next returns the next gap in seconds.
//
// Poisson: exponential with mean 1/rate. Gamma: shape k, scale 1/(rate·k),
// so the mean stays 1/rate and the coefficient of variation is 1/√k (as
// `vllm bench serve`). Constant: exactly 1/rate.
func (g *Gaps) Next() float64 {
	switch g.a.Process {
	case trace.ArrivalConstant:
		return 1 / g.a.Rate
	case trace.ArrivalGamma:
		k := g.a.Burstiness
		return gammaDraw(g.r, k) / (g.a.Rate * k)
	default:
		return expDraw(g.r) / g.a.Rate
	}
}

// Offsets accumulates gaps into arrival offsets: the first request arrives
// at 0 and request i at the sum of the first i gaps. Summing in float64
// seconds and rounding each offset (never each gap) to the nanosecond keeps
// the rounding error from accumulating.
type Offsets struct {
	g   *Gaps
	t   float64
	n   int64
	off time.Duration
}

// NewOffsets returns an offset source for a seeded process.
func NewOffsets(a Arrival, seed int64) *Offsets { return &Offsets{g: NewGaps(a, seed)} }

// Next returns the offset of the next request.
func (o *Offsets) Next() time.Duration {
	if o.n > 0 {
		o.t += o.g.Next()
	}
	o.n++
	off := time.Duration(math.Round(o.t * 1e9))
	if off < o.off { // cannot happen with non-negative gaps; keep order anyway
		off = o.off
	}
	o.off = off
	return off
}
