package synth

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
)

// Mix is a weighted mixture of datasets, read from a --mix JSON file:
//
//	{"name": "chat+instruct",
//	 "components": [{"dataset": "sharegpt", "weight": 0.7},
//	                {"dataset": "alpaca",   "weight": 0.3}]}
//
// Each request picks its component with probability weight/sum(weights),
// then draws a request from that dataset. A component's dataset is anything
// --dataset accepts (an embedded profile name, a file path relative to the
// mix file, or hf:...).
type Mix struct {
	// Name labels the mix in trace headers; optional.
	Name string `json:"name,omitempty"`
	// Components are the datasets and their weights.
	Components []MixComponent `json:"components"`
}

// MixComponent is one dataset of a Mix.
type MixComponent struct {
	Dataset string  `json:"dataset"`
	Weight  float64 `json:"weight"`
}

// LoadMix reads and validates a mix file. Relative dataset paths that exist
// next to the mix file are resolved against its directory.
func LoadMix(path string) (*Mix, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("synth: mix: %w", err)
	}
	m, err := ParseMix(b)
	if err != nil {
		return nil, fmt.Errorf("synth: mix %s: %w", path, err)
	}
	return m, nil
}

// ParseMix decodes and validates a mix.
func ParseMix(b []byte) (*Mix, error) {
	var m Mix
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w (want {\"components\": [{\"dataset\": \"sharegpt\", \"weight\": 0.7}, ...]})", err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Validate checks that the mix has components with positive finite weights.
func (m *Mix) Validate() error {
	if len(m.Components) == 0 {
		return fmt.Errorf("no components")
	}
	for i, c := range m.Components {
		if strings.TrimSpace(c.Dataset) == "" {
			return fmt.Errorf("component %d: empty dataset", i)
		}
		if !(c.Weight > 0) || math.IsInf(c.Weight, 0) {
			return fmt.Errorf("component %d (%s): weight %v must be a positive number", i, c.Dataset, c.Weight)
		}
	}
	return nil
}

// String describes the mix as "sharegpt:0.7,alpaca:0.3" with normalised
// weights, the form stored in trace headers.
func (m *Mix) String() string {
	total := 0.0
	for _, c := range m.Components {
		total += c.Weight
	}
	parts := make([]string, len(m.Components))
	for i, c := range m.Components {
		parts[i] = c.Dataset + ":" + strconv.FormatFloat(c.Weight/total, 'g', 4, 64)
	}
	s := strings.Join(parts, ",")
	if m.Name != "" {
		s = m.Name + "=" + s
	}
	return s
}
