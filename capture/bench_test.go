package capture

import (
	"bytes"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vbench/vbench/synth"
)

// benchRecord is a realistic streamed completion: a ~600-byte chat request
// body and one chunk per token with per-chunk usage.
func benchRecord(chunks int) *Record {
	r := fullRecord(0)
	// English-like text (compresses like a real prompt, not like a
	// repeated pattern).
	r.RequestBody = []byte(`{"model":"facebook/opt-13b","stream":true,"max_tokens":300,"messages":[{"role":"user","content":"` +
		synth.FillerWords(1, "user", "bench", 90) + `"}]}`)
	// The raw response as the proxy records it: one vLLM-style SSE event
	// per chunk (streamed) or one JSON completion.
	var resp bytes.Buffer
	words := strings.Fields(synth.FillerWords(2, "assistant", "bench", chunks))
	if chunks == 1 {
		fmt.Fprintf(&resp, `{"id":"cmpl-9f1c","object":"chat.completion","created":1764158400,"model":"facebook/opt-13b","choices":[{"index":0,"message":{"role":"assistant","content":%q},"finish_reason":"stop"}],"usage":{"prompt_tokens":90,"completion_tokens":1,"total_tokens":91}}`, words[0])
	} else {
		for i, w := range words {
			fmt.Fprintf(&resp, "data: {\"id\":\"chatcmpl-9f1c2a\",\"object\":\"chat.completion.chunk\",\"created\":1764158400,\"model\":\"facebook/opt-13b\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" %s\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":{\"prompt_tokens\":90,\"total_tokens\":%d,\"completion_tokens\":%d}}\n\n", w, 91+i, i+1)
		}
		resp.WriteString("data: [DONE]\n\n")
	}
	r.ResponseBody = resp.Bytes()
	r.ResponseSize = int64(resp.Len())
	r.Chunks = make([]Chunk, chunks)
	for i := range r.Chunks {
		r.Chunks[i] = Chunk{At: 50_000_000 + int64(i)*20_000_000 + int64(i%7)*1000, Size: 180 + int32(i%9), Events: 1, Content: 1, Tokens: 1, Usage: int32(i + 1)}
	}
	return r
}

// diskBytes is the space the files under dir occupy (allocated blocks, so
// Badger's preallocated sparse files count only what they use).
func diskBytes(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		var st syscall.Stat_t
		if syscall.Stat(p, &st) == nil {
			n += st.Blocks * 512
		}
		return nil
	})
	return n
}

// benchWriter puts b.N records of the given chunk count as fast as the
// writer takes them (a dropped Put is retried and counted), then closes the
// store, so the time covers every record committed and synced.
func benchWriter(b *testing.B, chunks int) {
	dir := b.TempDir()
	s, err := Open(dir, Options{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	w := s.Writer()
	tmpl := benchRecord(chunks)
	recs := make([]Record, b.N) // built before the clock: the proxy builds them while streaming
	for i := range recs {
		recs[i] = *tmpl
		recs[i].Received = int64(i) * 1000
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var retries int
	for i := range recs {
		for !w.Put(&recs[i]) {
			retries++
			time.Sleep(50 * time.Microsecond)
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	el := time.Since(start)
	b.StopTimer()
	st := w.Stats()
	if st.Written != uint64(b.N) || st.Lost != 0 {
		b.Fatalf("written %d of %d, lost %d", st.Written, b.N, st.Lost)
	}
	b.ReportMetric(float64(b.N)/el.Seconds(), "records/s")
	b.ReportMetric(float64(b.N*chunks)/el.Seconds(), "chunks/s")
	b.ReportMetric(float64(diskBytes(dir))/float64(b.N), "disk-B/record")
	b.ReportMetric(float64(st.Bytes)/float64(b.N), "stored-B/record")
	b.ReportMetric(float64(st.FlushP99.Microseconds()), "flush-p99-µs")
	b.ReportMetric(float64(retries), "full-queue-retries")
}

// BenchmarkWriter300Chunks: recorded chunks/s with records of 300 chunks
// (a 300-token streamed answer).
func BenchmarkWriter300Chunks(b *testing.B) { benchWriter(b, 300) }

// BenchmarkWriter1Chunk: records/s with one chunk each (non-streamed
// answers), the worst case for chunks/s.
func BenchmarkWriter1Chunk(b *testing.B) { benchWriter(b, 1) }

// benchSustained offers records at a fixed rate, one second of load per
// iteration in 10 ms ticks, and reports drops (which must be zero for the
// rate to count as sustained) and flush latency.
func benchSustained(b *testing.B, chunks, recordsPerSec int) {
	dir := b.TempDir()
	s, err := Open(dir, Options{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	w := s.Writer()
	tmpl := benchRecord(chunks)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	sent := 0
	for tick := 1; tick <= b.N*100; tick++ {
		due := recordsPerSec * tick / 100
		for ; sent < due; sent++ {
			r := new(Record)
			*r = *tmpl // a fresh record each time, as the proxy builds them
			r.Received = int64(sent)
			w.Put(r)
		}
		time.Sleep(time.Until(start.Add(time.Duration(tick) * 10 * time.Millisecond)))
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	st := w.Stats()
	if st.Written+st.Dropped != uint64(sent) {
		b.Fatalf("written %d + dropped %d != offered %d", st.Written, st.Dropped, sent)
	}
	b.ReportMetric(float64(st.Dropped), "dropped")
	b.ReportMetric(float64(st.FlushP50.Microseconds()), "flush-p50-µs")
	b.ReportMetric(float64(st.FlushP99.Microseconds()), "flush-p99-µs")
	b.ReportMetric(float64(st.FlushMax.Microseconds()), "flush-max-µs")
	b.ReportMetric(float64(recordsPerSec*chunks), "offered-chunks/s")
	b.ReportMetric(float64(diskBytes(dir))/float64(max(st.Written, 1)), "disk-B/record")
}

// BenchmarkSustained300Chunks100k offers 334 records/s of 300 chunks
// (100,200 recorded chunks/s).
func BenchmarkSustained300Chunks100k(b *testing.B) { benchSustained(b, 300, 334) }

// BenchmarkSustained300Chunks1M offers 3,334 records/s of 300 chunks
// (1,000,200 recorded chunks/s).
func BenchmarkSustained300Chunks1M(b *testing.B) { benchSustained(b, 300, 3334) }

// BenchmarkSustained1Chunk20k offers 20,000 one-chunk records/s.
func BenchmarkSustained1Chunk20k(b *testing.B) { benchSustained(b, 1, 20_000) }

// BenchmarkSustained1Chunk50k offers 50,000 one-chunk records/s.
func BenchmarkSustained1Chunk50k(b *testing.B) { benchSustained(b, 1, 50_000) }

// BenchmarkSustained1Chunk100k offers 100,000 one-chunk records/s.
func BenchmarkSustained1Chunk100k(b *testing.B) { benchSustained(b, 1, 100_000) }

// BenchmarkPut is the cost of Put on the proxy's side (hot path): a
// channel send, no allocation.
func BenchmarkPut(b *testing.B) {
	s, err := Open(b.TempDir(), Options{Logger: quiet, QueueSize: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	w := s.Writer()
	r := benchRecord(1)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		w.Put(r)
	}
}

// BenchmarkEncodeRecord300 is the writer goroutine's encoding cost.
func BenchmarkEncodeRecord300(b *testing.B) {
	r := benchRecord(300)
	buf := make([]byte, 0, 8192)
	b.ReportAllocs()
	for range b.N {
		buf, _ = r.AppendBinary(buf[:0])
	}
	b.SetBytes(int64(len(buf)))
}

// BenchmarkDecodeRecord300 is the reader's decoding cost.
func BenchmarkDecodeRecord300(b *testing.B) {
	enc, _ := benchRecord(300).MarshalBinary()
	var r Record
	b.ReportAllocs()
	b.SetBytes(int64(len(enc)))
	for range b.N {
		if err := r.UnmarshalBinary(enc); err != nil {
			b.Fatal(err)
		}
	}
}

func TestPutAllocs(t *testing.T) {
	// No commit during the measurement: AllocsPerRun counts every
	// goroutine's allocations, and a Badger commit allocates.
	s := openTest(t, t.TempDir(), Options{QueueSize: 1 << 16, FlushInterval: time.Hour, BatchRecords: 1 << 20})
	defer s.Close()
	w := s.Writer()
	r := benchRecord(3)
	r.ID = 1
	if a := testing.AllocsPerRun(1000, func() { w.Put(r) }); a != 0 {
		t.Errorf("Put allocates %.1f times, want 0", a)
	}
	smp := Sample{At: 1, Name: MetricRunning, Value: 1}
	if a := testing.AllocsPerRun(1000, func() { w.PutSample(smp) }); a != 0 {
		t.Errorf("PutSample allocates %.1f times, want 0", a)
	}
}
