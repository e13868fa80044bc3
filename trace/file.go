package trace

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// RecordReader is implemented by both readers: Read fills req and returns
// io.EOF after the last record.
type RecordReader interface {
	Header() Header
	Read(req *Request) error
}

// RecordWriter is implemented by both writers.
type RecordWriter interface {
	Write(r *Request) error
	Header() Header
	Close() error
}

// NewAnyReader detects the format from the first bytes: the binary magic or
// a JSON object.
func NewAnyReader(r io.Reader) (RecordReader, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	head, err := br.Peek(len(magic))
	if err != nil && len(head) == 0 {
		return nil, formatErr("empty input")
	}
	if string(head) == magic {
		return NewReader(br)
	}
	if i := strings.IndexFunc(string(head), func(c rune) bool { return c != ' ' && c != '\n' && c != '\t' && c != '\r' }); i >= 0 && head[i] == '{' {
		return NewJSONLReader(br)
	}
	return nil, fmt.Errorf("trace: %w: starts with %q, neither trace.bin nor JSON Lines", ErrNotTrace, head)
}

// File is an open trace file.
type File struct {
	RecordReader
	f *os.File
}

// Open opens a trace file of either format; "-" is standard input.
func Open(path string) (*File, error) {
	var f *os.File
	if path == "-" {
		f = os.Stdin
	} else {
		var err error
		if f, err = os.Open(path); err != nil {
			return nil, fmt.Errorf("trace: %w", err)
		}
		if st, err := f.Stat(); err == nil && st.IsDir() {
			f.Close()
			return nil, fmt.Errorf("trace: %s is a directory, not a trace file", path)
		}
	}
	rr, err := NewAnyReader(f)
	if err != nil {
		if f != os.Stdin {
			f.Close()
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &File{RecordReader: rr, f: f}, nil
}

// Close closes the file.
func (f *File) Close() error {
	if f.f == os.Stdin {
		return nil
	}
	return f.f.Close()
}

// ReadFile reads a whole trace of either format into memory.
func ReadFile(path string) (Header, []Request, error) {
	f, err := Open(path)
	if err != nil {
		return Header{}, nil, err
	}
	defer f.Close()
	hdr, reqs, err := ReadAll(f)
	if err != nil {
		return hdr, reqs, fmt.Errorf("%s: %w", path, err)
	}
	return hdr, reqs, nil
}

// ReadAll reads every record of rr.
func ReadAll(rr RecordReader) (Header, []Request, error) {
	hdr := rr.Header()
	reqs := make([]Request, 0, min(hdr.Count, 1<<20))
	for {
		var r Request
		err := rr.Read(&r)
		if errors.Is(err, io.EOF) {
			return hdr, reqs, nil
		}
		if err != nil {
			return hdr, reqs, err
		}
		reqs = append(reqs, r)
	}
}

// IsJSONL reports whether a path names the JSON Lines form (by extension).
func IsJSONL(path string) bool {
	return strings.HasSuffix(path, ".jsonl") || strings.HasSuffix(path, ".ndjson")
}

// Create returns a writer for path, choosing the format by extension
// (.jsonl/.ndjson: JSON Lines, anything else: binary); "-" is standard
// output in binary form. The returned close function closes the writer and
// the file.
func Create(path string, h Header) (RecordWriter, func() error, error) {
	var f *os.File
	if path == "-" {
		f = os.Stdout
	} else {
		var err error
		if f, err = os.Create(path); err != nil {
			return nil, nil, fmt.Errorf("trace: %w", err)
		}
	}
	var w RecordWriter
	var err error
	if IsJSONL(path) {
		w, err = NewJSONLWriter(f, h)
	} else {
		w, err = NewWriter(f, h)
	}
	if err != nil {
		if f != os.Stdout {
			f.Close()
		}
		return nil, nil, err
	}
	closeFn := func() error {
		err := w.Close()
		if f != os.Stdout {
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		return err
	}
	return w, closeFn, nil
}

// WriteFile writes a whole trace to path (format by extension) and returns
// the final header.
func WriteFile(path string, h Header, reqs []Request) (Header, error) {
	w, closeFn, err := Create(path, h)
	if err != nil {
		return Header{}, err
	}
	for i := range reqs {
		if err := w.Write(&reqs[i]); err != nil {
			closeFn()
			return Header{}, err
		}
	}
	if err := closeFn(); err != nil {
		return Header{}, err
	}
	return w.Header(), nil
}

// Convert copies a trace from src to dst, each in the format its extension
// names, and returns the final header. Count, span and hash are recomputed.
func Convert(src, dst string) (Header, error) {
	in, err := Open(src)
	if err != nil {
		return Header{}, err
	}
	defer in.Close()
	w, closeFn, err := Create(dst, in.Header())
	if err != nil {
		return Header{}, err
	}
	for {
		var r Request
		err := in.Read(&r)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			closeFn()
			return Header{}, fmt.Errorf("%s: %w", src, err)
		}
		if err := w.Write(&r); err != nil {
			closeFn()
			return Header{}, err
		}
	}
	if err := closeFn(); err != nil {
		return Header{}, err
	}
	return w.Header(), nil
}
