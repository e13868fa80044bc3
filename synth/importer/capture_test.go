package importer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vbench/vbench/capture"

	"github.com/vbench/vbench/trace"
)

const secret = "Bearer sk-very-secret"

func openTest(t *testing.T, dir string, opt capture.Options) *capture.Store {
	t.Helper()
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	s, err := capture.Open(dir, opt)
	if err != nil {
		t.Fatalf("Open(%s) = %v", dir, err)
	}
	return s
}

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC).UnixNano()

func sse(deltas ...string) []byte {
	var b bytes.Buffer
	for _, d := range deltas {
		j, _ := json.Marshal(map[string]any{"choices": []any{map[string]any{"index": 0, "delta": map[string]any{"content": d}}}})
		fmt.Fprintf(&b, "data: %s\n\n", j)
	}
	b.WriteString("data: [DONE]\n\n")
	return b.Bytes()
}

func chatBody(t *testing.T, extra map[string]any, msgs ...string) []byte {
	t.Helper()
	var ms []map[string]any
	for i, m := range msgs {
		role := "user"
		if i%2 == 1 {
			role = "assistant"
		}
		ms = append(ms, map[string]any{"role": role, "content": m})
	}
	body := map[string]any{"model": "m", "messages": ms, "stream": true, "max_tokens": 32, "temperature": 0.5}
	for k, v := range extra {
		body[k] = v
	}
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type exRec struct {
	at      time.Duration // after t0
	method  string
	path    string
	status  int
	outcome capture.Outcome
	body    []byte
	resp    []byte
	label   string
	prompt  int32
	compl   int32
	cutBody bool
	gzip    bool
}

// exportStore builds a capture by hand: every record is written through the
// real Writer into a real Badger store, then reopened read-only.
func exportStore(t *testing.T, recs []exRec) *capture.Store {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "cap")
	s := openTest(t, dir, capture.Options{})
	for _, e := range recs {
		r := &capture.Record{
			Labels:           map[string]string{"variant": e.label},
			Tags:             capture.Tags{Index: -1},
			Method:           e.method,
			Path:             e.path,
			RequestHeaders:   []capture.Header{{Name: "Authorization", Value: secret}},
			Status:           e.status,
			Received:         t0 + int64(e.at),
			Outcome:          e.outcome,
			PromptTokens:     e.prompt,
			CompletionTokens: e.compl,
			RequestBody:      e.body,
			RequestSize:      int64(len(e.body)),
			ResponseBody:     e.resp,
			ResponseSize:     int64(len(e.resp)),
			Chunks:           []capture.Chunk{{At: 1, Content: 2, Tokens: -1, Usage: -1}, {At: 2, Content: 1, Tokens: -1, Usage: -1}},
		}
		if e.cutBody {
			r.RequestSize += 100
		}
		if e.gzip {
			r.RequestHeaders = append(r.RequestHeaders, capture.Header{Name: "Content-Encoding", Value: "gzip"})
		}
		if !s.Writer().Put(r) {
			t.Fatal("dropped")
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return openTest(t, dir, capture.Options{ReadOnly: true})
}

func sampleCapture(t *testing.T) *capture.Store {
	ok := capture.OutcomeOK
	return exportStore(t, []exRec{
		{at: 0, method: "POST", path: "/v1/chat/completions", status: 200, outcome: ok, label: "a", prompt: 20, compl: 2,
			body: chatBody(t, map[string]any{"user": "alice@example.com"}, "What is the capital of France?"), resp: sse("Par", "is.")},
		{at: 100 * time.Millisecond, method: "POST", path: "/v1/completions", status: 200, outcome: ok, label: "a", prompt: 7, compl: 16,
			body: []byte(`{"model":"m","prompt":"Once upon a time in a land","max_tokens":16,"ignore_eos":true,"min_tokens":16}`)},
		{at: 150 * time.Millisecond, method: "GET", path: "/v1/models", status: 200, outcome: ok, label: "a", prompt: -1, compl: -1},
		// Turn 2 of the conversation: previous messages + the answer.
		{at: 2 * time.Second, method: "POST", path: "/v1/chat/completions", status: 200, outcome: ok, label: "a", prompt: 40, compl: 3,
			body: chatBody(t, nil, "What is the capital of France?", "Paris.", "And of Italy?"),
			resp: []byte(`{"choices":[{"index":0,"message":{"role":"assistant","content":"Rome."}}]}`)},
		// Not a continuation: the assistant message is not what was answered.
		{at: 2500 * time.Millisecond, method: "POST", path: "/v1/chat/completions", status: 200, outcome: ok, label: "a", prompt: 40, compl: 3,
			body: chatBody(t, nil, "What is the capital of France?", "Lyon.", "Sure?"), resp: sse("No.")},
		{at: 2600 * time.Millisecond, method: "POST", path: "/v1/completions", status: 200, outcome: ok, label: "a", cutBody: true,
			body: []byte(`{"prompt":"cut`), prompt: -1, compl: -1},
		{at: 2700 * time.Millisecond, method: "POST", path: "/v1/completions?debug=1", status: 500, outcome: capture.OutcomeUpstreamError, label: "b", prompt: -1, compl: -1,
			body: []byte(`{"model":"m","prompt":"boom","max_tokens":4}`)},
		// Turn 3: continues turn 2 (non-streamed answer "Rome.").
		{at: 4 * time.Second, method: "POST", path: "/v1/chat/completions", status: 200, outcome: ok, label: "a", prompt: 60, compl: 5,
			body: chatBody(t, nil, "What is the capital of France?", "Paris.", "And of Italy?", "Rome.", "Thanks!"), resp: sse("You're welcome.")},
	})
}

func TestFromCapture(t *testing.T) {
	s := sampleCapture(t)
	defer s.Close()
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	hdr, reqs, err := FromCapture(s, CaptureOptions{Created: created})
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		Offset       time.Duration
		Endpoint     string
		In, Out      int32
		Conversation string
		Turn         int32
		Row          string
	}
	var got []row
	for _, q := range reqs {
		got = append(got, row{q.Offset, q.Endpoint, q.InputTokens, q.OutputTokens, q.Conversation, q.Turn, q.Source.Row})
	}
	want := []row{
		{0, "/v1/chat/completions", 20, 2, "c1", 0, "1"},
		{100 * time.Millisecond, "/v1/completions", 7, 16, "", 0, "2"},
		{2 * time.Second, "/v1/chat/completions", 40, 3, "c1", 1, "4"},
		{2500 * time.Millisecond, "/v1/chat/completions", 40, 3, "", 0, "5"},
		{2700 * time.Millisecond, "/v1/completions?debug=1", 0, 3, "", 0, "7"},
		{4 * time.Second, "/v1/chat/completions", 60, 5, "c1", 2, "8"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("exported:\n got %+v\nwant %+v", got, want)
	}
	// Bodies are verbatim; sampling is read from them.
	var orig []*capture.Record
	s.Records(func(r *capture.Record) error { orig = append(orig, r); return nil })
	if !bytes.Equal(reqs[0].Body, orig[0].RequestBody) || !bytes.Equal(reqs[1].Body, orig[1].RequestBody) {
		t.Error("bodies not verbatim")
	}
	if sm := reqs[1].Sampling; sm.MaxTokens != 16 || sm.MinTokens != 16 || !sm.IgnoreEOS || sm.HasTemperature {
		t.Errorf("completions sampling = %+v", sm)
	}
	if sm := reqs[0].Sampling; sm.MaxTokens != 32 || !sm.HasTemperature || sm.Temperature != 0.5 {
		t.Errorf("chat sampling = %+v", sm)
	}
	if hdr.Arrival != trace.ArrivalRecorded || hdr.Count != 6 || hdr.Span != 4*time.Second || hdr.Hash == ([32]byte{}) {
		t.Errorf("header = %+v", hdr)
	}
	if want := 5 / 4.0; hdr.MeanRate != want {
		t.Errorf("MeanRate = %v, want %v", hdr.MeanRate, want)
	}
	for k, v := range map[string]string{"records": "8", "exported": "6", "skipped_not_post": "1", "skipped_body_truncated": "1", "conversations": "1"} {
		if hdr.Params[k] != v {
			t.Errorf("Params[%s] = %q, want %q (all: %v)", k, hdr.Params[k], v, hdr.Params)
		}
	}
	// The trace file round-trips and never contains request headers.
	path := filepath.Join(t.TempDir(), "app.bin")
	whdr, err := trace.WriteFile(path, hdr, reqs)
	if err != nil {
		t.Fatal(err)
	}
	if whdr.Hash != hdr.Hash {
		t.Error("FromCapture's hash differs from the written file's")
	}
	rhdr, rreqs, err := trace.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if rhdr.Hash != hdr.Hash || !reflect.DeepEqual(rreqs, reqs) {
		t.Error("trace file does not round-trip the export")
	}
	jpath := filepath.Join(t.TempDir(), "app.jsonl")
	trace.WriteFile(jpath, hdr, reqs)
	for _, p := range []string{path, jpath} {
		if b := readFile(t, p); bytes.Contains(b, []byte("sk-very-secret")) || bytes.Contains(b, []byte("Authorization")) {
			t.Errorf("%s contains a request header", p)
		}
	}
}

func TestExportFilters(t *testing.T) {
	s := sampleCapture(t)
	defer s.Close()
	cases := []struct {
		name string
		opt  CaptureOptions
		rows []string
	}{
		{"label", CaptureOptions{Labels: map[string]string{"variant": "b"}}, []string{"7"}},
		{"path", CaptureOptions{Paths: []string{"/v1/completions"}}, []string{"2", "7"}},
		{"window", CaptureOptions{From: time.Second, To: 3 * time.Second}, []string{"4", "5", "7"}},
		{"since-until", CaptureOptions{Since: time.Unix(0, t0+int64(2*time.Second)), Until: time.Unix(0, t0+int64(2600*time.Millisecond))}, []string{"4", "5"}},
		{"status", CaptureOptions{Statuses: []int{500}}, []string{"7"}},
		{"outcome", CaptureOptions{Outcomes: []capture.Outcome{capture.OutcomeOK}, Paths: []string{"/v1/completions"}}, []string{"2"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			hdr, reqs, err := FromCapture(s, c.opt)
			if err != nil {
				t.Fatal(err)
			}
			var rows []string
			for _, q := range reqs {
				rows = append(rows, q.Source.Row)
			}
			if !reflect.DeepEqual(rows, c.rows) {
				t.Errorf("rows = %v, want %v", rows, c.rows)
			}
			if len(reqs) > 0 && reqs[0].Offset != 0 {
				t.Errorf("first offset = %v, want 0", reqs[0].Offset)
			}
			if hdr.Params["filtered"] == "" {
				t.Errorf("Params do not count filtered records: %v", hdr.Params)
			}
		})
	}
	// An empty window exports nothing and counts every record as filtered.
	hdr, reqs, err := FromCapture(s, CaptureOptions{From: 5 * time.Second, To: time.Second})
	if err != nil || len(reqs) != 0 || hdr.Params["filtered"] != "8" {
		t.Errorf("empty window: %d requests, params %v, %v", len(reqs), hdr.Params, err)
	}
	// A conversation whose first turn is filtered out still links the rest.
	_, reqs, _ = FromCapture(s, CaptureOptions{From: time.Second})
	if reqs[0].Conversation != "c4" || reqs[3].Conversation != "c4" || reqs[3].Turn != 1 {
		t.Errorf("conversation after window = %+v / %+v", reqs[0], reqs[3])
	}
}

func TestExportAnonymize(t *testing.T) {
	s := sampleCapture(t)
	defer s.Close()
	_, plain, _ := FromCapture(s, CaptureOptions{})
	_, reqs, err := FromCapture(s, CaptureOptions{Anonymize: true, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	for i, q := range reqs {
		for _, word := range []string{"France", "Italy", "Paris", "Once upon", "alice", "boom", "Thanks"} {
			if bytes.Contains(q.Body, []byte(word)) {
				t.Errorf("request %d still contains %q: %s", i, word, q.Body)
			}
		}
		if q.Conversation != plain[i].Conversation || q.Turn != plain[i].Turn || q.Offset != plain[i].Offset {
			t.Errorf("request %d: anonymization changed timing or conversation", i)
		}
		var b map[string]json.RawMessage
		if err := json.Unmarshal(q.Body, &b); err != nil {
			t.Fatalf("request %d: body is not JSON: %v", i, err)
		}
		if string(b["model"]) != `"m"` {
			t.Errorf("request %d lost its model: %s", i, q.Body)
		}
	}
	var comp struct {
		Prompt    []int32 `json:"prompt"`
		MaxTokens int     `json:"max_tokens"`
	}
	json.Unmarshal(reqs[1].Body, &comp)
	if len(comp.Prompt) != 7 || comp.MaxTokens != 16 {
		t.Errorf("completions prompt = %d token ids (want the recorded 7), max_tokens %d", len(comp.Prompt), comp.MaxTokens)
	}
	type chat struct {
		Messages []struct{ Role, Content string } `json:"messages"`
	}
	var turn1, turn2, turn3 chat
	json.Unmarshal(reqs[0].Body, &turn1)
	json.Unmarshal(reqs[2].Body, &turn2)
	json.Unmarshal(reqs[5].Body, &turn3)
	if len(turn2.Messages) != 3 || len(turn3.Messages) != 5 {
		t.Fatalf("message counts changed: %+v %+v", turn2, turn3)
	}
	// Shared prefixes stay shared.
	if turn1.Messages[0] != turn2.Messages[0] || turn2.Messages[1] != turn3.Messages[1] || turn2.Messages[2] != turn3.Messages[2] {
		t.Error("anonymized turns do not share their prefix")
	}
	if turn1.Messages[0].Role != "user" || turn2.Messages[1].Role != "assistant" {
		t.Error("roles changed")
	}
	// Deterministic for a seed, different for another.
	_, again, _ := FromCapture(s, CaptureOptions{Anonymize: true, Seed: 7})
	_, other, _ := FromCapture(s, CaptureOptions{Anonymize: true, Seed: 8})
	if !bytes.Equal(again[0].Body, reqs[0].Body) || bytes.Equal(other[0].Body, reqs[0].Body) {
		t.Error("anonymization is not a deterministic function of the seed")
	}
	if n := len(strings.Fields(turn1.Messages[0].Content)); n < 2 {
		t.Errorf("filler of the first message has %d words", n)
	}
}

func TestExportSkipsEncodedBodiesAndKeepsTokenIDLengths(t *testing.T) {
	ok := capture.OutcomeOK
	s := exportStore(t, []exRec{
		{method: "POST", path: "/v1/completions", status: 200, outcome: ok, gzip: true, body: []byte("\x1f\x8b compressed"), prompt: -1, compl: -1},
		{at: time.Second, method: "POST", path: "/v1/completions", status: 200, outcome: ok, prompt: -1, compl: -1,
			body: []byte(`{"model":"m","prompt":[5,6,7,8,9],"max_tokens":3}`)},
		{at: 2 * time.Second, method: "POST", path: "/v1/chat/completions", status: 200, outcome: ok, prompt: 100, compl: 1,
			body: chatBody(t, nil, "abcd")},
	})
	defer s.Close()
	hdr, reqs, err := FromCapture(s, CaptureOptions{Anonymize: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 2 || hdr.Params["skipped_body_encoded"] != "1" {
		t.Fatalf("exported %d, params %v", len(reqs), hdr.Params)
	}
	var comp struct{ Prompt []int32 }
	json.Unmarshal(reqs[0].Body, &comp)
	if len(comp.Prompt) != 5 { // token ids are exact, never rescaled
		t.Errorf("anonymized token-id prompt has %d ids, want 5", len(comp.Prompt))
	}
}

func TestExportEmpty(t *testing.T) {
	s := exportStore(t, nil)
	defer s.Close()
	hdr, reqs, err := FromCapture(s, CaptureOptions{})
	if err != nil || len(reqs) != 0 || hdr.Count != 0 || hdr.MeanRate != 1 {
		t.Errorf("empty export = %+v, %d, %v", hdr, len(reqs), err)
	}
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzExportBodies feeds arbitrary recorded request and response bodies to
// the parsers of the export (conversation linking, answer extraction,
// sampling, anonymization): no panic, and anonymized bodies of JSON objects
// stay JSON.
func FuzzExportBodies(f *testing.F) {
	f.Add([]byte(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`), sse("a", "b"), []byte(`{"model":"m","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"ab"},{"role":"user","content":"x"}]}`))
	f.Add([]byte(`{"prompt":[1,2,3],"max_tokens":-4,"temperature":1e999}`), []byte(`{"choices":[{"message":{"content":null}}]}`), []byte(`{"prompt":["a","b"]}`))
	f.Add([]byte(`{"messages":[{"role":"assistant","content":[{"type":"text","text":"x"}]}]}`), []byte("data: {\"choices\":[{\"delta\":{}}]}\n\ndata: [DONE]"), []byte(`[]`))
	f.Fuzz(func(t *testing.T, body1, resp1, body2 []byte) {
		recs := []*capture.Record{
			{ID: 1, Method: "POST", Path: trace.EndpointChat, Status: 200, Outcome: capture.OutcomeOK, PromptTokens: 3, RequestBody: body1, RequestSize: int64(len(body1)), ResponseBody: resp1, ResponseSize: int64(len(resp1))},
			{ID: 2, Method: "POST", Path: trace.EndpointCompletions, Status: 200, Outcome: capture.OutcomeOK, PromptTokens: -1, RequestBody: body2, RequestSize: int64(len(body2))},
			{ID: 3, Method: "POST", Path: trace.EndpointChat, Status: 200, Outcome: capture.OutcomeOK, PromptTokens: -1, RequestBody: body2, RequestSize: int64(len(body2))},
		}
		reqs := make([]trace.Request, len(recs))
		for i, r := range recs {
			reqs[i] = trace.Request{Index: int64(i), Endpoint: r.Path, Body: append([]byte(nil), r.RequestBody...), Sampling: samplingOf(r.RequestBody)}
			outputTokens(r)
		}
		linkConversations(recs, reqs)
		anonymize(recs, reqs, 1)
		for i, q := range reqs {
			var obj map[string]json.RawMessage
			if json.Unmarshal(recs[i].RequestBody, &obj) == nil && !json.Valid(q.Body) {
				t.Fatalf("anonymized body of a JSON object is not JSON: %q", q.Body)
			}
		}
	})
}

// TestImportCaptureFormat: "capture" is an import format beside azure and
// mooncake: ImportFile reads a capture directory (read-only) into a trace
// file with the requests FromCapture keeps.
func TestImportCaptureFormat(t *testing.T) {
	s := sampleCapture(t)
	_, want, err := FromCapture(s, CaptureOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := s.Dir()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "cap.bin")
	o := DefaultOptions()
	o.Created = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	res, err := ImportFile(context.Background(), FormatCapture, dir, out, o)
	if err != nil {
		t.Fatal(err)
	}
	hdr, got, err := trace.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if res.Kept != len(want) || len(got) != len(want) || hdr.Arrival != trace.ArrivalRecorded || res.Header.Hash != hdr.Hash {
		t.Fatalf("imported %d requests (result %+v, header %+v); FromCapture keeps %d", len(got), res, hdr, len(want))
	}
	for i := range got {
		if string(got[i].Body) != string(want[i].Body) || got[i].OutputTokens != want[i].OutputTokens || got[i].Offset != want[i].Offset {
			t.Errorf("request %d differs: %+v vs %+v", i, got[i], want[i])
		}
	}
	if !slices.Contains(Formats(), FormatCapture) {
		t.Error("Formats() lacks capture")
	}
}
