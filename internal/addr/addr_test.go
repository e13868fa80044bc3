package addr

import (
	"strings"
	"testing"
)

func TestParseServer(t *testing.T) {
	tests := []struct {
		in, url, err string
	}{
		{"127.0.0.1:8000", "http://127.0.0.1:8000", ""},
		{":8000", "http://127.0.0.1:8000", ""},
		{"localhost:8000", "http://localhost:8000", ""},
		{"http://127.0.0.1:8000", "http://127.0.0.1:8000", ""},
		{"http://127.0.0.1:8000/", "http://127.0.0.1:8000", ""},
		{" http://host ", "http://host:80", ""},
		{"https://api.example.com", "https://api.example.com:443", ""},
		{"http://[::1]:9000", "http://[::1]:9000", ""},
		{"[::1]:9000", "http://[::1]:9000", ""},
		{"", "", "empty address"},
		{"http://", "", "no host"},
		{"http://:8000", "", "no host"},
		{"127.0.0.1:99999", "", "port 99999 out of range"},
		{"http://127.0.0.1:99999", "", "port 99999 out of range"},
		{"127.0.0.1:0", "", "port 0 out of range"},
		{"127.0.0.1:http", "", `port "http" is not a number`},
		{"127.0.0.1", "", "want HOST:PORT"},
		{"http://h:8000/v1", "", "without a path"},
		{"http://h:8000?x=1", "", "without a path"},
		{"ftp://h:21", "", `scheme "ftp" not supported`},
		{"http://user:pw@h:8000", "", "credentials"},
		{"http://h:", "", "no port"},
	}
	for _, tt := range tests {
		s, err := ParseServer(tt.in)
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("ParseServer(%q): %v", tt.in, err)
		case tt.err == "" && s.URL() != tt.url:
			t.Errorf("ParseServer(%q).URL() = %q; want %q", tt.in, s.URL(), tt.url)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("ParseServer(%q) = %+v, %v; want an error with %q", tt.in, s, err, tt.err)
		}
	}
}

func TestParseListen(t *testing.T) {
	tests := []struct {
		in, want, err string
	}{
		{"127.0.0.1:8000", "127.0.0.1:8000", ""},
		{"127.0.0.1:0", "127.0.0.1:0", ""},
		{":8001", ":8001", ""},
		{"http://127.0.0.1:8000", "127.0.0.1:8000", ""},
		{"0.0.0.0:8000", "0.0.0.0:8000", ""},
		{"127.0.0.1:99999", "", "port 99999 out of range (0–65535)"},
		{"127.0.0.1:-1", "", "out of range"},
		{"nohost", "", "want HOST:PORT"},
		{"http://127.0.0.1:8000/x", "", "want HOST:PORT"},
	}
	for _, tt := range tests {
		got, err := ParseListen(tt.in)
		switch {
		case tt.err == "" && (err != nil || got != tt.want):
			t.Errorf("ParseListen(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("ParseListen(%q) = %q, %v; want an error with %q", tt.in, got, err, tt.err)
		}
	}
	if err := ValidPort(65536, true); err == nil {
		t.Error("ValidPort(65536) accepted")
	}
	if err := ValidPort(0, false); err == nil {
		t.Error("ValidPort(0, false) accepted")
	}
}

// FuzzParseServer: no input panics, and an accepted address prints as a URL
// that parses back to the same server.
func FuzzParseServer(f *testing.F) {
	for _, s := range []string{"127.0.0.1:8000", ":1", "http://h", "https://[::1]:443/", "http://", "h:99999", "x://y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := ParseServer(in)
		if err != nil {
			return
		}
		if s.Port < 1 || s.Port > 65535 || s.Host == "" {
			t.Fatalf("ParseServer(%q) = %+v", in, s)
		}
		back, err := ParseServer(s.URL())
		if err != nil || back != s {
			t.Fatalf("ParseServer(%q) = %+v; its URL %q parses to %+v, %v", in, s, s.URL(), back, err)
		}
		ParseListen(in)
	})
}
