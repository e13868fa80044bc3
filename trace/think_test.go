package trace

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// thinkRequests is a two-turn conversation whose second turn carries a
// think time.
func thinkRequests() []Request {
	return []Request{
		{Index: 0, Endpoint: EndpointChat, Body: []byte(`{"messages":[{"role":"user","content":"hi"}]}`), Conversation: "c1"},
		{Index: 1, Offset: 3 * time.Second, Endpoint: EndpointChat, Body: []byte(`{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"yo"},{"role":"user","content":"more"}]}`),
			Conversation: "c1", Turn: 1, ThinkTime: 1250 * time.Millisecond},
	}
}

func TestThinkTimeRoundTripsInBothFormats(t *testing.T) {
	dir := t.TempDir()
	a, j, b := filepath.Join(dir, "a.bin"), filepath.Join(dir, "a.jsonl"), filepath.Join(dir, "b.bin")
	if _, err := WriteFile(a, sampleHeader(), thinkRequests()); err != nil {
		t.Fatal(err)
	}
	if _, err := Convert(a, j); err != nil {
		t.Fatal(err)
	}
	if _, err := Convert(j, b); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{a, j, b} {
		_, got, err := ReadFile(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if !reflect.DeepEqual(got, thinkRequests()) {
			t.Fatalf("%s: got %+v", filepath.Base(p), got)
		}
	}
	ab, _ := os.ReadFile(a)
	bb, _ := os.ReadFile(b)
	if !bytes.Equal(ab, bb) {
		t.Fatal("bin -> jsonl -> bin is not byte-identical with a think time")
	}
	jb, _ := os.ReadFile(j)
	if !strings.Contains(string(jb), `"think_ns":1250000000`) {
		t.Fatalf("JSON Lines twin lacks think_ns:\n%s", jb)
	}
}

// A record without a think time encodes exactly as before the field
// existed: no flag bit, nothing after the body, so old traces keep their
// hashes.
func TestZeroThinkTimeKeepsTheOldEncoding(t *testing.T) {
	r := thinkRequests()[1]
	with := appendRecord(nil, &r)
	r.ThinkTime = 0
	without := appendRecord(nil, &r)
	if len(with) <= len(without) {
		t.Fatalf("think time added no bytes: %d vs %d", len(with), len(without))
	}
	if !bytes.HasSuffix(without, r.Body) {
		t.Fatal("a record without think time does not end with its body")
	}
	// The flag byte is the only other difference.
	diff := 0
	for i := range without {
		if with[i] != without[i] {
			diff++
		}
	}
	if diff != 1 {
		t.Fatalf("%d bytes differ before the think time, want 1 (the flags)", diff)
	}
}

func TestThinkTimeDecodeErrors(t *testing.T) {
	r := thinkRequests()[1]
	good := appendRecord(nil, &r)
	var q Request
	if err := decodeRecord(good, &q); err != nil || q.ThinkTime != r.ThinkTime {
		t.Fatalf("decode = %v, think %v", err, q.ThinkTime)
	}
	// Cut the trailing think time: the flag promises one.
	r0 := r
	r0.ThinkTime = 0
	n := len(appendRecord(nil, &r0))
	if err := decodeRecord(good[:n], &q); err == nil || !strings.Contains(err.Error(), "think time") {
		t.Fatalf("missing think time: err = %v", err)
	}
	// A negative think time is rejected by Validate.
	r.ThinkTime = -time.Second
	if err := decodeRecord(appendRecord(nil, &r), &q); err == nil || !strings.Contains(err.Error(), "negative") {
		t.Fatalf("negative think time: err = %v", err)
	}
	if err := r.Validate(); err == nil {
		t.Fatal("Validate accepts a negative think time")
	}
	var w bytes.Buffer
	tw, _ := NewWriter(&w, sampleHeader())
	r.Index = 0
	if err := tw.Write(&r); err == nil {
		t.Fatal("writer accepts a negative think time")
	}
}

// FuzzDecodeRecordThink: any payload decodes cleanly or fails with an
// error; one that decodes re-encodes to a payload that decodes the same.
func FuzzDecodeRecordThink(f *testing.F) {
	for _, r := range thinkRequests() {
		f.Add(appendRecord(nil, &r))
	}
	r := thinkRequests()[1]
	r.ThinkTime = 1
	f.Add(appendRecord(nil, &r))
	f.Fuzz(func(t *testing.T, p []byte) {
		var q Request
		if decodeRecord(p, &q) != nil {
			return
		}
		if q.ThinkTime < 0 {
			t.Fatalf("decoded a negative think time %v", q.ThinkTime)
		}
		var q2 Request
		if err := decodeRecord(appendRecord(nil, &q), &q2); err != nil || !reflect.DeepEqual(q, q2) {
			t.Fatalf("re-encoded record: %v\n%+v\n%+v", err, q, q2)
		}
	})
}
