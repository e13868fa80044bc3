// Package wire is the one varint codec helper of vbench's binary formats:
// the records of trace.bin (package trace) and the values of a capture
// (package capture). Unsigned integers are uvarints, signed ones zig-zag
// varints, strings and byte slices uvarint-length-prefixed, floats 8 bytes
// little-endian. Appenders extend a slice; Reader walks one encoded value
// with a sticky error, so a decoder checks Err once at the end and hostile
// bytes can neither panic nor make it allocate more than they hold.
package wire

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
)

// AppendUvarint appends v as a uvarint.
func AppendUvarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

// AppendVarint appends v as a zig-zag varint.
func AppendVarint(b []byte, v int64) []byte { return binary.AppendVarint(b, v) }

// AppendString appends s, length-prefixed.
func AppendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// AppendBytes appends s, length-prefixed.
func AppendBytes(b []byte, s []byte) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// AppendFloat appends f as 8 little-endian bytes.
func AppendFloat(b []byte, f float64) []byte {
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
}

// AppendBool appends v as one byte, 0 or 1.
func AppendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

// AppendMap appends m as a count then key, value strings in key order (so
// equal maps encode to equal bytes).
func AppendMap(b []byte, m map[string]string) []byte {
	b = binary.AppendUvarint(b, uint64(len(m)))
	if len(m) == 1 {
		for k, v := range m {
			return AppendString(AppendString(b, k), v)
		}
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b = AppendString(AppendString(b, k), m[k])
	}
	return b
}

// Reader reads the fields of one encoded value. The first problem sticks
// (Err); later reads return zero values. It advances an offset instead of
// reslicing, so decoding writes no pointers (no GC write barriers in the
// varint loop).
type Reader struct {
	b   []byte
	off int
	err error
	// Field names what is being read, in errors.
	Field string
	// Wrap makes the error of a problem ("bad varint", "truncated") met
	// while reading Field; nil gives "Field: problem".
	Wrap func(field, problem string) error
}

// NewReader returns a Reader of b whose errors Wrap makes.
func NewReader(b []byte, wrap func(field, problem string) error) Reader {
	return Reader{b: b, Wrap: wrap}
}

// Err is the first problem met, or nil.
func (r *Reader) Err() error { return r.err }

// Left returns the bytes not read yet.
func (r *Reader) Left() []byte { return r.b[r.off:] }

// Done reports whether every byte was read.
func (r *Reader) Done() bool { return r.off == len(r.b) }

// Fail records a problem with Field (unless one was met before).
func (r *Reader) Fail(problem string) {
	if r.err != nil {
		return
	}
	if r.Wrap != nil {
		r.err = r.Wrap(r.Field, problem)
		return
	}
	r.err = fmt.Errorf("%s: %s", r.Field, problem)
}

// Uvarint reads a uvarint.
func (r *Reader) Uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 {
		r.Fail("bad unsigned varint")
		return 0
	}
	r.off += n
	return v
}

// Varint reads a zig-zag varint.
func (r *Reader) Varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b[r.off:])
	if n <= 0 {
		r.Fail("bad varint")
		return 0
	}
	r.off += n
	return v
}

// Ranged reads a varint that must lie in [lo, hi].
func (r *Reader) Ranged(lo, hi int64) int64 {
	v := r.Varint()
	if v < lo || v > hi {
		r.Fail(fmt.Sprintf("value %d outside [%d, %d]", v, lo, hi))
		return 0
	}
	return v
}

// Byte reads one byte.
func (r *Reader) Byte() byte {
	if r.err != nil {
		return 0
	}
	if r.off >= len(r.b) {
		r.Fail("truncated")
		return 0
	}
	c := r.b[r.off]
	r.off++
	return c
}

// Float reads 8 little-endian bytes as a float64.
func (r *Reader) Float() float64 {
	if r.err != nil {
		return 0
	}
	if len(r.b)-r.off < 8 {
		r.Fail("truncated float")
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(r.b[r.off:]))
	r.off += 8
	return v
}

// Raw reads length-prefixed bytes, aliasing the input (at most max bytes;
// 0: any length the input holds).
func (r *Reader) Raw(max uint64) []byte {
	n := r.Uvarint()
	if r.err != nil {
		return nil
	}
	if max > 0 && n > max {
		r.Fail(fmt.Sprintf("length %d over the limit of %d", n, max))
		return nil
	}
	if n > uint64(len(r.b)-r.off) {
		r.Fail(fmt.Sprintf("length %d exceeds the %d bytes left", n, len(r.b)-r.off))
		return nil
	}
	s := r.b[r.off : r.off+int(n) : r.off+int(n)]
	r.off += int(n)
	return s
}

// Str reads a length-prefixed string (a copy).
func (r *Reader) Str() string { return string(r.Raw(0)) }

// Count reads an element count. Each element takes at least minSize bytes,
// so a count larger than the remaining bytes allow (or than limit) is a
// problem, and a decoder may preallocate it.
func (r *Reader) Count(minSize int, limit uint64) int {
	n := r.Uvarint()
	if r.err != nil {
		return 0
	}
	if left := uint64(len(r.b) - r.off); n > limit || n*uint64(minSize) > left {
		r.Fail(fmt.Sprintf("count %d is impossible with %d bytes left", n, left))
		return 0
	}
	return int(n)
}

// Map reads a map written by AppendMap (nil when empty).
func (r *Reader) Map() map[string]string {
	n := r.Count(2, math.MaxInt32)
	if n == 0 {
		return nil
	}
	m := make(map[string]string, min(n, 64)) // a corrupt count must not preallocate
	for i := 0; i < n && r.err == nil; i++ {
		k := r.Str()
		m[k] = r.Str()
	}
	return m
}
