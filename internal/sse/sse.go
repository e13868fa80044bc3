// Package sse is a push-mode splitter of Server-Sent Events streams
// (https://html.spec.whatwg.org/multipage/server-sent-events.html): feed it
// the bytes of each read as they arrive and it calls back with every event
// that the read completed. It never blocks, keeps no goroutine, copies only
// the bytes of an event that spans reads, and allocates nothing in steady
// state, so the proxy can run it on every forwarded chunk.
//
// Interpretation follows the spec and tmaxmax/go-sse (the test oracle):
// lines end in CRLF, LF or CR; "data" lines are joined with "\n"; "event"
// sets the type; comments (":...") and unknown fields are ignored; a blank
// line dispatches the event when a data, event or id field was seen; a
// leading UTF-8 BOM is dropped; an incomplete event at the end of the stream
// is never dispatched.
package sse

import "bytes"

// DefaultMaxEventSize caps the bytes one event may buffer (its data plus
// the current line) when MaxEventSize is 0. Tool-call deltas can exceed the
// 64 KiB that bufio.Scanner-based parsers allow, so the default is larger.
const DefaultMaxEventSize = 1 << 20

// Event is one dispatched event. Its slices are valid only during the
// callback: they point into the splitter's buffer or the fed chunk.
type Event struct {
	// Type is the value of the last "event" field; empty means "message".
	Type []byte
	// Data is the data lines joined with "\n".
	Data []byte
}

// Splitter splits a stream fed in pieces into events. The zero value is
// ready to use. A Splitter is not safe for concurrent use.
type Splitter struct {
	// MaxEventSize caps the buffered size of one event; 0 means
	// DefaultMaxEventSize. An event over the cap is skipped and counted in
	// Oversize.
	MaxEventSize int
	// Oversize counts events skipped for exceeding MaxEventSize.
	Oversize int

	line    []byte // partial line carried over between Feed calls
	data    []byte // data buffer of the current event
	typ     []byte // event type of the current event
	dirty   bool   // a data, event or id field was seen
	skip    bool   // the current event went over the cap
	lastCR  bool   // the previous byte fed was a CR (a following LF is part of it)
	partial bool   // the current line has bytes not yet terminated
	started bool   // the BOM check has been done
	bomPart int    // bytes of a BOM prefix seen so far at stream start
}

// Reset makes the splitter ready for a new stream, keeping its buffers.
func (s *Splitter) Reset() {
	max := s.MaxEventSize
	line, data, typ := s.line[:0], s.data[:0], s.typ[:0]
	*s = Splitter{MaxEventSize: max, line: line, data: data, typ: typ}
}

func (s *Splitter) max() int {
	if s.MaxEventSize > 0 {
		return s.MaxEventSize
	}
	return DefaultMaxEventSize
}

const bom = "\xEF\xBB\xBF"

// Feed processes the next bytes of the stream and calls fn (which may be
// nil) for each event they complete, in order. It returns the number of
// events dispatched.
func (s *Splitter) Feed(chunk []byte, fn func(Event)) int {
	if !s.started {
		// Drop a leading BOM, which may itself arrive split across reads.
		for len(chunk) > 0 && s.bomPart < len(bom) && chunk[0] == bom[s.bomPart] {
			chunk = chunk[1:]
			s.bomPart++
		}
		if s.bomPart == len(bom) || len(chunk) > 0 {
			if s.bomPart > 0 && s.bomPart < len(bom) {
				// Not a BOM after all: put back the bytes we took.
				s.line = append(s.line, bom[:s.bomPart]...)
				s.partial = true
			}
			s.started = true
		} else {
			return 0
		}
	}
	n := 0
	for len(chunk) > 0 {
		if s.lastCR {
			s.lastCR = false
			if chunk[0] == '\n' {
				chunk = chunk[1:]
				continue
			}
		}
		i := lineEnd(chunk)
		if i < 0 {
			s.carry(chunk)
			return n
		}
		seg := chunk[:i]
		blank := !s.partial && len(seg) == 0
		line := seg
		if s.partial {
			s.carry(seg)
			line = s.line
		}
		s.partial = false
		if chunk[i] == '\r' {
			s.lastCR = true
		}
		chunk = chunk[i+1:]
		if blank {
			if s.dispatch(fn) {
				n++
			}
		} else {
			s.processLine(line)
		}
		s.line = s.line[:0]
	}
	return n
}

// lineEnd returns the index of the first CR or LF in b, -1 when none: two
// vectorized byte searches, cheaper than bytes.IndexAny's byte loop on the
// ~150-byte lines of a token stream.
func lineEnd(b []byte) int {
	lf := bytes.IndexByte(b, '\n')
	head := b
	if lf >= 0 {
		head = b[:lf]
	}
	if cr := bytes.IndexByte(head, '\r'); cr >= 0 {
		return cr
	}
	return lf
}

// carry appends a partial line to the carry-over buffer, within the cap.
func (s *Splitter) carry(b []byte) {
	s.partial = true
	if s.skip {
		return
	}
	if len(s.data)+len(s.line)+len(b) > s.max() {
		s.skip = true
		s.line = s.line[:0]
		return
	}
	s.line = append(s.line, b...)
}

// processLine interprets one complete non-blank line.
func (s *Splitter) processLine(line []byte) {
	if s.skip || len(line) == 0 {
		return
	}
	if line[0] == ':' {
		return
	}
	name, value := line, []byte(nil)
	if c := bytes.IndexByte(line, ':'); c >= 0 {
		name, value = line[:c], line[c+1:]
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
	}
	switch string(name) {
	case "data":
		if len(s.data)+len(value)+1 > s.max() {
			s.skip = true
			return
		}
		s.data = append(s.data, value...)
		s.data = append(s.data, '\n')
		s.dirty = true
	case "event":
		s.typ = append(s.typ[:0], value...)
		s.dirty = true
	case "id":
		if bytes.IndexByte(value, 0) < 0 {
			s.dirty = true
		}
	}
}

func (s *Splitter) dispatch(fn func(Event)) bool {
	if s.skip {
		s.Oversize++
		s.skip, s.dirty = false, false
		s.data, s.typ = s.data[:0], s.typ[:0]
		return false
	}
	if !s.dirty {
		return false
	}
	data := s.data
	if len(data) > 0 {
		data = data[:len(data)-1]
	}
	if fn != nil {
		fn(Event{Type: s.typ, Data: data})
	}
	s.dirty = false
	s.data, s.typ = s.data[:0], s.typ[:0]
	return true
}
