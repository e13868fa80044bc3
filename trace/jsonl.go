package trace

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

/*
The JSON Lines twin of trace.bin: the first line is the header,

	{"vbtrace":1,"header":{...,"count":N,"span_ns":S,"hash":"<64 hex>"}}

and every following line is one Request as JSON. Converting a binary trace
to JSON Lines and back gives the identical bytes, because both carry every
field and the binary encoding is a pure function of the values.
*/

const maxJSONLine = maxRecordLen

type jsonHeader struct {
	Version int        `json:"vbtrace"`
	Header  headerJSON `json:"header"`
}

type headerJSON struct {
	meta
	Count int64  `json:"count"`
	Span  int64  `json:"span_ns"`
	Hash  string `json:"hash"`
}

// JSONLWriter writes the JSON Lines form of a trace. The header line comes
// first but holds the count, span and hash of the records, so the record
// lines are held until Close: in memory up to spillAt bytes, then in a
// temporary file (a million-request trace converts in bounded memory).
type JSONLWriter struct {
	w      *bufio.Writer
	inner  *Writer // computes count, span and hash
	held   bytes.Buffer
	spill  *os.File
	spillW *bufio.Writer
	closed bool
}

// spillAt is how many bytes of record lines a JSONLWriter keeps in memory
// before it moves them to a temporary file.
var spillAt = 32 << 20

// NewJSONLWriter starts a JSON Lines trace with header h on w.
func NewJSONLWriter(w io.Writer, h Header) (*JSONLWriter, error) {
	inner, err := NewWriter(io.Discard, h)
	if err != nil {
		return nil, err
	}
	return &JSONLWriter{w: bufio.NewWriterSize(w, 1<<20), inner: inner}, nil
}

// Write appends one request.
func (w *JSONLWriter) Write(r *Request) error {
	if err := w.inner.Write(r); err != nil {
		return err
	}
	line, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("trace: record %d: %w", r.Index, err)
	}
	if w.spill == nil && w.held.Len()+len(line) > spillAt {
		f, err := os.CreateTemp("", "vbtrace-*.jsonl")
		if err != nil {
			return fmt.Errorf("trace: spilling JSON lines: %w", err)
		}
		os.Remove(f.Name()) // unlinked: gone with the process whatever happens
		w.spill, w.spillW = f, bufio.NewWriterSize(f, 1<<20)
		w.spillW.Write(w.held.Bytes())
		w.held = bytes.Buffer{}
	}
	if w.spill != nil {
		w.spillW.Write(line)
		if err := w.spillW.WriteByte('\n'); err != nil {
			return fmt.Errorf("trace: spilling JSON lines: %w", err)
		}
		return nil
	}
	w.held.Write(line)
	w.held.WriteByte('\n')
	return nil
}

// Header returns the header as it stands (final after Close).
func (w *JSONLWriter) Header() Header { return w.inner.Header() }

// Close writes the header line and the held records.
func (w *JSONLWriter) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	if err := w.inner.Close(); err != nil {
		return err
	}
	h := w.inner.Header()
	if err := writeJSONHeader(w.w, &h); err != nil {
		return err
	}
	if w.spill != nil {
		defer w.spill.Close()
		if err := w.spillW.Flush(); err != nil {
			return fmt.Errorf("trace: spilling JSON lines: %w", err)
		}
		if _, err := w.spill.Seek(0, io.SeekStart); err != nil {
			return err
		}
		if _, err := io.Copy(w.w, w.spill); err != nil {
			return err
		}
	} else {
		w.w.Write(w.held.Bytes())
		w.held = bytes.Buffer{}
	}
	return w.w.Flush()
}

func writeJSONHeader(w io.Writer, h *Header) error {
	line, err := json.Marshal(jsonHeader{Version: FormatVersion, Header: headerJSON{
		meta: metaOf(h), Count: h.Count, Span: int64(h.Span), Hash: h.HashHex(),
	}})
	if err != nil {
		return err
	}
	_, err = w.Write(append(line, '\n'))
	return err
}

// JSONLReader reads the JSON Lines form of a trace.
type JSONLReader struct {
	s    *bufio.Scanner
	hdr  Header
	n    int64
	line int
	last time.Duration
}

// NewJSONLReader reads the header line of a JSON Lines trace.
func NewJSONLReader(r io.Reader) (*JSONLReader, error) {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 64<<10), maxJSONLine)
	jr := &JSONLReader{s: s}
	if !s.Scan() {
		if err := s.Err(); err != nil {
			return nil, formatErr("line 1: %v", err)
		}
		return nil, formatErr("line 1: empty file, expected a header line")
	}
	jr.line = 1
	var jh jsonHeader
	dec := json.NewDecoder(bytes.NewReader(s.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&jh); err != nil {
		return nil, formatErr("line 1: header: %v", err)
	}
	if jh.Version != FormatVersion {
		return nil, formatErr("line 1: vbtrace version %d is not supported (want %d)", jh.Version, FormatVersion)
	}
	var h Header
	if err := jh.Header.meta.apply(&h); err != nil {
		return nil, formatErr("line 1: header: %v", err)
	}
	h.Count, h.Span = jh.Header.Count, time.Duration(jh.Header.Span)
	if jh.Header.Hash != "" {
		hash, err := ParseHash(jh.Header.Hash)
		if err != nil {
			return nil, formatErr("line 1: %v", err)
		}
		h.Hash = hash
	}
	jr.hdr = h
	return jr, nil
}

// Header returns the header line's values (count, span and hash as stored;
// a Writer recomputes them).
func (r *JSONLReader) Header() Header { return r.hdr }

// Read decodes the next request into req; io.EOF after the last one.
func (r *JSONLReader) Read(req *Request) error {
	for r.s.Scan() {
		r.line++
		b := bytes.TrimSpace(r.s.Bytes())
		if len(b) == 0 {
			continue
		}
		*req = Request{}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(req); err != nil {
			return formatErr("line %d (record %d): %v", r.line, r.n, err)
		}
		if req.Index != r.n {
			return formatErr("line %d: index is %d, expected %d", r.line, req.Index, r.n)
		}
		if req.Offset < r.last {
			return formatErr("line %d (record %d): offset %v before previous %v", r.line, r.n, req.Offset, r.last)
		}
		if err := req.Validate(); err != nil {
			return formatErr("line %d (record %d): %v", r.line, r.n, err)
		}
		normalize(req)
		r.last = req.Offset
		r.n++
		return nil
	}
	if err := r.s.Err(); err != nil {
		return formatErr("line %d: %v", r.line+1, err)
	}
	return io.EOF
}

// normalize makes empty slices nil, as the binary decoder leaves them.
func normalize(r *Request) {
	if len(r.Messages) == 0 {
		r.Messages = nil
	}
	if len(r.PromptTokenIDs) == 0 {
		r.PromptTokenIDs = nil
	}
	if len(r.Body) == 0 {
		r.Body = nil
	}
}

// ErrNotTrace is returned by Open for a file that is neither format.
var ErrNotTrace = errors.New("not a trace file")
