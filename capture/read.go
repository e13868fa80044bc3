package capture

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"unicode/utf8"

	badger "github.com/dgraph-io/badger/v4"
)

// ErrStop may be returned by the callback of Records or Samples to end the
// iteration early; the iterator then returns nil.
var ErrStop = errors.New("capture: stop iteration")

// badValue marks an error about one stored value: the scan counts it in
// Health and goes on.
type badValue struct{ err error }

func (b badValue) Error() string { return b.err.Error() }
func (b badValue) Unwrap() error { return b.err }

// userPanic carries a panic raised by a scan's callback through the
// scan's recover, so it is re-raised instead of reported as damage.
type userPanic struct{ v any }

// scan calls fn with the value of every key under prefix from start on,
// in key order. It never stops on damage: a value Badger cannot read
// (failed checksum, missing value log) or fn refuses with a badValue is
// counted in Health and skipped; a panic of Badger's ends the scan, is
// recovered here and recorded in Health. Values are read one at a time on
// this goroutine (no prefetching goroutines, whose panics nobody could
// recover). full reports whether the scan reached the end of the prefix.
func (s *Store) scan(prefix byte, start []byte, what string, fn func(key, val []byte) error) (full bool, err error) {
	var last []byte
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		if up, ok := r.(userPanic); ok {
			panic(up.v)
		}
		full, err = false, nil
		s.health.noteStopped(what, last, fmt.Errorf("%w: %v", errBadgerPanic, firstLine(r)))
	}()
	call := func(k, v []byte) (err error) {
		defer func() {
			if r := recover(); r != nil {
				panic(userPanic{r})
			}
		}()
		return fn(k, v)
	}
	err = s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefix}})
		defer it.Close()
		for it.Seek(start); it.Valid(); it.Next() {
			item := it.Item()
			k := item.Key()
			last = append(last[:0], k...)
			called := false
			err := item.Value(func(v []byte) error {
				called = true
				return call(k, v)
			})
			var bad badValue
			switch {
			case err == nil:
			case !called || errors.As(err, &bad):
				s.health.noteBad(prefix, k, err)
			default:
				return err
			}
		}
		full = true
		return nil
	})
	if errors.Is(err, ErrStop) {
		return false, nil
	}
	return full, err
}

// RecordsBetween is Records restricted to the records received in
// [from, to) (Unix ns; to ≤ from means no upper bound). It seeks to from,
// so a window of a long capture costs only what it reads.
func (s *Store) RecordsBetween(from, to int64, fn func(*Record) error) error {
	var buf []byte
	errEnd := errors.New("end of window")
	_, err := s.scan(prefixRecord, recordKey(nil, from, 0), "records", func(k, v []byte) error {
		if len(k) != recordKeyLen {
			return badValue{corrupt("key has length %d, want %d", len(k), recordKeyLen)}
		}
		if to > from && int64(binary.BigEndian.Uint64(k[1:9])^(1<<63)) >= to {
			return errEnd
		}
		r := new(Record)
		var err error
		if buf, err = decodeStoredRecord(v, r, buf); err != nil {
			return badValue{err}
		}
		return fn(r)
	})
	if err != nil && !errors.Is(err, ErrStop) && !errors.Is(err, errEnd) {
		return fmt.Errorf("capture: %s: records: %w", s.dir, err)
	}
	return nil
}

// FirstReceived returns the Received time of the first record, and false
// when the capture has no record.
func (s *Store) FirstReceived() (int64, bool, error) {
	var t int64
	var ok bool
	err := guard(func() error {
		return s.db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixRecord}})
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				if len(it.Item().Key()) == recordKeyLen {
					t, ok = int64(binary.BigEndian.Uint64(it.Item().Key()[1:9])^(1<<63)), true
					return nil
				}
			}
			return nil
		})
	})
	if err != nil {
		return 0, false, fmt.Errorf("capture: %s: first record: %w", s.dir, err)
	}
	return t, ok, nil
}

// Records calls fn for every record in arrival order (by Received, then ID).
// fn receives a fresh Record each time and may keep it. Returning ErrStop
// ends the iteration without error; any other error ends it and is
// returned. It works on a read-only store and on the live store of a running
// writer (it then sees the records committed when it started). A record
// that cannot be read or decoded is skipped and counted in Health (so is
// the rest of a scan that Badger cannot continue): check Health after a
// full scan.
func (s *Store) Records(fn func(*Record) error) error {
	var buf []byte
	var n int64
	full, err := s.scan(prefixRecord, []byte{prefixRecord}, "records", func(k, v []byte) error {
		if len(k) != recordKeyLen {
			return badValue{corrupt("key has length %d, want %d", len(k), recordKeyLen)}
		}
		r := new(Record)
		var err error
		if buf, err = decodeStoredRecord(v, r, buf); err != nil {
			return badValue{err}
		}
		if id := binary.BigEndian.Uint64(k[9:]); id != r.ID {
			return badValue{corrupt("the key's ID is %d, the record's %d", id, r.ID)}
		}
		n++
		return fn(r)
	})
	if err != nil && !errors.Is(err, ErrStop) {
		return fmt.Errorf("capture: %s: records: %w", s.dir, err)
	}
	if full {
		s.health.mu.Lock()
		s.health.scanned, s.health.records = true, n
		s.health.mu.Unlock()
	}
	return nil
}

// Samples calls fn for every server-metric sample in time order (samples
// with equal times in the order they were put). Damaged samples are
// skipped and counted in Health.
func (s *Store) Samples(fn func(Sample) error) error {
	_, err := s.scan(prefixSample, []byte{prefixSample}, "samples", func(k, v []byte) error {
		if len(k) != sampleKeyLen {
			return badValue{corrupt("key has length %d, want %d", len(k), sampleKeyLen)}
		}
		var smp Sample
		if err := smp.UnmarshalBinary(v); err != nil {
			return badValue{err}
		}
		return fn(smp)
	})
	if err != nil && !errors.Is(err, ErrStop) {
		return fmt.Errorf("capture: %s: samples: %w", s.dir, err)
	}
	return nil
}

// Metas returns the run metadata in the order it was stored. Damaged
// entries are skipped and counted in Health (once per store).
func (s *Store) Metas() ([]Meta, error) {
	if s.view != nil { // read-only: read (and count damage) once
		s.metaMu.Lock()
		defer s.metaMu.Unlock()
		if s.metasRead {
			return slices.Clone(s.metas), nil
		}
	}
	var out []Meta
	_, err := s.scan(prefixMeta, []byte{prefixMeta}, "metadata", func(k, v []byte) error {
		var m Meta
		if len(k) != metaKeyLen {
			return badValue{corrupt("key has length %d, want %d", len(k), metaKeyLen)}
		}
		if err := m.UnmarshalBinary(v); err != nil {
			return badValue{err}
		}
		out = append(out, m)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("capture: %s: metas: %w", s.dir, err)
	}
	if s.view != nil {
		s.metas, s.metasRead = out, true
		return slices.Clone(out), nil
	}
	return out, nil
}

// Counts returns the number of records and samples stored (keys only).
func (s *Store) Counts() (records, samples int64, err error) {
	err = guard(func() error {
		return s.db.View(func(txn *badger.Txn) error {
			for _, p := range []byte{prefixRecord, prefixSample} {
				it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{p}})
				var n int64
				for it.Rewind(); it.Valid(); it.Next() {
					n++
				}
				it.Close()
				if p == prefixRecord {
					records = n
				} else {
					samples = n
				}
			}
			return nil
		})
	})
	if err != nil {
		err = fmt.Errorf("capture: %s: count: %w", s.dir, err)
	}
	return records, samples, err
}

// DumpOptions choose what Dump writes.
type DumpOptions struct {
	// NoSamples and NoMeta leave samples and metadata out.
	NoSamples bool
	NoMeta    bool
	// NoBodies leaves request and response bodies out of records.
	NoBodies bool
}

// dumpRecord is a Record as one JSON line. Bodies are written as text when
// they are valid UTF-8 (request_body, response_body) and as base64 otherwise
// (request_body_b64, response_body_b64); the shallower fields here hide the
// Record's []byte fields from encoding/json.
type dumpRecord struct {
	Kind string `json:"kind"`
	*Record
	RequestBody     *string `json:"request_body,omitempty"`
	RequestBodyB64  []byte  `json:"request_body_b64,omitempty"`
	ResponseBody    *string `json:"response_body,omitempty"`
	ResponseBodyB64 []byte  `json:"response_body_b64,omitempty"`
}

type dumpSample struct {
	Kind string `json:"kind"`
	Sample
}

type dumpMeta struct {
	Kind string `json:"kind"`
	Meta
}

func textOrB64(b []byte) (*string, []byte) {
	if len(b) == 0 {
		return nil, nil
	}
	if utf8.Valid(b) {
		s := string(b)
		return &s, nil
	}
	return nil, b
}

// Dump writes the capture as JSON Lines: metadata first ({"kind":"meta",
// ...}), then every record in arrival order ({"kind":"record", ...} with the
// Record's JSON fields), then every sample in time order ({"kind":"sample",
// ...}). This is what `vbanalyze CAPTURE --dump` prints.
func (s *Store) Dump(w io.Writer, opt DumpOptions) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	if !opt.NoMeta {
		metas, err := s.Metas()
		if err != nil {
			return err
		}
		for _, m := range metas {
			if err := enc.Encode(dumpMeta{"meta", m}); err != nil {
				return fmt.Errorf("capture: dump: %w", err)
			}
		}
	}
	err := s.Records(func(r *Record) error {
		d := dumpRecord{Kind: "record", Record: r}
		if !opt.NoBodies {
			d.RequestBody, d.RequestBodyB64 = textOrB64(r.RequestBody)
			d.ResponseBody, d.ResponseBodyB64 = textOrB64(r.ResponseBody)
		}
		return enc.Encode(d)
	})
	if err != nil {
		return fmt.Errorf("capture: dump: %w", err)
	}
	if !opt.NoSamples {
		err = s.Samples(func(smp Sample) error { return enc.Encode(dumpSample{"sample", smp}) })
		if err != nil {
			return fmt.Errorf("capture: dump: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("capture: dump: %w", err)
	}
	return nil
}

// DumpDir opens the capture in dir read-only and dumps it to w. It
// returns the capture's Health; when the capture is damaged the dump holds
// what could be read and the error wraps ErrDamaged and says what is lost.
func DumpDir(dir string, w io.Writer, opt DumpOptions) (Health, error) {
	s, err := Open(dir, Options{ReadOnly: true})
	if err != nil {
		return Health{}, err
	}
	err = s.Dump(w, opt)
	h := s.Health()
	err = errors.Join(err, s.Close())
	if err == nil && h.Damaged() {
		err = fmt.Errorf("%w: %s: %s", ErrDamaged, dir, h)
	}
	return h, err
}

// Snapshot copies what is committed now into a new capture directory dst
// (which must not exist or be empty) and closes it, so other processes can
// open the copy read-only while this store keeps recording. It is how a
// running proxy lets a capture be analysed without stopping.
func (s *Store) Snapshot(dst string) error {
	if ents, err := os.ReadDir(dst); err == nil && len(ents) > 0 {
		return fmt.Errorf("capture: snapshot to %s: directory is not empty", dst)
	}
	out, err := Open(dst, Options{Logger: s.log, SyncInterval: -1})
	if err != nil {
		return fmt.Errorf("capture: snapshot: %w", err)
	}
	wb := out.db.NewWriteBatch()
	err = s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			if item.Key()[0] == markerKey[0] && len(item.Key()) == 1 {
				continue
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			if err := wb.Set(item.KeyCopy(nil), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		err = wb.Flush()
	} else {
		wb.Cancel()
	}
	if err == nil {
		err = out.db.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("capture: snapshot %s to %s: %w", s.dir, dst, err)
	}
	return nil
}
