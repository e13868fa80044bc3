package sse

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	gosse "github.com/tmaxmax/go-sse"
)

type ev struct{ Type, Data string }

// splitAll feeds in to a fresh splitter in pieces of size step (cycling
// through steps) and returns the events.
func splitAll(in []byte, steps []int, max int) ([]ev, int) {
	s := Splitter{MaxEventSize: max}
	var out []ev
	fn := func(e Event) { out = append(out, ev{string(e.Type), string(e.Data)}) }
	for k := 0; len(in) > 0; k++ {
		n := steps[k%len(steps)]
		if n <= 0 || n > len(in) {
			n = len(in)
		}
		s.Feed(in[:n], fn)
		in = in[n:]
	}
	return out, s.Oversize
}

// oracle parses in with tmaxmax/go-sse.
func oracle(in []byte) []ev {
	var out []ev
	for e, err := range gosse.Read(bytes.NewReader(in), &gosse.ReadConfig{MaxEventSize: 64 << 20}) {
		if err != nil {
			break
		}
		out = append(out, ev{e.Type, e.Data})
	}
	return out
}

func TestFeed(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []ev
	}{
		{"openai", "data: {\"a\":1}\n\ndata: [DONE]\n\n", []ev{{"", `{"a":1}`}, {"", "[DONE]"}}},
		{"crlf", "data: x\r\n\r\n", []ev{{"", "x"}}},
		{"cr", "data: x\r\rdata: y\r\r", []ev{{"", "x"}, {"", "y"}}},
		{"multiline", "data: a\ndata: b\n\n", []ev{{"", "a\nb"}}},
		{"no space", "data:x\n\n", []ev{{"", "x"}}},
		{"two spaces", "data:  x\n\n", []ev{{"", " x"}}},
		{"comment", ": ping\n\ndata: x\n\n", []ev{{"", "x"}}},
		{"event type", "event: error\ndata: {}\n\n", []ev{{"error", "{}"}}},
		{"empty data", "data\n\n", []ev{{"", ""}}},
		{"unknown field", "foo: bar\n\n", nil},
		{"incomplete end", "data: x\n\ndata: y\n", []ev{{"", "x"}}},
		{"bom", "\xEF\xBB\xBFdata: x\n\n", []ev{{"", "x"}}},
		{"half bom", "\xEF\xBBdata: x\n\n", nil},
		{"id only", "id: 7\n\n", []ev{{"", ""}}},
	}
	for _, tt := range tests {
		for _, step := range []int{1, 2, 3, 7, 4096} {
			t.Run(fmt.Sprintf("%s/step%d", tt.name, step), func(t *testing.T) {
				got, _ := splitAll([]byte(tt.in), []int{step}, 0)
				if fmt.Sprint(got) != fmt.Sprint(tt.want) {
					t.Errorf("Feed(%q) in steps of %d = %q; want %q", tt.in, step, got, tt.want)
				}
				if o := oracle([]byte(tt.in)); fmt.Sprint(o) != fmt.Sprint(got) {
					t.Errorf("go-sse disagrees on %q: %q, splitter %q", tt.in, o, got)
				}
			})
		}
	}
}

func TestOversize(t *testing.T) {
	in := "data: " + strings.Repeat("x", 100) + "\n\ndata: ok\n\n" + "data: " + strings.Repeat("y", 40) + "\ndata: " + strings.Repeat("y", 40) + "\n\ndata: ok2\n\n"
	for _, step := range []int{1, 5, 1000} {
		got, over := splitAll([]byte(in), []int{step}, 64)
		want := []ev{{"", "ok"}, {"", "ok2"}}
		if fmt.Sprint(got) != fmt.Sprint(want) || over != 2 {
			t.Errorf("step %d: got %q oversize %d; want %q oversize 2", step, got, over, want)
		}
	}
}

func TestFeedAllocs(t *testing.T) {
	chunk := []byte("data: {\"id\":\"x\",\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n")
	var s Splitter
	n := 0
	fn := func(Event) { n++ }
	// Split across reads so the carry-over buffer is exercised too.
	a, b := chunk[:20], chunk[20:]
	s.Feed(a, fn)
	s.Feed(b, fn)
	allocs := testing.AllocsPerRun(1000, func() {
		s.Feed(a, fn)
		s.Feed(b, fn)
	})
	if allocs != 0 {
		t.Errorf("Feed allocates %v per event; want 0", allocs)
	}
}

func BenchmarkFeed(b *testing.B) {
	chunk := []byte("data: {\"id\":\"cmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hello\"},\"finish_reason\":null}]}\n\n")
	var s Splitter
	fn := func(Event) {}
	b.ReportAllocs()
	b.SetBytes(int64(len(chunk)))
	for b.Loop() {
		s.Feed(chunk, fn)
	}
}

// FuzzFeed is a differential test against tmaxmax/go-sse: any input, fed in
// any split, gives the same events as go-sse reading it whole.
func FuzzFeed(f *testing.F) {
	f.Add([]byte("data: {\"a\":1}\n\ndata: [DONE]\n\n"), uint8(3))
	f.Add([]byte("event: e\r\ndata: a\r\ndata: b\r\n\r\n: c\n\n"), uint8(1))
	f.Add([]byte("\xEF\xBB\xBFdata:x\r\r"), uint8(2))
	f.Add([]byte("id: 1\n\nretry: 5\n\ndata\n\n"), uint8(7))
	f.Fuzz(func(t *testing.T, in []byte, step uint8) {
		steps := []int{int(step%16) + 1, int(step/16) + 1}
		got, _ := splitAll(in, steps, 64<<20)
		want := oracle(in)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("Feed(%q) in steps %v = %q; go-sse %q", in, steps, got, want)
		}
	})
}
