package capture

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

// TestCompressibleRecordsReadBack stores records whose encoding compresses
// far more than any fixed ratio (a prompt of 'hello ' × 50,000, a MiB of
// zeros, a 4-MiB response of one repeated event) and reads them back after
// a reopen. The decoder once refused any value that expanded more than
// 512×, so one such request made the whole capture unreadable.
func TestCompressibleRecordsReadBack(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cap")
	s := openTest(t, dir, Options{})
	w := s.Writer()
	bodies := [][]byte{
		[]byte(`{"prompt":"` + strings.Repeat("hello ", 50000) + `"}`),
		make([]byte, 1<<20),
		bytes.Repeat([]byte("data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n"), 4<<20/50),
	}
	for i, b := range bodies {
		r := fullRecord(0)
		r.Received += int64(i)
		if i == 2 {
			r.ResponseBody, r.ResponseSize = b, int64(len(b))
		} else {
			r.RequestBody, r.RequestSize = b, int64(len(b))
		}
		if !w.Put(r) {
			t.Fatalf("Put %d dropped", i)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ro := openTest(t, dir, Options{ReadOnly: true})
	defer ro.Close()
	got := readAll(t, ro)
	if len(got) != len(bodies) {
		t.Fatalf("read %d records, want %d", len(got), len(bodies))
	}
	for i, r := range got {
		b := r.RequestBody
		if i == 2 {
			b = r.ResponseBody
		}
		if !bytes.Equal(b, bodies[i]) {
			t.Errorf("record %d: body of %d bytes read back as %d bytes", i, len(bodies[i]), len(b))
		}
	}
}

// TestStoredRecordSizeBound: the decoder's only size bound is absolute
// (maxStoredRecord), and a value claiming more is corrupt.
func TestStoredRecordSizeBound(t *testing.T) {
	r := &Record{RequestBody: make([]byte, 8<<20)}
	v, _ := appendStoredRecord(nil, nil, r)
	if v[0] != compressedTag || len(v)*512 > len(r.RequestBody) {
		t.Fatalf("8 MiB of zeros stored as %d bytes (tag %x); the test needs a ratio above 512", len(v), v[0])
	}
	var out Record
	if _, err := decodeStoredRecord(v, &out, nil); err != nil || len(out.RequestBody) != 8<<20 {
		t.Fatalf("decode = %v, body %d bytes", err, len(out.RequestBody))
	}
}

// TestWriterRefusesUnreadableRecord: a record that would encode to more
// than a reader accepts is counted lost with an error saying so, and the
// records around it are stored.
func TestWriterRefusesUnreadableRecord(t *testing.T) {
	defer func(n int) { storeLimit = n }(storeLimit)
	storeLimit = 64 << 10
	dir := filepath.Join(t.TempDir(), "cap")
	s := openTest(t, dir, Options{})
	w := s.Writer()
	big := fullRecord(0)
	big.RequestBody = bytes.Repeat([]byte("0123456789abcdef"), 8<<10) // 128 KiB encoded
	for i, r := range []*Record{fullRecord(0), big, fullRecord(0)} {
		r.Received += int64(i)
		w.Put(r)
	}
	err := s.Close()
	if st := w.Stats(); st.Written != 2 || st.Lost != 1 || !strings.Contains(st.LastError, "too large to store") {
		t.Errorf("written %d lost %d last error %q; want 2, 1, too large", st.Written, st.Lost, st.LastError)
	}
	if err == nil || !strings.Contains(err.Error(), "too large to store") {
		t.Errorf("Close = %v; want the loss reported", err)
	}
}
