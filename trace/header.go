package trace

import (
	"encoding/hex"
	"fmt"
	"time"
)

// FormatVersion is the version of the trace.bin layout this package writes.
const FormatVersion = 1

// Arrival process names stored in Header.Arrival.
const (
	ArrivalPoisson  = "poisson"
	ArrivalGamma    = "gamma"
	ArrivalConstant = "constant"
	ArrivalRecorded = "recorded"
)

// Header describes a trace: how it was made and what it holds. Count, Span
// and Hash are computed by the Writer from the records; the rest is given by
// the producer.
type Header struct {
	// Generator names the tool and version that wrote the trace.
	Generator string `json:"generator"`
	// Created is when the trace was made (UTC; producers that want
	// byte-identical output for the same flags set it deterministically).
	Created time.Time `json:"created"`
	// Seed is the random seed the producer used.
	Seed int64 `json:"seed"`
	// Dataset describes the prompt source: a dataset name, a mix
	// ("sharegpt:0.7,alpaca:0.3") or an imported file.
	Dataset string `json:"dataset"`
	// Arrival is the arrival process (ArrivalPoisson, ...).
	Arrival string `json:"arrival"`
	// Burstiness is the gamma shape k (1 = Poisson); 0 when not applicable.
	Burstiness float64 `json:"burstiness"`
	// MeanRate is the native mean request rate of the offsets, in
	// requests/s (1 for synthesized traces).
	MeanRate float64 `json:"mean_rate"`
	// Params records the producer's other settings (flags, filters).
	Params map[string]string `json:"params,omitempty"`

	// Count is the number of requests.
	Count int64 `json:"count"`
	// Span is the offset of the last request.
	Span time.Duration `json:"span_ns"`
	// Hash is the SHA-256 of the encoded records: two traces with the same
	// hash send the same requests at the same relative times.
	Hash [32]byte `json:"-"`
}

// HashHex returns the content hash in hex.
func (h *Header) HashHex() string { return hex.EncodeToString(h.Hash[:]) }

// ShortHash returns the first 12 hex digits of the content hash, enough to
// tell traces apart in reports and directory names.
func (h *Header) ShortHash() string { return h.HashHex()[:12] }

// ParseHash decodes a hex content hash.
func ParseHash(s string) ([32]byte, error) {
	var out [32]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(out) {
		return out, fmt.Errorf("trace: hash %q is not 64 hex digits", s)
	}
	copy(out[:], b)
	return out, nil
}
