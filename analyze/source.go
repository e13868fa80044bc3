package analyze

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/vbench/vbench/capture"
)

// source reads one input: a capture directory (Badger store) or a JSON
// Lines dump as written by capture.Dump ({"kind":"meta"|"record"|"sample",
// ...}).
type source struct {
	name  string
	stdin io.Reader
}

// ErrNoRecords is wrapped by the error of Analyze when the inputs hold no
// request record at all.
var ErrNoRecords = errors.New("no request records")

// read calls rec for every record and returns the metadata and samples,
// and for a capture directory what reading it found (nil for a dump).
func (s source) read(ctx context.Context, rec func(*capture.Record) error) ([]capture.Meta, []capture.Sample, *capture.Health, error) {
	if s.name == "-" {
		m, x, err := readDump(ctx, s.stdin, "stdin", rec)
		return m, x, nil, err
	}
	fi, err := os.Stat(s.name)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // "stat NAME:" repeats the message
		}
		return nil, nil, nil, fmt.Errorf("capture %s: %w", s.name, err)
	}
	if !fi.IsDir() {
		f, err := os.Open(s.name)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("capture %s: %w", s.name, err)
		}
		defer f.Close()
		m, x, err := readDump(ctx, f, s.name, rec)
		return m, x, nil, err
	}
	st, err := capture.Open(s.name, capture.Options{ReadOnly: true})
	if err != nil {
		return nil, nil, nil, err // "capture: open NAME: ..."
	}
	defer st.Close()
	metas, err := st.Metas()
	if err != nil {
		return nil, nil, nil, err
	}
	n := 0
	err = st.Records(func(r *capture.Record) error {
		if n++; n%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		return rec(r)
	})
	if err != nil {
		return nil, nil, nil, err
	}
	var samples []capture.Sample
	err = st.Samples(func(x capture.Sample) error {
		samples = append(samples, x)
		return nil
	})
	if err != nil {
		return nil, nil, nil, err
	}
	h := st.Health()
	return metas, samples, &h, nil
}

// maxDumpLine caps one dump line (a record with its bodies).
const maxDumpLine = 256 << 20

// readDump reads a JSON Lines dump.
func readDump(ctx context.Context, r io.Reader, name string, rec func(*capture.Record) error) ([]capture.Meta, []capture.Sample, error) {
	var metas []capture.Meta
	var samples []capture.Sample
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxDumpLine)
	line := 0
	for sc.Scan() {
		line++
		if line%4096 == 0 && ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		b := sc.Bytes()
		if len(b) == 0 {
			continue
		}
		var head struct {
			Kind string `json:"kind"`
		}
		if err := json.Unmarshal(b, &head); err != nil {
			return nil, nil, fmt.Errorf("capture %s: line %d: not a capture dump line (want JSON with \"kind\"): %v", name, line, err)
		}
		switch head.Kind {
		case "meta":
			var m capture.Meta
			if err := json.Unmarshal(b, &m); err != nil {
				return nil, nil, fmt.Errorf("capture %s: line %d: meta: %v", name, line, err)
			}
			metas = append(metas, m)
		case "sample":
			var x capture.Sample
			if err := json.Unmarshal(b, &x); err != nil {
				return nil, nil, fmt.Errorf("capture %s: line %d: sample: %v", name, line, err)
			}
			samples = append(samples, x)
		case "record":
			var d struct {
				*capture.Record
				RequestBody     *string `json:"request_body,omitempty"`
				RequestBodyB64  []byte  `json:"request_body_b64,omitempty"`
				ResponseBody    *string `json:"response_body,omitempty"`
				ResponseBodyB64 []byte  `json:"response_body_b64,omitempty"`
			}
			d.Record = &capture.Record{Tags: capture.Tags{Index: -1}, PromptTokens: -1, CompletionTokens: -1}
			if err := json.Unmarshal(b, &d); err != nil {
				return nil, nil, fmt.Errorf("capture %s: line %d: record: %v", name, line, err)
			}
			d.Record.RequestBody = bodyOf(d.RequestBody, d.RequestBodyB64)
			d.Record.ResponseBody = bodyOf(d.ResponseBody, d.ResponseBodyB64)
			if err := rec(d.Record); err != nil {
				return nil, nil, err
			}
		default:
			return nil, nil, fmt.Errorf("capture %s: line %d: unknown kind %q (want meta, record or sample)", name, line, head.Kind)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("capture %s: line %d: %w", name, line+1, err)
	}
	return metas, samples, nil
}

func bodyOf(text *string, b64 []byte) []byte {
	if text != nil {
		return []byte(*text)
	}
	return b64
}

// expandDepth is how far below a given folder ExpandCaptures looks: a
// vbbench results tree has its captures 5 levels down
// (model/variant/trial/capture/level).
const expandDepth = 6

// ExpandCaptures replaces each directory in names that is not a capture
// itself but holds captures below it (a trial's capture/ folder with one
// capture per level, or a whole results tree) by those captures, in
// lexical order, not looking inside a capture, into hidden folders or more
// than expandDepth levels down. A vbbench trial folder whose status.json
// says it did not finish (interrupted, failed, running: its last level is
// partial, and a resumed run has re-run it whole elsewhere) is left out,
// and a note says so; give its captures by name to analyse them. Other
// names ("-", dump files, captures, paths that hold no capture) are kept
// as they are, so opening them says what is wrong. It only reads.
func ExpandCaptures(names []string) (caps, notes []string) {
	for _, name := range names {
		if name == "-" || capture.IsCaptureDir(name) {
			caps = append(caps, name)
			continue
		}
		if st, err := os.Stat(name); err != nil || !st.IsDir() {
			caps = append(caps, name)
			continue
		}
		found, left := capturesUnder(name, true)
		if len(found) == 0 && len(left) > 0 {
			// Nothing but unfinished trials: analyse them, saying so.
			found, _ = capturesUnder(name, false)
			notes = append(notes, fmt.Sprintf("%s holds only trials that did not finish (%s): their last levels are partial", name, strings.Join(left, "; ")))
		} else {
			for _, l := range left {
				notes = append(notes, l+" left out: that trial did not finish, so its last level is partial (give its captures by name to analyse them)")
			}
		}
		if len(found) == 0 {
			caps = append(caps, name)
			continue
		}
		caps = append(caps, found...)
	}
	return caps, notes
}

// capturesUnder lists the captures below dir (see ExpandCaptures) and,
// when skipUnfinished, leaves out the trial folders that did not finish,
// returned as "DIR (its status.json: STATUS)".
func capturesUnder(dir string, skipUnfinished bool) (found, left []string) {
	base := strings.Count(filepath.Clean(dir), string(filepath.Separator))
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil // unreadable parts are skipped: the captures found are what is analysed
		}
		if p != dir && (strings.HasPrefix(d.Name(), ".") || strings.Count(filepath.Clean(p), string(filepath.Separator))-base > expandDepth) {
			return filepath.SkipDir
		}
		if skipUnfinished {
			if st := unfinishedTrial(p); st != "" {
				left = append(left, fmt.Sprintf("%s (its status.json: %q)", p, st))
				return filepath.SkipDir
			}
		}
		if p != dir && capture.IsCaptureDir(p) {
			found = append(found, p)
			return filepath.SkipDir
		}
		return nil
	})
	return found, left
}

// The statuses of a finished vbbench trial in its status.json (bench's
// StatusOK and StatusEarlyStopped are these: bench imports this package).
const (
	TrialStatusOK           = "ok"
	TrialStatusEarlyStopped = "early-stopped"
)

// unfinishedTrial is the status of a vbbench trial folder (one with a
// status.json and a capture/ folder) that did not finish: anything but
// TrialStatusOK and TrialStatusEarlyStopped; "" for a finished trial or
// another folder.
func unfinishedTrial(dir string) string {
	if _, err := os.Stat(filepath.Join(dir, "capture")); err != nil {
		return ""
	}
	b, err := os.ReadFile(filepath.Join(dir, "status.json"))
	if err != nil {
		return ""
	}
	var st struct {
		Status string `json:"status"`
	}
	if json.Unmarshal(b, &st) != nil {
		return ""
	}
	switch st.Status {
	case "", TrialStatusOK, TrialStatusEarlyStopped:
		return ""
	}
	return st.Status
}
