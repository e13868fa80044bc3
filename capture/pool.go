package capture

import "sync"

// Record buffers are pooled for the proxy. A streamed exchange builds its
// record's timeline and raw response body while the stream runs, growing
// both by doubling; at 1,000 concurrent streams that growth was most of
// the proxy's allocation (three quarters of the 53 KB allocated per
// 40-event stream), and the garbage set how often the collector ran and
// made the stream goroutines assist it. With UsePool the buffers come back through
// a pool once the Writer has encoded the record, so a steady stream of
// similar exchanges grows nothing (docs/benchmarks/proxy.md).

// recordBuffers holds the pooled slices of a record between uses.
type recordBuffers struct {
	chunks  []Chunk
	body    []byte // ResponseBody
	req     []byte // RequestBody
	headers []Header
}

// Pooled buffers larger than these are left to the garbage collector, so
// one huge exchange does not pin its buffers for every later record.
const (
	maxPooledChunks  = 4096      // 96 KiB of timeline
	maxPooledBytes   = 256 << 10 // each of the raw bodies
	maxPooledHeaders = 256
	// newPooledChunks is the timeline capacity of a fresh pooled record.
	newPooledChunks = 64
)

var bufferPool = sync.Pool{New: func() any {
	return &recordBuffers{chunks: make([]Chunk, 0, newPooledChunks)}
}}

// UsePool gives r an empty timeline (Chunks), raw bodies (RequestBody,
// ResponseBody) and header list (RequestHeaders) whose capacity comes from
// records released earlier, and marks r so that the Writer returns them
// to the pool once it has encoded r (or dropped it). Whoever calls UsePool
// hands r to Writer.Put and never touches r afterwards, whether Put
// accepted it or not: its buffers are reused by another record. A pooled
// record that is never Put is simply garbage collected. UsePool does
// nothing to a record already pooled.
func (r *Record) UsePool() {
	if r.bufs != nil {
		return
	}
	b := bufferPool.Get().(*recordBuffers)
	r.bufs = b
	r.Chunks, r.ResponseBody = b.chunks[:0], b.body[:0]
	r.RequestBody, r.RequestHeaders = b.req[:0], b.headers[:0]
	b.chunks, b.body, b.req, b.headers = nil, nil, nil, nil
}

// Release returns the buffers of a pooled record to the pool and leaves r
// without them; it does nothing to a record not pooled. The Writer calls it
// once it has encoded or dropped a record; a holder of a pooled record that
// will not Put it (a proxy that forwards without recording) calls it
// instead, and then must not touch r.
func (r *Record) Release() {
	b := r.bufs
	if b == nil {
		return
	}
	r.bufs = nil
	if cap(r.Chunks) <= maxPooledChunks {
		b.chunks = r.Chunks[:0]
	} else {
		b.chunks = make([]Chunk, 0, newPooledChunks)
	}
	if cap(r.ResponseBody) <= maxPooledBytes {
		b.body = r.ResponseBody[:0]
	}
	if cap(r.RequestBody) <= maxPooledBytes {
		b.req = r.RequestBody[:0]
	}
	if cap(r.RequestHeaders) <= maxPooledHeaders {
		clear(r.RequestHeaders) // let the strings go
		b.headers = r.RequestHeaders[:0]
	}
	r.Chunks, r.ResponseBody, r.RequestBody, r.RequestHeaders = nil, nil, nil, nil
	bufferPool.Put(b)
}
