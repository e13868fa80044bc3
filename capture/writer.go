package capture

import (
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
// and the writer goes on with the next batch.
type Writer struct {
	s    *Store
	ch   chan item
	stop chan struct{}
	done chan struct{}
	// syncReq asks syncLoop for a sync; syncDone closes when it ends.
	syncReq  chan struct{}
	syncDone chan struct{}

	mu      sync.RWMutex // held for reading by Put, for writing by close
	closing bool

	nextID    atomic.Uint64
	sampleSeq uint64 // writer goroutine only
	arena     []byte // writer goroutine only
	scratch   []byte // writer goroutine only
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
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
		syncReq:   make(chan struct{}),
		syncDone:  make(chan struct{}),
		sampleSeq: maxSampleSeq,
	}
	w.nextID.Store(maxID)
	go w.run()
	return w
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

// loseBatch counts a whole batch as lost.
func (w *Writer) loseBatch(batch []item) {
	var samples uint64
	for i := range batch {
		if batch[i].rec == nil {
			samples++
		}
	}
	w.lose(uint64(len(batch)), samples)
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
	batch := make([]item, 0, min(opt.BatchRecords, 4096))
	lastSync := time.Now()
	dirty := false
	flush := func() {
		if len(batch) > 0 {
			w.flush(batch)
			for i := range batch {
				if r := batch[i].rec; r != nil {
					r.Release() // encoded (or lost): pooled buffers go back
				}
			}
			clear(batch)
			batch = batch[:0]
			dirty = true
		}
	}
	for {
		select {
		case it := <-w.ch:
			batch = append(batch, it)
			if len(batch) >= opt.BatchRecords {
				flush()
			}
		case <-tick.C:
			flush()
			if dirty && opt.SyncInterval > 0 && time.Since(lastSync) >= opt.SyncInterval {
				// On its own goroutine: an msync of a busy value log takes
				// hundreds of ms on a slow disk, and commits must go on
				// meanwhile (what is still queued when the process is
				// killed is what is lost).
				select {
				case w.syncReq <- struct{}{}:
					dirty = false
					lastSync = time.Now()
				default: // the previous sync still runs
				}
			}
		case <-w.stop:
			for {
				select {
				case it := <-w.ch:
					batch = append(batch, it)
					if len(batch) >= opt.BatchRecords {
						flush()
					}
					continue
				default:
				}
				break
			}
			flush()
			close(w.syncReq)
			<-w.syncDone
			if dirty {
				w.sync()
			}
			return
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
	w.statMu.Lock()
	first := w.errCount == 0
	w.errCount++
	w.lastErr = err
	w.statMu.Unlock()
	if first {
		w.s.log.Error("capture: write failed; records are being lost (the proxy keeps forwarding)", "err", err)
	}
}

// ErrDiskFull is wrapped by the writer's error (Stats.LastError, Close)
// when the capture's file system has less free space than
// Options.DiskReserve: items are counted as lost instead of committed.
var ErrDiskFull = errors.New("no space left for the capture")

// diskRoom refuses a commit of batch when the capture's file system has
// less than the reserve free after it (see Options.DiskReserve).
func (w *Writer) diskRoom(batch []item) error {
	reserve := w.s.opt.DiskReserve
	if reserve < 0 {
		return nil
	}
	free, ok := freeBytes(w.s.dir)
	if !ok {
		return nil
	}
	var need int64
	for i := range batch {
		need += batch[i].memSize()
	}
	if free-need < reserve {
		return fmt.Errorf("capture: %s: %w: %d bytes free, %d items need about %d, and %d are kept free (Badger writes through memory maps; a full disk would crash the process); not recording until space is freed",
			w.s.dir, ErrDiskFull, free, len(batch), need, reserve)
	}
	return nil
}

// flush commits batch in as few transactions as Badger allows.
func (w *Writer) flush(batch []item) {
	start := time.Now()
	db := w.s.db
	if db.IsClosed() {
		w.loseBatch(batch)
		w.fail(fmt.Errorf("capture: commit %d items to %s: %w", len(batch), w.s.dir, badger.ErrDBClosed))
		for i := range batch {
			w.queuedBytes.Add(-batch[i].memSize())
		}
		w.queued.Add(-int64(len(batch)))
		return
	}
	if err := w.diskRoom(batch); err != nil {
		w.loseBatch(batch)
		w.fail(err)
		for i := range batch {
			w.queuedBytes.Add(-batch[i].memSize())
		}
		w.queued.Add(-int64(len(batch)))
		return
	}
	arena := w.arena[:0]
	txn := db.NewTransaction(true)
	var inTxn, records, samples, bytes uint64
	var maxID uint64
	commit := func() {
		if err := txn.Commit(); err != nil {
			w.lose(inTxn, samples)
			w.fail(fmt.Errorf("capture: commit %d items to %s: %w", inTxn, w.s.dir, err))
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
	for i := range batch {
		it := &batch[i]
		k0 := len(arena)
		var v0 int
		if it.rec != nil {
			arena = recordKey(arena, it.rec.Received, it.rec.ID)
			v0 = len(arena)
			arena, w.scratch = appendStoredRecord(arena, w.scratch, it.rec)
			if len(w.scratch) > storeLimit || len(it.rec.Chunks) > maxChunks {
				// Stored, it would not read back: count it lost instead.
				arena = arena[:k0]
				w.lose(1, 0)
				w.fail(fmt.Errorf("capture: write to %s: %w: record %d encodes to %d bytes with %d chunks (at most %d bytes and %d chunks read back)",
					w.s.dir, errRecordTooBig, it.rec.ID, len(w.scratch), len(it.rec.Chunks), storeLimit, maxChunks))
				continue
			}
		} else {
			w.sampleSeq++
			arena = sampleKey(arena, it.sample.At, w.sampleSeq)
			v0 = len(arena)
			arena, _ = it.sample.AppendBinary(arena)
		}
		key, val := arena[k0:v0:v0], arena[v0:len(arena):len(arena)]
		err := txn.Set(key, val)
		if errors.Is(err, badger.ErrTxnTooBig) {
			commit()
			txn = db.NewTransaction(true)
			err = txn.Set(key, val)
		}
		if err != nil {
			if it.rec != nil {
				w.lose(1, 0)
			} else {
				w.lose(1, 1)
			}
			w.fail(fmt.Errorf("capture: write to %s: %w", w.s.dir, err))
			continue
		}
		inTxn++
		bytes += uint64(len(arena) - k0)
		if it.rec != nil {
			records++
			maxID = max(maxID, it.rec.ID)
		} else {
			samples++
		}
	}
	if inTxn > 0 {
		commit()
	} else {
		txn.Discard()
	}
	if cap(arena) <= 64<<20 {
		w.arena = arena[:0]
	} else {
		w.arena = nil
	}
	var held int64
	for i := range batch {
		held += batch[i].memSize()
	}
	w.queuedBytes.Add(-held)
	w.queued.Add(-int64(len(batch)))
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
// lost records and the last error, if any.
func (w *Writer) close() error {
	w.mu.Lock()
	if w.closing {
		w.mu.Unlock()
		<-w.done
		return nil
	}
	w.closing = true
	w.mu.Unlock()
	close(w.stop)
	<-w.done
	w.statMu.Lock()
	defer w.statMu.Unlock()
	if w.lastErr != nil {
		return fmt.Errorf("capture: %d records/samples lost in %d failed writes; last: %w", w.lost.Load(), w.errCount, w.lastErr)
	}
	return nil
}
