package capture

import (
	"errors"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestMetaRecorderRoundTrip: a version-2 meta with the recorder's totals
// survives its codec, and a version-1 meta (older captures) still reads,
// without Closed or Recorder: nothing said, not zero.
func TestMetaRecorderRoundTrip(t *testing.T) {
	in := Meta{Version: MetaVersion, Tool: "vbproxy", Started: 1, Closed: 9, Recorder: &RecorderTotals{
		Written: 10, Samples: 2, Dropped: 3, Lost: 4, Errors: 1, LastError: "capture: disk full", FirstLoss: 5, LastLoss: 8}}
	b, err := in.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var out Meta
	if err := out.UnmarshalBinary(b); err != nil || !reflect.DeepEqual(out, in) {
		t.Errorf("round trip = %+v, %v; want %+v", out, err, in)
	}
	if err := out.UnmarshalBinary([]byte(`{"version":1,"tool":"vbproxy","started":1}`)); err != nil {
		t.Fatalf("version-1 meta: %v", err)
	}
	if out.Closed != 0 || out.Recorder != nil {
		t.Errorf("version-1 meta read as %+v; want no Closed, no Recorder", out)
	}
}

// TestCloseStoresDrops: records refused by the writer (each larger than the
// queue's memory bound, so refused whatever the scheduling) are counted in
// the totals a clean close stores; reopened, the capture says exactly what
// the writer counted, and every meta this process put is marked closed.
func TestCloseStoresDrops(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cap")
	s, err := Open(dir, Options{QueueBytes: 1 << 20, SyncInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range []string{"first", "second"} {
		if err := s.PutMeta(Meta{Tool: tool}); err != nil {
			t.Fatal(err)
		}
	}
	w := s.Writer()
	big := make([]byte, 2<<20) // more than QueueBytes: always refused
	before := time.Now().UnixNano()
	var put, refused uint64
	for i := 0; i < 300; i++ {
		r := &Record{Received: int64(i + 1), Method: "POST", Path: "/v1/completions"}
		if i%3 == 0 {
			r.RequestBody = big
		}
		if w.Put(r) {
			put++
		} else {
			refused++
		}
	}
	after := time.Now().UnixNano()
	if put != 200 || refused != 100 {
		t.Fatalf("put %d refused %d; want 200 and 100", put, refused)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	metas := reopenMetas(t, dir)
	if len(metas) != 2 || metas[0].Closed == 0 || metas[0].Recorder != nil {
		t.Fatalf("metas %+v; want two, the first closed without totals", metas)
	}
	rt := metas[1].Recorder
	if metas[1].Closed == 0 || rt == nil {
		t.Fatalf("last meta not marked closed: %+v", metas[1])
	}
	if rt.Written != put || rt.Dropped != refused || rt.Lost != 0 || rt.Errors != 0 {
		t.Errorf("stored totals %+v; want written %d dropped %d, nothing lost", *rt, put, refused)
	}
	if rt.FirstLoss < before || rt.LastLoss < rt.FirstLoss || rt.LastLoss > after {
		t.Errorf("loss times %d..%d; want inside the puts %d..%d", rt.FirstLoss, rt.LastLoss, before, after)
	}
	ws := w.Stats()
	if ws.Dropped != rt.Dropped || ws.FirstLoss != rt.FirstLoss || ws.LastLoss != rt.LastLoss {
		t.Errorf("writer stats %+v differ from the stored totals %+v", ws, *rt)
	}
}

// TestCloseStoresLosses: with a disk reserve just above the free space the
// writer loses every batch (ErrDiskFull) but the close mark, which needs
// only half the reserve, is still written: the reopened capture holds the
// lost count, the failed writes and the last error.
func TestCloseStoresLosses(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the disk-space guard uses statfs (linux)")
	}
	dir := filepath.Join(t.TempDir(), "cap")
	free, ok := freeBytes(filepath.Dir(dir))
	if !ok || free < 1<<30 {
		t.Skipf("free space %d: want at least 1 GiB to keep the close mark above half the reserve", free)
	}
	s, err := Open(dir, Options{DiskReserve: free + 256<<20, SyncInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutMeta(Meta{Tool: "test"}); err != nil {
		t.Fatal(err)
	}
	w := s.Writer()
	var put uint64
	for i := 0; i < 50; i++ {
		if w.Put(&Record{Received: int64(i + 1), Method: "POST", Path: "/v1/completions"}) {
			put++
		}
	}
	if !w.PutSample(Sample{At: 1, Name: MetricRunning, Value: 1}) {
		t.Fatal("PutSample refused")
	}
	put++
	if err := s.Close(); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("Close = %v; want ErrDiskFull from the writer", err)
	}
	metas := reopenMetas(t, dir)
	if len(metas) != 1 || metas[0].Closed == 0 || metas[0].Recorder == nil {
		t.Fatalf("metas %+v; want one marked closed", metas)
	}
	rt := metas[0].Recorder
	ws := w.Stats()
	if rt.Lost != put || rt.Written != 0 || rt.Samples != 0 || rt.Dropped != 0 {
		t.Errorf("stored totals %+v; want lost %d, nothing written or dropped", *rt, put)
	}
	if rt.Errors != ws.Errors || rt.Errors == 0 || !strings.Contains(rt.LastError, ErrDiskFull.Error()) {
		t.Errorf("stored errors %d %q; want the writer's %d, naming %q", rt.Errors, rt.LastError, ws.Errors, ErrDiskFull)
	}
	if rt.FirstLoss == 0 || rt.FirstLoss != ws.FirstLoss || rt.LastLoss != ws.LastLoss {
		t.Errorf("stored loss times %d..%d; want the writer's %d..%d", rt.FirstLoss, rt.LastLoss, ws.FirstLoss, ws.LastLoss)
	}
}

// TestUncleanCaptures: a capture whose writer never closed it (read through
// a snapshot, as after kill -9) or could not mark it on a full disk reads
// as version 2 without Closed: unknown, not zero.
func TestUncleanCaptures(t *testing.T) {
	live := filepath.Join(t.TempDir(), "live")
	s, err := Open(live, Options{SyncInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.PutMeta(Meta{Tool: "live"}); err != nil {
		t.Fatal(err)
	}
	snap := filepath.Join(t.TempDir(), "snap")
	if err := s.Snapshot(snap); err != nil {
		t.Fatal(err)
	}
	if metas := reopenMetas(t, snap); len(metas) != 1 || metas[0].Version != MetaVersion || metas[0].Closed != 0 || metas[0].Recorder != nil {
		t.Errorf("snapshot of a live store: %+v; want one version-%d meta, not closed", metas, MetaVersion)
	}

	if runtime.GOOS != "linux" {
		return
	}
	full := filepath.Join(t.TempDir(), "full")
	s2, err := Open(full, Options{DiskReserve: 1 << 62})
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.PutMeta(Meta{Tool: "full"}); err != nil {
		t.Fatal(err)
	}
	s2.Writer().Put(&Record{Received: 1})
	if err := s2.Close(); !errors.Is(err, ErrDiskFull) || !strings.Contains(err.Error(), "not marking the capture closed") {
		t.Fatalf("Close = %v; want ErrDiskFull and no close mark", err)
	}
	if metas := reopenMetas(t, full); len(metas) != 1 || metas[0].Closed != 0 {
		t.Errorf("capture closed on a full disk: %+v; want not marked closed", metas)
	}
}

// reopenMetas opens dir read-only and returns its metas.
func reopenMetas(t *testing.T, dir string) []Meta {
	t.Helper()
	r, err := Open(dir, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	metas, err := r.Metas()
	if err != nil {
		t.Fatal(err)
	}
	return metas
}
