package openai

import "testing"

func TestFinished(t *testing.T) {
	tests := []struct {
		data string
		want bool
	}{
		{`{"choices":[{"delta":{},"index":0,"finish_reason":"length"}],"usage":{"completion_tokens":5}}`, true},
		{`{"choices":[{"delta":{"content":"x"},"finish_reason" : "stop"}]}`, true},
		{`{"choices":[{"delta":{"content":"x"},"finish_reason":null}]}`, false},
		{`{"choices":[{"delta":{"content":"finish_reason"}}]}`, false},
		{`{"choices":[{"delta":{"content":"\"finish_reason\""},"finish_reason":"stop"}]}`, true},
		{`[DONE]`, false},
		{`"finish_reason":`, false},
		{``, false},
	}
	for _, tt := range tests {
		if got := Finished([]byte(tt.data)); got != tt.want {
			t.Errorf("Finished(%s) = %v, want %v", tt.data, got, tt.want)
		}
	}
}

func FuzzFinished(f *testing.F) {
	for _, s := range []string{`{"finish_reason":"stop"}`, `{"finish_reason":null}`, `"finish_reason"  :  "`, `"finish_reason"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { Finished(data) })
}
