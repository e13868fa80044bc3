package capture

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

var quiet = slog.New(slog.DiscardHandler)

func openTest(t *testing.T, dir string, opt Options) *Store {
	t.Helper()
	if opt.Logger == nil {
		opt.Logger = quiet
	}
	s, err := Open(dir, opt)
	if err != nil {
		t.Fatalf("Open(%s) = %v", dir, err)
	}
	return s
}

func readAll(t *testing.T, s *Store) []*Record {
	t.Helper()
	var out []*Record
	if err := s.Records(func(r *Record) error { out = append(out, r); return nil }); err != nil {
		t.Fatalf("Records = %v", err)
	}
	return out
}

func TestStoreWriteReadReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cap")
	s := openTest(t, dir, Options{})
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("capture dir mode = %v, %v; want 0700", st.Mode().Perm(), err)
	}
	w := s.Writer()
	base := int64(1_700_000_000_000_000_000)
	// Arrival order differs from completion order: the proxy reserves IDs
	// at arrival and puts records when they end.
	ids := []uint64{w.NextID(), w.NextID(), w.NextID()}
	recs := []*Record{fullRecord(ids[0]), fullRecord(ids[1]), fullRecord(ids[2])}
	for i, r := range recs {
		r.Received = base + int64(i)*1000
	}
	for _, i := range []int{2, 0, 1} {
		if !w.Put(recs[i]) {
			t.Fatalf("Put dropped record %d", i)
		}
	}
	if !w.Put(&Record{Received: base + 5000, Tags: Tags{Index: -1}}) { // ID assigned by Put
		t.Fatal("Put dropped")
	}
	for i := range 3 {
		w.PutSample(Sample{At: base + int64(3-i)*100, Name: MetricRunning, Value: float64(i)})
	}
	if err := s.PutMeta(Meta{Tool: "test", Started: base}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	if w.Put(fullRecord(0)) {
		t.Error("Put after Close accepted a record")
	}
	if st := w.Stats(); st.Written != 4 || st.Samples != 3 || st.Dropped != 1 || st.Lost != 0 || st.FlushedID != 4 || st.Bytes == 0 {
		t.Errorf("Stats = %+v", st)
	}
	// Two read-only readers at once.
	r1 := openTest(t, dir, Options{ReadOnly: true})
	r2 := openTest(t, dir, Options{ReadOnly: true})
	got := readAll(t, r1)
	if len(got) != 4 {
		t.Fatalf("read %d records, want 4", len(got))
	}
	for i := range 3 {
		if !reflect.DeepEqual(got[i], recs[i]) {
			t.Errorf("record %d differs:\n got %+v\nwant %+v", i, got[i], recs[i])
		}
	}
	if got[3].ID != 4 {
		t.Errorf("Put-assigned ID = %d, want 4", got[3].ID)
	}
	var samples []Sample
	r2.Samples(func(s Sample) error { samples = append(samples, s); return nil })
	if len(samples) != 3 || samples[0].Value != 2 || samples[2].Value != 0 {
		t.Errorf("samples not in time order: %+v", samples)
	}
	metas, err := r2.Metas()
	if err != nil || len(metas) != 1 || metas[0].Tool != "test" || metas[0].Version != MetaVersion {
		t.Errorf("Metas = %+v, %v", metas, err)
	}
	if r1.Writer() != nil {
		t.Error("read-only store has a writer")
	}
	if err := r1.PutMeta(Meta{}); err == nil {
		t.Error("PutMeta on a read-only store succeeded")
	}
	// A writer cannot open while readers hold the store.
	if _, err := Open(dir, Options{Logger: quiet}); !errors.Is(err, ErrInUse) {
		t.Errorf("read-write Open under readers = %v, want ErrInUse", err)
	}
	r1.Close()
	r2.Close()

	// Reopen for writing: IDs resume after the largest stored.
	s = openTest(t, dir, Options{})
	if id := s.Writer().NextID(); id != 5 {
		t.Errorf("NextID after reopen = %d, want 5", id)
	}
	s.Writer().PutSample(Sample{At: base, Name: "x"})
	s.PutMeta(Meta{Tool: "second"})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	r1 = openTest(t, dir, Options{ReadOnly: true})
	defer r1.Close()
	nr, ns, err := r1.Counts()
	if nr != 4 || ns != 4 || err != nil {
		t.Errorf("Counts = %d, %d, %v; want 4, 4", nr, ns, err)
	}
	if metas, _ := r1.Metas(); len(metas) != 2 || metas[1].Tool != "second" {
		t.Errorf("Metas after reopen = %+v", metas)
	}
}

func TestOpenMakesExistingDirOwnerOnly(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "made-by-user")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s := openTest(t, dir, Options{})
	s.Close()
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Errorf("mode of a new capture in an existing dir = %v, want 0700", st.Mode().Perm())
	}
}

func TestOpenErrors(t *testing.T) {
	tmp := t.TempDir()
	file := filepath.Join(tmp, "file")
	os.WriteFile(file, []byte("x"), 0o600)
	if _, err := Open(filepath.Join(tmp, "missing"), Options{ReadOnly: true, Logger: quiet}); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("read-only open of a missing dir = %v", err)
	}
	if _, err := Open(file, Options{ReadOnly: true, Logger: quiet}); !errors.Is(err, ErrNotCapture) {
		t.Errorf("read-only open of a file = %v", err)
	}
	if _, err := Open(tmp, Options{ReadOnly: true, Logger: quiet}); !errors.Is(err, ErrNotCapture) {
		t.Errorf("read-only open of a plain dir = %v", err)
	}
	if _, err := Open("", Options{Logger: quiet}); err == nil {
		t.Error("empty dir accepted")
	}
	// A Badger store that vbench did not write.
	foreign := filepath.Join(tmp, "foreign")
	db, err := badger.Open(badger.DefaultOptions(foreign).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("k"), []byte("v")) })
	db.Close()
	for _, ro := range []bool{false, true} {
		if _, err := Open(foreign, Options{ReadOnly: ro, Logger: quiet}); !errors.Is(err, ErrNotCapture) {
			t.Errorf("Open(ReadOnly=%v) of a foreign Badger store = %v, want ErrNotCapture", ro, err)
		}
	}
	// The live writer's lock: a second open (either mode) names the pid.
	dir := filepath.Join(tmp, "live")
	s := openTest(t, dir, Options{})
	defer s.Close()
	for _, ro := range []bool{false, true} {
		_, err := Open(dir, Options{ReadOnly: ro, Logger: quiet})
		if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "pid") {
			t.Errorf("Open(ReadOnly=%v) of a live capture = %v, want ErrInUse naming the pid", ro, err)
		}
	}
}

func TestLiveReadAndSnapshot(t *testing.T) {
	tmp := t.TempDir()
	s := openTest(t, filepath.Join(tmp, "live"), Options{})
	defer s.Close()
	w := s.Writer()
	for i := range 100 {
		w.Put(&Record{Received: int64(i), Tags: Tags{Index: int64(i)}})
	}
	w.PutSample(Sample{At: 5, Name: MetricRunning, Value: 2})
	s.PutMeta(Meta{Tool: "live"})
	waitFor(t, func() bool { return w.Stats().Written == 100 && w.Stats().Samples == 1 })
	if n := len(readAll(t, s)); n != 100 {
		t.Errorf("live Records saw %d, want 100", n)
	}
	snap := filepath.Join(tmp, "snap")
	if err := s.Snapshot(snap); err != nil {
		t.Fatal(err)
	}
	w.Put(&Record{Received: 1000})
	r := openTest(t, snap, Options{ReadOnly: true})
	defer r.Close()
	got := readAll(t, r)
	if len(got) != 100 || got[99].Tags.Index != 99 {
		t.Errorf("snapshot has %d records", len(got))
	}
	if _, ns, _ := r.Counts(); ns != 1 {
		t.Errorf("snapshot has %d samples, want 1", ns)
	}
	if metas, _ := r.Metas(); len(metas) != 1 || metas[0].Tool != "live" {
		t.Errorf("snapshot metas = %+v", metas)
	}
	if err := s.Snapshot(snap); err == nil {
		t.Error("snapshot into a non-empty dir succeeded")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	// Generous: CI shares 2 noisy cores, and the crash tests' child is a
	// race-instrumented binary.
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 60 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestQueueFullDropsWithoutBlocking(t *testing.T) {
	var logs syncBuffer
	// The writer batches without committing (1 h, 2^20 items), so queued
	// records keep their memory until Close: with a 51,200-byte bound
	// exactly 100 empty records (512 bytes each by memSize) fit.
	s := openTest(t, t.TempDir(), Options{QueueBytes: 100 * 512, FlushInterval: time.Hour, BatchRecords: 1 << 20, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	w := s.Writer()
	accepted := 0
	done := make(chan struct{})
	go func() {
		for range 1000 {
			if w.Put(&Record{}) {
				accepted++
			}
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Put blocked with a full queue")
	}
	st := w.Stats()
	if accepted != 100 || st.Dropped != 900 {
		t.Errorf("accepted %d, Stats %+v; want 100 accepted, 900 dropped", accepted, st)
	}
	if n := strings.Count(logs.String(), "dropping records"); n != 1 {
		t.Errorf("logged %d drop warnings for %d drops in a burst, want 1:\n%s", n, st.Dropped, logs.String())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if st := w.Stats(); st.Written != uint64(accepted) {
		t.Errorf("Close wrote %d, want the %d accepted", st.Written, accepted)
	}
}

// TestWriteFailureKeepsAccepting closes the database under the writer: every
// commit then fails like a full disk would. Put must go on returning
// without blocking, the records are counted as lost and the error exposed.
func TestWriteFailureKeepsAccepting(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{FlushInterval: time.Millisecond})
	w := s.Writer()
	w.Put(&Record{})
	waitFor(t, func() bool { return w.Stats().Written == 1 })
	if err := s.db.Close(); err != nil {
		t.Fatal(err)
	}
	for range 50 {
		if !w.Put(&Record{}) {
			t.Fatal("Put refused while the queue has room")
		}
	}
	waitFor(t, func() bool { return w.Stats().Lost == 50 })
	st := w.Stats()
	if st.LastError == "" || st.Errors == 0 || st.Written != 1 {
		t.Errorf("Stats after failures = %+v", st)
	}
	err := w.close(context.Background())
	if err == nil || !strings.Contains(err.Error(), "50 records/samples lost") {
		t.Errorf("close = %v, want a lost-records error", err)
	}
}

func TestDump(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	r := fullRecord(0)
	r.ResponseBody = []byte{0xff, 0xfe}
	s.Writer().Put(r)
	s.Writer().PutSample(Sample{At: 1, Name: MetricWaiting, Value: 2})
	s.PutMeta(Meta{Tool: "vbproxy", Upstream: "u"})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := DumpDir(dir, &buf, DumpOptions{}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("dump has %d lines:\n%s", len(lines), buf.String())
	}
	var kinds []string
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		kinds = append(kinds, m["kind"].(string))
	}
	if !reflect.DeepEqual(kinds, []string{"meta", "record", "sample"}) {
		t.Errorf("kinds = %v", kinds)
	}
	var rec struct {
		ID              uint64 `json:"id"`
		RequestBody     string `json:"request_body"`
		ResponseBodyB64 []byte `json:"response_body_b64"`
		Chunks          []Chunk
	}
	json.Unmarshal([]byte(lines[1]), &rec)
	if rec.ID != 1 || rec.RequestBody != string(r.RequestBody) || !bytes.Equal(rec.ResponseBodyB64, r.ResponseBody) || len(rec.Chunks) != len(r.Chunks) {
		t.Errorf("record line = %s", lines[1])
	}
	buf.Reset()
	DumpDir(dir, &buf, DumpOptions{NoBodies: true, NoSamples: true, NoMeta: true})
	if strings.Contains(buf.String(), "body\"") || strings.Count(buf.String(), "\n") != 1 {
		t.Errorf("dump without bodies/samples/meta = %s", buf.String())
	}
	if _, err := DumpDir(filepath.Join(dir, "nope"), io.Discard, DumpOptions{}); err == nil {
		t.Error("dump of a missing capture succeeded")
	}
}

// TestReadOnlyAfterCrashRecovers kills a writer process with SIGKILL and
// opens its capture read-only: the "log truncate required" state is
// repaired on a private copy, every file of the capture stays as it was
// (once Badger's read-write recovery rewrote it in place), and Health says
// the writer did not close it.
func TestReadOnlyAfterCrashRecovers(t *testing.T) {
	if os.Getenv(crashEnv) != "" {
		t.Skip("child")
	}
	dir := killedWriter(t, 10_000)
	before := hashDir(t, dir)
	s := openTest(t, dir, Options{ReadOnly: true})
	n, _, err := s.Counts()
	if err != nil || n < 10_000 {
		t.Errorf("after kill -9, read-only Counts = %d, %v; want ≥ 10000", n, err)
	}
	h := s.Health()
	if h.Damaged() || len(h.Notes) == 0 || !strings.Contains(strings.Join(h.Notes, " "), "not closed cleanly") {
		t.Errorf("Health = %v; want a note that the capture was not closed cleanly and no damage", h)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if after := hashDir(t, dir); !reflect.DeepEqual(before, after) {
		t.Errorf("reading a crashed capture changed it:\nbefore %v\nafter  %v", before, after)
	}
}

// TestRecoverInPlaceOwnerOnly: the explicit in-place recovery (vbanalyze
// --recover) leaves only owner-only files, whatever the umask; the
// recovered capture then opens read-only with no note.
func TestRecoverInPlaceOwnerOnly(t *testing.T) {
	if os.Getenv(crashEnv) != "" {
		t.Skip("child")
	}
	dir := killedWriter(t, 2_000)
	old := syscall.Umask(0o022)
	notes, err := Recover(dir, Options{Logger: quiet})
	syscall.Umask(old)
	if err != nil || len(notes) == 0 {
		t.Fatalf("Recover = %v, %v", notes, err)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		info, _ := e.Info()
		if info.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v after Recover; want owner-only", e.Name(), info.Mode().Perm())
		}
	}
	s := openTest(t, dir, Options{ReadOnly: true})
	defer s.Close()
	if h := s.Health(); h.Damaged() || len(h.Notes) > 1 || h.Records < 2_000 {
		t.Errorf("after Recover, Health = %v", h)
	}
}

// hashData hashes the data extents of a file (offsets and bytes; holes
// read as zeros and are skipped, so Badger's sparse preallocated logs cost
// only what they hold; filling a hole changes the hash).
func hashData(t testing.TB, path string) string {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	h := sha256.New()
	const seekData, seekHole = 3, 4
	for off := int64(0); off < st.Size(); {
		start, err := f.Seek(off, seekData)
		if err != nil { // ENXIO: no data after off
			break
		}
		end, err := f.Seek(start, seekHole)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(h, "@%d:", start)
		if _, err := io.Copy(h, io.NewSectionReader(f, start, end-start)); err != nil {
			t.Fatal(err)
		}
		off = end
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// hashDir returns name → size and SHA-256 of every entry of dir.
func hashDir(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if !e.Type().IsRegular() {
			out[e.Name()] = info.Mode().String()
			continue
		}
		out[e.Name()] = fmt.Sprintf("%v %d %s", info.Mode().Perm(), info.Size(), hashData(t, filepath.Join(dir, e.Name())))
	}
	return out
}

// TestQueueSizeBound fills the channel of a writer whose goroutine is not
// running, so the count bound is hit deterministically.
func TestQueueSizeBound(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{})
	defer s.Close()
	w := &Writer{s: s, ch: make(chan item, 4)}
	var got []bool
	for range 6 {
		got = append(got, w.Put(&Record{ID: 1}))
	}
	if want := []bool{true, true, true, true, false, false}; !reflect.DeepEqual(got, want) || w.dropped.Load() != 2 || w.queuedBytes.Load() != 4*512 {
		t.Errorf("Put results %v, dropped %d, queued bytes %d", got, w.dropped.Load(), w.queuedBytes.Load())
	}
}

func TestQueueBytesBound(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{QueueBytes: 10_000, FlushInterval: time.Hour, BatchRecords: 1 << 20})
	w := s.Writer()
	big := func() *Record { return &Record{RequestBody: make([]byte, 4000)} }
	got := []bool{w.Put(big()), w.Put(big()), w.Put(big()), w.PutSample(Sample{Name: "x"})}
	if want := []bool{true, true, false, true}; !reflect.DeepEqual(got, want) {
		t.Errorf("Put results = %v, want %v (10 kB bound, ~4.5 kB records)", got, want)
	}
	if st := w.Stats(); st.Dropped != 1 || st.QueuedBytes < 9000 || st.Queued != 3 {
		t.Errorf("Stats = %+v", st)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if st := w.Stats(); st.QueuedBytes != 0 || st.Written != 2 || st.Samples != 1 {
		t.Errorf("Stats after Close = %+v", st)
	}
}

// syncBuffer is a bytes.Buffer safe for a logger used from several
// goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRecordsBetween(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{})
	defer s.Close()
	if _, ok, err := s.FirstReceived(); ok || err != nil {
		t.Errorf("FirstReceived of an empty capture = %v, %v", ok, err)
	}
	w := s.Writer()
	for i := range 100 {
		w.Put(&Record{Received: int64(1000 + i*10), Tags: Tags{Index: int64(i)}})
	}
	waitFor(t, func() bool { return w.Stats().Written == 100 })
	indexes := func(from, to int64) []int64 {
		var out []int64
		if err := s.RecordsBetween(from, to, func(r *Record) error {
			if len(out) == 5 {
				return ErrStop
			}
			out = append(out, r.Tags.Index)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	cases := []struct {
		from, to int64
		want     []int64
	}{
		{1000, 1030, []int64{0, 1, 2}},
		{1005, 1031, []int64{1, 2, 3}},
		{1985, 0, []int64{99}},
		{0, 1000, nil},
		{1500, 1500, []int64{50, 51, 52, 53, 54}}, // to ≤ from: no upper bound (ErrStop at 5)
	}
	for _, c := range cases {
		if got := indexes(c.from, c.to); !reflect.DeepEqual(got, c.want) {
			t.Errorf("RecordsBetween(%d, %d) = %v, want %v", c.from, c.to, got, c.want)
		}
	}
	if first, ok, err := s.FirstReceived(); first != 1000 || !ok || err != nil {
		t.Errorf("FirstReceived = %d, %v, %v; want 1000", first, ok, err)
	}
}

// TestCloseMarksMetaWithRecorderTotals: a clean Close completes the meta the
// process put with Closed and the writer's final counts (dropped included),
// while a store that was never closed reads as unclean.
func TestCloseMarksMetaWithRecorderTotals(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{QueueBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutMeta(Meta{Tool: "test"}); err != nil {
		t.Fatal(err)
	}
	w := s.Writer()
	put, refused := 0, 0
	big := make([]byte, 128<<10) // over QueueBytes: always refused
	for i := 0; i < 200; i++ {
		r := &Record{ID: w.NextID(), Received: int64(i + 1), Method: "POST", Path: "/v1/x"}
		if i%2 == 1 {
			r.ResponseBody = big
		}
		if w.Put(r) {
			put++
		} else {
			refused++
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := Open(dir, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	metas, err := r.Metas()
	if err != nil || len(metas) != 1 {
		t.Fatalf("metas %v, %v; want 1", metas, err)
	}
	m := metas[0]
	if m.Closed == 0 || m.Recorder == nil {
		t.Fatalf("meta not marked closed: %+v", m)
	}
	if m.Recorder.Written != uint64(put) || m.Recorder.Dropped != uint64(refused) {
		t.Errorf("recorder %+v; want written %d dropped %d", *m.Recorder, put, refused)
	}
	if refused < 100 {
		t.Errorf("%d records refused; want at least the 100 oversize ones", refused)
	}

	// Never closed: the meta stays without Closed. A snapshot of a live
	// store is what a reader sees after kill -9.
	live := t.TempDir()
	s2, err := Open(live, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if err := s2.PutMeta(Meta{Tool: "live"}); err != nil {
		t.Fatal(err)
	}
	snap := t.TempDir()
	if err := s2.Snapshot(snap); err != nil {
		t.Fatal(err)
	}
	r2, err := Open(snap, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if metas, _ := r2.Metas(); len(metas) != 1 || metas[0].Closed != 0 || metas[0].Version != MetaVersion {
		t.Errorf("snapshot of a live store: metas %+v; want one version-%d meta without Closed", metas, MetaVersion)
	}
}

// TestWALReadAfterBadgerDeletedIt: reading a capture whose writer was
// killed replays its write-ahead log in a copy, which Badger truncates where
// replay stopped and then, flushing it in the background, deletes. The
// size read after the replay must not depend on whether that deletion came
// first: here it always does, and the capture still reads whole.
func TestWALReadAfterBadgerDeletedIt(t *testing.T) {
	if os.Getenv(crashEnv) != "" {
		t.Skip("child")
	}
	dir := killedWriter(t, 2_000)
	deleted := false
	testHookWALReplayed = func(wal string) {
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			if mems, _ := filepath.Glob(filepath.Join(wal, "*.mem")); len(mems) <= 1 { // the new active memtable's
				deleted = true
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	defer func() { testHookWALReplayed = nil }()
	s := openTest(t, dir, Options{ReadOnly: true})
	defer s.Close()
	if !deleted {
		t.Fatal("Badger did not delete the replayed logs' copies within 20 s")
	}
	if h := s.Health(); h.Damaged() || h.Records < 2_000 {
		t.Errorf("Health = %v; want undamaged with ≥ 2,000 records", h)
	}
}

// FuzzWALReplayEnd: walReplayEnd reads any bytes without panicking and
// ends inside them, past the header when there is one, on an entry boundary
// it reached (the end of a whole commit).
func FuzzWALReplayEnd(f *testing.F) {
	f.Add([]byte{})
	f.Add(make([]byte, vlogHeader))
	f.Add(append(make([]byte, vlogHeader), 0x40, 0, 12, 3, 0, 'k', 'e', 'y', 0, 0, 0, 0, 0, 0, 0, 1, 'v', 'a', 'l', 1, 2, 3, 4))
	f.Fuzz(func(t *testing.T, b []byte) {
		end := walReplayEnd(b)
		if end < 0 || end > len(b) || (len(b) > vlogHeader && end < vlogHeader) {
			t.Fatalf("walReplayEnd = %d of %d bytes", end, len(b))
		}
		// What it read is replayed again the same: the end is stable.
		if again := walReplayEnd(b[:end]); again != end && end > vlogHeader {
			t.Fatalf("walReplayEnd of its own prefix = %d, want %d", again, end)
		}
	})
}

// killedWriter is a capture whose writer process was SIGKILLed once it had
// acknowledged at least records records (its write-ahead logs unreplayed,
// no clean-close metadata).
func killedWriter(t *testing.T, records uint64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "cap")
	ack := filepath.Join(t.TempDir(), "ack")
	cmd := crashChild(t, dir, ack, "1")
	waitFor(t, func() bool { return lastAck(t, ack) >= records })
	cmd.Process.Kill()
	cmd.Wait()
	return dir
}
