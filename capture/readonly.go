package capture

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/badger/v4/y"
	"github.com/dgraph-io/ristretto/v2/z"
)

/*
The read path never writes.

Badger's read-only mode is not enough for that: opening a store, it deletes
every table file its MANIFEST does not list (so a truncated MANIFEST costs
the tables it no longer names), and a store whose writer died needs its
write-ahead logs replayed and truncated, which only a read-write open does,
in place. A table whose index is damaged makes Badger panic in a goroutine
of its own, where no caller can recover.

So a read-only Store never lets Badger open the capture directory itself.
It takes the shared directory lock Badger takes (a writer's exclusive lock
still keeps readers out, and readers keep a writer out), checks every file,
and builds a private view in a temporary directory: a MANIFEST written from
what the capture's MANIFEST and files say, and symbolic links to the table
and value-log files that can be read. Badger opens the view read-only:
every file of the capture is opened O_RDONLY, and whatever Badger deletes
is a link of the view. Write-ahead logs of a writer that did not close the
capture (killed, crashed) are copied into the view and replayed there by a
read-write open of a second, throw-away store whose tables join the view.

What could not be read is said in Health: tables left out, damaged blocks,
values that do not read or decode, a MANIFEST cut short, and the records
the writers said they committed against the records read.
*/

// Badger's file names.
const (
	manifestName = "MANIFEST"
	vlogHeader   = 20 // key id (8) and base IV (12) at the start of a .vlog / .mem
)

// readView is the private directory a read-only Store has Badger open.
type readView struct {
	src string // the capture directory
	dir string // the view (temporary; removed at Close)

	tables   map[uint64]tableEntry // in the view's MANIFEST
	hasData  bool                  // the capture has tables or log entries
	problems []string
	notes    []string
}

// sized is a file of the capture and its size.
type sized struct {
	name string
	size int64
}

// fileID parses Badger's numbered file names ("000012.sst").
func fileID(name, ext string) (uint64, bool) {
	if !strings.HasSuffix(name, ext) {
		return 0, false
	}
	id, err := strconv.ParseUint(strings.TrimSuffix(name, ext), 10, 64)
	return id, err == nil
}

// prepareView checks the capture in src and builds the view. It fails
// only when the view cannot be made (no temporary space); damage becomes
// problems.
func prepareView(src string, opt *Options) (v *readView, err error) {
	ents, err := os.ReadDir(src)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(src)
	if err != nil {
		return nil, err
	}
	v = &readView{src: abs, tables: map[uint64]tableEntry{}}
	v.dir, err = os.MkdirTemp("", "vbench-read-")
	if err != nil {
		return nil, fmt.Errorf("make a private view of the capture: %w (set TMPDIR to a writable directory)", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(v.dir)
		}
	}()

	ssts := map[uint64]sized{}
	var vlogs, mems []sized
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		f := sized{e.Name(), info.Size()}
		switch filepath.Ext(f.name) {
		case ".sst", ".mem", ".vlog":
			v.hasData = v.hasData || f.size > vlogHeader
		}
		switch {
		case strings.HasSuffix(f.name, ".sst"):
			if id, ok := fileID(f.name, ".sst"); ok {
				ssts[id] = f
			}
		case strings.HasSuffix(f.name, ".vlog"):
			vlogs = append(vlogs, f)
		case strings.HasSuffix(f.name, ".mem"):
			mems = append(mems, f)
		}
	}

	man := readManifest(filepath.Join(abs, manifestName))
	if man.problem != "" {
		if man.usable {
			v.problems = append(v.problems, man.problem+"; tables it no longer names are read from their files")
		} else {
			v.problems = append(v.problems, man.problem+"; every table file is read instead")
		}
	}
	for id := range man.tables {
		if _, ok := ssts[id]; !ok {
			v.problems = append(v.problems, fmt.Sprintf("table %s is listed in the MANIFEST but missing: its records are lost", table.IDToFilename(id)))
		}
	}
	unlisted := 0
	for id, f := range ssts {
		ent, listed := man.tables[id]
		if !listed {
			ent = tableEntry{level: 0, compression: defaultCompression}
			unlisted++
		}
		path := filepath.Join(abs, f.name)
		openErr, damaged := checkTable(path, ent)
		if openErr != nil && !listed {
			// Written by a compaction the MANIFEST never recorded, or
			// damaged: either way nothing in it can be read.
			v.problems = append(v.problems, fmt.Sprintf("table %s (%d bytes, not in the MANIFEST) cannot be opened (%v): left out", f.name, f.size, openErr))
			continue
		}
		if openErr != nil {
			v.problems = append(v.problems, fmt.Sprintf("table %s (%d bytes) cannot be opened (%v): its records are lost", f.name, f.size, openErr))
			continue
		}
		if damaged {
			// Copy what can be read into a table of the view.
			kept, total, err := salvageTable(path, ent, filepath.Join(v.dir, f.name))
			if err != nil {
				v.problems = append(v.problems, fmt.Sprintf("table %s (%d bytes) has damaged blocks and could not be salvaged (%v): its records are lost", f.name, f.size, err))
				continue
			}
			v.problems = append(v.problems, fmt.Sprintf("table %s (%d bytes) has damaged blocks: %d of its %d entries were read, the rest are lost", f.name, f.size, kept, total))
			ent.compression, ent.keyID = uint32(options.None), 0
			v.tables[id] = ent
			continue
		}
		if err := os.Symlink(path, filepath.Join(v.dir, f.name)); err != nil {
			return nil, err
		}
		v.tables[id] = ent
	}
	if unlisted > 0 && man.problem == "" {
		// A writer killed between writing a table and recording it, or a
		// compaction's output not yet recorded: read, duplicates are
		// merged by version.
		v.notes = append(v.notes, fmt.Sprintf("%d table file(s) not named by the MANIFEST were read too", unlisted))
	}

	for _, f := range vlogs {
		path := filepath.Join(abs, f.name)
		if p := checkLogHeader(path, f.size); p != "" {
			v.problems = append(v.problems, fmt.Sprintf("value log %s %s: the values stored in it are lost", f.name, p))
			continue
		}
		if err := os.Symlink(path, filepath.Join(v.dir, f.name)); err != nil {
			return nil, err
		}
	}

	journaled, jproblem := readJournal(abs)
	if jproblem != "" {
		v.problems = append(v.problems, jproblem)
	}
	if len(mems) > 0 || len(journaled) > 0 {
		names := make([]string, len(mems))
		for i, m := range mems {
			names[i] = m.name
		}
		if err := v.replayWAL(names, journaled, opt); err != nil {
			v.problems = append(v.problems, fmt.Sprintf("the write-ahead logs of a writer that did not close the capture could not be replayed (%v): the records it had not yet written to tables are lost", err))
		}
	}
	if err := writeManifest(filepath.Join(v.dir, manifestName), v.tables); err != nil {
		return nil, err
	}
	return v, nil
}

// tableOptions are the options to read a table with ent's compression,
// verifying each block's checksum as it is read.
func tableOptions(ent tableEntry) table.Options {
	return table.Options{ReadOnly: true, BlockSize: 4 << 10, Compression: options.CompressionType(ent.compression),
		ChkMode: options.OnBlockRead, BloomFalsePositive: 0.01, TableSize: 8 << 20}
}

// checkTable opens a table file read-only as Badger would and reads every
// entry, which verifies every block's checksum. openErr means Badger could
// not open it (or would panic doing so); damaged that some entry could
// not be read.
func checkTable(path string, ent tableEntry) (openErr error, damaged bool) {
	defer func() {
		if r := recover(); r != nil {
			openErr = fmt.Errorf("opening it panics in Badger: %v", firstLine(r))
		}
	}()
	if ent.keyID != 0 {
		return fmt.Errorf("it claims encryption key %d; captures are not encrypted", ent.keyID), false
	}
	mf, err := z.OpenMmapFile(path, os.O_RDONLY, 0)
	if err != nil {
		return err, false
	}
	t, err := table.OpenTable(mf, tableOptions(ent))
	if err != nil {
		return err, false
	}
	defer t.Close(-1)
	defer func() {
		if r := recover(); r != nil {
			openErr, damaged = nil, true
		}
	}()
	it := t.NewIterator(table.NOCACHE)
	defer it.Close()
	n := uint32(0)
	for it.Rewind(); it.Valid(); it.Next() {
		n++
	}
	return nil, n != t.KeyCount()
}

// salvageTable copies every entry of a damaged table that can be read
// into a new, uncompressed table at dst: reading stops at a damaged block,
// and goes on at the next block whose first key the table's index names.
// It returns the entries kept and the table's entry count.
func salvageTable(path string, ent tableEntry, dst string) (kept, total int, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", errBadgerPanic, firstLine(r))
		}
	}()
	mf, err := z.OpenMmapFile(path, os.O_RDONLY, 0)
	if err != nil {
		return 0, 0, err
	}
	t, err := table.OpenTable(mf, tableOptions(ent))
	if err != nil {
		return 0, 0, err
	}
	defer t.Close(-1)
	total = int(t.KeyCount())
	starts := t.KeySplits(1<<30, nil) // the first key of every block
	type kv struct {
		k []byte
		v y.ValueStruct
	}
	var out []kv
	read := func(it *table.Iterator) {
		defer func() { recover() }() // a damaged block: go on with the next
		for ; it.Valid(); it.Next() {
			v := it.ValueCopy()
			out = append(out, kv{append([]byte(nil), it.Key()...), v})
		}
	}
	it := t.NewIterator(table.NOCACHE)
	defer it.Close()
	it.Rewind()
	read(it)
	for _, s := range starts {
		k := []byte(s)
		if len(out) > 0 && y.CompareKeys(k, out[len(out)-1].k) <= 0 {
			continue
		}
		func() {
			defer func() { recover() }()
			it.Seek(k)
		}()
		read(it)
	}
	alloc := z.NewAllocatorPool(1)
	defer alloc.Release()
	topt := tableOptions(tableEntry{compression: uint32(options.None)})
	topt.AllocPool = alloc
	topt.ReadOnly = false
	b := table.NewTableBuilder(topt)
	defer b.Close()
	for _, e := range out {
		b.Add(e.k, e.v, 0)
	}
	nt, err := table.CreateTable(dst, b)
	if err != nil {
		return 0, 0, err
	}
	return len(out), total, nt.Close(-1)
}

// checkLogHeader says what is wrong with the header of a value log or
// write-ahead log file ("" when nothing).
func checkLogHeader(path string, size int64) string {
	if size < vlogHeader {
		return fmt.Sprintf("has %d bytes, less than its %d-byte header", size, vlogHeader)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("cannot be opened (%v)", err)
	}
	defer f.Close()
	var b [8]byte
	if _, err := io.ReadFull(f, b[:]); err != nil {
		return fmt.Sprintf("cannot be read (%v)", err)
	}
	if k := binary.BigEndian.Uint64(b[:]); k != 0 {
		return fmt.Sprintf("has a damaged header (encryption key %d; captures are not encrypted)", k)
	}
	return ""
}

// replayWAL replays the write-ahead logs (.mem files) of a writer that
// did not close the capture: copies of them are opened read-write in a
// throw-away store inside the view, which replays and truncates the
// copies; closing it writes their entries into tables, which join the view
// at level 0. Values the entries point to stay in the capture's value
// logs, linked into the view.
func (v *readView) replayWAL(mems []string, journaled []journalEntry, opt *Options) error {
	wal := filepath.Join(v.dir, "wal")
	if err := os.Mkdir(wal, 0o700); err != nil {
		return err
	}
	defer os.RemoveAll(wal)
	memTable := opt.MemTableSize
	used := map[string][]byte{}
	cut := map[string]bool{}
	for _, name := range mems {
		if p := checkLogHeader(filepath.Join(v.src, name), vlogHeader); p != "" {
			v.problems = append(v.problems, fmt.Sprintf("write-ahead log %s %s: the records in it are lost", name, p))
			continue
		}
		b, n, err := copyUsed(filepath.Join(v.src, name), filepath.Join(wal, name))
		if err != nil {
			return err
		}
		used[name] = b
		if int64(len(b)) == n || n%(1<<20) != 0 {
			// Not the preallocated file (a multiple of a MiB, zeros after
			// the last entry) a writer leaves.
			cut[name] = true
		}
		memTable = max(memTable, n)
	}
	bopt := badger.DefaultOptions(wal).
		WithLogger(badgerLogger{l: opt.Logger, quiet: true}).
		WithMemTableSize(memTable).
		WithNumMemtables(2).
		WithBlockCacheSize(1 << 20).
		WithIndexCacheSize(1 << 20).
		WithValueLogFileSize(1 << 20).
		WithValueThreshold(1 << 10).
		WithNumVersionsToKeep(1).
		WithDetectConflicts(false).
		WithMetricsEnabled(false).
		WithCompactL0OnClose(false)
	var torn int64
	err := guard(func() error {
		db, err := badger.Open(bopt)
		if err != nil {
			return err
		}
		if testHookWALReplayed != nil {
			testHookWALReplayed(wal)
		}
		// Badger has replayed each log as far as walReplayEnd reads it
		// (its own truncation of the copy is no record of that: it then
		// flushes the replayed memtable in the background and deletes the
		// copy, maybe before anyone looks, which once read as damage from
		// byte 0). A writer killed in the middle of a commit leaves that
		// commit unfinished, which costs nothing it had acknowledged; if a
		// finished commit (its "!badger!txn" marker) lies after the stop,
		// the log is damaged and the commits from there on are lost.
		for name, b := range used {
			end := walReplayEnd(b)
			switch tail := b[end:]; {
			case bytes.Contains(tail, txnMarker):
				v.problems = append(v.problems, fmt.Sprintf("write-ahead log %s is damaged at byte %d of %d: the commits written after it (%d bytes) are lost", name, end, len(b), len(tail)))
			case len(bytes.TrimRight(tail, "\x00")) > 0 && cut[name]:
				// A writer leaves its log at the preallocated size, zeros
				// after the last entry; this one ends inside an entry.
				v.problems = append(v.problems, fmt.Sprintf("write-ahead log %s (%d bytes) was cut short inside an entry: the commits that followed are lost", name, len(b)))
			default:
				torn += int64(len(bytes.TrimRight(tail, "\x00")))
			}
		}
		if len(journaled) > 0 {
			// What the writer had journaled but not committed.
			wb := db.NewWriteBatch()
			for _, e := range journaled {
				if err := wb.Set(e.key, e.value); err != nil {
					wb.Cancel()
					db.Close()
					return err
				}
			}
			if err := wb.Flush(); err != nil {
				db.Close()
				return err
			}
			v.notes = append(v.notes, fmt.Sprintf("%d item(s) the writer had journaled but not committed were read from its journal", len(journaled)))
		}
		return db.Close()
	})
	if err != nil {
		return err
	}
	if torn > 0 {
		v.notes = append(v.notes, fmt.Sprintf("%d bytes of an unfinished last commit were dropped from the write-ahead logs (the writer was killed while committing; nothing it had acknowledged)", torn))
	}
	man := readManifest(filepath.Join(wal, manifestName))
	if man.problem != "" {
		return errors.New(man.problem)
	}
	next := uint64(1)
	for id := range v.tables {
		next = max(next, id+1)
	}
	if ents, err := os.ReadDir(v.src); err == nil {
		for _, e := range ents {
			if id, ok := fileID(e.Name(), ".sst"); ok {
				next = max(next, id+1)
			}
		}
	}
	for id, ent := range man.tables {
		if err := os.Rename(table.NewFilename(id, wal), table.NewFilename(next, v.dir)); err != nil {
			return err
		}
		ent.level = 0
		v.tables[next] = ent
		next++
	}
	v.notes = append(v.notes, fmt.Sprintf("the capture was not closed cleanly (its writer was killed or crashed): its %d write-ahead log(s) and its journal were replayed on a private copy; the capture itself is unchanged (`vbanalyze --recover DIR` recovers it in place)", len(mems)))
	return nil
}

// txnMarker starts the key of the entry that ends each Badger commit.
var txnMarker = []byte("!badger!txn")

// testHookWALReplayed, when set (tests), runs once Badger has opened the
// write-ahead logs' copies in walDir, before their sizes are read.
var testHookWALReplayed func(walDir string)

// copyUsed copies src to dst (mode 0600) up to the last non-zero byte:
// Badger preallocates its logs and zero bytes end a log. It returns the
// bytes copied and the source's size.
func copyUsed(src, dst string) ([]byte, int64, error) {
	b, err := os.ReadFile(src)
	if err != nil {
		return nil, 0, err
	}
	end := len(b)
	for end > 0 && b[end-1] == 0 {
		end--
	}
	// An entry ends with its CRC, whose last bytes may be zeros: keep them
	// (the zeros after them read as the end of the log).
	end = min(len(b), end+crc32.Size)
	return b[:end:end], int64(len(b)), os.WriteFile(dst, b[:end], 0o600)
}

// Badger's entry flags (badger/v4 value.go).
const (
	walBitTxn    = 1 << 6 // the entry is part of a commit
	walBitFinTxn = 1 << 7 // the entry ends a commit
)

// walReplayEnd is the offset up to which Badger replays a write-ahead log
// (a .mem file; badger/v4 logFile.iterate, read here as that does): past
// the 20-byte header, entries of a header (meta, user meta, then key
// length, value length and expiry as uvarints), key, value and a CRC-32C
// of the three, big-endian; a commit's entries carry walBitTxn and its
// timestamp in the key's last 8 bytes, and an entry with walBitFinTxn and
// that timestamp as its value ends it. Replay stops at the first entry
// that does not read whole, fails its CRC, has an empty key, or breaks a
// commit; the end is that of the last whole commit (or entry outside one).
func walReplayEnd(b []byte) int {
	if len(b) <= vlogHeader {
		return len(b)
	}
	off, end := vlogHeader, vlogHeader
	var commit uint64
	for off < len(b) && len(b)-off >= 2 {
		meta := b[off]
		p := off + 2
		var hdr [3]uint64
		ok := true
		for i := range hdr {
			x, n := binary.Uvarint(b[p:])
			if n <= 0 {
				ok = false
				break
			}
			hdr[i], p = x, p+n
		}
		klen, vlen := hdr[0], hdr[1]
		if !ok || klen > 1<<16 || vlen > uint64(len(b)) || uint64(len(b)-p) < klen+vlen+crc32.Size {
			break
		}
		kv := p + int(klen+vlen)
		if crc32.Checksum(b[off:kv], castagnoli) != binary.BigEndian.Uint32(b[kv:]) {
			break
		}
		key, value := b[p:p+int(klen)], b[p+int(klen):kv]
		next := kv + crc32.Size
		if len(key) == 0 {
			break
		}
		switch {
		case meta&walBitTxn != 0:
			var ts uint64
			if len(key) > 8 {
				ts = math.MaxUint64 - binary.BigEndian.Uint64(key[len(key)-8:])
			}
			if commit == 0 {
				commit = ts
			}
			if commit != ts {
				return end
			}
		case meta&walBitFinTxn != 0:
			ts, err := strconv.ParseUint(string(value), 10, 64)
			if err != nil || ts != commit {
				return end
			}
			commit, end = 0, next
		default:
			if commit != 0 {
				return end
			}
			end = next
		}
		off = next
	}
	return end
}

// errBadgerPanic wraps a panic of Badger's, recovered at the capture
// package's boundary.
var errBadgerPanic = errors.New("the store library panicked on damaged data")

// guard runs fn, turning a panic into an error wrapping errBadgerPanic.
func guard(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", errBadgerPanic, firstLine(r))
			if os.Getenv("VBENCH_DEBUG_PANIC") != "" {
				fmt.Fprintf(os.Stderr, "%v\n%s", r, debug.Stack())
			}
		}
	}()
	return fn()
}

// firstLine is the first line of a panic value (Badger's carry dumps).
func firstLine(r any) string {
	s := fmt.Sprint(r)
	if i := strings.IndexByte(strings.TrimSpace(s), '\n'); i >= 0 {
		s = strings.TrimSpace(s)[:i]
	}
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// openView has Badger open the view read-only. If Badger refuses the
// levels the MANIFEST gave (overlapping tables), every table goes to
// level 0, where overlaps are allowed, and it tries once more.
func openView(v *readView, opt *Options) (*badger.DB, error) {
	bopt := badgerOptions(v.dir, opt, true).
		WithChecksumVerificationMode(options.OnBlockRead).
		WithVerifyValueChecksum(true)
	var db *badger.DB
	err := guard(func() (err error) { db, err = badger.Open(bopt); return err })
	if err != nil && strings.Contains(err.Error(), "Level validation") {
		for id, t := range v.tables {
			t.level = 0
			v.tables[id] = t
		}
		if werr := writeManifest(filepath.Join(v.dir, manifestName), v.tables); werr != nil {
			return nil, werr
		}
		v.notes = append(v.notes, "the MANIFEST's table levels overlap: every table was read at level 0")
		err = guard(func() (err error) { db, err = badger.Open(bopt); return err })
	}
	return db, err
}
