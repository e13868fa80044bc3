package capture

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
)

// pooledRecord fills a pooled record the way the proxy does (appending to
// the pooled buffers), with content and sizes that depend on i: some
// bodies and timelines beyond the pooled caps, some empty.
func pooledRecord(i int) *Record {
	r := &Record{Method: "POST", Path: fmt.Sprintf("/v1/completions/%d", i), Received: int64(i), PromptTokens: -1, CompletionTokens: -1, Tags: Tags{Index: int64(i)}}
	r.UsePool()
	r.RequestHeaders = append(r.RequestHeaders, Header{"Content-Type", "application/json"}, Header{"X-N", fmt.Sprint(i)})
	r.RequestBody = append(r.RequestBody, fmt.Sprintf(`{"prompt":"request %d"}`, i)...)
	events := (i * 37) % 300
	if i%97 == 0 {
		events = maxPooledChunks + 10 // timeline too long to pool
	}
	for j := range events {
		r.Chunks = append(r.Chunks, Chunk{At: int64(j) * 1000, Size: int32(i + j), Tokens: -1, Usage: int32(j)})
	}
	body := fmt.Sprintf("data: {\"i\":%d}\n\n", i)
	n := events
	if i%89 == 0 {
		n = maxPooledBytes/len(body) + 1 // body too large to pool
	}
	for range n {
		r.ResponseBody = append(r.ResponseBody, body...)
	}
	return r
}

// TestPooledRecords: records built in pooled buffers by several
// goroutines, each buffer reused as soon as the writer released it, are
// stored exactly as built (run with -race: the writer's encoding must not
// overlap a producer writing into a reused buffer).
func TestPooledRecords(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	w := s.Writer()
	const producers, each = 4, 300
	var wg sync.WaitGroup
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range each {
				if !w.Put(pooledRecord(p*each + k)) {
					t.Errorf("record %d dropped", p*each+k)
				}
			}
		}()
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, Options{ReadOnly: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	n := 0
	err = s.Records(func(got *Record) error {
		i := int(got.Tags.Index)
		want := pooledRecord(i) // a fresh pooled record with the same content
		if got.Path != want.Path || !bytes.Equal(got.RequestBody, want.RequestBody) || !bytes.Equal(got.ResponseBody, want.ResponseBody) ||
			len(got.Chunks) != len(want.Chunks) || len(got.RequestHeaders) != 2 || got.RequestHeaders[1].Value != fmt.Sprint(i) {
			t.Errorf("record %d: stored %q body %d bytes, %d chunks; want %q, %d bytes, %d chunks", i, got.Path, len(got.ResponseBody), len(got.Chunks), want.Path, len(want.ResponseBody), len(want.Chunks))
		}
		for j := range got.Chunks {
			if got.Chunks[j] != want.Chunks[j] {
				t.Errorf("record %d chunk %d: %+v; want %+v", i, j, got.Chunks[j], want.Chunks[j])
				break
			}
		}
		want.Release()
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != producers*each {
		t.Errorf("%d records stored; want %d", n, producers*each)
	}
}

// TestPooledRecordReleasedWhenDropped: a pooled record the writer refuses
// (store closed) gives its buffers back too; Release is idempotent and a
// no-op on records that are not pooled.
func TestPooledRecordReleasedWhenDropped(t *testing.T) {
	s, err := Open(t.TempDir(), Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	w := s.Writer()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	r := pooledRecord(3)
	if w.Put(r) {
		t.Fatal("Put after Close accepted the record")
	}
	if r.bufs != nil || r.Chunks != nil || r.ResponseBody != nil || r.RequestBody != nil || r.RequestHeaders != nil {
		t.Errorf("dropped pooled record still holds its buffers: %d chunks, %d body bytes", len(r.Chunks), len(r.ResponseBody))
	}
	r.Release() // twice: nothing happens

	plain := fullRecord(1)
	body := plain.ResponseBody
	plain.Release()
	if !bytes.Equal(plain.ResponseBody, body) || plain.Chunks == nil {
		t.Error("Release changed a record that was not pooled")
	}
}

// TestUsePoolKeepsNothing: a pooled record starts empty whatever the
// record that last used its buffers held.
func TestUsePoolKeepsNothing(t *testing.T) {
	for i := range 50 {
		pooledRecord(i + 1).Release()
		r := &Record{}
		r.UsePool()
		if len(r.Chunks) != 0 || len(r.ResponseBody) != 0 || len(r.RequestBody) != 0 || len(r.RequestHeaders) != 0 {
			t.Fatalf("fresh pooled record holds %d chunks, %d+%d body bytes, %d headers", len(r.Chunks), len(r.RequestBody), len(r.ResponseBody), len(r.RequestHeaders))
		}
		for _, h := range r.RequestHeaders[:cap(r.RequestHeaders)] {
			if h != (Header{}) {
				t.Fatalf("pooled header buffer keeps %+v", h)
			}
		}
		r.Release()
	}
}
