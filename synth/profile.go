package synth

import (
	"fmt"
	"sort"
	"strings"
)

//go:generate go run ./internal/genprofile -data ../../shared/data -gpt2 ../.gl/gpt2-tokenizer.json -o profile_data.go

// Pair is one joint (prompt, output) token-length pair of a profile.
type Pair struct{ In, Out int32 }

// Profile is an embedded length distribution: joint (input, output) pairs
// sampled from a real dataset, so correlations between prompt and answer
// length survive (two independent marginals would lose them).
type Profile struct {
	// Name is the dataset name ("sharegpt", "alpaca").
	Name string
	// Tokenizer says whose token counts the pairs are.
	Tokenizer string
	// Provenance says where the pairs come from (see profile_data.go).
	Provenance string
	// Pairs are the joint length pairs.
	Pairs []Pair
}

// Profiles returns the names of the embedded profiles.
func Profiles() []string {
	names := make([]string, 0, len(embedded))
	for n := range embedded {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// BuiltinProfile returns an embedded profile by name.
func BuiltinProfile(name string) (*Profile, error) {
	p, ok := embedded[strings.ToLower(name)]
	if !ok {
		return nil, fmt.Errorf("synth: no embedded profile %q (have %s)", name, strings.Join(Profiles(), ", "))
	}
	return p(), nil
}

func unpackPairs(flat []uint16) []Pair {
	out := make([]Pair, len(flat)/2)
	for i := range out {
		out[i] = Pair{In: int32(flat[2*i]), Out: int32(flat[2*i+1])}
	}
	return out
}

// Means returns the mean input and output lengths of the pairs.
func (p *Profile) Means() (in, out float64) {
	for _, q := range p.Pairs {
		in += float64(q.In)
		out += float64(q.Out)
	}
	n := float64(max(len(p.Pairs), 1))
	return in / n, out / n
}
