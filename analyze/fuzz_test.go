package analyze

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"testing"

	"github.com/vbench/vbench/capture"
)

// FuzzReadDump: any bytes given as a dump end in records or an error,
// never a panic; every record read analyses without panicking.
func FuzzReadDump(f *testing.F) {
	recs, samples, metas := smallFixture()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for _, m := range metas {
		enc.Encode(struct {
			Kind string `json:"kind"`
			capture.Meta
		}{"meta", m})
	}
	for _, r := range recs[:3] {
		enc.Encode(struct {
			Kind string `json:"kind"`
			*capture.Record
		}{"record", r})
	}
	enc.Encode(struct {
		Kind string `json:"kind"`
		capture.Sample
	}{"sample", samples[0]})
	f.Add(b.Bytes())
	f.Add([]byte(`{"kind":"record","id":1,"received":5,"chunks":[{"at":-3,"content":1,"tokens":-7,"usage":99}],"outcome":"ok","status":200}`))
	f.Add([]byte(`{"kind":"record","chunks":[{"at":9223372036854775807,"content":32767}],"end":-1}` + "\n" + `{"kind":"sample","at":1,"name":"vllm:num_requests_running","value":1e308}`))
	f.Add([]byte(`{"kind":"record","id":2,"received":9,"status":200,"outcome":"ok","content_type":"text/event-stream","response_size":60,"response_body":"data: {\"choices\":[{\"text\":\"a\"}]}\n\ndata: {\"error\":1}\n\ndata: [DONE]\n\n","chunks":[{"at":5,"content":1,"tokens":1,"usage":-1}]}`))
	f.Add([]byte(`{"kind":"nope"}`))
	f.Add([]byte("\n\n{}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var got []*capture.Record
		_, _, err := readDump(context.Background(), bytes.NewReader(data), "fuzz", func(r *capture.Record) error {
			got = append(got, r)
			return nil
		})
		for _, r := range got {
			m := Measure(r, "fuzz")
			if m.Completed() && m.OutputTokens > 1 && !math.IsNaN(m.TTFT()) && math.IsNaN(m.TPOT()) {
				t.Errorf("completed request with %d tokens and a TTFT has no TPOT", m.OutputTokens)
			}
		}
		if err != nil {
			return
		}
		if _, err := Analyze(context.Background(), Config{Captures: []string{"-"}, Stdin: bytes.NewReader(data), AllowMixed: true}); err != nil {
			return
		}
	})
}
