package proxy

import (
	"io"
	"net/http"
	"testing"

	"github.com/vbench/vbench/capture"
)

// TestNoBodyResponses: HEAD, 204 and 304 responses carry no body; they are
// forwarded with their headers and recorded as ok.
func TestNoBodyResponses(t *testing.T) {
	leakCheck(t)
	addr, _ := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/204":
			w.WriteHeader(http.StatusNoContent)
		case "/304":
			w.WriteHeader(http.StatusNotModified)
		default:
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", "11")
			if r.Method != http.MethodHead {
				io.WriteString(w, `{"ok":true}`)
			}
		}
	})
	sink := newMemSink()
	_, url := startProxy(t, Config{Upstream: addr}, sink)
	c := newClient(t)
	tests := []struct {
		method, path string
		status       int
	}{{"HEAD", "/models", 200}, {"GET", "/204", 204}, {"GET", "/304", 304}, {"GET", "/models", 200}}
	for i, tt := range tests {
		req, _ := http.NewRequest(tt.method, url+tt.path, nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tt.method, tt.path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status {
			t.Errorf("%s %s: status %d; want %d", tt.method, tt.path, resp.StatusCode, tt.status)
		}
		if tt.method == "HEAD" && (len(body) != 0 || resp.ContentLength != 11) {
			t.Errorf("HEAD: body %q content-length %d; want none and 11", body, resp.ContentLength)
		}
		if tt.method == "GET" && tt.status == 200 && string(body) != `{"ok":true}` {
			t.Errorf("GET after HEAD on the same connections: body %q", body)
		}
		rec := sink.wait(t, i+1)[i]
		if rec.Outcome != capture.OutcomeOK || rec.Status != tt.status || rec.Method != tt.method {
			t.Errorf("%s %s: record %s %d %s %q", tt.method, tt.path, rec.Method, rec.Status, rec.Outcome, rec.Error)
		}
	}
}
