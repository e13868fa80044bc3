package capture

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestJournalReplay: items journaled past the checkpoint are stored when
// the capture is next opened for writing, and read from a read-only view
// without being stored; items up to the checkpoint are not replayed; a
// damaged entry ends its file.
func TestJournalReplay(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cap")
	s := openTest(t, dir, Options{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A journal as a killed writer leaves it: items 1-3 journaled, 1
	// checkpointed.
	j, err := openJournal(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	var arena []byte
	for id := uint64(1); id <= 3; id++ {
		r := crashRecord(id)
		start := len(arena)
		arena = append(arena, make([]byte, journalHead)...)
		arena = append(arena, recordKeyLen)
		arena = recordKey(arena, r.Received, r.ID)
		arena, _ = appendStoredRecord(arena, nil, r)
		frameEntry(arena[start:], id)
	}
	j.write(arena, 3)
	j.commit(1)
	j.close()
	entries, problem := readJournal(dir)
	if len(entries) != 2 || problem != "" {
		t.Fatalf("readJournal: %d entries, %q; want 2 past the checkpoint", len(entries), problem)
	}
	// Read-only: the view shows them, the capture is unchanged.
	before := hashDir(t, dir)
	ro := openTest(t, dir, Options{ReadOnly: true})
	if got := readAll(t, ro); len(got) != 2 || got[0].ID != 2 || !bytes.Equal(got[1].RequestBody, crashRecord(3).RequestBody) {
		t.Errorf("read-only view: %d records", len(got))
	}
	ro.Close()
	if after := hashDir(t, dir); len(after) != len(before) {
		t.Errorf("reading changed the capture: %v -> %v", before, after)
	}
	// Read-write: stored, journal reset.
	rw := openTest(t, dir, Options{})
	if got := readAll(t, rw); len(got) != 2 {
		t.Errorf("after replay: %d records; want 2", len(got))
	}
	rw.Close()
	if _, err := os.Stat(journalPath(dir, 0)); !os.IsNotExist(err) {
		t.Errorf("journal left after a clean close: %v", err)
	}
	// A flipped byte in the second entry ends the file there.
	j, _ = openJournal(dir, 0)
	arena[len(arena)-5] ^= 1
	j.write(arena, 3)
	j.close()
	if entries, _ := readJournal(dir); len(entries) != 2 {
		t.Errorf("damaged last entry: %d entries; want the 2 before it", len(entries))
	}
	removeJournal(dir)
}

// FuzzReadJournal: any bytes as a journal file are read without panic or
// huge allocations.
func FuzzReadJournal(f *testing.F) {
	var arena []byte
	r := crashRecord(1)
	arena = append(arena, make([]byte, journalHead)...)
	arena = append(arena, recordKeyLen)
	arena = recordKey(arena, r.Received, r.ID)
	arena, _ = appendStoredRecord(arena, nil, r)
	frameEntry(arena, 1)
	f.Add(arena)
	f.Add([]byte{0, 0, 0, 9, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 1, 0})
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(journalPath(dir, 0), b, 0o600); err != nil {
			t.Fatal(err)
		}
		entries, _ := readJournal(dir)
		for _, e := range entries {
			if len(e.key) > len(b) || len(e.value) > len(b) {
				t.Fatalf("entry larger than the file")
			}
		}
	})
}
