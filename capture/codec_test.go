package capture

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// fullRecord returns a record with every field set.
func fullRecord(id uint64) *Record {
	r := &Record{
		ID:     id,
		Labels: map[string]string{"variant": "vllm-page", "rate": "10"},
		Tags: Tags{Run: "run1", Trial: "t1", Level: "10", Rate: 10.5, Index: 42,
			Scheduled: 1_700_000_000_000_000_000, Sent: 1_700_000_000_000_100_000, Deadline: 1_700_000_100_000_000_000,
			Warmup: true, TraceHash: "abcdef012345", Extra: map[string]string{"label-x": "y"}},
		Method:           "POST",
		Path:             "/v1/chat/completions?x=1",
		RequestHeaders:   []Header{{"Content-Type", "application/json"}, {"Authorization", Redacted}},
		Status:           200,
		ContentType:      "text/event-stream",
		Received:         1_700_000_000_000_200_000,
		Forwarded:        50_000,
		Headers:          2_000_000,
		End:              900_000_000,
		Outcome:          OutcomeOK,
		Error:            "",
		PromptTokens:     17,
		CompletionTokens: 3,
		RequestBody:      []byte(`{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}`),
		RequestSize:      71,
		ResponseBody:     []byte("data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: [DONE]\n\n"),
		ResponseSize:     60,
	}
	for i := range 5 {
		r.Chunks = append(r.Chunks, Chunk{At: int64(i+1) * 20_000_000, Size: int32(100 + i), Events: 1, Content: 1, Tokens: 1, Usage: int32(i + 1)})
	}
	r.Chunks = append(r.Chunks, Chunk{At: 100_000_001, Size: 14, Events: 1, Tokens: -1, Usage: -1})
	return r
}

func TestRecordRoundTrip(t *testing.T) {
	cases := map[string]*Record{
		"zero":    {},
		"full":    fullRecord(7),
		"error":   {ID: math.MaxUint64, Tags: Tags{Index: -1}, Status: 0, Outcome: OutcomeUpstreamUnreachable, Error: "dial tcp: refused", PromptTokens: -1, CompletionTokens: -1, Received: -5},
		"extreme": {Chunks: []Chunk{{At: math.MaxInt64, Size: math.MaxInt32, Events: math.MaxInt16, Content: math.MinInt16, Tokens: math.MinInt32, Usage: math.MaxInt32}, {At: math.MinInt64}}, Status: math.MaxInt32, RequestSize: math.MinInt64},
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			b, err := in.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var out Record
			if err := out.UnmarshalBinary(b); err != nil {
				t.Fatalf("UnmarshalBinary(MarshalBinary(r)) = %v", err)
			}
			if !reflect.DeepEqual(in, &out) {
				t.Errorf("round trip differs:\n in  %+v\n out %+v", in, &out)
			}
			// Equal records encode to equal bytes (maps are sorted).
			b2, _ := out.MarshalBinary()
			if !bytes.Equal(b, b2) {
				t.Errorf("re-encoding differs")
			}
			// Every strict prefix is an error, never a panic.
			for i := range len(b) {
				var r Record
				if err := r.UnmarshalBinary(b[:i]); err == nil {
					t.Fatalf("prefix of %d/%d bytes decoded without error", i, len(b))
				} else if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("prefix error %v does not wrap ErrCorrupt", err)
				}
			}
		})
	}
}

func TestRecordDecodeErrors(t *testing.T) {
	good, _ := fullRecord(1).MarshalBinary()
	cases := map[string][]byte{
		"empty":       {},
		"version":     {9},
		"trailing":    append(append([]byte(nil), good...), 0),
		"huge count":  {1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"huge string": {1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
	}
	for name, b := range cases {
		var r Record
		err := r.UnmarshalBinary(b)
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: UnmarshalBinary = %v, want ErrCorrupt", name, err)
		}
	}
}

func TestSampleRoundTrip(t *testing.T) {
	for _, in := range []Sample{{}, {At: 1_700_000_000_000_000_000, Name: MetricRunning, Value: 12}, {At: -1, Name: MetricKVUsage, Value: math.Inf(1)}, {At: 3, Name: "vbtorch:step_seconds_total", Value: 0.125}} {
		b, _ := in.MarshalBinary()
		var out Sample
		if err := out.UnmarshalBinary(b); err != nil || out != in {
			t.Errorf("round trip of %+v = %+v, %v", in, out, err)
		}
		for i := range len(b) {
			if err := out.UnmarshalBinary(b[:i]); err == nil {
				t.Errorf("prefix %d of %+v decoded", i, in)
			}
		}
	}
}

func TestMetaRoundTrip(t *testing.T) {
	in := Meta{Tool: "vbproxy", ToolVersion: "v0.1.0", Started: 123, Upstream: "127.0.0.1:8000",
		Labels: map[string]string{"variant": "sim"}, Host: "h", PID: 9, Config: json.RawMessage(`{"listen":"127.0.0.1:8001"}`), Extra: map[string]string{"a": "b"}}
	b, err := in.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var out Meta
	if err := out.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	in.Version = MetaVersion
	if !reflect.DeepEqual(in, out) {
		t.Errorf("round trip: got %+v want %+v", out, in)
	}
	if _, err := (Meta{Config: json.RawMessage("{")}).MarshalBinary(); err == nil {
		t.Error("invalid config JSON accepted")
	}
	for _, bad := range []string{"", "{", `{"version":99}`, `{"version":0}`, "\xff"} {
		if err := out.UnmarshalBinary([]byte(bad)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("UnmarshalBinary(%q) = %v, want ErrCorrupt", bad, err)
		}
	}
}

func TestRecordEncodeAllocs(t *testing.T) {
	r := fullRecord(1)
	buf := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(100, func() {
		buf, _ = r.AppendBinary(buf[:0])
	})
	// One allocation for the sorted key slice of each map with 2+ keys.
	if allocs > 1 {
		t.Errorf("AppendBinary allocates %.0f times, want ≤ 1", allocs)
	}
}

var updateSeeds = flag.Bool("update-seeds", false, "rewrite the committed fuzz seeds in testdata/fuzz")

// TestWriteSeeds writes encoded records into testdata/fuzz/FuzzRecordDecode
// (the corpus `go test` replays) when run with -update-seeds.
func TestWriteSeeds(t *testing.T) {
	if !*updateSeeds {
		t.Skip("run with -update-seeds to rewrite the seed corpus")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzRecordDecode")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	full := fullRecord(3)
	full.Chunks = full.Chunks[:2]
	big := fullRecord(9)
	big.ResponseBody = bytes.Repeat([]byte("data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n"), 20)
	stored, _ := appendStoredRecord(nil, nil, big)
	sdir := filepath.Join("testdata", "fuzz", "FuzzStoredRecordDecode")
	os.MkdirAll(sdir, 0o755)
	if err := os.WriteFile(filepath.Join(sdir, "compressed"), []byte(fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", stored)), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]*Record{"zero": {}, "full": full, "unreachable": {ID: 2, Tags: Tags{Index: -1}, Outcome: OutcomeUpstreamUnreachable, Error: "refused", PromptTokens: -1, CompletionTokens: -1}} {
		b, _ := r.MarshalBinary()
		content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzRecordDecode feeds arbitrary bytes to the record decoder: it must
// return an ErrCorrupt error or a record that round-trips, never panic.
func FuzzRecordDecode(f *testing.F) {
	for _, r := range []*Record{{}, fullRecord(3), {Chunks: []Chunk{{At: 1}}}} {
		b, _ := r.MarshalBinary()
		f.Add(b)
	}
	f.Add([]byte{1})
	f.Add([]byte{1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Record
		if err := r.UnmarshalBinary(b); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		// What decodes re-encodes to something that decodes to the same
		// (compared as bytes: a NaN rate is not DeepEqual to itself).
		b2, _ := r.MarshalBinary()
		var r2 Record
		if err := r2.UnmarshalBinary(b2); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if b3, _ := r2.MarshalBinary(); !bytes.Equal(b2, b3) {
			t.Fatalf("re-decode differs")
		}
	})
}

func FuzzSampleDecode(f *testing.F) {
	b, _ := Sample{At: 5, Name: MetricRunning, Value: 3}.MarshalBinary()
	f.Add(b)
	b, _ = Sample{At: -5, Name: "vbtorch:kv_largest_hole_tokens", Value: 4096}.MarshalBinary()
	f.Add(b)
	f.Add([]byte{1, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		var s Sample
		if err := s.UnmarshalBinary(b); err != nil {
			return
		}
		b2, _ := s.MarshalBinary()
		var s2 Sample
		if err := s2.UnmarshalBinary(b2); err != nil || !(s2 == s || (s.Value != s.Value && s2.Value != s2.Value)) {
			t.Fatalf("re-decode: %+v vs %+v, %v", s, s2, err)
		}
	})
}

func FuzzMetaDecode(f *testing.F) {
	b, _ := Meta{Tool: "vbproxy", Config: json.RawMessage(`{"a":1}`)}.MarshalBinary()
	f.Add(b)
	f.Add([]byte(`{"version":1,"config":null}`))
	f.Add([]byte(`{"version":2,"tool":"vbreplay","closed":1700000000000000000,"recorder":{"written":10,"samples":2,"dropped":3,"lost":1}}`))
	f.Add([]byte(`{"version":2,"recorder":null,"closed":-1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Meta
		_ = m.UnmarshalBinary(b)
	})
}

// TestFuzzSeedsPresent keeps the committed seed corpus in testdata.
func TestFuzzSeedsPresent(t *testing.T) {
	ents, err := os.ReadDir(filepath.Join("testdata", "fuzz", "FuzzRecordDecode"))
	if err != nil || len(ents) == 0 {
		t.Fatalf("no committed seeds in testdata/fuzz/FuzzRecordDecode: %v", err)
	}
}

func TestStoredRecordRoundTrip(t *testing.T) {
	big := fullRecord(9)
	big.ResponseBody = bytes.Repeat([]byte("data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n"), 200)
	random := fullRecord(10)
	random.RequestBody = make([]byte, 4096)
	for i := range random.RequestBody {
		random.RequestBody[i] = byte(i*7919 + i*i*31)
	}
	for name, in := range map[string]*Record{"small": {ID: 1}, "compressible": big, "full": fullRecord(3), "incompressible": random} {
		v, _ := appendStoredRecord(nil, nil, in)
		compressed := v[0] == compressedTag
		if name == "compressible" && (!compressed || len(v)*4 > len(big.ResponseBody)) {
			t.Errorf("%s: stored %d bytes (compressed %v)", name, len(v), compressed)
		}
		if name == "small" && compressed {
			t.Errorf("small record compressed")
		}
		var out Record
		if _, err := decodeStoredRecord(v, &out, nil); err != nil || !reflect.DeepEqual(in, &out) {
			t.Errorf("%s: stored round trip = %v", name, err)
		}
		for i := range len(v) {
			if _, err := decodeStoredRecord(v[:i], &out, nil); err == nil {
				t.Fatalf("%s: prefix %d of %d decoded", name, i, len(v))
			}
		}
	}
}

// FuzzStoredRecordDecode feeds arbitrary bytes to the stored-value decoder
// (compressed or not): an ErrCorrupt error or a valid record, never a panic
// or a huge allocation.
func FuzzStoredRecordDecode(f *testing.F) {
	big := fullRecord(9)
	big.ResponseBody = bytes.Repeat([]byte("data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n"), 20)
	for _, r := range []*Record{{}, big} {
		v, _ := appendStoredRecord(nil, nil, r)
		f.Add(v)
	}
	f.Add([]byte{compressedTag, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Record
		if _, err := decodeStoredRecord(b, &r, nil); err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("error %v does not wrap ErrCorrupt", err)
		}
	})
}

func TestParseOutcome(t *testing.T) {
	for _, o := range Outcomes() {
		if got, err := ParseOutcome(string(o)); got != o || err != nil {
			t.Errorf("ParseOutcome(%q) = %q, %v", o, got, err)
		}
	}
	if _, err := ParseOutcome("okay"); err == nil || !strings.Contains(err.Error(), "client_aborted") {
		t.Errorf("ParseOutcome(okay) = %v, want an error listing the outcomes", err)
	}
}
