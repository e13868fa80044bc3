package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// What vbbench status says of a trial besides a status.json status.
const (
	// StatusNotStarted: no attempt of the trial is in the results.
	StatusNotStarted = "not-started"
	// StatusLost: the attempt says running, but the Slurm task that ran it
	// has left the queue (time limit, node failure, scancel); --resume
	// runs it again.
	StatusLost = "lost"
)

// TrialState is where one trial of the plan stands (vbbench status).
type TrialState struct {
	// Number is the trial's place in the run order (1-based; a Slurm
	// array index).
	Number int    `json:"number"`
	Key    string `json:"key"`
	// Status is the finished attempt's when there is one (the report uses
	// it), else the latest attempt's, StatusLost or StatusNotStarted.
	Status string `json:"status"`
	// Attempts counts the trial's directories in the results.
	Attempts int    `json:"attempts"`
	Dir      string `json:"dir,omitempty"`
	Error    string `json:"error,omitempty"`
	// GPUs, Started and Ended are the shown attempt's.
	GPUs    []string  `json:"gpus,omitempty"`
	Started time.Time `json:"started,omitzero"`
	Ended   time.Time `json:"ended,omitzero"`
	// Queue is the trial's Slurm task state (PENDING, RUNNING, …) while it
	// is in the queue, with its job id.
	Queue string `json:"queue,omitempty"`
	Job   string `json:"slurm_job,omitempty"`
}

// StudyState is the answer of vbbench status.
type StudyState struct {
	Study  string       `json:"study"`
	Trials []TrialState `json:"trials"`
	// QueueErr says why the Slurm queue could not be read ("" when it was
	// or nothing was submitted).
	QueueErr string `json:"queue_error,omitempty"`
}

// Finished counts the trials that finished (ok or early-stopped).
func (s *StudyState) Finished() int {
	n := 0
	for _, t := range s.Trials {
		if done(t.Status) {
			n++
		}
	}
	return n
}

// Status gathers what the results directory holds for each trial of the
// plan (every attempt's status.json, from local runs and Slurm tasks
// alike) and what the Slurm queue says of the study's submitted tasks. It
// only reads.
func Status(ctx context.Context, p *Plan) (*StudyState, error) {
	s := p.Study
	attempts, err := ScanAttempts(s.ResultsDir, s.Name)
	if err != nil {
		return nil, err
	}
	q := ReadSlurmQueue(ctx, s)
	out := &StudyState{Study: s.Name, QueueErr: q.Err}
	for _, t := range p.Trials {
		n := t.Index + 1
		ts := TrialState{Number: n, Key: t.Key(), Status: StatusNotStarted, Queue: q.State[n], Job: q.Job[n]}
		all := attempts[t.Key()]
		ts.Attempts = len(all)
		if len(all) > 0 {
			shown := all[len(all)-1] // the latest
			for _, a := range all {
				if done(a.Status) && (!done(shown.Status) || a.Ended.After(shown.Ended)) {
					shown = a
				}
			}
			ts.Status, ts.Dir, ts.Error, ts.GPUs, ts.Started, ts.Ended = shown.Status, shown.Dir, shown.Error, shown.GPUs, shown.Started, shown.Ended
			if shown.Status == StatusRunning && q.Err == "" && ts.Queue == "" && ranUnderSlurm(shown.Dir) {
				ts.Status = StatusLost
				ts.Error = "its Slurm task left the queue while the trial was running (time limit, node failure or scancel; see the task's output in results/slurm/)"
			}
		}
		out.Trials = append(out.Trials, ts)
	}
	return out, nil
}

// ScanAttempts reads every status.json of the study under results (the
// results tree's model/variant/trial folders), by trial key, each key's
// attempts oldest first, each with its Dir; it only reads.
func ScanAttempts(results, study string) (map[string][]TrialStatus, error) {
	out := map[string][]TrialStatus{}
	matches, err := filepath.Glob(filepath.Join(results, "*", "*", "*", "status.json"))
	if err != nil {
		return nil, err
	}
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil {
			continue
		}
		var st TrialStatus
		if json.Unmarshal(b, &st) != nil || st.Study != study {
			continue
		}
		st.Dir = filepath.Dir(m)
		out[st.Key] = append(out[st.Key], st)
	}
	for _, a := range out {
		sort.Slice(a, func(i, j int) bool { return a[i].Started.Before(a[j].Started) })
	}
	return out, nil
}

// ranUnderSlurm reports whether the attempt in dir was run by a Slurm task
// (its meta.json records the job).
func ranUnderSlurm(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if err != nil {
		return false
	}
	var m Meta
	return json.Unmarshal(b, &m) == nil && m.Slurm["SLURM_JOB_ID"] != ""
}

// Print writes the state as a table for people.
func (s *StudyState) Print(w io.Writer, resultsDir string) {
	counts := map[string]int{}
	queued := 0
	for _, t := range s.Trials {
		counts[t.Status]++
		if t.Queue != "" {
			queued++
		}
	}
	var parts []string
	for _, st := range []string{StatusOK, StatusEarlyStopped, StatusFailed, StatusUnsupported, StatusInterrupted, StatusRunning, StatusLost, StatusNotStarted} {
		if counts[st] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[st], st))
		}
	}
	fmt.Fprintf(w, "study %q: %d trials, %d finished (%s)", s.Study, len(s.Trials), s.Finished(), strings.Join(parts, ", "))
	if queued > 0 {
		fmt.Fprintf(w, "; %d in the Slurm queue", queued)
	}
	fmt.Fprintln(w)
	for _, t := range s.Trials {
		dir := "-"
		if t.Dir != "" {
			dir = t.Dir
			if rel, err := filepath.Rel(resultsDir, t.Dir); err == nil {
				dir = rel
			}
		}
		queue := ""
		if t.Queue != "" {
			queue = fmt.Sprintf("  slurm %s %s", t.Job, strings.ToLower(t.Queue))
		}
		line := fmt.Sprintf("  %3d  %-40s %-14s attempts %d  %s%s", t.Number, t.Key, t.Status, t.Attempts, dir, queue)
		if t.Error != "" && !done(t.Status) {
			line += "\n       " + firstLine(t.Error)
			if last := lastLine(t.Error); last != firstLine(t.Error) {
				line += "\n       … " + firstLine(strings.TrimSpace(last))
			}
		}
		fmt.Fprintln(w, line)
	}
	if s.QueueErr != "" {
		fmt.Fprintf(w, "warning: %s\n", s.QueueErr)
	}
}

// Report writes the study report from the latest finished attempt of each
// trial in the results (local runs and Slurm tasks alike), as vbbench run
// does after its last trial, and returns its path.
func Report(ctx context.Context, p *Plan, now time.Time) (string, error) {
	s := p.Study
	finished, err := scanFinished(s.ResultsDir, s.Name)
	if err != nil {
		return "", err
	}
	var trials []TrialStatus
	var archived []string
	for _, t := range p.Trials {
		if st, ok := finished[t.Key()]; ok {
			if st.Archived {
				archived = append(archived, t.Key())
				continue
			}
			trials = append(trials, st)
		}
	}
	if len(trials) == 0 {
		msg := "bench: no finished trial of study " + s.Name + " in " + s.ResultsDir
		if len(archived) > 0 {
			msg += " with its raw captures (archived: " + strings.Join(archived, ", ") + ")"
		}
		return "", errors.New(msg)
	}
	return writeReport(ctx, s, trials, now, s.Run.Chart == nil || *s.Run.Chart)
}
