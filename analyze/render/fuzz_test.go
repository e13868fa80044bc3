package render

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/vbench/vbench/analyze"
	"github.com/vbench/vbench/capture"
)

// FuzzRender: whatever a dump holds, the summary renders as valid JSON
// (through encoding/json, NaN as null) and as a table, never a panic.
func FuzzRender(f *testing.F) {
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
		res, err := analyze.Analyze(context.Background(), analyze.Config{Captures: []string{"-"}, Stdin: bytes.NewReader(data), AllowMixed: true})
		if err != nil {
			return
		}
		var out bytes.Buffer
		if err := WriteSummaryJSON(res, &out); err != nil {
			t.Fatal(err)
		}
		if !json.Valid(out.Bytes()) {
			t.Fatalf("summary.json is not valid JSON:\n%s", out.Bytes())
		}
		if err := WriteTable(res, &out); err != nil {
			t.Fatal(err)
		}
	})
}
