// Command replay_fidelity is the helper of bench/scripts/replay_fidelity.sh:
// it compares the arrival times a replay achieved, as the recording proxy
// saw them, with the trace's recorded ones.
//
//	replay_fidelity --trace azure.bin --capture cap/ [--speed 1] [--json out.json]
//
// For every measured request of the capture (warm-ups and the preflight
// left out), matched to its trace request by X-VB-Index, with due(i) =
// start + offset(i)/speed and start the level's start (X-VB-Scheduled −
// offset/speed, the same for every request):
//
//   - send error:    X-VB-Sent − due (the replayer's own lag)
//   - arrival error: Received − due (the proxy had the whole request;
//     adds the loopback and the proxy's parsing)
//   - gap error:     (Received(i) − Received(first)) − (offset(i) −
//     offset(first))/speed (recorded vs achieved arrival times relative to
//     the first request; needs no replayer clock at all)
//
// It prints a Markdown table of their p50/p90/p99/max (of the absolute
// values) and the number of requests matched, missing and late.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"time"

	"github.com/vbench/vbench/capture"
	"github.com/vbench/vbench/internal/cli"
	"github.com/vbench/vbench/trace"
)

func main() { os.Exit(cli.Main("replay_fidelity", run)) }

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := cli.NewFlagSet("replay_fidelity", "replay_fidelity --trace TRACE --capture DIR [--speed X] [--json FILE]", stderr)
	tracePath := fs.String("trace", "", "the trace that was replayed")
	capDir := fs.String("capture", "", "the capture the replay recorded (vbreplay --capture)")
	speed := fs.Float64("speed", 1, "the replay's --speed (offsets are divided by it)")
	jsonOut := fs.String("json", "", "also write the report as JSON to this file")
	if err := cli.Parse(fs, args); err != nil {
		return cli.Exit(stderr, "replay_fidelity", err)
	}
	err := func() error {
		if *tracePath == "" || *capDir == "" {
			return cli.Usagef("--trace and --capture are required")
		}
		if !(*speed > 0) {
			return cli.Usagef("--speed %v: want a positive factor", *speed)
		}
		_, reqs, err := trace.ReadFile(*tracePath)
		if err != nil {
			return err
		}
		st, err := capture.Open(*capDir, capture.Options{ReadOnly: true})
		if err != nil {
			return err
		}
		defer st.Close()
		var recs []*capture.Record
		err = st.Records(func(r *capture.Record) error {
			if r.Tags.Index >= 0 && !r.Tags.Warmup {
				recs = append(recs, r)
			}
			return nil
		})
		if err != nil {
			return err
		}
		rep, err := measure(reqs, recs, *speed)
		if err != nil {
			return err
		}
		rep.Trace, rep.Capture = *tracePath, *capDir
		fmt.Fprint(stdout, rep.markdown())
		if *jsonOut != "" {
			b, _ := json.MarshalIndent(rep, "", "  ")
			if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
				return err
			}
		}
		return nil
	}()
	return cli.Exit(stderr, "replay_fidelity", err)
}

// Dist is the distribution of absolute errors, in milliseconds, plus the
// signed mean.
type Dist struct {
	P50, P90, P99, Max, Mean float64
}

// Report is what measure found.
type Report struct {
	Trace, Capture string
	Speed          float64
	Requests       int // trace requests
	Matched        int // measured capture records matched to one
	Missing        int // trace requests with no record (cut by --duration, dropped)
	Span           time.Duration
	Send           Dist
	Arrival        Dist
	Gap            Dist
}

// measure matches records to trace requests by index and computes the
// errors (see the package comment).
func measure(reqs []trace.Request, recs []*capture.Record, speed float64) (*Report, error) {
	byIndex := make(map[int64]*capture.Record, len(recs))
	for _, r := range recs {
		if r.Tags.Index >= int64(len(reqs)) {
			return nil, fmt.Errorf("capture record %d has trace index %d, but the trace has %d requests: not this trace's replay", r.ID, r.Tags.Index, len(reqs))
		}
		if _, dup := byIndex[r.Tags.Index]; dup {
			return nil, fmt.Errorf("trace index %d recorded twice: the capture holds several levels or runs; replay one level into a fresh capture", r.Tags.Index)
		}
		byIndex[r.Tags.Index] = r
	}
	if len(byIndex) == 0 {
		return nil, fmt.Errorf("the capture holds no measured replayed request (X-VB-Index tags)")
	}
	scaled := func(d time.Duration) int64 { return int64(math.Round(float64(d) / speed)) }
	rep := &Report{Speed: speed, Requests: len(reqs), Matched: len(byIndex), Missing: len(reqs) - len(byIndex)}
	var first *capture.Record
	var firstOff time.Duration
	var start int64
	for i := range reqs {
		if r := byIndex[int64(i)]; r != nil {
			first, firstOff = r, reqs[i].Offset
			start = r.Tags.Scheduled - scaled(reqs[i].Offset)
			break
		}
	}
	var send, arr, gap []float64
	var last time.Duration
	for i := range reqs {
		r := byIndex[int64(i)]
		if r == nil {
			continue
		}
		due := start + scaled(reqs[i].Offset)
		if r.Tags.Sent > 0 {
			send = append(send, float64(r.Tags.Sent-due)/1e6)
		}
		arr = append(arr, float64(r.Received-due)/1e6)
		gap = append(gap, float64((r.Received-first.Received)-scaled(reqs[i].Offset-firstOff))/1e6)
		last = reqs[i].Offset
	}
	rep.Span = time.Duration(scaled(last - firstOff))
	rep.Send, rep.Arrival, rep.Gap = dist(send), dist(arr), dist(gap)
	return rep, nil
}

func dist(v []float64) Dist {
	if len(v) == 0 {
		return Dist{}
	}
	var sum float64
	abs := make([]float64, len(v))
	for i, x := range v {
		sum += x
		abs[i] = math.Abs(x)
	}
	slices.Sort(abs)
	pct := func(p float64) float64 {
		rank := p / 100 * float64(len(abs)-1)
		lo := int(math.Floor(rank))
		if lo >= len(abs)-1 {
			return abs[len(abs)-1]
		}
		return abs[lo] + (rank-float64(lo))*(abs[lo+1]-abs[lo])
	}
	return Dist{P50: pct(50), P90: pct(90), P99: pct(99), Max: abs[len(abs)-1], Mean: sum / float64(len(v))}
}

func (r *Report) markdown() string {
	s := fmt.Sprintf("%d of %d trace requests replayed over %v at speed %gx (%d missing)\n\n", r.Matched, r.Requests, r.Span.Round(time.Millisecond), r.Speed, r.Missing)
	s += "| error (absolute, ms) | p50 | p90 | p99 | max | signed mean |\n|---|---:|---:|---:|---:|---:|\n"
	for _, row := range []struct {
		name string
		d    Dist
	}{{"send (X-VB-Sent − due)", r.Send}, {"arrival at proxy (Received − due)", r.Arrival}, {"arrival relative to the first (vs recorded gap)", r.Gap}} {
		s += fmt.Sprintf("| %s | %.3f | %.3f | %.3f | %.3f | %+.3f |\n", row.name, row.d.P50, row.d.P90, row.d.P99, row.d.Max, row.d.Mean)
	}
	return s
}
