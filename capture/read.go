package capture

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"unicode/utf8"

	badger "github.com/dgraph-io/badger/v4"
)

// ErrStop may be returned by the callback of Records or Samples to end the
// iteration early; the iterator then returns nil.
var ErrStop = errors.New("capture: stop iteration")

// scan calls fn with the value of every key under prefix, in key order.
func (s *Store) scan(prefix byte, keyLen int, fn func(key, val []byte) error) error {
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefix}, PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			k := item.Key()
			if len(k) != keyLen {
				return corrupt("key %x has length %d, want %d", k, len(k), keyLen)
			}
			if err := item.Value(func(v []byte) error { return fn(k, v) }); err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, ErrStop) {
		return nil
	}
	return err
}

// RecordsBetween is Records restricted to the records received in
// [from, to) (Unix ns; to ≤ from means no upper bound). It seeks to from,
// so a window of a long capture costs only what it reads.
func (s *Store) RecordsBetween(from, to int64, fn func(*Record) error) error {
	var buf []byte
	start := recordKey(nil, from, 0)
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixRecord}, PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		for it.Seek(start); it.Valid(); it.Next() {
			item := it.Item()
			k := item.Key()
			if len(k) != recordKeyLen {
				return corrupt("key %x has length %d, want %d", k, len(k), recordKeyLen)
			}
			if to > from && int64(binary.BigEndian.Uint64(k[1:9])^(1<<63)) >= to {
				return nil
			}
			r := new(Record)
			err := item.Value(func(v []byte) error {
				var err error
				buf, err = decodeStoredRecord(v, r, buf)
				return err
			})
			if err != nil {
				return fmt.Errorf("record key %x: %w", k, err)
			}
			if err := fn(r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, ErrStop) {
		return fmt.Errorf("capture: %s: records: %w", s.dir, err)
	}
	return nil
}

// FirstReceived returns the Received time of the first record, and false
// when the capture has no record.
func (s *Store) FirstReceived() (int64, bool, error) {
	var t int64
	var ok bool
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixRecord}})
		defer it.Close()
		it.Rewind()
		if it.Valid() && len(it.Item().Key()) == recordKeyLen {
			t, ok = int64(binary.BigEndian.Uint64(it.Item().Key()[1:9])^(1<<63)), true
		}
		return nil
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
// writer (it then sees the records committed when it started).
func (s *Store) Records(fn func(*Record) error) error {
	var buf []byte
	err := s.scan(prefixRecord, recordKeyLen, func(k, v []byte) error {
		r := new(Record)
		var err error
		if buf, err = decodeStoredRecord(v, r, buf); err != nil {
			return fmt.Errorf("record key %x: %w", k, err)
		}
		if id := binary.BigEndian.Uint64(k[9:]); id != r.ID {
			return corrupt("record key %x holds ID %d", k, r.ID)
		}
		return fn(r)
	})
	if err != nil && !errors.Is(err, ErrStop) {
		return fmt.Errorf("capture: %s: records: %w", s.dir, err)
	}
	return nil
}

// Samples calls fn for every server-metric sample in time order (samples
// with equal times in the order they were put).
func (s *Store) Samples(fn func(Sample) error) error {
	err := s.scan(prefixSample, sampleKeyLen, func(k, v []byte) error {
		var smp Sample
		if err := smp.UnmarshalBinary(v); err != nil {
			return fmt.Errorf("sample key %x: %w", k, err)
		}
		return fn(smp)
	})
	if err != nil && !errors.Is(err, ErrStop) {
		return fmt.Errorf("capture: %s: samples: %w", s.dir, err)
	}
	return nil
}

// Metas returns the run metadata in the order it was stored.
func (s *Store) Metas() ([]Meta, error) {
	var out []Meta
	err := s.scan(prefixMeta, metaKeyLen, func(k, v []byte) error {
		var m Meta
		if err := m.UnmarshalBinary(v); err != nil {
			return fmt.Errorf("meta key %x: %w", k, err)
		}
		out = append(out, m)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("capture: %s: metas: %w", s.dir, err)
	}
	return out, nil
}

// Counts returns the number of records and samples stored (keys only).
func (s *Store) Counts() (records, samples int64, err error) {
	err = s.db.View(func(txn *badger.Txn) error {
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

// DumpDir opens the capture in dir read-only and dumps it to w.
func DumpDir(dir string, w io.Writer, opt DumpOptions) error {
	s, err := Open(dir, Options{ReadOnly: true})
	if err != nil {
		return err
	}
	err = s.Dump(w, opt)
	return errors.Join(err, s.Close())
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
