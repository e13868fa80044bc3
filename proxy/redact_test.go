package proxy

import "testing"

func TestRedactQuery(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/v1/completions", "/v1/completions"},
		{"/v1/completions?", "/v1/completions?"},
		{"/v1/models?key=sk-1", "/v1/models?key=[REDACTED]"},
		{"/x?api-key=a&model=m&API_KEY=b&token=c&keep=1", "/x?api-key=[REDACTED]&model=m&API_KEY=[REDACTED]&token=[REDACTED]&keep=1"},
		{"/x?key&monkey=1&key=", "/x?key&monkey=1&key=[REDACTED]"},
		{"/x?sig=abc%3D&a=b=c", "/x?sig=[REDACTED]&a=b=c"},
	}
	for _, tt := range tests {
		if got := redactQuery(tt.in); got != tt.want {
			t.Errorf("redactQuery(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}
