package proxy

import (
	"bytes"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/vbench/vbench/capture"
)

var vbPrefix = []byte("x-vb-")

// readRequest fills rec from the request: method, path, tags (X-VB-*),
// headers (redacted) and the body, and removes the X-VB-* headers.
func (p *Proxy) readRequest(req *fasthttp.Request, rec *capture.Record) {
	// The record's buffers come from the capture's pool and go back once
	// the writer has encoded it (docs/benchmarks/proxy.md: per-stream
	// garbage set the collector's pace at 1,000 streams).
	rec.UsePool()
	rec.Method = string(req.Header.Method())
	rec.Path = string(req.Header.RequestURI())
	if !p.cfg.RecordSecrets {
		rec.Path = redactQuery(rec.Path)
	}
	rec.Tags.Index = -1
	var vb []string
	for k, v := range req.Header.All() {
		if len(k) > len(vbPrefix) && bytes.EqualFold(k[:len(vbPrefix)], vbPrefix) {
			vb = append(vb, string(k))
			setTag(&rec.Tags, strings.ToLower(string(k[len(vbPrefix):])), string(v))
			continue
		}
		val := string(v)
		if !p.cfg.RecordSecrets && isSecret(k) {
			val = capture.Redacted
		}
		rec.RequestHeaders = append(rec.RequestHeaders, capture.Header{Name: string(k), Value: val})
	}
	for _, k := range vb {
		req.Header.Del(k)
	}
	body := req.Body()
	rec.RequestSize = int64(len(body))
	if n := min(len(body), p.cfg.RecordRequestBody); n > 0 {
		rec.RequestBody = append(rec.RequestBody[:0], body[:n]...)
	}
}

// secretParams are query parameters whose values are credentials (API
// keys passed in the URL, e.g. ?key= or ?api-key=, OAuth tokens, SAS
// signatures); lower case.
var secretParams = []string{"key", "api-key", "api_key", "apikey", "access_token", "token", "auth", "sig", "signature", "password"}

// redactQuery replaces the values of secret query parameters in a request
// URI with capture.Redacted; anything else stays byte-identical. (The
// request is forwarded unchanged; only the record is redacted.)
func redactQuery(uri string) string {
	q := strings.IndexByte(uri, '?')
	if q < 0 {
		return uri
	}
	var b strings.Builder
	b.WriteString(uri[:q+1])
	for i, part := range strings.Split(uri[q+1:], "&") {
		if i > 0 {
			b.WriteByte('&')
		}
		name, _, hasValue := strings.Cut(part, "=")
		secret := false
		for _, s := range secretParams {
			if strings.EqualFold(name, s) {
				secret = true
				break
			}
		}
		if secret && hasValue {
			b.WriteString(name)
			b.WriteByte('=')
			b.WriteString(capture.Redacted)
			continue
		}
		b.WriteString(part)
	}
	return b.String()
}

// setTag parses one X-VB-* header (name without the prefix, lower case).
// A value that does not parse is kept in Extra under its name so nothing
// is lost.
func setTag(t *capture.Tags, name, v string) {
	bad := false
	switch name {
	case "run":
		t.Run = v
	case "trial":
		t.Trial = v
	case "level":
		t.Level = v
	case "rate":
		f, err := strconv.ParseFloat(v, 64)
		t.Rate, bad = f, err != nil
	case "index":
		n, err := strconv.ParseInt(v, 10, 64)
		if err == nil {
			t.Index = n
		}
		bad = err != nil
	case "scheduled":
		n, err := strconv.ParseInt(v, 10, 64)
		t.Scheduled, bad = n, err != nil
	case "sent":
		n, err := strconv.ParseInt(v, 10, 64)
		t.Sent, bad = n, err != nil
	case "deadline":
		n, err := strconv.ParseInt(v, 10, 64)
		t.Deadline, bad = n, err != nil
	case "warmup":
		t.Warmup = v == "1" || strings.EqualFold(v, "true")
	case "trace":
		t.TraceHash = v
	default:
		bad = true
	}
	if bad {
		if t.Extra == nil {
			t.Extra = make(map[string]string)
		}
		t.Extra[name] = v
	}
}

var secretHeaders = [][]byte{
	[]byte("Authorization"), []byte("Proxy-Authorization"), []byte("Api-Key"),
	[]byte("X-Api-Key"), []byte("Cookie"), []byte("Set-Cookie"),
}

func isSecret(name []byte) bool {
	for _, s := range secretHeaders {
		if bytes.EqualFold(name, s) {
			return true
		}
	}
	return false
}

// hop-by-hop headers (RFC 9110 7.6.1) are meant for one connection only.
var hopHeaders = []string{
	"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// prepareUpstreamRequest strips hop-by-hop headers (and those named in
// Connection) and points Host at the upstream.
func (p *Proxy) prepareUpstreamRequest(req *fasthttp.Request) {
	if conn := req.Header.Peek("Connection"); len(conn) > 0 {
		for _, f := range strings.Split(string(conn), ",") {
			if f = strings.TrimSpace(f); f != "" && !strings.EqualFold(f, "close") && !strings.EqualFold(f, "keep-alive") {
				req.Header.Del(f)
			}
		}
	}
	for _, h := range hopHeaders {
		req.Header.Del(h)
	}
	req.Header.ResetConnectionClose()
	req.Header.SetHost(p.up.host)
	req.UseHostHeader = true
}

// stripResponseHopHeaders removes hop-by-hop headers from the response to
// the client; fasthttp writes its own framing.
func stripResponseHopHeaders(h *fasthttp.ResponseHeader) {
	if conn := h.Peek("Connection"); len(conn) > 0 {
		for _, f := range strings.Split(string(conn), ",") {
			if f = strings.TrimSpace(f); f != "" && !strings.EqualFold(f, "close") && !strings.EqualFold(f, "keep-alive") {
				h.Del(f)
			}
		}
	}
	for _, name := range hopHeaders {
		h.Del(name)
	}
	h.ResetConnectionClose()
}
