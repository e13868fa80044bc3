package synth

import (
	"math"
	"math/rand/v2"
)

// Stream identifiers: each purpose draws from its own PCG stream so that
// changing one part of a configuration leaves the others' draws unchanged.
const (
	streamArrivals uint64 = 0x6172726976616c73 // "arrivals"
	streamSample   uint64 = 0x73616d706c65     // "sample"
	streamTokens   uint64 = 0x746f6b656e73     // "tokens"
	streamMix      uint64 = 0x6d6978           // "mix"
)

// newRand returns a PCG generator for one stream of a seed. PCG's output and
// Float64 are fixed by the algorithm, so the draws below do not depend on the
// Go release (math/rand/v2's own ExpFloat64/NormFloat64 are not used for that
// reason).
func newRand(seed int64, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(seed), stream))
}

// uniformOpen returns a uniform draw in (0, 1].
func uniformOpen(r *rand.Rand) float64 { return 1 - r.Float64() }

// expDraw returns an exponential draw with mean 1 (inversion).
func expDraw(r *rand.Rand) float64 { return -math.Log(uniformOpen(r)) }

// normDraw returns a standard normal draw (Marsaglia's polar method).
func normDraw(r *rand.Rand) float64 {
	for {
		u := 2*r.Float64() - 1
		v := 2*r.Float64() - 1
		s := u*u + v*v
		if s > 0 && s < 1 {
			return u * math.Sqrt(-2*math.Log(s)/s)
		}
	}
}

// gammaDraw returns a draw from Gamma(shape k, scale 1) by Marsaglia and
// Tsang's method; for k < 1 it uses the boost G(k) = G(k+1)·U^(1/k).
func gammaDraw(r *rand.Rand, k float64) float64 {
	if k < 1 {
		return gammaDraw(r, k+1) * math.Pow(uniformOpen(r), 1/k)
	}
	d := k - 1.0/3
	c := 1 / math.Sqrt(9*d)
	for {
		x := normDraw(r)
		v := 1 + c*x
		if v <= 0 {
			continue
		}
		v = v * v * v
		u := uniformOpen(r)
		if u < 1-0.0331*x*x*x*x || math.Log(u) < 0.5*x*x+d*(1-v+math.Log(v)) {
			return d * v
		}
	}
}
