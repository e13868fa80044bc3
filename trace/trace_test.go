package trace

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func sampleHeader() Header {
	return Header{
		Generator: "vbsynth test", Created: time.Date(2026, 11, 26, 12, 0, 0, 123, time.UTC),
		Seed: 7, Dataset: "sharegpt:0.7,alpaca:0.3", Arrival: ArrivalGamma, Burstiness: 0.5, MeanRate: 1,
		Params: map[string]string{"requests": "4"},
	}
}

func sampleRequests() []Request {
	return []Request{
		{Index: 0, Offset: 0, Endpoint: EndpointCompletions, Prompt: "Hello, world", InputTokens: 3, OutputTokens: 10,
			Sampling: Sampling{MaxTokens: 10, IgnoreEOS: true, HasTemperature: true, Temperature: 0}, Source: Source{"sharegpt", "abc_0"}},
		{Index: 1, Offset: 1500 * time.Millisecond, Endpoint: EndpointChat, Messages: []Message{{"system", "be brief"}, {"user", "Über ünïcode ✓"}},
			InputTokens: 12, OutputTokens: 58, Sampling: Sampling{MaxTokens: 58, MinTokens: 58, HasTopP: true, TopP: 0.95}, Source: Source{"alpaca", "17"},
			Conversation: "c1", Turn: 2},
		{Index: 2, Offset: 1500 * time.Millisecond, Endpoint: EndpointCompletions, PromptTokenIDs: []int32{1, 2, 3, 128000, -1}, InputTokens: 5, OutputTokens: 1,
			Sampling: Sampling{MaxTokens: 1, IgnoreEOS: true}},
		{Index: 3, Offset: 4 * time.Second, Endpoint: "/v1/embeddings", Body: []byte(`{"model":"m","input":"x"}`), Source: Source{"capture", "42"}},
	}
}

func encode(t testing.TB, h Header, reqs []Request) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, h)
	if err != nil {
		t.Fatal(err)
	}
	for i := range reqs {
		if err := w.Write(&reqs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestBinaryRoundTrip(t *testing.T) {
	h, reqs := sampleHeader(), sampleRequests()
	data := encode(t, h, reqs)
	r, err := NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	got, gotReqs, err := ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if got.Count != 4 || got.Span != 4*time.Second || got.Generator != h.Generator || !got.Created.Equal(h.Created) || got.Params["requests"] != "4" {
		t.Fatalf("header = %+v", got)
	}
	if !reflect.DeepEqual(gotReqs, reqs) {
		t.Fatalf("records differ:\n got %+v\nwant %+v", gotReqs, reqs)
	}
	// Same content, same hash; different content, different hash.
	if h2 := mustHeader(t, encode(t, sampleHeader(), sampleRequests())); h2.Hash != got.Hash {
		t.Fatal("hash not deterministic")
	}
	other := sampleRequests()
	other[2].OutputTokens = 2
	if h3 := mustHeader(t, encode(t, sampleHeader(), other)); h3.Hash == got.Hash {
		t.Fatal("hash ignores content")
	}
}

func mustHeader(t *testing.T, data []byte) Header {
	t.Helper()
	r, err := NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return r.Header()
}

func TestFileSeekableEqualsBuffered(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "t.bin")
	hdr, err := WriteFile(path, sampleHeader(), sampleRequests())
	if err != nil {
		t.Fatal(err)
	}
	onDisk, _ := os.ReadFile(path)
	if !bytes.Equal(onDisk, encode(t, sampleHeader(), sampleRequests())) {
		t.Fatal("seek-patched file differs from buffered encoding")
	}
	if hdr.Count != 4 {
		t.Fatalf("count %d", hdr.Count)
	}
}

func TestConvertRoundTripIsByteIdentical(t *testing.T) {
	dir := t.TempDir()
	a, j, b := filepath.Join(dir, "a.bin"), filepath.Join(dir, "a.jsonl"), filepath.Join(dir, "b.bin")
	if _, err := WriteFile(a, sampleHeader(), sampleRequests()); err != nil {
		t.Fatal(err)
	}
	if _, err := Convert(a, j); err != nil {
		t.Fatal(err)
	}
	if _, err := Convert(j, b); err != nil {
		t.Fatal(err)
	}
	ab, _ := os.ReadFile(a)
	bb, _ := os.ReadFile(b)
	if !bytes.Equal(ab, bb) {
		t.Fatal("bin -> jsonl -> bin is not byte-identical")
	}
	j2 := filepath.Join(dir, "b.jsonl")
	if _, err := Convert(b, j2); err != nil {
		t.Fatal(err)
	}
	jb, _ := os.ReadFile(j)
	j2b, _ := os.ReadFile(j2)
	if !bytes.Equal(jb, j2b) {
		t.Fatal("jsonl -> bin -> jsonl is not byte-identical")
	}
	if !strings.HasPrefix(string(jb), `{"vbtrace":1,"header":{`) {
		t.Fatalf("jsonl header line: %.60s", jb)
	}
}

func TestTruncatedAndCorruptNameTheRecord(t *testing.T) {
	data := encode(t, sampleHeader(), sampleRequests())
	hdrLen := len(magic) + fixedLen
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "truncated"},
		{"bad magic", append([]byte("NOTATRACE"), data[9:]...), "bad magic"},
		{"cut header", data[:hdrLen-3], "header"},
		{"cut last record", data[:len(data)-3], "record 3 of 4"},
		{"flip byte", flip(data, len(data)-10), "record 3: checksum mismatch"},
		{"trailing", append(append([]byte{}, data...), 0, 0), "trailing data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := NewReader(bytes.NewReader(tc.data))
			if err == nil {
				_, _, err = ReadAll(r)
			}
			if err == nil || !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrFormat containing %q", err, tc.want)
			}
		})
	}
}

func flip(b []byte, i int) []byte {
	c := append([]byte{}, b...)
	c[i] ^= 0xff
	return c
}

func TestWriterRejectsBadRecords(t *testing.T) {
	w, _ := NewWriter(io.Discard, sampleHeader())
	r := sampleRequests()[0]
	r.Index = 5
	if err := w.Write(&r); err == nil || !strings.Contains(err.Error(), "record 0") {
		t.Fatalf("err = %v", err)
	}
	reqs := sampleRequests()
	w.Write(&reqs[0])
	reqs[1].Offset = -1
	if err := w.Write(&reqs[1]); err == nil {
		t.Fatal("negative offset accepted")
	}
}

func TestAnyReaderDetectsFormat(t *testing.T) {
	dir := t.TempDir()
	a, j := filepath.Join(dir, "a.bin"), filepath.Join(dir, "a.jsonl")
	WriteFile(a, sampleHeader(), sampleRequests())
	Convert(a, j)
	for _, p := range []string{a, j} {
		h, reqs, err := ReadFile(p)
		if err != nil || len(reqs) != 4 || h.Count != 4 {
			t.Fatalf("%s: %v %d", p, err, len(reqs))
		}
	}
	bad := filepath.Join(dir, "x.txt")
	os.WriteFile(bad, []byte("hello"), 0o644)
	if _, _, err := ReadFile(bad); !errors.Is(err, ErrNotTrace) {
		t.Fatalf("err = %v", err)
	}
}

func TestJSONLErrorsNameTheLine(t *testing.T) {
	dir := t.TempDir()
	a, j := filepath.Join(dir, "a.bin"), filepath.Join(dir, "a.jsonl")
	WriteFile(a, sampleHeader(), sampleRequests())
	Convert(a, j)
	data, _ := os.ReadFile(j)
	lines := strings.Split(string(data), "\n")
	lines[2] = `{"index":1,"offset_ns":"soon"}`
	_, _, err := ReadAll(mustJSONL(t, strings.Join(lines, "\n")))
	if err == nil || !strings.Contains(err.Error(), "line 3") {
		t.Fatalf("err = %v", err)
	}
}

func mustJSONL(t *testing.T, s string) RecordReader {
	r, err := NewJSONLReader(strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func FuzzBinaryReader(f *testing.F) {
	f.Add(encode(f, sampleHeader(), sampleRequests()))
	f.Add(encode(f, sampleHeader(), nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewReader(bytes.NewReader(data))
		if err != nil {
			return
		}
		_, reqs, err := ReadAll(r)
		if err != nil {
			return
		}
		// Whatever decodes must re-encode to the same bytes.
		if got := encode(t, r.Header(), reqs); !bytes.Equal(got, data) {
			t.Fatalf("re-encoding differs")
		}
	})
}

func FuzzJSONLReader(f *testing.F) {
	dir := f.TempDir()
	a, j := filepath.Join(dir, "a.bin"), filepath.Join(dir, "a.jsonl")
	WriteFile(a, sampleHeader(), sampleRequests())
	Convert(a, j)
	data, _ := os.ReadFile(j)
	f.Add(data)
	f.Add([]byte(`{"vbtrace":1,"header":{"created":"2026-01-01T00:00:00Z"}}` + "\n" + `{"index":0,"endpoint":"/v1/completions"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewJSONLReader(bytes.NewReader(data))
		if err != nil {
			return
		}
		ReadAll(r)
	})
}

func BenchmarkDecode(b *testing.B) {
	reqs := make([]Request, 10000)
	for i := range reqs {
		reqs[i] = Request{Index: int64(i), Offset: time.Duration(i) * time.Millisecond, Endpoint: EndpointCompletions,
			PromptTokenIDs: make([]int32, 160), InputTokens: 160, OutputTokens: 338, Sampling: Sampling{MaxTokens: 338, IgnoreEOS: true}}
	}
	data := encode(b, sampleHeader(), reqs)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		r, _ := NewReader(bytes.NewReader(data))
		var req Request
		for r.Read(&req) == nil {
		}
	}
}

func TestJSONLSpillsToTempFile(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.bin")
	WriteFile(a, sampleHeader(), sampleRequests())
	inMem, spilled := filepath.Join(dir, "m.jsonl"), filepath.Join(dir, "s.jsonl")
	if _, err := Convert(a, inMem); err != nil {
		t.Fatal(err)
	}
	old := spillAt
	spillAt = 100 // spill after the first record
	defer func() { spillAt = old }()
	if _, err := Convert(a, spilled); err != nil {
		t.Fatal(err)
	}
	m, _ := os.ReadFile(inMem)
	s, _ := os.ReadFile(spilled)
	if !bytes.Equal(m, s) || len(m) < 300 {
		t.Fatalf("spilled output differs (%d vs %d bytes)", len(s), len(m))
	}
}
