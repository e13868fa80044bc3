package capture

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// item is one queued write: a record or a sample.
type item struct {
	rec    *Record
	sample Sample
}

// Writer is the one batching writer of a Store. Put and PutSample never
// block: they hand the value to a bounded queue, or drop and count it when
// the queue is full or the store is closed. One goroutine drains the queue
// and commits a fresh Badger transaction every FlushInterval or BatchRecords
// items, whichever comes first, and syncs to disk every SyncInterval.
//
// A failed commit (disk full, I/O error) does not stop the writer: the items
// of that commit are counted as lost, the error is kept for Stats and Close,
// and the writer goes on with the next batch. Once the capture directory is
// gone from its path (removed, moved, replaced: checked before each
// commit), every item is counted as lost (dirgone.go).
type Writer struct {
	s  *Store
	ch chan item
	// cch carries encoded (and journaled) batches from the journal
	// goroutine to the committer.
	cch  chan *encBatch
	stop chan struct{}
	done chan struct{}
	j    *journal // nil when the journal could not be opened
	// syncReq asks syncLoop for a sync; syncDone closes when it ends.
	syncReq  chan struct{}
	syncDone chan struct{}

	mu      sync.RWMutex // held for reading by Put, for writing by close
	closing bool

	nextID    atomic.Uint64
	sampleSeq uint64 // journal goroutine only
	seq       uint64 // journal goroutine only: the items' journal sequence
	scratch   []byte // journal goroutine only
	// queued counts accepted items not yet through a commit.
	queued atomic.Int64
	// queuedBytes is the estimated memory of the queued items (memSize),
	// bounded by Options.QueueBytes.
	queuedBytes atomic.Int64

	written, samples, dropped, lost atomic.Uint64
	lostSamples                     atomic.Uint64
	flushes, syncs, bytes           atomic.Uint64
	flushedID                       atomic.Uint64
	lastDropLog                     atomic.Int64
	// diskFull is set while the disk reserve refuses commits: the
	// journal goroutine then writes nothing either.
	diskFull atomic.Bool
	// gone is set once the writer found its capture directory gone.
	gone atomic.Bool
	// firstLoss and lastLoss are the Unix ns of the first and the latest
	// drop or loss (0 = none yet).
	firstLoss, lastLoss atomic.Int64

	statMu   sync.Mutex
	lat      [1024]time.Duration
	latN     int
	latMax   time.Duration
	lastErr  error
	errCount uint64
}

// WriterStats are the writer's live numbers.
type WriterStats struct {
	// Queued is the number of items waiting in the queue or the batch
	// being built; QueuedBytes estimates the memory they hold.
	Queued      int   `json:"queued"`
	QueuedBytes int64 `json:"queued_bytes"`
	// Written is the number of records committed; Samples the number of
	// samples committed.
	Written uint64 `json:"written"`
	Samples uint64 `json:"samples"`
	// Dropped counts items refused by Put/PutSample because the queue was
	// full (QueueSize items or QueueBytes of memory) or the store closed.
	Dropped uint64 `json:"dropped"`
	// Lost counts items accepted but not stored because a commit failed
	// (or the disk reserve was reached); LostSamples how many of them were
	// samples, the rest were records.
	Lost        uint64 `json:"lost"`
	LostSamples uint64 `json:"lost_samples"`
	// FirstLoss and LastLoss are the Unix ns of the first and the latest
	// item dropped or lost; 0 while none was.
	FirstLoss int64 `json:"first_loss_ns,omitempty"`
	LastLoss  int64 `json:"last_loss_ns,omitempty"`
	// Flushes counts commits; Syncs counts fsyncs.
	Flushes uint64 `json:"flushes"`
	Syncs   uint64 `json:"syncs"`
	// FlushP50, FlushP99 and FlushMax describe commit latency over the
	// last 1024 commits (FlushMax over the writer's life).
	FlushP50 time.Duration `json:"flush_p50_ns"`
	FlushP99 time.Duration `json:"flush_p99_ns"`
	FlushMax time.Duration `json:"flush_max_ns"`
	// Bytes is the encoded size of everything committed (keys + values).
	Bytes uint64 `json:"bytes"`
	// FlushedID is the largest record ID committed so far. Records are
	// committed in Put order, so every record put before it is stored too
	// (unless dropped or lost).
	FlushedID uint64 `json:"flushed_id"`
	// Errors counts failed commits and syncs; LastError is the latest.
	Errors    uint64 `json:"errors"`
	LastError string `json:"last_error,omitempty"`
}

func newWriter(s *Store, maxID, maxSampleSeq uint64) *Writer {
	w := &Writer{
		s:         s,
		ch:        make(chan item, s.opt.QueueSize),
		cch:       make(chan *encBatch, max(s.opt.QueueSize/journalBatch, 64)),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
		syncReq:   make(chan struct{}),
		syncDone:  make(chan struct{}),
		sampleSeq: maxSampleSeq,
	}
	w.nextID.Store(maxID)
	if j, err := openJournal(s.dir, 0); err != nil {
		s.log.Warn("capture: no journal (a killed writer may lose what its queue holds)", "dir", s.dir, "err", err)
	} else {
		w.j = j
	}
	go w.journalLoop()
	go w.run()
	return w
}

// encoded is an item encoded for Badger: its key is arena[off:off+klen]
// and its value arena[off+klen:end] in its batch's arena, where it is
// framed as a journal entry.
type encoded struct {
	off    int
	klen   int
	end    int
	id     uint64 // record ID; 0 for a sample
	sample bool
	seq    uint64
	size   int64 // memSize when queued
}

// encBatch is what the journal goroutine hands the committer: items
// encoded into one arena, which is also what it wrote to the journal.
type encBatch struct {
	arena []byte
	items []encoded
}

// arenas recycles the batches' arenas (and item slices).
var arenas = sync.Pool{New: func() any { return new(encBatch) }}

// maxPooledArena is the largest arena kept for reuse.
const maxPooledArena = 8 << 20

func releaseBatch(b *encBatch) {
	if cap(b.arena) > maxPooledArena {
		b.arena = nil
	}
	b.arena = b.arena[:0]
	clear(b.items)
	b.items = b.items[:0]
	arenas.Put(b)
}

// journalBatch is the most items the journal goroutine encodes and writes
// at once.
const journalBatch = 256

// journalLoop is the first stage of the writer: it encodes queued items,
// journals them (one write per batch, never waiting for Badger) and hands
// them to the committer. Records' pooled buffers go back here.
func (w *Writer) journalLoop() {
	defer close(w.cch)
	var b *encBatch
	handle := func(it item) {
		if b == nil {
			b = arenas.Get().(*encBatch)
		}
		w.encode(b, it)
		if it.rec != nil {
			it.rec.Release() // encoded (or refused): pooled buffers go back
		}
	}
	forward := func() {
		if b == nil {
			return
		}
		if len(b.items) == 0 {
			releaseBatch(b)
			b = nil
			return
		}
		if w.j != nil && !w.diskFull.Load() && w.s.dirState.Load() == dirHere {
			w.j.write(b.arena, b.items[len(b.items)-1].seq)
		}
		w.cch <- b
		b = nil
	}
	for {
		select {
		case it := <-w.ch:
			handle(it)
		more:
			for len(b.items) < journalBatch && len(b.arena) < maxPooledArena {
				select {
				case it := <-w.ch:
					handle(it)
				default:
					break more
				}
			}
			forward()
		case <-w.stop:
			for {
				select {
				case it := <-w.ch:
					handle(it)
					if len(b.items) >= journalBatch {
						forward()
					}
					continue
				default:
				}
				break
			}
			forward()
			return
		}
	}
}

// encode appends an item to the batch: a journal entry framing its Badger
// key and stored value (journal.go). A record that would not read back
// is counted lost instead.
func (w *Writer) encode(b *encBatch, it item) {
	start := len(b.arena)
	size := it.memSize()
	arena := append(b.arena, make([]byte, journalHead)...) // length, CRC, seq
	var e encoded
	if it.rec != nil {
		arena = binary.AppendUvarint(arena, recordKeyLen)
		k0 := len(arena)
		arena = recordKey(arena, it.rec.Received, it.rec.ID)
		e.klen, e.id = recordKeyLen, it.rec.ID
		arena, w.scratch = appendStoredRecord(arena, w.scratch, it.rec)
		if len(w.scratch) > storeLimit || len(it.rec.Chunks) > maxChunks {
			// Stored, it would not read back: count it lost instead.
			b.arena = arena[:start]
			w.fail(fmt.Errorf("capture: write to %s: %w: record %d encodes to %d bytes with %d chunks (at most %d bytes and %d chunks read back)",
				w.s.dir, errRecordTooBig, it.rec.ID, len(w.scratch), len(it.rec.Chunks), storeLimit, maxChunks))
			w.lose(1, 0)
			w.queuedBytes.Add(-size)
			w.queued.Add(-1)
			return
		}
		if cap(w.scratch) > 64<<20 {
			w.scratch = nil
		}
		e.off = k0
	} else {
		w.sampleSeq++
		arena = binary.AppendUvarint(arena, sampleKeyLen)
		k0 := len(arena)
		arena = sampleKey(arena, it.sample.At, w.sampleSeq)
		e.klen, e.sample = sampleKeyLen, true
		arena, _ = it.sample.AppendBinary(arena)
		e.off = k0
	}
	w.seq++
	e.seq, e.size, e.end = w.seq, size, len(arena)
	frameEntry(arena[start:], w.seq)
	b.arena = arena
	b.items = append(b.items, e)
}

// NextID reserves the next record ID. The proxy calls it when a request
// arrives and stores it in Record.ID, so IDs increase in arrival order;
// Put assigns one to a record whose ID is 0.
func (w *Writer) NextID() uint64 { return w.nextID.Add(1) }

// Put queues r for writing and reports whether it was accepted; false
// means dropped (and counted). It never blocks. The writer owns r after a
// successful Put: the caller must not change it. A record given pooled
// buffers by UsePool is the writer's after Put either way, and the caller
// must not even read it: its buffers go back to the pool once it is
// encoded or dropped.
func (w *Writer) Put(r *Record) bool {
	if r.ID == 0 {
		r.ID = w.NextID()
	}
	return w.enqueue(item{rec: r})
}

// PutSample queues a server-metric sample; like Put it never blocks.
func (w *Writer) PutSample(s Sample) bool { return w.enqueue(item{sample: s}) }

func (w *Writer) enqueue(it item) bool {
	size := it.memSize()
	if w.queuedBytes.Add(size) > w.s.opt.QueueBytes {
		w.queuedBytes.Add(-size)
		w.drop()
		if it.rec != nil {
			it.rec.Release()
		}
		return false
	}
	w.queued.Add(1)
	w.mu.RLock()
	if !w.closing {
		select {
		case w.ch <- it:
			w.mu.RUnlock()
			return true
		default:
		}
	}
	w.mu.RUnlock()
	w.queuedBytes.Add(-size)
	w.queued.Add(-1)
	w.drop()
	if it.rec != nil {
		it.rec.Release()
	}
	return false
}

// memSize estimates the memory an item holds while it is queued.
func (it *item) memSize() int64 {
	if it.rec == nil {
		return 64 + int64(len(it.sample.Name))
	}
	r := it.rec
	n := 512 + len(r.Path) + len(r.Error) + len(r.RequestBody) + len(r.ResponseBody) + 24*len(r.Chunks)
	for _, h := range r.RequestHeaders {
		n += 32 + len(h.Name) + len(h.Value)
	}
	return int64(n)
}

// drop counts a refused item and logs the first drop and then at most one
// summary every 10 s.
func (w *Writer) drop() {
	n := w.dropped.Add(1)
	now := time.Now().UnixNano()
	w.noteLoss(now)
	last := w.lastDropLog.Load()
	if n != 1 && now-last < int64(10*time.Second) {
		return
	}
	if !w.lastDropLog.CompareAndSwap(last, now) {
		return
	}
	if n == 1 {
		w.s.log.Warn("capture: writer queue full or closed, dropping records (the stream is not blocked)", "dir", w.s.dir, "queue", cap(w.ch))
	} else {
		w.s.log.Warn("capture: still dropping records", "dir", w.s.dir, "dropped", n)
	}
}

// noteLoss records now as the time of a drop or loss: the first one once,
// the latest always (a compare-and-swap keeps the largest when drops race).
func (w *Writer) noteLoss(now int64) {
	if w.firstLoss.Load() == 0 {
		w.firstLoss.CompareAndSwap(0, now)
	}
	for {
		last := w.lastLoss.Load()
		if last >= now || w.lastLoss.CompareAndSwap(last, now) {
			return
		}
	}
}

// lose counts n accepted items that were not stored, samples of them
// samples.
func (w *Writer) lose(n, samples uint64) {
	if n == 0 {
		return
	}
	w.lost.Add(n)
	w.lostSamples.Add(samples)
	w.noteLoss(time.Now().UnixNano())
}

// loseBatches counts whole batches as lost.
func (w *Writer) loseBatches(batches []*encBatch) {
	var n, samples uint64
	for _, b := range batches {
		for i := range b.items {
			n++
			if b.items[i].sample {
				samples++
			}
		}
	}
	w.lose(n, samples)
}

// syncLoop runs the periodic syncs the writer asks for.
func (w *Writer) syncLoop() {
	defer close(w.syncDone)
	for range w.syncReq {
		w.sync()
	}
}

func (w *Writer) run() {
	defer close(w.done)
	go w.syncLoop()
	opt := &w.s.opt
	tick := time.NewTicker(opt.FlushInterval)
	defer tick.Stop()
	var batches []*encBatch
	n := 0
	lastSync := time.Now()
	dirty := false
	flush := func() {
		if n > 0 {
			w.flush(batches)
			for _, b := range batches {
				releaseBatch(b)
			}
			clear(batches)
			batches, n = batches[:0], 0
			dirty = true
		}
	}
	for {
		select {
		case b, ok := <-w.cch:
			if !ok { // the journal goroutine has drained the queue: stop
				flush()
				close(w.syncReq)
				<-w.syncDone
				if dirty {
					w.sync()
				}
				if w.j != nil {
					w.j.close()
					// (Not by path once the directory is gone: the path
					// may name another directory by now.)
					if w.j.checkpoint.Load() == w.seq && w.s.checkDir() == dirHere {
						removeJournal(w.s.dir) // every item committed or counted
					}
				}
				return
			}
			batches = append(batches, b)
			if n += len(b.items); n >= opt.BatchRecords {
				flush()
			}
		case <-tick.C:
			flush()
			if dirty && opt.SyncInterval > 0 && time.Since(lastSync) >= opt.SyncInterval {
				// On its own goroutine: an msync of a busy value log takes
				// hundreds of ms on a slow disk, and commits must go on
				// meanwhile.
				select {
				case w.syncReq <- struct{}{}:
					dirty = false
					lastSync = time.Now()
				default: // the previous sync still runs
				}
			}
		}
	}
}

func (w *Writer) sync() {
	if w.s.db.IsClosed() { // Badger's Sync panics on a closed DB
		w.fail(fmt.Errorf("capture: sync %s: %w", w.s.dir, badger.ErrDBClosed))
		return
	}
	if err := w.s.db.Sync(); err != nil {
		w.fail(fmt.Errorf("capture: sync %s: %w", w.s.dir, err))
		return
	}
	w.syncs.Add(1)
}

func (w *Writer) fail(err error) {
	if first := w.noteErr(err); first {
		w.s.log.Error("capture: write failed; records are being lost (the proxy keeps forwarding)", "err", err)
	}
}

// noteErr keeps err for Stats and close, and reports whether it is the
// first.
func (w *Writer) noteErr(err error) (first bool) {
	w.statMu.Lock()
	defer w.statMu.Unlock()
	first = w.errCount == 0
	w.errCount++
	w.lastErr = err
	return first
}

// ErrDiskFull is wrapped by the writer's error (Stats.LastError, Close)
// when the capture's file system has less free space than
// Options.DiskReserve: items are counted as lost instead of committed.
var ErrDiskFull = errors.New("no space left for the capture")

// diskRoom refuses a commit of batch when the capture's file system has
// less than the reserve free after it (see Options.DiskReserve).
func (w *Writer) diskRoom(batches []*encBatch) error {
	reserve := w.s.opt.DiskReserve
	if reserve < 0 {
		return nil
	}
	free, ok := freeBytes(w.s.dir)
	if !ok {
		return nil
	}
	var need, items int64
	for _, b := range batches {
		need += int64(len(b.arena))
		items += int64(len(b.items))
	}
	if free-need < reserve {
		return fmt.Errorf("capture: %s: %w: %d bytes free, %d items need about %d, and %d are kept free (Badger writes through memory maps; a full disk would crash the process); not recording until space is freed",
			w.s.dir, ErrDiskFull, free, items, need, reserve)
	}
	return nil
}

// flush commits the batches in as few transactions as Badger allows,
// then moves the journal's checkpoint past them.
func (w *Writer) flush(batches []*encBatch) {
	start := time.Now()
	db := w.s.db
	var held, count int64
	for _, b := range batches {
		for i := range b.items {
			held += b.items[i].size
		}
		count += int64(len(b.items))
	}
	defer func() {
		w.queuedBytes.Add(-held)
		w.queued.Add(-count)
		if w.j != nil {
			last := batches[len(batches)-1]
			w.j.commit(last.items[len(last.items)-1].seq)
		}
	}()
	// Each failure is noted before its items are counted lost, so a reader
	// of Stats that sees the loss sees its error too.
	if db.IsClosed() {
		w.fail(fmt.Errorf("capture: commit %d items to %s: %w", count, w.s.dir, badger.ErrDBClosed))
		w.loseBatches(batches)
		return
	}
	if w.s.checkDir() != dirHere {
		// Committed, the items would go into files that are gone (or that
		// Badger cannot flush by path): counted lost, said once.
		if w.gone.CompareAndSwap(false, true) {
			w.noteErr(w.s.goneError(false)) // checkDir has logged it
		}
		w.loseBatches(batches)
		return
	}
	if err := w.diskRoom(batches); err != nil {
		w.diskFull.Store(true)
		w.fail(err)
		w.loseBatches(batches)
		return
	}
	w.diskFull.Store(false)
	txn := db.NewTransaction(true)
	var inTxn, records, samples, bytes uint64
	var maxID uint64
	commit := func() {
		if err := txn.Commit(); err != nil {
			w.fail(fmt.Errorf("capture: commit %d items to %s: %w", inTxn, w.s.dir, err))
			w.lose(inTxn, samples)
		} else {
			w.written.Add(records)
			w.samples.Add(samples)
			w.bytes.Add(bytes)
			if maxID > w.flushedID.Load() {
				w.flushedID.Store(maxID)
			}
		}
		inTxn, records, samples, bytes = 0, 0, 0, 0
	}
	for _, b := range batches {
		for i := range b.items {
			e := &b.items[i]
			key := b.arena[e.off : e.off+e.klen : e.off+e.klen]
			val := b.arena[e.off+e.klen : e.end : e.end]
			err := txn.Set(key, val)
			if errors.Is(err, badger.ErrTxnTooBig) {
				commit()
				txn = db.NewTransaction(true)
				err = txn.Set(key, val)
			}
			if err != nil {
				w.fail(fmt.Errorf("capture: write to %s: %w", w.s.dir, err))
				if e.sample {
					w.lose(1, 1)
				} else {
					w.lose(1, 0)
				}
				continue
			}
			inTxn++
			bytes += uint64(e.end - e.off)
			if e.sample {
				samples++
			} else {
				records++
				maxID = max(maxID, e.id)
			}
		}
	}
	if inTxn > 0 {
		commit()
	} else {
		txn.Discard()
	}
	w.flushes.Add(1)
	d := time.Since(start)
	w.statMu.Lock()
	w.lat[w.latN%len(w.lat)] = d
	w.latN++
	w.latMax = max(w.latMax, d)
	w.statMu.Unlock()
}

// Stats returns the writer's live numbers.
func (w *Writer) Stats() WriterStats {
	st := WriterStats{
		Queued:      int(w.queued.Load()),
		QueuedBytes: w.queuedBytes.Load(),
		Written:     w.written.Load(),
		Samples:     w.samples.Load(),
		Dropped:     w.dropped.Load(),
		Lost:        w.lost.Load(),
		LostSamples: w.lostSamples.Load(),
		Flushes:     w.flushes.Load(),
		Syncs:       w.syncs.Load(),
		Bytes:       w.bytes.Load(),
		FlushedID:   w.flushedID.Load(),
		FirstLoss:   w.firstLoss.Load(),
		LastLoss:    w.lastLoss.Load(),
	}
	w.statMu.Lock()
	n := min(w.latN, len(w.lat))
	lat := slices.Clone(w.lat[:n])
	st.FlushMax = w.latMax
	st.Errors = w.errCount
	if w.lastErr != nil {
		st.LastError = w.lastErr.Error()
	}
	w.statMu.Unlock()
	if n > 0 {
		slices.Sort(lat)
		st.FlushP50 = lat[(n-1)*50/100]
		st.FlushP99 = lat[(n-1)*99/100]
	}
	return st
}

// close stops accepting, drains the queue, commits and syncs. It reports
// lost records and the last error, if any; or, when it stopped waiting,
// ctx's error or errGone (the capture directory went away and the writer
// did not end within goneGrace).
func (w *Writer) close(ctx context.Context) error {
	w.mu.Lock()
	if w.closing {
		w.mu.Unlock()
		return w.s.await(ctx, w.done)
	}
	w.closing = true
	w.mu.Unlock()
	close(w.stop)
	if err := w.s.await(ctx, w.done); err != nil {
		return err
	}
	w.statMu.Lock()
	defer w.statMu.Unlock()
	if w.lastErr != nil {
		return fmt.Errorf("capture: %d records/samples lost in %d failed writes; last: %w", w.lost.Load(), w.errCount, w.lastErr)
	}
	return nil
}
