package openai

import "bytes"

var keyFinishReason = []byte(`"finish_reason"`)

// Finished reports whether an event's data carries a non-null
// "finish_reason" string: the choice ended. Servers that close a stream
// without "data: [DONE]" (transformers serve) still end it this way.
func Finished(data []byte) bool {
	for {
		i := bytes.Index(data, keyFinishReason)
		if i < 0 {
			return false
		}
		data = data[i+len(keyFinishReason):]
		j := 0
		for j < len(data) && (data[j] == ' ' || data[j] == '\t' || data[j] == '\n' || data[j] == '\r') {
			j++
		}
		if j >= len(data) || data[j] != ':' {
			continue
		}
		j++
		for j < len(data) && (data[j] == ' ' || data[j] == '\t' || data[j] == '\n' || data[j] == '\r') {
			j++
		}
		if j < len(data) && data[j] == '"' {
			return true
		}
	}
}
