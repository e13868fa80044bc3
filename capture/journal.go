package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sync/atomic"
)

/*
The journal bounds what a killed writer loses.

Badger's write path stalls: rotating a value-log file msyncs it, and a
commit waits for the disk on a busy machine (hundreds of ms with ~1 MB
records here). Whatever is still in the writer's queue when the process is
killed is lost. So every item is journaled as soon as it is encoded, before
it waits for Badger: one write(2) to a plain file, which puts it in the
page cache, where it survives the death of the process (not an OS crash;
that is what SyncInterval is for). The journal goroutine never waits for
Badger; the committer, once an item is committed (or counted lost), records
its sequence number as the checkpoint.

Opening the capture for writing replays the entries past the checkpoint
into Badger (a crash left them uncommitted); reading it replays them into
the read-only view's throw-away store. A clean close removes the journal.

Files (owner-only): journalName+".0" and ".1", written alternately (the
other is truncated once its entries are all checkpointed), each a sequence
of entries

	len u32 | crc u32 (CRC-32C of what follows) | seq u64 | key len uvarint | key | value

and journalName+".ckpt": checkpoint u64 | crc u32.
*/

const (
	journalName = "vbench-journal"
	// journalRotate is the size past which the journal switches files.
	journalRotate = 64 << 20
	// maxJournalEntry bounds an entry's length when reading.
	maxJournalEntry = maxStoredRecord + 1<<10
)

// journal is the writer's journal; only the journal goroutine appends.
type journal struct {
	dir   string
	files [2]*os.File
	cur   int      // file appended to
	size  [2]int64 // bytes in each file
	last  [2]uint64
	ckpt  *os.File
	// checkpoint is the highest sequence number committed or counted lost.
	checkpoint atomic.Uint64
	errors     atomic.Uint64
	lastErr    atomic.Value // string
}

func journalPath(dir string, i int) string {
	return filepath.Join(dir, fmt.Sprintf("%s.%d", journalName, i))
}

func checkpointPath(dir string) string { return filepath.Join(dir, journalName+".ckpt") }

// journalEntry is one replayable item.
type journalEntry struct {
	seq        uint64
	key, value []byte
}

// readJournal returns the entries of the journal in dir past its
// checkpoint (nothing when there is no journal), reading only. A torn or
// damaged entry ends its file; damaged says whether entries were found
// past such a point or the checkpoint was unreadable.
func readJournal(dir string) (entries []journalEntry, problem string) {
	var ckpt uint64
	if b, err := os.ReadFile(checkpointPath(dir)); err == nil {
		if len(b) == 12 && crc32.Checksum(b[:8], castagnoli) == binary.BigEndian.Uint32(b[8:]) {
			ckpt = binary.BigEndian.Uint64(b[:8])
		} else {
			problem = "the journal's checkpoint is damaged: every journaled item was replayed"
		}
	}
	for i := range 2 {
		b, err := os.ReadFile(journalPath(dir, i))
		if err != nil {
			continue
		}
		for off := 0; off < len(b); {
			if len(b)-off < 16 {
				break
			}
			n := int(binary.BigEndian.Uint32(b[off:]))
			if n < 9 || n > maxJournalEntry || n > len(b)-off-8 {
				break
			}
			body := b[off+8 : off+8+n]
			if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(b[off+4:]) {
				break
			}
			seq := binary.BigEndian.Uint64(body)
			kl, k := binary.Uvarint(body[8:])
			if k <= 0 || kl > uint64(len(body)-8-k) {
				break
			}
			if seq > ckpt {
				key := body[8+k : 8+k+int(kl)]
				entries = append(entries, journalEntry{seq: seq, key: key, value: body[8+k+int(kl):]})
			}
			off += 8 + n
		}
	}
	return entries, problem
}

// openJournal creates an empty journal in dir (replay has run).
func openJournal(dir string, firstSeq uint64) (*journal, error) {
	j := &journal{dir: dir}
	for i := range 2 {
		f, err := os.OpenFile(journalPath(dir, i), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			j.close()
			return nil, err
		}
		j.files[i] = f
	}
	f, err := os.OpenFile(checkpointPath(dir), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		j.close()
		return nil, err
	}
	j.ckpt = f
	j.checkpoint.Store(firstSeq)
	j.writeCheckpoint(firstSeq)
	return j, nil
}

// journalHead is the fixed part of an entry: length, CRC, sequence.
const journalHead = 16

// frameEntry fills in the head of an entry whose body (key length, key,
// value) follows it in e.
func frameEntry(e []byte, seq uint64) {
	binary.BigEndian.PutUint64(e[8:], seq)
	binary.BigEndian.PutUint32(e, uint32(len(e)-8))
	binary.BigEndian.PutUint32(e[4:], crc32.Checksum(e[8:], castagnoli))
}

// write appends framed entries (the last one numbered last) with one
// write(2), switching to the other file once this one is past
// journalRotate and the other's entries are all checkpointed.
func (j *journal) write(b []byte, last uint64) {
	other := 1 - j.cur
	if j.size[j.cur] > journalRotate && j.last[other] <= j.checkpoint.Load() {
		if err := j.files[other].Truncate(0); err == nil {
			if _, err := j.files[other].Seek(0, 0); err == nil {
				j.cur, j.size[other] = other, 0
			}
		}
	}
	n, err := j.files[j.cur].Write(b)
	j.size[j.cur] += int64(n)
	if err != nil {
		j.fail(err)
		return
	}
	j.last[j.cur] = last
}

func (j *journal) fail(err error) {
	j.errors.Add(1)
	j.lastErr.Store(err.Error())
}

// commit records that every item up to seq is committed or counted lost.
func (j *journal) commit(seq uint64) {
	if seq <= j.checkpoint.Load() {
		return
	}
	j.checkpoint.Store(seq)
	j.writeCheckpoint(seq)
}

func (j *journal) writeCheckpoint(seq uint64) {
	var b [12]byte
	binary.BigEndian.PutUint64(b[:], seq)
	binary.BigEndian.PutUint32(b[8:], crc32.Checksum(b[:8], castagnoli))
	if _, err := j.ckpt.WriteAt(b[:], 0); err != nil {
		j.fail(err)
	}
}

func (j *journal) close() error {
	var errs []error
	for _, f := range j.files {
		if f != nil {
			errs = append(errs, f.Close())
		}
	}
	if j.ckpt != nil {
		errs = append(errs, j.ckpt.Close())
	}
	return errors.Join(errs...)
}

// removeJournal deletes the journal files of dir (after a clean close,
// or once replayed into the store).
func removeJournal(dir string) {
	os.Remove(journalPath(dir, 0))
	os.Remove(journalPath(dir, 1))
	os.Remove(checkpointPath(dir))
}
