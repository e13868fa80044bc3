package replay

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vbench/vbench/metric"
)

// transformers serve closes a finished stream without "data: [DONE]".
func TestStreamerFinishWithoutDone(t *testing.T) {
	tests := []struct {
		name string
		body string
		want error
	}{
		{"done", "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: [DONE]\n\n", nil},
		{"finish_reason, no done", "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"choices\":[{\"delta\":{},\"finish_reason\":\"length\"}],\"usage\":{\"completion_tokens\":1}}\n\n", nil},
		{"cut mid-stream", "data: {\"choices\":[{\"delta\":{\"content\":\"a\"},\"finish_reason\":null}]}\n\n", errTruncated},
	}
	for _, tt := range tests {
		var s streamer
		var res metric.Request
		err := s.read(strings.NewReader(tt.body), true, time.Now(), &res)
		if !errors.Is(err, tt.want) && !(err == nil && tt.want == nil) {
			t.Errorf("%s: read = %v, want %v", tt.name, err, tt.want)
		}
		if res.ContentEvents != 1 {
			t.Errorf("%s: %d content events, want 1", tt.name, res.ContentEvents)
		}
	}
}
