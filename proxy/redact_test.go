package proxy

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/vbench/vbench/capture"
)

func TestRedactQuery(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/v1/completions", "/v1/completions"},
		{"/v1/completions?", "/v1/completions?"},
		{"/v1/models?key=sk-1", "/v1/models?key=[REDACTED]"},
		{"/x?api-key=a&model=m&API_KEY=b&token=c&keep=1", "/x?api-key=[REDACTED]&model=m&API_KEY=[REDACTED]&token=[REDACTED]&keep=1"},
		{"/x?key&model=1&key=", "/x?key&model=1&key=[REDACTED]"},
		{"/x?subscription-key=s&Api%2Dkey=t&api-version=2024", "/x?subscription-key=[REDACTED]&Api%2Dkey=[REDACTED]&api-version=2024"},
		{"/x?sig=abc%3D&a=b=c", "/x?sig=[REDACTED]&a=b=c"},
	}
	for _, tt := range tests {
		if got := redactQuery(tt.in); got != tt.want {
			t.Errorf("redactQuery(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

func TestRedactJSON(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"model":"m","api_key":"sk-1","max_tokens":5}`, `{"model":"m","api_key":"[REDACTED]","max_tokens":5}`},
		{`{"a":{"Auth":{"user":"u","pw":"p"},"n":1},"token":["x","y"],"keep":"k"}`, `{"a":{"Auth":{"user":"[REDACTED]","pw":"[REDACTED]"},"n":1},"token":["[REDACTED]","[REDACTED]"],"keep":"k"}`},
		{`{"messages":[{"role":"user","content":"my key is"}],"stream":true}`, `{"messages":[{"role":"user","content":"my key is"}],"stream":true}`},
		{` [ {"client_secret" : "s\"q", "x": null} ] `, ` [ {"client_secret" : "[REDACTED]", "x": null} ] `},
		{`{"api_key":"sk-cut-sho`, `{"api_key":"[REDACTED]"`},
		{`{"stop_token_ids":[1,2],"skip_special_tokens":true,"password":7}`, `{"stop_token_ids":[1,2],"skip_special_tokens":true,"password":7}`},
		{`not json api_key`, `not json api_key`},
	}
	for _, tt := range tests {
		if got := string(redactJSON([]byte(tt.in))); got != tt.want {
			t.Errorf("redactJSON(%s)\n = %s\nwant %s", tt.in, got, tt.want)
		}
	}
}

// FuzzRedactJSON: never panics; a valid JSON body stays valid JSON and
// keeps no string value under a credential's key.
func FuzzRedactJSON(f *testing.F) {
	f.Add([]byte(`{"model":"m","api_key":"sk-1","x":[{"token":"t"}]}`))
	f.Add([]byte(`[{"auth":{"a":["b",{"c":"d"}]}}]`))
	f.Add([]byte(`{"k":"\u00e9\"","secret":"`))
	f.Fuzz(func(t *testing.T, b []byte) {
		out := redactJSON(b)
		if !json.Valid(b) {
			return
		}
		// The fast path misses nothing the decoder finds, in a body or in
		// any prefix of it (a record keeps only a body's first bytes).
		for k := len(b); k >= 0; k -= max(1, len(b)/16) {
			if got, full := redactJSON(b[:k]), redactJSONFull(b[:k]); !bytes.Equal(got, full) {
				t.Fatalf("the fast path missed a credential: redactJSON(%q) = %q, the decoder gives %q", b[:k], got, full)
			}
		}
		if !json.Valid(out) {
			t.Fatalf("redactJSON(%q) = %q: not JSON", b, out)
		}
		var walk func(v any, secret bool)
		walk = func(v any, secret bool) {
			switch x := v.(type) {
			case map[string]any:
				for k, e := range x {
					walk(e, secret || isSecretName(k))
				}
			case []any:
				for _, e := range x {
					walk(e, secret)
				}
			case string:
				if secret && x != capture.Redacted {
					t.Fatalf("redactJSON(%q) = %q keeps %q", b, out, x)
				}
			}
		}
		var v any
		if json.Unmarshal(out, &v) == nil {
			walk(v, false)
		}
	})
}

// TestRedactionByPattern sends the credentials of issue #19 through the
// proxy: the upstream gets each unchanged, the record none of them (the
// header kept by KeepHeaders aside).
func TestRedactionByPattern(t *testing.T) {
	var got http.Header
	var gotURI, gotBody string
	addr, _ := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		got, gotURI = r.Header.Clone(), r.RequestURI
		b, _ := io.ReadAll(r.Body)
		gotBody = string(b)
	})
	sink := newMemSink()
	_, url := startProxy(t, Config{Upstream: addr, KeepHeaders: []string{"X-Trace-Token"}}, sink)
	headers := map[string]string{
		"X-Goog-Api-Key":            "goog-secret-1",
		"Ocp-Apim-Subscription-Key": "apim-secret-2",
		"X-Auth-Token":              "auth-secret-3",
		"X-Amz-Security-Token":      "amz-secret-4",
		"Authorization":             "Bearer auth-secret-5",
		"Cookie":                    "session=cookie-secret-6",
		"X-Trace-Token":             "kept-7",
	}
	const query = "/v1/chat/completions?subscription-key=query-secret-8&Api%2Dkey=query-secret-9&api-version=2024-06-01"
	const body = `{"model":"m","api_key":"body-secret-10","max_tokens":3,"messages":[{"role":"user","content":"hi"}]}`
	req, _ := http.NewRequest("POST", url+query, strings.NewReader(body))
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := newClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	rec := sink.wait(t, 1)[0]
	for k, v := range headers {
		if got.Get(k) != v {
			t.Errorf("upstream got %s: %q; want it forwarded unchanged", k, got.Get(k))
		}
	}
	if gotURI != query || gotBody != body {
		t.Errorf("upstream got %s %s; want the request unchanged", gotURI, gotBody)
	}
	recorded, _ := json.Marshal(rec)
	recorded = append(recorded, rec.RequestBody...)
	for _, secret := range []string{"goog-secret-1", "apim-secret-2", "auth-secret-3", "amz-secret-4", "auth-secret-5", "cookie-secret-6", "query-secret-8", "query-secret-9", "body-secret-10"} {
		if bytes.Contains(recorded, []byte(secret)) {
			t.Errorf("%s recorded in clear", secret)
		}
	}
	if !bytes.Contains(recorded, []byte("kept-7")) || !strings.Contains(rec.Path, "api-version=2024-06-01") || !strings.Contains(string(rec.RequestBody), `"max_tokens":3`) {
		t.Errorf("record lost what it should keep: path %s body %s", rec.Path, rec.RequestBody)
	}
}
