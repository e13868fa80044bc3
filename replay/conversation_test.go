package replay

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vbench/vbench/internal/testserver"
	"github.com/vbench/vbench/trace"

	"github.com/vbench/vbench/metric"
)

func TestLinkTurns(t *testing.T) {
	type q struct {
		conv string
		turn int32
	}
	tests := []struct {
		name string
		reqs []q
		want []int
	}{
		{"no conversations", []q{{"", 0}, {"", 0}}, nil},
		{"first turns only", []q{{"a", 0}, {"b", 0}}, nil},
		{"two conversations interleaved", []q{{"a", 0}, {"b", 0}, {"", 0}, {"a", 1}, {"b", 1}, {"a", 2}}, []int{-1, -1, -1, 0, 1, 3}},
		{"regenerated answer: both follow turn 0, turn 2 follows the latest", []q{{"a", 0}, {"a", 1}, {"a", 1}, {"a", 2}}, []int{-1, 0, 0, 2}},
		{"previous turn outside the phase", []q{{"a", 2}, {"a", 3}}, []int{-1, 0}},
		{"gap in turns", []q{{"a", 0}, {"a", 2}}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reqs := make([]trace.Request, len(tc.reqs))
			items := make([]item, len(tc.reqs))
			for i, r := range tc.reqs {
				reqs[i] = trace.Request{Conversation: r.conv, Turn: r.turn}
				items[i] = item{req: i}
			}
			if got := linkTurns(reqs, items); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("linkTurns = %v, want %v", got, tc.want)
			}
		})
	}
}

// chatTurn is a verbatim captured chat body asking for n tokens.
func chatTurn(i int64, at time.Duration, conv string, turn int32, think time.Duration, n int) trace.Request {
	return trace.Request{Index: i, Offset: at, Endpoint: trace.EndpointChat, Conversation: conv, Turn: turn, ThinkTime: think,
		OutputTokens: int32(n), Body: []byte(fmt.Sprintf(`{"model":"app","messages":[{"role":"user","content":"turn %d"}],"max_tokens":%d}`, turn, n))}
}

// A later turn leaves only after its previous turn's answer has ended plus
// the think time (closed loop), while independent requests keep their
// open-loop schedule. Lower bounds are exact (they follow from the
// design); instead of upper bounds on lateness, which a starved machine
// breaks, the order of the sends shows that nothing waited for a turn.
func TestConversationTurnsWaitForPreviousAnswer(t *testing.T) {
	srv := startServer(t, testserver.Config{TTFT: 10 * time.Millisecond, ITL: 10 * time.Millisecond})
	const think = 200 * time.Millisecond
	reqs := []trace.Request{
		chatTurn(0, 0, "c1", 0, 0, 30), // ends after ~300 ms
		{Index: 1, Offset: 50 * time.Millisecond, Endpoint: trace.EndpointCompletions, Prompt: "single", Sampling: trace.Sampling{MaxTokens: 2}},
		chatTurn(2, 100*time.Millisecond, "c1", 1, think, 30), // due before turn 0 ends
		{Index: 3, Offset: 150 * time.Millisecond, Endpoint: trace.EndpointCompletions, Prompt: "single", Sampling: trace.Sampling{MaxTokens: 2}},
		chatTurn(4, 1500*time.Millisecond, "c1", 2, 0, 2), // due after turn 1 ends: its due time wins
	}
	hdr := trace.Header{MeanRate: 1, Arrival: trace.ArrivalRecorded}
	res, err := Run(context.Background(), Config{Target: srv.URL, KeepRequests: true, SkipPreflight: true, Model: "m"}, hdr, reqs)
	if err != nil {
		t.Fatal(err)
	}
	lr := res.Levels[0]
	if lr.OK != 5 {
		t.Fatalf("ok %d of 5: %+v", lr.OK, lr.Errors)
	}
	by := map[int64]metric.Request{}
	for _, q := range lr.Requests {
		by[q.Index] = q
	}
	start := by[0].Scheduled // request 0 is due at the level's start
	end0 := by[0].Sent + int64(by[0].End)
	if sent := by[2].Sent; sent < end0+int64(think) {
		t.Errorf("turn 1 sent %v after turn 0 ended, before the %v think time", time.Duration(sent-end0), think)
	} else {
		t.Logf("turn 1 sent %v after its earliest time", time.Duration(sent-end0-int64(think)))
	}
	if by[2].Scheduled < end0+int64(think) {
		t.Errorf("turn 1 scheduled %v after turn 0's end, want the think time %v", time.Duration(by[2].Scheduled-end0), think)
	}
	// The independent request due at 150 ms is not held up by the waiting
	// turn (due at 100 ms, held until turn 0's end + think, ≥ 500 ms): it
	// leaves first. A pacer that waited for the conversation would send it
	// after the turn.
	if by[3].Sent >= by[2].Sent {
		t.Errorf("single request due at 150 ms sent at %v, after the waiting turn 1 (%v): the pacer waited for a conversation",
			time.Duration(by[3].Sent-start), time.Duration(by[2].Sent-start))
	}
	t.Logf("single request due at 150 ms sent %v late", time.Duration(by[3].Sent-start-int64(150*time.Millisecond)))
	end2 := by[2].Sent + int64(by[2].End)
	if by[4].Sent < start+int64(1500*time.Millisecond) || by[4].Sent < end2 {
		t.Errorf("turn 2 sent at %v, before its due time 1.5s or turn 1's end %v", time.Duration(by[4].Sent-start), time.Duration(end2-start))
	}
	// The server saw the turns in order, bodies verbatim apart from the
	// forced stream options and the --model override.
	var order []string
	for _, b := range srv.Bodies() {
		if s := string(b); strings.Contains(s, "turn ") {
			order = append(order, s[strings.Index(s, "turn "):][:6])
			if !strings.Contains(s, `"stream":true`) || !strings.Contains(s, `"include_usage":true`) || !strings.Contains(s, `"model":"m"`) {
				t.Errorf("body not forced to stream with usage, or model not overridden: %s", s)
			}
		}
	}
	if want := []string{"turn 0", "turn 1", "turn 2"}; !reflect.DeepEqual(order, want) {
		t.Errorf("server saw turns %v, want %v", order, want)
	}
}

// A turn whose previous answer has not ended by the level's cut deadline is
// not sent and is counted as dropped, with the reason.
func TestConversationTurnNotSentAfterCut(t *testing.T) {
	srv := startServer(t, testserver.Config{TTFT: 10 * time.Millisecond, ITL: 10 * time.Millisecond})
	reqs := []trace.Request{chatTurn(0, 0, "c1", 0, 0, 200), chatTurn(1, 50*time.Millisecond, "c1", 1, 0, 2)}
	res, err := Run(context.Background(), Config{Target: srv.URL, KeepRequests: true, SkipPreflight: true, Model: "m", Drain: 200 * time.Millisecond},
		trace.Header{MeanRate: 1}, reqs)
	if err != nil {
		t.Fatal(err)
	}
	lr := res.Levels[0]
	if lr.Dropped != 1 || lr.Sent != 1 || lr.Cut != 1 {
		t.Fatalf("sent %d dropped %d errors %v; want turn 0 cut and turn 1 dropped", lr.Sent, lr.Dropped, lr.Errors)
	}
	if q := lr.Requests[1]; q.ErrorKind != metric.KindDropped || !strings.Contains(q.Error, "previous turn") {
		t.Fatalf("turn 1 = %+v", q)
	}
	if n := srv.Requests(); n != 1 {
		t.Fatalf("server saw %d requests, want 1", n)
	}
}

// Think times are trace time: --speed 2 halves them like the offsets.
func TestConversationThinkTimeScales(t *testing.T) {
	srv := startServer(t, testserver.Config{TTFT: 5 * time.Millisecond, ITL: 5 * time.Millisecond})
	const think = 600 * time.Millisecond
	reqs := []trace.Request{chatTurn(0, 0, "c1", 0, 0, 4), chatTurn(1, 10*time.Millisecond, "c1", 1, think, 2)}
	res, err := Run(context.Background(), Config{Target: srv.URL, KeepRequests: true, SkipPreflight: true, Model: "m", Speed: 2},
		trace.Header{MeanRate: 1}, reqs)
	if err != nil {
		t.Fatal(err)
	}
	q0, q1 := res.Levels[0].Requests[0], res.Levels[0].Requests[1]
	if !q0.Completed() || !q1.Completed() {
		t.Fatalf("requests failed: %+v %+v", q0, q1)
	}
	gap := time.Duration(q1.Sent - (q0.Sent + int64(q0.End)))
	if gap < think/2 || gap >= think {
		t.Fatalf("turn 1 sent %v after turn 0 ended; want the think time %v scaled by 1/2", gap, think)
	}
}
