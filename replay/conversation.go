package replay

import (
	"context"
	"sync"
	"time"

	"github.com/vbench/vbench/trace"

	"github.com/vbench/vbench/metric"
)

/*
Multi-turn conversations are replayed closed-loop inside the conversation
and open-loop between requests: a request with a Conversation and a Turn
above 0 follows the latest earlier request of the same phase with the same
Conversation and Turn−1 (its previous turn). It is sent at

	max(its own due time, previous turn's end + ThinkTime·scale)

so a turn never leaves before the answer it continues has finished plus the
recorded think time, and never before the trace says it arrived. A slower
server therefore delays later turns as it would delay a real user; every
other request keeps its schedule. A previous turn that failed or was
dropped still counts as ended when it ended. A turn whose previous turn is
not in the phase (cut by --duration, or outside the warm-up slice) is
paced by its due time alone. The request's Scheduled time (X-VB-Scheduled,
and so its lag) is the effective send time above.
*/

// linkTurns returns, for each item of a phase, the position in items of its
// previous turn (-1: none in this phase), or nil when no item follows
// another.
func linkTurns(reqs []trace.Request, items []item) []int {
	type key struct {
		conv string
		turn int32
	}
	var (
		latest  map[key]int
		parents []int
	)
	for i, it := range items {
		q := &reqs[it.req]
		if q.Conversation == "" {
			continue
		}
		if latest == nil {
			latest = map[key]int{}
		}
		if q.Turn > 0 {
			if p, ok := latest[key{q.Conversation, q.Turn - 1}]; ok {
				if parents == nil {
					parents = make([]int, len(items))
					for j := range parents {
						parents[j] = -1
					}
				}
				parents[i] = p
			}
		}
		latest[key{q.Conversation, q.Turn}] = i
	}
	return parents
}

// turnState tells dependent turns when the items they follow ended.
type turnState struct {
	done []chan struct{} // per item followed by a later turn; nil otherwise
	end  []time.Time     // when that item's exchange ended, set before done closes
}

// newTurnState returns nil when no item of the phase follows another.
func newTurnState(parents []int) *turnState {
	if parents == nil {
		return nil
	}
	ts := &turnState{done: make([]chan struct{}, len(parents)), end: make([]time.Time, len(parents))}
	for _, p := range parents {
		if p >= 0 && ts.done[p] == nil {
			ts.done[p] = make(chan struct{})
		}
	}
	return ts
}

// follows reports whether item i waits for a previous turn.
func (ts *turnState) follows(ph *phase, i int) bool { return ts != nil && ph.parents[i] >= 0 }

// finish records that item i's exchange ended at t (nil-safe; items no turn
// follows are ignored).
func (ts *turnState) finish(i int, t time.Time) {
	if ts == nil || ts.done[i] == nil {
		return
	}
	ts.end[i] = t
	close(ts.done[i])
}

// sendTurn sends item i of the phase once its previous turn has ended and
// the think time has passed (see the comment at the top of this file). It
// runs on its own goroutine so the pacer keeps the open-loop schedule of
// every other request.
func (rn *running) sendTurn(ctx, cutCtx context.Context, i int, res *metric.Request, due time.Time, deadline []string, wg *sync.WaitGroup) {
	defer wg.Done()
	r, ph, ts := rn.r, rn.ph, rn.turns
	it := &ph.items[i]
	q := &r.reqs[it.req]
	defer func() { ts.finish(i, time.Now()) }()
	notSent := func(at time.Time, why string) {
		*res = r.dropped(it.req, at, ph, why)
	}
	p := ph.parents[i]
	select {
	case <-ts.done[p]:
	case <-ctx.Done():
		notSent(due, "not sent: interrupted while its previous turn was in flight")
		return
	case <-cutCtx.Done():
		notSent(due, "not sent: its previous turn had not ended at the drain deadline")
		return
	}
	at := due
	if t := ts.end[p].Add(ScaleOffset(q.ThinkTime, ph.scale)); t.After(at) {
		at = t
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(cutCtx, cancel)
	defer stop()
	w := newWaiter(r.cfg.Pacer, r.cfg.Spin)
	err := w.until(wctx, at)
	w.stop()
	if err != nil {
		notSent(at, "not sent: interrupted or cut while waiting for its think time")
		return
	}
	if r.sem != nil {
		select {
		case r.sem <- struct{}{}:
		default:
			if r.cfg.OnFull == OnFullDrop {
				*res = r.dropped(it.req, at, ph, "")
				return
			}
			select {
			case r.sem <- struct{}{}:
			case <-wctx.Done():
				notSent(at, "not sent: interrupted while waiting for a concurrency slot")
				return
			}
		}
	}
	rn.sent.Add(1)
	r.send(cutCtx, res, at, it.req, ph, deadline)
	if r.sem != nil {
		<-r.sem
	}
	rn.ended(res)
}
