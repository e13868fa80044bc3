package trace

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"math"
	"os"
	"time"

	"github.com/vbench/vbench/internal/wire"
)

/*
Layout of trace.bin, version 1 (all integers little-endian unless varint):

	magic      8 bytes  "VBTRACE\n"
	version    uint16
	count      uint64   number of records
	span       int64    offset of the last record, ns
	hash       32 bytes SHA-256 over every record's (uvarint length ‖ payload)
	metaLen    uint32
	meta       metaLen bytes of JSON (Header without count/span/hash)
	headerCRC  uint32   CRC-32C of everything from version to meta
	records    count × (uvarint length ‖ payload ‖ uint32 CRC-32C of payload)

The fixed-size count/span/hash fields let a Writer on a seekable file stream
records and patch the header on Close. The payload of a record is a sequence
of fields in a fixed order (see appendRecord); strings and byte slices are
uvarint-length-prefixed, signed integers zig-zag varints. The sampling
flags byte has bits 1 ignore_eos, 2 temperature, 4 top_p and 8 think time:
a record with a non-zero ThinkTime ends with it as a varint after the body
(records without one are byte-identical to those written before the field
existed, so their hashes are unchanged).
*/

const (
	magic         = "VBTRACE\n"
	fixedLen      = 2 + 8 + 8 + 32 + 4 // version..metaLen
	maxMetaLen    = 1 << 20
	maxRecordLen  = 256 << 20
	maxStringLen  = 64 << 20
	maxTokens     = 16 << 20
	maxMessages   = 1 << 16
	endpointOther = 2
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// ErrFormat is wrapped by every error about malformed trace bytes.
var ErrFormat = errors.New("malformed trace")

func formatErr(format string, args ...any) error {
	return fmt.Errorf("trace: %w: %s", ErrFormat, fmt.Sprintf(format, args...))
}

// Writer writes a binary trace. Records must be written in arrival order;
// Close computes and stores Count, Span and Hash.
type Writer struct {
	dst     io.Writer
	seeker  io.WriteSeeker // nil: records are buffered until Close
	buf     *bufio.Writer
	mem     *bytes.Buffer
	hdr     Header
	hash    hash.Hash
	scratch []byte
	lenBuf  [binary.MaxVarintLen64]byte
	last    time.Duration
	closed  bool
	err     error
}

// NewWriter starts a trace with header h on w. If w is a seekable file the
// records stream straight to it and the header is patched on Close;
// otherwise they are held in memory until Close.
func NewWriter(w io.Writer, h Header) (*Writer, error) {
	tw := &Writer{dst: w, hdr: h, hash: sha256.New()}
	tw.hdr.Count, tw.hdr.Span, tw.hdr.Hash = 0, 0, [32]byte{}
	if s, ok := w.(io.WriteSeeker); ok && seekable(s) {
		tw.seeker = s
		tw.buf = bufio.NewWriterSize(w, 1<<20)
		if err := writeHeader(tw.buf, &tw.hdr); err != nil {
			return nil, err
		}
	} else {
		tw.mem = &bytes.Buffer{}
		tw.buf = bufio.NewWriterSize(tw.mem, 1<<16)
	}
	return tw, nil
}

func seekable(s io.WriteSeeker) bool {
	if f, ok := s.(*os.File); ok {
		st, err := f.Stat()
		if err != nil || !st.Mode().IsRegular() {
			return false
		}
	}
	pos, err := s.Seek(0, io.SeekCurrent)
	return err == nil && pos == 0
}

// Write appends one request. Its Index must equal the number of requests
// written before it and its Offset must not be smaller than the previous one.
func (w *Writer) Write(r *Request) error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return errors.New("trace: write after close")
	}
	if r.Index != w.hdr.Count {
		return fmt.Errorf("trace: record %d: index is %d", w.hdr.Count, r.Index)
	}
	if r.Offset < w.last {
		return fmt.Errorf("trace: record %d: offset %v before previous %v", r.Index, r.Offset, w.last)
	}
	if err := r.Validate(); err != nil {
		return fmt.Errorf("trace: record %d: %w", r.Index, err)
	}
	w.scratch = appendRecord(w.scratch[:0], r)
	if len(w.scratch) > maxRecordLen {
		return fmt.Errorf("trace: record %d: %d bytes exceeds the %d-byte limit", r.Index, len(w.scratch), maxRecordLen)
	}
	n := binary.PutUvarint(w.lenBuf[:], uint64(len(w.scratch)))
	w.hash.Write(w.lenBuf[:n])
	w.hash.Write(w.scratch)
	var crc [4]byte
	binary.LittleEndian.PutUint32(crc[:], crc32.Checksum(w.scratch, crcTable))
	if _, err := w.buf.Write(w.lenBuf[:n]); err != nil {
		w.err = err
		return err
	}
	w.buf.Write(w.scratch)
	if _, err := w.buf.Write(crc[:]); err != nil {
		w.err = err
		return err
	}
	w.hdr.Count++
	w.hdr.Span = r.Offset
	w.last = r.Offset
	return nil
}

// Header returns the header as it stands: after Close it holds the final
// Count, Span and Hash.
func (w *Writer) Header() Header { return w.hdr }

// Close finishes the trace. It does not close the underlying writer.
func (w *Writer) Close() error {
	if w.closed {
		return w.err
	}
	w.closed = true
	if w.err != nil {
		return w.err
	}
	copy(w.hdr.Hash[:], w.hash.Sum(nil))
	if err := w.buf.Flush(); err != nil {
		w.err = err
		return err
	}
	if w.seeker == nil {
		out := bufio.NewWriterSize(w.dst, 1<<20)
		if err := writeHeader(out, &w.hdr); err != nil {
			w.err = err
			return err
		}
		if _, err := out.Write(w.mem.Bytes()); err != nil {
			w.err = err
			return err
		}
		w.err = out.Flush()
		return w.err
	}
	// Patch the header in place: its size is unchanged because the
	// metadata JSON does not contain count, span or hash.
	end, err := w.seeker.Seek(0, io.SeekCurrent)
	if err == nil {
		_, err = w.seeker.Seek(0, io.SeekStart)
	}
	if err == nil {
		bw := bufio.NewWriter(w.seeker)
		if err = writeHeader(bw, &w.hdr); err == nil {
			err = bw.Flush()
		}
	}
	if err == nil {
		_, err = w.seeker.Seek(end, io.SeekStart)
	}
	w.err = err
	return err
}

func writeHeader(w io.Writer, h *Header) error {
	meta, err := json.Marshal(metaOf(h))
	if err != nil {
		return fmt.Errorf("trace: header: %w", err)
	}
	if len(meta) > maxMetaLen {
		return fmt.Errorf("trace: header metadata is %d bytes, limit %d", len(meta), maxMetaLen)
	}
	b := make([]byte, 0, len(magic)+fixedLen+len(meta)+4)
	b = append(b, magic...)
	b = binary.LittleEndian.AppendUint16(b, FormatVersion)
	b = binary.LittleEndian.AppendUint64(b, uint64(h.Count))
	b = binary.LittleEndian.AppendUint64(b, uint64(h.Span))
	b = append(b, h.Hash[:]...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(meta)))
	b = append(b, meta...)
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b[len(magic):], crcTable))
	_, err = w.Write(b)
	return err
}

// meta is the JSON part of the binary header: everything but the fields
// that are computed from the records.
type meta struct {
	Generator  string            `json:"generator"`
	Created    string            `json:"created"`
	Seed       int64             `json:"seed"`
	Dataset    string            `json:"dataset"`
	Arrival    string            `json:"arrival"`
	Burstiness float64           `json:"burstiness"`
	MeanRate   float64           `json:"mean_rate"`
	Params     map[string]string `json:"params,omitempty"`
}

func metaOf(h *Header) meta {
	return meta{
		Generator: h.Generator, Created: h.Created.UTC().Format(time.RFC3339Nano), Seed: h.Seed,
		Dataset: h.Dataset, Arrival: h.Arrival, Burstiness: h.Burstiness, MeanRate: h.MeanRate, Params: h.Params,
	}
}

func (m meta) apply(h *Header) error {
	t, err := time.Parse(time.RFC3339Nano, m.Created)
	if err != nil {
		return fmt.Errorf("created: %w", err)
	}
	h.Generator, h.Created, h.Seed = m.Generator, t.UTC(), m.Seed
	h.Dataset, h.Arrival, h.Burstiness, h.MeanRate, h.Params = m.Dataset, m.Arrival, m.Burstiness, m.MeanRate, m.Params
	return nil
}

// Reader reads a binary trace record by record.
type Reader struct {
	r       *bufio.Reader
	hdr     Header
	n       int64
	hash    hash.Hash
	buf     []byte
	lenBuf  [binary.MaxVarintLen64]byte
	done    bool
	lastOff time.Duration
}

// NewReader reads and checks the header of a binary trace.
func NewReader(r io.Reader) (*Reader, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	var fixed [len(magic) + fixedLen]byte
	if _, err := io.ReadFull(br, fixed[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, formatErr("header: file is %s (not a trace.bin?)", shortness(err))
		}
		return nil, fmt.Errorf("trace: header: %w", err)
	}
	if string(fixed[:len(magic)]) != magic {
		return nil, formatErr("header: bad magic %q (not a trace.bin file; JSON Lines traces end in .jsonl)", fixed[:len(magic)])
	}
	b := fixed[len(magic):]
	if v := binary.LittleEndian.Uint16(b); v != FormatVersion {
		return nil, formatErr("header: format version %d is not supported (this build reads version %d)", v, FormatVersion)
	}
	var h Header
	h.Count = int64(binary.LittleEndian.Uint64(b[2:]))
	h.Span = time.Duration(binary.LittleEndian.Uint64(b[10:]))
	copy(h.Hash[:], b[18:50])
	metaLen := binary.LittleEndian.Uint32(b[50:])
	if metaLen > maxMetaLen {
		return nil, formatErr("header: metadata length %d exceeds %d", metaLen, maxMetaLen)
	}
	if h.Count < 0 || h.Span < 0 {
		return nil, formatErr("header: negative count %d or span %d", h.Count, h.Span)
	}
	rest := make([]byte, int(metaLen)+4)
	if _, err := io.ReadFull(br, rest); err != nil {
		return nil, formatErr("header: metadata %s", shortness(err))
	}
	crc := crc32.Update(crc32.Checksum(b, crcTable), crcTable, rest[:metaLen])
	if crc != binary.LittleEndian.Uint32(rest[metaLen:]) {
		return nil, formatErr("header: checksum mismatch (file corrupted)")
	}
	var m meta
	if err := json.Unmarshal(rest[:metaLen], &m); err != nil {
		return nil, formatErr("header: metadata: %v", err)
	}
	if err := m.apply(&h); err != nil {
		return nil, formatErr("header: metadata: %v", err)
	}
	return &Reader{r: br, hdr: h, hash: sha256.New()}, nil
}

func shortness(err error) string {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "truncated"
	}
	return err.Error()
}

// Header returns the trace's header.
func (r *Reader) Header() Header { return r.hdr }

// Read decodes the next request into req (reusing its slices' memory is not
// attempted: req is overwritten). It returns io.EOF after the last record,
// once the content hash has been verified.
func (r *Reader) Read(req *Request) error {
	if r.done {
		return io.EOF
	}
	if r.n == r.hdr.Count {
		r.done = true
		if _, err := r.r.ReadByte(); err == nil {
			return formatErr("%d bytes of trailing data after record %d", 1+r.r.Buffered(), r.n-1)
		}
		var sum [32]byte
		copy(sum[:], r.hash.Sum(nil))
		if sum != r.hdr.Hash {
			return formatErr("content hash mismatch: header says %x, records give %x", r.hdr.Hash[:6], sum[:6])
		}
		return io.EOF
	}
	size, err := binary.ReadUvarint(r.r)
	if err != nil {
		r.done = true
		return formatErr("record %d of %d: length %s", r.n, r.hdr.Count, shortness(err))
	}
	if size > maxRecordLen {
		r.done = true
		return formatErr("record %d: length %d exceeds %d", r.n, size, maxRecordLen)
	}
	if cap(r.buf) < int(size)+4 {
		r.buf = make([]byte, int(size)+4)
	}
	buf := r.buf[:int(size)+4]
	if _, err := io.ReadFull(r.r, buf); err != nil {
		r.done = true
		return formatErr("record %d of %d: %s", r.n, r.hdr.Count, shortness(err))
	}
	payload := buf[:size]
	if crc32.Checksum(payload, crcTable) != binary.LittleEndian.Uint32(buf[size:]) {
		r.done = true
		return formatErr("record %d: checksum mismatch (file corrupted)", r.n)
	}
	n := binary.PutUvarint(r.lenBuf[:], size)
	r.hash.Write(r.lenBuf[:n])
	r.hash.Write(payload)
	*req = Request{}
	if err := decodeRecord(payload, req); err != nil {
		r.done = true
		return formatErr("record %d: %v", r.n, err)
	}
	if req.Index != r.n {
		r.done = true
		return formatErr("record %d: index field is %d", r.n, req.Index)
	}
	if req.Offset < r.lastOff {
		r.done = true
		return formatErr("record %d: offset %v before previous %v", r.n, req.Offset, r.lastOff)
	}
	r.lastOff = req.Offset
	r.n++
	return nil
}

func appendRecord(b []byte, r *Request) []byte {
	b = wire.AppendVarint(b, r.Index)
	b = wire.AppendVarint(b, int64(r.Offset))
	switch r.Endpoint {
	case EndpointCompletions:
		b = append(b, 0)
	case EndpointChat:
		b = append(b, 1)
	default:
		b = append(b, endpointOther)
		b = wire.AppendString(b, r.Endpoint)
	}
	b = wire.AppendString(b, r.Prompt)
	b = wire.AppendUvarint(b, uint64(len(r.Messages)))
	for _, m := range r.Messages {
		b = wire.AppendString(b, m.Role)
		b = wire.AppendString(b, m.Content)
	}
	b = wire.AppendUvarint(b, uint64(len(r.PromptTokenIDs)))
	for _, t := range r.PromptTokenIDs {
		b = wire.AppendVarint(b, int64(t))
	}
	b = wire.AppendVarint(b, int64(r.InputTokens))
	b = wire.AppendVarint(b, int64(r.OutputTokens))
	s := &r.Sampling
	b = wire.AppendVarint(b, int64(s.MaxTokens))
	b = wire.AppendVarint(b, int64(s.MinTokens))
	var flags byte
	if s.IgnoreEOS {
		flags |= 1
	}
	if s.HasTemperature {
		flags |= 2
	}
	if s.HasTopP {
		flags |= 4
	}
	if r.ThinkTime != 0 {
		flags |= 8 // a think time follows the body
	}
	b = append(b, flags)
	if s.HasTemperature {
		b = wire.AppendFloat(b, s.Temperature)
	}
	if s.HasTopP {
		b = wire.AppendFloat(b, s.TopP)
	}
	b = wire.AppendString(b, r.Source.Dataset)
	b = wire.AppendString(b, r.Source.Row)
	b = wire.AppendString(b, r.Conversation)
	b = wire.AppendVarint(b, int64(r.Turn))
	b = wire.AppendBytes(b, r.Body)
	if r.ThinkTime != 0 {
		b = wire.AppendVarint(b, int64(r.ThinkTime))
	}
	return b
}

// decoder walks a record payload with the one varint reader
// (internal/wire); each read names its field for the error.
type decoder struct{ wire.Reader }

func (d *decoder) varint(field string) int64 {
	d.Field = field
	return d.Varint()
}

func (d *decoder) int32(field string) int32 {
	d.Field = field
	return int32(d.Ranged(math.MinInt32, math.MaxInt32))
}

func (d *decoder) count(field string, minSize int, limit uint64) int {
	d.Field = field
	return d.Count(minSize, limit)
}

func (d *decoder) bytes(field string) []byte {
	d.Field = field
	return d.Raw(maxStringLen)
}

func (d *decoder) string(field string) string { return string(d.bytes(field)) }

func (d *decoder) byte(field string) byte {
	d.Field = field
	return d.Byte()
}

func (d *decoder) float(field string) float64 {
	d.Field = field
	return d.Float()
}

func decodeRecord(p []byte, r *Request) error {
	d := decoder{wire.NewReader(p, nil)}
	r.Index = d.varint("index")
	r.Offset = time.Duration(d.varint("offset"))
	switch d.byte("endpoint") {
	case 0:
		r.Endpoint = EndpointCompletions
	case 1:
		r.Endpoint = EndpointChat
	case endpointOther:
		r.Endpoint = d.string("endpoint")
	default:
		d.Fail("unknown kind")
	}
	r.Prompt = d.string("prompt")
	if n := d.count("messages", 2, maxMessages); n > 0 {
		r.Messages = make([]Message, n)
		for i := range r.Messages {
			r.Messages[i].Role = d.string("message role")
			r.Messages[i].Content = d.string("message content")
		}
	}
	if n := d.count("prompt token ids", 1, maxTokens); n > 0 {
		r.PromptTokenIDs = make([]int32, n)
		d.Field = "prompt token id"
		for i := range r.PromptTokenIDs {
			r.PromptTokenIDs[i] = int32(d.Ranged(math.MinInt32, math.MaxInt32))
		}
	}
	r.InputTokens = d.int32("input tokens")
	r.OutputTokens = d.int32("output tokens")
	s := &r.Sampling
	s.MaxTokens = d.int32("max_tokens")
	s.MinTokens = d.int32("min_tokens")
	flags := d.byte("flags")
	if flags&^15 != 0 {
		d.Fail(fmt.Sprintf("unknown bits %#x", flags))
	}
	s.IgnoreEOS = flags&1 != 0
	s.HasTemperature = flags&2 != 0
	s.HasTopP = flags&4 != 0
	if s.HasTemperature {
		s.Temperature = d.float("temperature")
	}
	if s.HasTopP {
		s.TopP = d.float("top_p")
	}
	r.Source.Dataset = d.string("source dataset")
	r.Source.Row = d.string("source row")
	r.Conversation = d.string("conversation")
	r.Turn = d.int32("turn")
	if body := d.bytes("body"); len(body) > 0 {
		r.Body = append([]byte(nil), body...)
	}
	if flags&8 != 0 {
		if r.ThinkTime = time.Duration(d.varint("think time")); r.ThinkTime == 0 {
			d.Fail("flagged but zero")
		}
	}
	if err := d.Err(); err != nil {
		return err
	}
	if n := len(d.Left()); n != 0 {
		return fmt.Errorf("%d unexpected bytes at the end", n)
	}
	if err := r.Validate(); err != nil {
		return err
	}
	return nil
}
