package capture

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

/*
Key layout (all integers big-endian, so byte order is numeric order):

	'R' ‖ received(8, sign bit flipped) ‖ id(8)   → Record (binary, see codec.go)
	'S' ‖ at(8, sign bit flipped) ‖ seq(8)         → Sample (binary)
	'M' ‖ seq(8)                                   → Meta (JSON)
	'V'                                            → "vbench-capture 1" (format marker)

Records are keyed by the time the proxy received the request and then by
ID, so a scan of the 'R' prefix visits records in arrival order even though
the proxy hands a record to the writer when its exchange ends (a long
stream ends after a short one that arrived later). Flipping the sign bit
keeps negative times (never expected) ordered before positive ones.

IDs come from one counter per store: Writer.NextID at arrival (what the
proxy should do), or Put when the record has none. On open the counter
resumes after the largest ID stored, so IDs stay unique across reopen.
*/

const (
	prefixRecord = 'R'
	prefixSample = 'S'
	prefixMeta   = 'M'
	formatMarker = "vbench-capture 1"
	recordKeyLen = 17
	sampleKeyLen = 17
	metaKeyLen   = 9
)

var markerKey = []byte{'V'}

func timeKey(t int64) uint64 { return uint64(t) ^ (1 << 63) }

func recordKey(dst []byte, received int64, id uint64) []byte {
	dst = append(dst, prefixRecord)
	dst = binary.BigEndian.AppendUint64(dst, timeKey(received))
	return binary.BigEndian.AppendUint64(dst, id)
}

func sampleKey(dst []byte, at int64, seq uint64) []byte {
	dst = append(dst, prefixSample)
	dst = binary.BigEndian.AppendUint64(dst, timeKey(at))
	return binary.BigEndian.AppendUint64(dst, seq)
}

// Options tune a Store. The zero value is ready for a recording proxy.
type Options struct {
	// ReadOnly opens an existing capture for analysis: several readers may
	// share it, no writer may hold it, and nothing in it is written,
	// renamed or deleted, whatever state it is in (readonly.go): a capture
	// whose writer was killed is recovered on a private copy, and damage
	// is skipped and reported by Health instead of failing the read.
	ReadOnly bool
	// FlushInterval is the longest a queued record waits before it is
	// committed (default 20 ms).
	FlushInterval time.Duration
	// BatchRecords commits as soon as this many items are queued for the
	// next commit (default 1000).
	BatchRecords int
	// SyncInterval is how often committed data is synced to disk with
	// fsync (default 1 s; negative: never, which still survives a process
	// crash but not a power loss).
	SyncInterval time.Duration
	// QueueSize is the capacity of the writer's queue (default 262144
	// items) and QueueBytes the memory its records may hold (default
	// 256 MiB, estimated from body and timeline sizes); Put drops and
	// counts when either is reached. They absorb Badger's occasional write
	// stalls (up to about a second under heavy load).
	QueueSize  int
	QueueBytes int64
	// MemTableSize is Badger's memtable size in bytes (default 16 MiB;
	// NumMemtables is 3).
	MemTableSize int64
	// BlockCacheSize is Badger's block cache in bytes (default 32 MiB).
	BlockCacheSize int64
	// DiskReserve is the free space, in bytes, the writer keeps on the
	// capture's file system (default 4 × MemTableSize; negative: no
	// check). Badger writes through memory-mapped files, and a write into
	// a mapped page the file system has no room for kills the process with
	// SIGBUS instead of returning an error; so below the reserve the writer
	// stops committing and counts the items as lost (Stats: lost, errors,
	// last_error "no space left") until space is freed. (The check runs
	// before each commit: another process filling the disk faster than
	// that can still hit the fault.)
	DiskReserve int64
	// Logger receives the store's messages; Badger's own chatter goes out
	// at debug level. Nil: slog.Default().
	Logger *slog.Logger
}

func (o *Options) defaults() {
	if o.FlushInterval <= 0 {
		o.FlushInterval = 20 * time.Millisecond
	}
	if o.BatchRecords <= 0 {
		o.BatchRecords = 1000
	}
	if o.SyncInterval == 0 {
		o.SyncInterval = time.Second
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 1 << 18
	}
	if o.QueueBytes <= 0 {
		o.QueueBytes = 256 << 20
	}
	if o.MemTableSize <= 0 {
		o.MemTableSize = 16 << 20
	}
	if o.BlockCacheSize <= 0 {
		o.BlockCacheSize = 32 << 20
	}
	if o.DiskReserve == 0 {
		o.DiskReserve = 4 * o.MemTableSize
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// ErrInUse is wrapped by the error Open returns when another process holds
// the capture (a running proxy).
var ErrInUse = errors.New("capture is in use by a running process")

// ErrNotCapture is wrapped by the error Open returns for a directory that
// is not a capture.
var ErrNotCapture = errors.New("not a vbench capture")

// Store is one capture directory: a Badger database holding records,
// samples and metadata. A read-write Store has one batching Writer.
type Store struct {
	dir    string
	opt    Options
	db     *badger.DB
	log    *slog.Logger
	writer *Writer // nil when read-only

	metaMu  sync.Mutex
	metaSeq uint64
	// metas and metaKeys are the metas this process put, in order; Close
	// marks each Closed and gives the last the Recorder totals.
	metas    []Meta
	metaKeys [][]byte
	// metasRead: metas holds the metas a read-only store read.
	metasRead bool

	// view and unlock belong to a read-only store (readonly.go); health
	// is what reading found (health.go).
	view   *readView
	unlock func()
	health healthState

	closeOnce sync.Once
	closeErr  error
	closed    atomic.Bool

	// dirf holds a writer's capture directory open and dirInfo is what
	// it was at open; dirState says whether it is still at its path, and
	// mute turns Badger's errors down to debug once it is not
	// (dirgone.go).
	dirf     *os.File
	dirInfo  fs.FileInfo
	dirState atomic.Int32
	mute     *atomic.Bool
	// closeDB closes Badger (db.Close; a test makes it hang).
	closeDB func() error
}

// Dir returns the capture directory.
func (s *Store) Dir() string { return s.dir }

// badgerLogger sends Badger's messages to slog: errors and warnings at
// their level, the rest at debug so an embedded store stays quiet. A
// reader's (quiet) gets everything at debug: what Badger complains about
// while reading (a value that fails its checksum) is in Health.
type badgerLogger struct {
	l     *slog.Logger
	quiet bool
	// mute, when set, makes the logger quiet from then on (a writer's
	// capture directory is gone: Badger retries its flush every second).
	mute *atomic.Bool
}

func (b badgerLogger) Errorf(f string, a ...any) {
	if b.quiet || b.mute != nil && b.mute.Load() {
		b.Debugf(f, a...)
		return
	}
	b.l.Error("badger: " + strings.TrimSpace(fmt.Sprintf(f, a...)))
}
func (b badgerLogger) Warningf(f string, a ...any) {
	if b.quiet || b.mute != nil && b.mute.Load() {
		b.Debugf(f, a...)
		return
	}
	b.l.Warn("badger: " + strings.TrimSpace(fmt.Sprintf(f, a...)))
}
func (b badgerLogger) Infof(f string, a ...any) {
	if b.l.Enabled(context.Background(), slog.LevelDebug) {
		b.l.Debug("badger: " + strings.TrimSpace(fmt.Sprintf(f, a...)))
	}
}
func (b badgerLogger) Debugf(f string, a ...any) { b.Infof(f, a...) }

func badgerOptions(dir string, opt *Options, readOnly bool) badger.Options {
	return badger.DefaultOptions(dir).
		WithReadOnly(readOnly).
		WithLogger(badgerLogger{l: opt.Logger, quiet: readOnly}).
		WithSyncWrites(false).
		WithMemTableSize(opt.MemTableSize).
		WithNumMemtables(3).
		WithBlockCacheSize(opt.BlockCacheSize).
		WithIndexCacheSize(16 << 20).
		WithNumCompactors(2).
		WithNumLevelZeroTables(3).
		WithNumLevelZeroTablesStall(8).
		// Stored record values are already S2-compressed (codec.go), so a
		// streamed record (chunk timeline + raw SSE, several KB) goes to the
		// value log, written once and never rewritten by compaction; small
		// records and samples stay in the LSM tree, where Snappy blocks
		// also compress across records. Measured: 2x the recorded chunks/s
		// of a 64 KB threshold for 300-chunk records, +23% disk.
		WithValueThreshold(1 << 10).
		WithValueLogFileSize(64 << 20).
		WithBaseTableSize(8 << 20).
		WithNumVersionsToKeep(1).
		WithDetectConflicts(false).
		WithMetricsEnabled(false).
		WithCompactL0OnClose(true)
}

// pathReason drops the *fs.PathError wrapper, whose operation and path the
// message around it already says, keeping its reason (errors.Is still
// matches fs.ErrNotExist and the like).
func pathReason(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Open opens the capture in dir, creating it (mode 0700) unless
// opt.ReadOnly. A read-write open after a crash of the writing process
// recovers the store in place (Badger replays its log and truncates a torn
// tail); a read-only open never writes (see Options.ReadOnly and Recover).
// If another process holds the capture, the error wraps ErrInUse and names
// its pid.
func Open(dir string, opt Options) (*Store, error) {
	opt.defaults()
	if dir == "" {
		return nil, fmt.Errorf("capture: open: empty directory name")
	}
	if opt.ReadOnly {
		st, err := os.Stat(dir)
		if err != nil {
			return nil, fmt.Errorf("capture: open %s: %w", dir, pathReason(err))
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("capture: open %s: %w: it is a file, not a capture directory", dir, ErrNotCapture)
		}
		if _, err := os.Stat(filepath.Join(dir, "MANIFEST")); errors.Is(err, fs.ErrNotExist) && !hasBadgerFiles(dir) {
			return nil, fmt.Errorf("capture: open %s: %w: no Badger MANIFEST in it", dir, ErrNotCapture)
		}
	} else {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("capture: create %s: %w", dir, pathReason(err))
		}
		// A new capture in a directory made by someone else: owner-only,
		// like one we create (Badger's files are reached through it). It
		// must be empty: a capture never writes its files among a user's.
		if _, err := os.Stat(filepath.Join(dir, "MANIFEST")); errors.Is(err, fs.ErrNotExist) {
			if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
				return nil, fmt.Errorf("capture: create %s: %w: the directory holds other files (%s, ...); give a new or empty directory", dir, ErrNotCapture, ents[0].Name())
			}
			if err := os.Chmod(dir, 0o700); err != nil {
				return nil, fmt.Errorf("capture: create %s: %w", dir, err)
			}
		}
	}
	if opt.ReadOnly {
		return openReadOnly(dir, opt)
	}
	mute := new(atomic.Bool)
	db, err := openDB(dir, &opt, mute)
	if err != nil {
		return nil, err
	}
	s := &Store{dir: dir, opt: opt, db: db, log: opt.Logger, mute: mute, closeDB: db.Close}
	fail := func(err error) (*Store, error) {
		db.Close()
		if s.dirf != nil {
			s.dirf.Close()
		}
		return nil, err
	}
	ownerOnly(dir)
	// Held open to tell, should its path stop naming it, a removed
	// directory from a moved one (dirgone.go).
	if s.dirf, err = os.Open(dir); err != nil {
		return fail(fmt.Errorf("capture: open %s: %w", dir, pathReason(err)))
	}
	if s.dirInfo, err = s.dirf.Stat(); err != nil {
		return fail(fmt.Errorf("capture: open %s: %w", dir, pathReason(err)))
	}
	if err := s.init(); err != nil {
		return fail(err)
	}
	if err := s.replayJournal(); err != nil {
		return fail(err)
	}
	maxID, err := s.scanMax(prefixRecord, recordKeyLen)
	if err != nil {
		return fail(err)
	}
	maxSeq, err := s.scanMax(prefixSample, sampleKeyLen)
	if err != nil {
		return fail(err)
	}
	s.writer = newWriter(s, maxID, maxSeq)
	s.warnSmallDisk()
	return s, nil
}

// replayJournal stores what a killed writer had journaled but not
// committed (journal.go).
func (s *Store) replayJournal() error {
	entries, problem := readJournal(s.dir)
	if problem != "" {
		s.log.Warn("capture: "+problem, "dir", s.dir)
	}
	if len(entries) == 0 {
		return nil
	}
	wb := s.db.NewWriteBatch()
	for _, e := range entries {
		if err := wb.Set(e.key, e.value); err != nil {
			wb.Cancel()
			return fmt.Errorf("capture: open %s: replay the journal: %w", s.dir, err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("capture: open %s: replay the journal: %w", s.dir, err)
	}
	s.log.Info("capture: stored the items a killed writer had journaled but not committed", "dir", s.dir, "items", len(entries))
	return nil
}

// warnSmallDisk logs, when a writer opens the capture, that its file
// system cannot keep the disk reserve: every record would be counted as
// lost from the first commit on.
func (s *Store) warnSmallDisk() {
	r := s.opt.DiskReserve
	if r < 0 {
		return
	}
	total, ok1 := fsBytes(s.dir)
	free, ok2 := freeBytes(s.dir)
	switch {
	case ok1 && total < r:
		s.log.Warn("capture: the file system holding the capture is smaller than the disk reserve: nothing will be recorded (every record is counted as lost); use a larger file system or a smaller reserve",
			"dir", s.dir, "fs_bytes", total, "reserve_bytes", r)
	case ok2 && free < r:
		s.log.Warn("capture: the file system holding the capture has less free space than the disk reserve: records are counted as lost until space is freed",
			"dir", s.dir, "free_bytes", free, "reserve_bytes", r)
	}
}

// ownerOnly takes the group and other permission bits off the files of a
// capture directory. Badger creates its files 0666 (less the umask); the
// directory is 0700, which already keeps others out, and this keeps the
// files private when they are copied or archived with their modes. Files
// Badger creates while the store is open get it at Close. Best effort.
func ownerOnly(dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		if info, err := e.Info(); err == nil && info.Mode().Perm()&0o077 != 0 {
			os.Chmod(filepath.Join(dir, e.Name()), info.Mode().Perm()&0o700)
		}
	}
}

// IsCaptureDir reports whether dir looks like a capture: a directory with
// Badger's MANIFEST or its table and log files in it. It only reads.
func IsCaptureDir(dir string) bool {
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return false
	}
	if _, err := os.Stat(filepath.Join(dir, "MANIFEST")); err == nil {
		return true
	}
	return hasBadgerFiles(dir)
}

// hasBadgerFiles reports whether dir holds Badger's table or log files
// (a capture that lost its MANIFEST is still read).
func hasBadgerFiles(dir string) bool {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		switch filepath.Ext(e.Name()) {
		case ".sst", ".vlog", ".mem":
			return true
		}
	}
	return false
}

// inUse is Open's error for a capture another process holds.
func inUse(dir string) error {
	pid := ""
	if b, rerr := os.ReadFile(filepath.Join(dir, "LOCK")); rerr == nil {
		if p, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil {
			pid = fmt.Sprintf(" (pid %d)", p)
		}
	}
	return fmt.Errorf("capture: open %s: %w%s; stop it first (vbproxy closes its capture cleanly on SIGINT/SIGTERM), or give each run its own capture directory", dir, ErrInUse, pid)
}

// openReadOnly opens a capture for reading without writing to it (see
// readonly.go): a shared lock on the directory, a private view of its
// files, Badger read-only on the view.
func openReadOnly(dir string, opt Options) (*Store, error) {
	unlock, err := lockShared(dir)
	if errors.Is(err, errLocked) {
		return nil, inUse(dir)
	}
	if err != nil {
		return nil, fmt.Errorf("capture: open %s: %w", dir, err)
	}
	v, err := prepareView(dir, &opt)
	if err != nil {
		unlock()
		return nil, fmt.Errorf("capture: open %s: %w", dir, err)
	}
	fail := func(err error) (*Store, error) {
		os.RemoveAll(v.dir)
		unlock()
		return nil, err
	}
	db, err := openView(v, &opt)
	if err != nil {
		msg := fmt.Sprintf("capture: open %s: %v", dir, err)
		if len(v.problems) > 0 {
			msg += "; found: " + strings.Join(v.problems, "; ")
		}
		return fail(errors.New(msg))
	}
	s := &Store{dir: dir, opt: opt, db: db, log: opt.Logger, view: v, unlock: unlock}
	s.health.problems = append(s.health.problems, v.problems...)
	s.health.notes = append(s.health.notes, v.notes...)
	if err := s.init(); err != nil {
		db.Close()
		return fail(err)
	}
	return s, nil
}

func openDB(dir string, opt *Options, mute *atomic.Bool) (*badger.DB, error) {
	db, err := badger.Open(badgerOptions(dir, opt, false).WithLogger(badgerLogger{l: opt.Logger, mute: mute}))
	if err == nil {
		return db, nil
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "Cannot acquire directory lock"):
		return nil, inUse(dir)
	}
	return nil, fmt.Errorf("capture: open %s: %w", dir, err)
}

// init checks the format marker of an existing store and writes it into a
// new one.
func (s *Store) init() error {
	var have []byte
	empty, ours := true, false
	err := guard(func() error {
		return s.db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{})
			defer it.Close()
			it.Rewind()
			empty = !it.Valid()
			for _, p := range []byte{prefixRecord, prefixSample, prefixMeta} {
				it.Seek([]byte{p})
				if it.Valid() && it.Item().Key()[0] == p {
					ours = true
				}
			}
			item, err := txn.Get(markerKey)
			if errors.Is(err, badger.ErrKeyNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			have, err = item.ValueCopy(nil)
			return err
		})
	})
	if err != nil && !s.opt.ReadOnly {
		return fmt.Errorf("capture: open %s: read format marker: %w", s.dir, err)
	}
	if s.opt.ReadOnly {
		switch {
		case err != nil && ours:
			s.health.problems = append(s.health.problems, fmt.Sprintf("the format marker cannot be read (%v); read as a vbench capture", err))
			return nil
		case err != nil:
			return fmt.Errorf("capture: open %s: read format marker: %w", s.dir, err)
		case have != nil && string(have) != formatMarker:
			return fmt.Errorf("capture: open %s: %w: format %q, this build reads %q", s.dir, ErrNotCapture, have, formatMarker)
		case have == nil && !empty && ours:
			s.health.problems = append(s.health.problems, "the format marker is missing (lost with damaged data); read as a vbench capture")
			return nil
		case have == nil && !empty:
			return fmt.Errorf("capture: open %s: %w: a Badger store without the vbench marker", s.dir, ErrNotCapture)
		case have == nil && s.view != nil && s.view.hasData:
			// A writer stores the marker when it creates the capture.
			s.health.problems = append(s.health.problems, "no key can be read, not even the format marker, yet its files hold data: its tables or write-ahead logs are lost")
		}
		return nil // an empty store is one a writer created and closed at once
	}
	switch {
	case have != nil && string(have) != formatMarker:
		return fmt.Errorf("capture: open %s: %w: format %q, this build reads %q", s.dir, ErrNotCapture, have, formatMarker)
	case have == nil && !empty:
		return fmt.Errorf("capture: open %s: %w: a Badger store without the vbench marker", s.dir, ErrNotCapture)
	case have == nil:
		if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(markerKey, []byte(formatMarker)) }); err != nil {
			return fmt.Errorf("capture: open %s: write format marker: %w", s.dir, err)
		}
	}
	metaSeq, err := s.scanMax(prefixMeta, metaKeyLen)
	if err != nil {
		return err
	}
	s.metaSeq = metaSeq
	return nil
}

// scanMax returns the largest trailing uint64 of the keys with a prefix
// (keys only, no values read).
func (s *Store) scanMax(prefix byte, keyLen int) (uint64, error) {
	var max uint64
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefix}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			if len(k) != keyLen {
				continue
			}
			if v := binary.BigEndian.Uint64(k[keyLen-8:]); v > max {
				max = v
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("capture: open %s: scan %c keys: %w", s.dir, prefix, err)
	}
	return max, nil
}

// Writer returns the store's batching writer; nil for a read-only store.
func (s *Store) Writer() *Writer { return s.writer }

// PutMeta stores run metadata synchronously (it is rare and small).
func (s *Store) PutMeta(m Meta) error {
	if s.opt.ReadOnly {
		return fmt.Errorf("capture: put meta into %s: the store is open read-only", s.dir)
	}
	if s.closed.Load() {
		return fmt.Errorf("capture: put meta into %s: the store is closed", s.dir)
	}
	if s.checkDir() != dirHere {
		return s.goneError(false)
	}
	m.Version = MetaVersion // what this package writes, whatever the caller copied
	v, err := m.MarshalBinary()
	if err != nil {
		return err
	}
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	key := binary.BigEndian.AppendUint64([]byte{prefixMeta}, s.metaSeq+1)
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(key, v) }); err != nil {
		return fmt.Errorf("capture: put meta into %s: %w", s.dir, err)
	}
	s.metaSeq++
	s.metas, s.metaKeys = append(s.metas, m), append(s.metaKeys, key)
	return nil
}

// markClosed completes the metas this process put with the clean-close
// time, and the last of them with the writer's final counts, in one
// transaction.
func (s *Store) markClosed() error {
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	if len(s.metas) == 0 {
		return nil
	}
	if r := s.opt.DiskReserve; r >= 0 {
		if free, ok := freeBytes(s.dir); ok && free < r/2 {
			// Badger writes through mmap: no write at all on a full disk.
			// The capture then reads as not closed cleanly.
			return fmt.Errorf("capture: %s: %w: not marking the capture closed (%d bytes free)", s.dir, ErrDiskFull, free)
		}
	}
	closed := time.Now().UnixNano()
	vals := make([][]byte, len(s.metas))
	for i, m := range s.metas {
		m.Version = MetaVersion // Closed is a version-2 fact
		m.Closed = closed
		if i == len(s.metas)-1 && s.writer != nil {
			m.Recorder = recorderTotals(s.writer.Stats())
		}
		v, err := m.MarshalBinary()
		if err != nil {
			return err
		}
		vals[i] = v
	}
	err := s.db.Update(func(txn *badger.Txn) error {
		for i, k := range s.metaKeys {
			if err := txn.Set(k, vals[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("capture: mark %s closed: %w", s.dir, err)
	}
	return nil
}

// maxStoredError caps the writer error kept in RecorderTotals.
const maxStoredError = 512

// recorderTotals is what a clean close stores of the writer's stats.
func recorderTotals(st WriterStats) *RecorderTotals {
	last := st.LastError
	if len(last) > maxStoredError {
		last = strings.ToValidUTF8(last[:maxStoredError], "") + "…"
	}
	return &RecorderTotals{Written: st.Written, Samples: st.Samples, Dropped: st.Dropped, Lost: st.Lost,
		Errors: st.Errors, LastError: last, FirstLoss: st.FirstLoss, LastLoss: st.LastLoss}
}

// Close drains the writer's queue, commits, syncs and closes the database.
// It is safe to call more than once. It is CloseContext without a bound.
//
// Losses travel with the capture: in one transaction Close sets Closed (Unix
// ns) on every Meta this process put, and Recorder (the writer's totals:
// written, dropped, lost, errors, first and last loss) on the last one. A
// version-2 meta without Closed thus belongs to a writer that was killed,
// crashed or still runs (its losses unknown, not zero); a process that put
// no meta marks nothing; no mark is written when free space is below half
// the disk reserve.
//
// A capture directory removed, moved away or replaced while the store was
// open is not waited for: Close returns an error wrapping ErrDirRemoved or
// ErrDirMoved that counts what was lost, without closing Badger (whose
// Close would retry its table flush forever); see dirgone.go.
func (s *Store) Close() error { return s.CloseContext(context.Background()) }

// CloseContext is Close bounded by ctx: when ctx ends first (a deadline,
// another signal) it stops waiting and returns an error that says the
// capture is left as a killed writer leaves it (what was committed is kept
// and read back, recovered on a private copy); Badger's goroutines are
// left to finish or to end with the process. A later Close returns the
// same error.
func (s *Store) CloseContext(ctx context.Context) error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.closeErr = s.close(ctx)
		if s.dirf != nil {
			s.dirf.Close()
		}
	})
	return s.closeErr
}

func (s *Store) close(ctx context.Context) error {
	if s.opt.ReadOnly {
		var errs []error
		if err := guard(s.db.Close); err != nil {
			errs = append(errs, fmt.Errorf("capture: close %s: %w", s.dir, err))
		}
		if s.view != nil {
			s.warnUnseenDamage()
			os.RemoveAll(s.view.dir)
			s.unlock()
		}
		return errors.Join(errs...)
	}
	var errs []error
	werr := s.writer.close(ctx)
	if s.checkDir() != dirHere {
		return s.goneError(true)
	}
	if werr != nil && ctx.Err() != nil && errors.Is(werr, ctx.Err()) {
		return s.abandoned(ctx, "the writer's last commits")
	}
	if werr != nil {
		errs = append(errs, werr)
	}
	if err := s.markClosed(); err != nil {
		errs = append(errs, err)
	}
	closed := make(chan struct{})
	var cerr error
	go func() {
		defer close(closed)
		cerr = guard(s.closeDB)
	}()
	switch err := s.await(ctx, closed); {
	case errors.Is(err, errGone):
		return s.goneError(true)
	case err != nil:
		return s.abandoned(ctx, "Badger's close")
	}
	if cerr != nil {
		errs = append(errs, fmt.Errorf("capture: close %s: %w", s.dir, cerr))
	}
	if s.checkDir() != dirHere {
		return s.goneError(true)
	}
	ownerOnly(s.dir)
	return errors.Join(errs...)
}

// ErrCloseAbandoned is wrapped by CloseContext's error when its context
// ended before the store was closed.
var ErrCloseAbandoned = errors.New("stopped waiting")

// abandoned is Close's error when ctx ended before what it waited for.
func (s *Store) abandoned(ctx context.Context, what string) error {
	st := s.writer.Stats()
	queued := ""
	if st.Queued > 0 {
		queued = fmt.Sprintf(", and so is what its journal holds of the %d items still queued", st.Queued)
	}
	return fmt.Errorf("capture: closing %s: %w for %s (%w): the capture is left as a killed writer leaves it: what was committed (%d records) is kept and read back (recovered on a private copy)%s",
		s.dir, ErrCloseAbandoned, what, context.Cause(ctx), st.Written, queued)
}
