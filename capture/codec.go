package capture

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"unicode/utf8"

	"github.com/klauspost/compress/s2"

	"github.com/vbench/vbench/internal/wire"
)

/*
Binary layout of a stored Record (the value under a record key), version 1:

	version  byte (recordVersion)
	fields   in the order of appendRecord

Unsigned integers are uvarints, signed integers zig-zag varints, floats are
8 little-endian bytes of their IEEE-754 bits, strings and byte slices are
uvarint-length-prefixed, maps are a uvarint count followed by key/value
pairs in sorted key order (so equal records encode to equal bytes). Chunk
times are stored as the delta from the previous chunk's time.

The decoder checks every length against the bytes that remain before it
allocates, so a corrupt value can never make it allocate more than a small
multiple of its own size, and it never panics.

A Sample value is: version byte, zig-zag At, name, 8-byte value.
A Meta value is JSON (see Meta).
*/

const (
	recordVersion = 1
	sampleVersion = 1
	// maxChunks caps the chunk count of one record (about 16 M reads).
	maxChunks = 1 << 24
)

// ErrCorrupt is wrapped by every error about malformed stored bytes.
var ErrCorrupt = errors.New("corrupt capture value")

func corrupt(format string, args ...any) error {
	return fmt.Errorf("capture: %w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// AppendBinary appends the binary encoding of r to b and returns the
// extended slice. It implements encoding.BinaryAppender.
func (r *Record) AppendBinary(b []byte) ([]byte, error) {
	return appendRecord(b, r), nil
}

// MarshalBinary returns the binary encoding of r.
func (r *Record) MarshalBinary() ([]byte, error) {
	return appendRecord(make([]byte, 0, r.sizeHint()), r), nil
}

// sizeHint is an upper-bound guess of the encoded size.
func (r *Record) sizeHint() int {
	return 128 + len(r.Path) + len(r.Error) + len(r.RequestBody) + len(r.ResponseBody) + 16*len(r.Chunks)
}

func appendRecord(b []byte, r *Record) []byte {
	b = append(b, recordVersion)
	b = wire.AppendUvarint(b, r.ID)
	b = wire.AppendMap(b, r.Labels)

	t := &r.Tags
	b = wire.AppendString(b, t.Run)
	b = wire.AppendString(b, t.Trial)
	b = wire.AppendString(b, t.Level)
	b = wire.AppendFloat(b, t.Rate)
	b = wire.AppendVarint(b, t.Index)
	b = wire.AppendVarint(b, t.Scheduled)
	b = wire.AppendVarint(b, t.Sent)
	b = wire.AppendVarint(b, t.Deadline)
	b = wire.AppendBool(b, t.Warmup)
	b = wire.AppendString(b, t.TraceHash)
	b = wire.AppendMap(b, t.Extra)

	b = wire.AppendString(b, r.Method)
	b = wire.AppendString(b, r.Path)
	b = wire.AppendUvarint(b, uint64(len(r.RequestHeaders)))
	for _, h := range r.RequestHeaders {
		b = wire.AppendString(wire.AppendString(b, h.Name), h.Value)
	}
	b = wire.AppendVarint(b, int64(r.Status))
	b = wire.AppendString(b, r.ContentType)

	b = wire.AppendVarint(b, r.Received)
	b = wire.AppendVarint(b, r.Forwarded)
	b = wire.AppendVarint(b, r.Headers)
	b = wire.AppendVarint(b, r.End)

	b = wire.AppendUvarint(b, uint64(len(r.Chunks)))
	var last int64
	for i := range r.Chunks {
		c := &r.Chunks[i]
		b = wire.AppendVarint(b, c.At-last)
		last = c.At
		b = wire.AppendVarint(b, int64(c.Size))
		b = wire.AppendVarint(b, int64(c.Events))
		b = wire.AppendVarint(b, int64(c.Content))
		b = wire.AppendVarint(b, int64(c.Tokens))
		b = wire.AppendVarint(b, int64(c.Usage))
	}

	b = wire.AppendString(b, string(r.Outcome))
	b = wire.AppendString(b, r.Error)
	b = wire.AppendVarint(b, int64(r.PromptTokens))
	b = wire.AppendVarint(b, int64(r.CompletionTokens))
	b = wire.AppendBytes(b, r.RequestBody)
	b = wire.AppendVarint(b, r.RequestSize)
	b = wire.AppendBytes(b, r.ResponseBody)
	b = wire.AppendVarint(b, r.ResponseSize)
	return b
}

// corruptField is the error of a problem met while decoding a field of a
// stored value.
func corruptField(field, problem string) error { return corrupt("%s: %s", field, problem) }

// UnmarshalBinary decodes a value written by AppendBinary into r,
// replacing all of r's fields. The decoded record does not alias data.
func (r *Record) UnmarshalBinary(data []byte) error {
	*r = Record{}
	if len(data) == 0 {
		return corrupt("record: empty value")
	}
	if data[0] != recordVersion {
		return corrupt("record: version %d, this build reads version %d", data[0], recordVersion)
	}
	d := wire.NewReader(data[1:], corruptField)
	d.Field = "id"
	r.ID = d.Uvarint()
	d.Field = "labels"
	r.Labels = d.Map()

	d.Field = "tags"
	t := &r.Tags
	t.Run = d.Str()
	t.Trial = d.Str()
	t.Level = d.Str()
	t.Rate = d.Float()
	t.Index = d.Varint()
	t.Scheduled = d.Varint()
	t.Sent = d.Varint()
	t.Deadline = d.Varint()
	switch d.Byte() {
	case 0:
	case 1:
		t.Warmup = true
	default:
		d.Fail("warmup flag is not 0 or 1")
	}
	t.TraceHash = d.Str()
	t.Extra = d.Map()

	d.Field = "request line"
	r.Method = d.Str()
	r.Path = d.Str()
	d.Field = "request headers"
	if n := d.Count(2, math.MaxInt32); n > 0 {
		r.RequestHeaders = make([]Header, 0, min(n, 64))
		for i := 0; i < n && d.Err() == nil; i++ {
			r.RequestHeaders = append(r.RequestHeaders, Header{Name: d.Str(), Value: d.Str()})
		}
	}
	d.Field = "status"
	r.Status = int(d.Ranged(math.MinInt32, math.MaxInt32))
	r.ContentType = d.Str()

	d.Field = "times"
	r.Received = d.Varint()
	r.Forwarded = d.Varint()
	r.Headers = d.Varint()
	r.End = d.Varint()

	d.Field = "chunks"
	if n := d.Count(6, maxChunks); n > 0 {
		r.Chunks = make([]Chunk, n)
		var at int64
		for i := range r.Chunks {
			c := &r.Chunks[i]
			at += d.Varint()
			c.At = at
			c.Size = int32(d.Ranged(math.MinInt32, math.MaxInt32))
			c.Events = int16(d.Ranged(math.MinInt16, math.MaxInt16))
			c.Content = int16(d.Ranged(math.MinInt16, math.MaxInt16))
			c.Tokens = int32(d.Ranged(math.MinInt32, math.MaxInt32))
			c.Usage = int32(d.Ranged(math.MinInt32, math.MaxInt32))
			if d.Err() != nil {
				break
			}
		}
	}

	d.Field = "outcome"
	r.Outcome = Outcome(d.Str())
	r.Error = d.Str()
	d.Field = "usage"
	r.PromptTokens = int32(d.Ranged(math.MinInt32, math.MaxInt32))
	r.CompletionTokens = int32(d.Ranged(math.MinInt32, math.MaxInt32))
	d.Field = "request body"
	if b := d.Raw(0); len(b) > 0 {
		r.RequestBody = append([]byte(nil), b...)
	}
	r.RequestSize = d.Varint()
	d.Field = "response body"
	if b := d.Raw(0); len(b) > 0 {
		r.ResponseBody = append([]byte(nil), b...)
	}
	r.ResponseSize = d.Varint()
	if d.Err() == nil && !d.Done() {
		d.Field = "end"
		d.Fail(fmt.Sprintf("%d trailing bytes", len(d.Left())))
	}
	if d.Err() != nil {
		*r = Record{}
		return d.Err()
	}
	return nil
}

// AppendBinary appends the binary encoding of s to b.
func (s Sample) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, sampleVersion)
	b = wire.AppendVarint(b, s.At)
	b = wire.AppendString(b, s.Name)
	return wire.AppendFloat(b, s.Value), nil
}

// MarshalBinary returns the binary encoding of s.
func (s Sample) MarshalBinary() ([]byte, error) {
	return s.AppendBinary(make([]byte, 0, 20+len(s.Name)))
}

// UnmarshalBinary decodes a value written by Sample.AppendBinary into s.
func (s *Sample) UnmarshalBinary(data []byte) error {
	*s = Sample{}
	if len(data) == 0 {
		return corrupt("sample: empty value")
	}
	if data[0] != sampleVersion {
		return corrupt("sample: version %d, this build reads version %d", data[0], sampleVersion)
	}
	d := wire.NewReader(data[1:], corruptField)
	d.Field = "sample"
	s.At = d.Varint()
	s.Name = d.Str()
	s.Value = d.Float()
	if d.Err() == nil && !d.Done() {
		d.Fail(fmt.Sprintf("%d trailing bytes", len(d.Left())))
	}
	if d.Err() != nil {
		*s = Sample{}
		return d.Err()
	}
	return nil
}

// MetaVersion is the version of the Meta JSON this package writes. Version
// 2 added Closed and Recorder: a version-2 meta without Closed belongs to a
// writer that has not closed the store cleanly (still running, killed or
// crashed); version 1 says nothing either way.
const MetaVersion = 2

// Meta is the run metadata of a capture: which tool wrote it, with what
// configuration, in front of which upstream. A capture may hold several (one
// per process that opened it for writing); Metas returns them in the order
// they were stored.
type Meta struct {
	// Version is MetaVersion when written by this package.
	Version int `json:"version"`
	// Tool is the writing program, e.g. "vbproxy" or "vbreplay".
	Tool string `json:"tool"`
	// ToolVersion is the tool's version (module version or git hash).
	ToolVersion string `json:"tool_version,omitempty"`
	// Started is the Unix ns at which the writer started.
	Started int64 `json:"started"`
	// Upstream is the proxied server's address.
	Upstream string `json:"upstream,omitempty"`
	// Labels are the labels added to every record.
	Labels map[string]string `json:"labels,omitempty"`
	// Host is the host name of the writer.
	Host string `json:"host,omitempty"`
	// PID is the process id of the writer.
	PID int `json:"pid,omitempty"`
	// Config is the writer's resolved configuration, as JSON.
	Config json.RawMessage `json:"config,omitempty"`
	// Extra holds any other facts (trace hash, run id, ...).
	Extra map[string]string `json:"extra,omitempty"`
	// Closed is the Unix ns at which the writing process closed the store
	// cleanly, after draining its writer; Store.Close sets it on every
	// meta the process put. Zero while the writer runs or after a crash.
	Closed int64 `json:"closed,omitempty"`
	// Recorder holds the writer's final counts, set together with Closed
	// on the last meta the process put.
	Recorder *RecorderTotals `json:"recorder,omitempty"`
}

// RecorderTotals are a writer's final counts, stored in its Meta at a clean
// close so that a capture read later says what it is missing.
type RecorderTotals struct {
	// Written and Samples count the records and samples committed.
	Written uint64 `json:"written"`
	Samples uint64 `json:"samples"`
	// Dropped counts records and samples refused because the queue was
	// full; Lost those accepted but not stored (failed commit, disk
	// reserve reached). Either means the capture misses traffic.
	Dropped uint64 `json:"dropped"`
	Lost    uint64 `json:"lost"`
	// Errors counts failed commits and syncs, LastError is the latest
	// (cut to 512 bytes); FirstLoss and LastLoss are the Unix ns of the
	// first and the latest item dropped or lost. All are omitted when
	// zero (and absent from captures of the first version-2 writers).
	Errors    uint64 `json:"errors,omitempty"`
	LastError string `json:"last_error,omitempty"`
	FirstLoss int64  `json:"first_loss,omitempty"`
	LastLoss  int64  `json:"last_loss,omitempty"`
}

// MarshalBinary returns the stored form of m: JSON.
func (m Meta) MarshalBinary() ([]byte, error) {
	if m.Version == 0 {
		m.Version = MetaVersion
	}
	if len(m.Config) > 0 && !json.Valid(m.Config) {
		return nil, fmt.Errorf("capture: meta: config is not valid JSON")
	}
	return json.Marshal(m)
}

// UnmarshalBinary decodes a stored Meta.
func (m *Meta) UnmarshalBinary(data []byte) error {
	*m = Meta{}
	if !utf8.Valid(data) {
		return corrupt("meta: not UTF-8 JSON")
	}
	if err := json.Unmarshal(data, m); err != nil {
		*m = Meta{}
		return corrupt("meta: %v", err)
	}
	if m.Version < 1 || m.Version > MetaVersion {
		v := m.Version
		*m = Meta{}
		return corrupt("meta: version %d, this build reads versions 1..%d", v, MetaVersion)
	}
	return nil
}

// Stored record values. The store keeps a record as its binary encoding
// (first byte recordVersion) or, when that is larger than compressMin
// bytes and compresses, as compressedTag followed by the S2 block
// compression of the encoding. Compressing before Badger sees the value lets
// the store keep values in Badger's value log (written once, never
// compacted) without paying the uncompressed size on disk: request bodies,
// raw SSE responses and chunk timelines compress several-fold.
const (
	compressedTag = 0xC5
	compressMin   = 256
	// maxStoredRecord caps the decompressed size of one stored record;
	// the writer refuses (and counts as lost) a record that encodes to
	// more, so it never stores a value the decoder would refuse.
	maxStoredRecord = 256 << 20
)

// storeLimit is maxStoredRecord; tests lower it.
var storeLimit = maxStoredRecord

// MaxChunks is the most chunk entries a record's timeline may hold; a
// writer of records (the proxy) merges later reads into the last entry.
// The decoder accepts up to maxChunks, so captures written with a higher
// cap stay readable.
const MaxChunks = 1 << 20

// errRecordTooBig is the writer's error for a record it cannot store so
// that it reads back.
var errRecordTooBig = errors.New("record too large to store")

// appendStoredRecord appends the stored form of r to dst; scratch is a
// reusable buffer for the uncompressed encoding, returned grown.
func appendStoredRecord(dst, scratch []byte, r *Record) (out, scratchOut []byte) {
	scratch = appendRecord(scratch[:0], r)
	if len(scratch) < compressMin {
		return append(dst, scratch...), scratch
	}
	need := 1 + s2.MaxEncodedLen(len(scratch))
	dst = slices.Grow(dst, need)
	start := len(dst)
	dst = append(dst, compressedTag)
	enc := s2.Encode(dst[start+1:start+need], scratch)
	if len(enc) >= len(scratch) { // incompressible: store it plain
		dst = append(dst[:start], scratch...)
		return dst, scratch
	}
	return dst[:start+1+len(enc)], scratch
}

// decodeStoredRecord decodes a stored record value into r; buf is a
// reusable decompression buffer, returned grown.
func decodeStoredRecord(v []byte, r *Record, buf []byte) ([]byte, error) {
	if len(v) > 0 && v[0] == compressedTag {
		n, err := s2.DecodedLen(v[1:])
		if err != nil {
			*r = Record{}
			return buf, corrupt("record: compressed value: %v", err)
		}
		// The bound is absolute, never a ratio: the writer compresses
		// whatever the proxy accepted (a prompt of one repeated word, a body
		// of zeros), and S2 shrinks such values by far more than any fixed
		// factor. maxStoredRecord is what storeRecord lets through.
		if n > maxStoredRecord {
			*r = Record{}
			return buf, corrupt("record: compressed value claims %d bytes, more than the %d a stored record may hold", n, maxStoredRecord)
		}
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		d, err := s2.Decode(buf[:n], v[1:])
		if err != nil {
			*r = Record{}
			return buf, corrupt("record: compressed value: %v", err)
		}
		v = d
	}
	return buf, r.UnmarshalBinary(v)
}
