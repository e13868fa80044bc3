package capture

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Health is what reading a capture found: the records it holds, the
// records its writers said they committed, and every kind of damage met on
// the way. A damaged capture is read as far as it can be, never hidden:
// callers print Problems (the analysis and the dumps do), and a read-only
// Store that was never asked logs them when it closes.
type Health struct {
	// Records is the number of records a full scan read.
	Records int64 `json:"records"`
	// Expected is the number of records the capture's writers said they
	// committed (their metadata, stored at a clean close); -1 when unknown
	// (a writer did not close cleanly, metadata is missing or damaged, or
	// it predates these counts).
	Expected int64 `json:"expected"`
	// Unreadable counts record keys whose value could not be read or
	// decoded; SamplesUnreadable and MetasUnreadable the same for samples
	// and metadata.
	Unreadable        int64 `json:"unreadable,omitempty"`
	SamplesUnreadable int64 `json:"samples_unreadable,omitempty"`
	MetasUnreadable   int64 `json:"metas_unreadable,omitempty"`
	// Unclean counts writers that did not close the capture cleanly.
	Unclean int `json:"unclean,omitempty"`
	// Problems are sentences, each naming damage and what it cost.
	Problems []string `json:"problems,omitempty"`
	// Notes are facts about how the capture was read that cost nothing
	// known (a killed writer's logs replayed on a private copy).
	Notes []string `json:"notes,omitempty"`
}

// Damaged reports whether reading found damage (some record, sample or
// metadata lost or unreadable).
func (h Health) Damaged() bool { return len(h.Problems) > 0 }

// Missing is Expected − Records when both are known and positive, else 0.
func (h Health) Missing() int64 {
	if h.Expected < 0 || h.Records >= h.Expected {
		return 0
	}
	return h.Expected - h.Records
}

// String says it in one paragraph.
func (h Health) String() string {
	var b strings.Builder
	if h.Expected >= 0 {
		fmt.Fprintf(&b, "%d of the %d records its writers committed were read", h.Records, h.Expected)
	} else {
		fmt.Fprintf(&b, "%d records read (how many were committed is unknown)", h.Records)
	}
	if len(h.Problems) > 0 {
		b.WriteString("; damage: " + strings.Join(h.Problems, "; "))
	}
	if len(h.Notes) > 0 {
		b.WriteString("; " + strings.Join(h.Notes, "; "))
	}
	return b.String()
}

// healthState accumulates what scans find.
type healthState struct {
	mu                     sync.Mutex
	problems, notes        []string
	scanned                bool // a full record scan ended
	records                int64
	badRecords, badSamples int64
	badMetas               int64
	examples               map[byte][]string // first unreadable keys, by prefix
	stopped                []string          // scans cut short by a panic
	asked                  bool              // Health was called
}

// maxExamples is how many unreadable keys a problem names.
const maxExamples = 3

// noteBad counts one unreadable value under prefix.
func (h *healthState) noteBad(prefix byte, key []byte, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch prefix {
	case prefixRecord:
		h.badRecords++
	case prefixSample:
		h.badSamples++
	case prefixMeta:
		h.badMetas++
	}
	if h.examples == nil {
		h.examples = map[byte][]string{}
	}
	if len(h.examples[prefix]) < maxExamples {
		h.examples[prefix] = append(h.examples[prefix], fmt.Sprintf("key %x: %v", key, err))
	}
}

// noteStopped records a scan cut short by a panic of Badger's.
func (h *healthState) noteStopped(what string, after []byte, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := fmt.Sprintf("reading %s stopped (%v)", what, err)
	if after != nil {
		s = fmt.Sprintf("reading %s stopped after key %x (%v)", what, after, err)
	}
	h.stopped = append(h.stopped, s+": the rest of them is lost")
}

// Health returns what reading the capture found. It scans the records
// once if no full scan has run yet, and reads the metadata.
func (s *Store) Health() Health {
	s.health.mu.Lock()
	scanned := s.health.scanned
	s.health.mu.Unlock()
	if !scanned {
		s.Records(func(*Record) error { return nil })
	}
	metas, _ := s.Metas()
	h := &s.health
	h.mu.Lock()
	defer h.mu.Unlock()
	h.asked = true
	out := Health{Records: h.records, Expected: -1, Unreadable: h.badRecords, SamplesUnreadable: h.badSamples,
		MetasUnreadable: h.badMetas, Notes: append([]string(nil), h.notes...)}
	out.Problems = append(out.Problems, h.problems...)
	out.Problems = append(out.Problems, h.stopped...)
	for _, p := range []struct {
		prefix byte
		n      int64
		what   string
	}{{prefixRecord, h.badRecords, "record"}, {prefixSample, h.badSamples, "server-metric sample"}, {prefixMeta, h.badMetas, "metadata entry"}} {
		if p.n > 0 {
			out.Problems = append(out.Problems, fmt.Sprintf("%d %s value(s) could not be read or decoded and were skipped (%s)", p.n, p.what, strings.Join(h.examples[p.prefix], "; ")))
		}
	}
	known := len(metas) > 0 && h.badMetas == 0
	var written int64
	for _, m := range metas {
		switch {
		case m.Version < 2:
			known = false
		case m.Closed == 0:
			out.Unclean++
			known = false
		case m.Recorder != nil:
			written += int64(m.Recorder.Written)
		}
	}
	if known {
		out.Expected = written
	}
	switch {
	case len(metas) == 0 && h.badMetas == 0:
		out.Notes = append(out.Notes, "the capture holds no metadata: how many records it should hold is unknown")
	case out.Unclean > 0:
		out.Notes = append(out.Notes, fmt.Sprintf("%d writer(s) did not close the capture cleanly: how many records it should hold is unknown", out.Unclean))
	}
	if m := out.Missing(); m > 0 {
		out.Problems = append(out.Problems, fmt.Sprintf("its writers committed %d records and %d were read: %d are lost", out.Expected, out.Records, m))
	}
	return out
}

// warnUnseenDamage logs damage no caller asked about (Close of a
// read-only store).
func (s *Store) warnUnseenDamage() {
	h := &s.health
	h.mu.Lock()
	asked := h.asked
	damaged := len(h.problems)+len(h.stopped) > 0 || h.badRecords+h.badSamples+h.badMetas > 0
	h.mu.Unlock()
	if asked || !damaged {
		return
	}
	s.log.Warn("capture: damaged; what could not be read was skipped", "dir", s.dir, "health", s.healthNoScan().String())
}

// healthNoScan is Health without a scan or metadata read (for Close).
func (s *Store) healthNoScan() Health {
	h := &s.health
	h.mu.Lock()
	defer h.mu.Unlock()
	out := Health{Records: h.records, Expected: -1, Unreadable: h.badRecords}
	out.Problems = append(append(out.Problems, h.problems...), h.stopped...)
	if n := h.badRecords + h.badSamples + h.badMetas; n > 0 {
		out.Problems = append(out.Problems, fmt.Sprintf("%d value(s) could not be read or decoded", n))
	}
	return out
}

// ErrDamaged is wrapped by errors about a damaged capture: DumpDir's
// (after dumping what could be read) and Recover's (for damage beyond what
// a crash leaves).
var ErrDamaged = errors.New("capture is damaged")

// Recover repairs, in place, a capture whose writer was killed or crashed
// (one with Badger write-ahead logs left; nil notes and no change for a
// capture closed cleanly):
// it opens it read-write, which replays the writer's logs and truncates
// their torn tails, and closes it. This is the one read-side operation
// that writes (`vbanalyze --recover`); reading never needs it. Files it
// creates are owner-only. It refuses a capture with damage other than a
// crash's (tables missing, unlisted or unreadable, a damaged MANIFEST):
// Badger's read-write open deletes what it cannot place, so such a
// capture is better read as it is. It returns what it found.
func Recover(dir string, opt Options) (notes []string, err error) {
	opt.defaults()
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("capture: recover %s: %w", dir, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("capture: recover %s: %w: it is a file, not a capture directory", dir, ErrNotCapture)
	}
	if _, err := os.Stat(dir + "/" + manifestName); err != nil {
		return nil, fmt.Errorf("capture: recover %s: %w: no Badger MANIFEST in it", dir, ErrNotCapture)
	}
	unlock, err := lockShared(dir)
	if errors.Is(err, errLocked) {
		return nil, inUse(dir)
	}
	if err != nil {
		return nil, fmt.Errorf("capture: recover %s: %w", dir, err)
	}
	if mems, _ := filepath.Glob(filepath.Join(dir, "*.mem")); len(mems) == 0 {
		unlock()
		return nil, nil // closed cleanly: no log to replay
	}
	v, err := prepareView(dir, &opt)
	unlock()
	if err != nil {
		return nil, fmt.Errorf("capture: recover %s: %w", dir, err)
	}
	os.RemoveAll(v.dir)
	if len(v.problems) > 0 {
		return nil, fmt.Errorf("capture: recover %s: %w beyond what a crash leaves (%s); recovering it in place would delete what cannot be read: read it as it is (vbanalyze reads what it can and says what is lost), or copy it first", dir, ErrDamaged, strings.Join(v.problems, "; "))
	}
	s, err := Open(dir, opt)
	if err != nil {
		return nil, err
	}
	if err := s.Close(); err != nil {
		return nil, err
	}
	return v.notes, nil
}
