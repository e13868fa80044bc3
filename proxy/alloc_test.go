package proxy

import (
	"testing"
	"time"

	"github.com/vbench/vbench/capture"
)

// loopReader returns the same chunk on every Read, like an upstream that
// streams one SSE event per read.
type loopReader struct{ chunk []byte }

func (l *loopReader) Read(b []byte) (int, error) { return copy(b, l.chunk), nil }

var hotChunk = []byte("data: {\"id\":\"cmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" hello\"},\"finish_reason\":null}],\"usage\":{\"prompt_tokens\":8,\"completion_tokens\":3,\"total_tokens\":11}}\n\n")

// hotStream is a stream as the handler builds it, reading from memory, with
// the record's timeline and body buffer already grown: what remains per
// Read is the forwarding path's own work.
func hotStream(tb testing.TB, chunks int) *stream {
	p, err := New(Config{Upstream: "127.0.0.1:1"}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	rec := &capture.Record{}
	s := &stream{p: p, rec: rec, body: &loopReader{hotChunk}, start: time.Now(), isSSE: true}
	s.dec.Reset(nil, true)
	rec.Chunks = make([]capture.Chunk, 0, chunks)
	rec.ResponseBody = make([]byte, 0, p.cfg.RecordResponseBody)
	return s
}

// TestForwardChunkAllocs: reading, timestamping, recording and parsing one
// forwarded chunk allocates nothing (the record's timeline grows by
// doubling, amortized O(log n) allocations per stream, preallocated here).
func TestForwardChunkAllocs(t *testing.T) {
	s := hotStream(t, 4000)
	buf := make([]byte, 4096)
	allocs := testing.AllocsPerRun(2000, func() {
		if _, err := s.Read(buf); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Read allocates %v per forwarded chunk; want 0", allocs)
	}
	c := s.rec.Chunks[len(s.rec.Chunks)-1]
	if c.Events != 1 || c.Content != 1 || c.Usage != 3 {
		t.Errorf("last chunk %+v; want 1 event with content and usage 3", c)
	}
}

func BenchmarkForwardChunk(b *testing.B) {
	s := hotStream(b, b.N+1)
	buf := make([]byte, 4096)
	b.ReportAllocs()
	b.SetBytes(int64(len(hotChunk)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.Read(buf)
	}
}
