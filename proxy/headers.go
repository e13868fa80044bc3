package proxy

import (
	"bytes"
	"fmt"
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
		if !p.cfg.RecordSecrets && p.isSecretHeader(k) {
			val = capture.Redacted
		}
		rec.RequestHeaders = append(rec.RequestHeaders, capture.Header{Name: string(k), Value: val})
	}
	for _, k := range vb {
		req.Header.Del(k)
	}
}

// recordBody copies the request body (read by readBody) into the record,
// up to Config.RecordRequestBody and as far as the memory budget has room;
// it returns the bytes reserved for the copy.
func (p *Proxy) recordBody(req *fasthttp.Request, rec *capture.Record) (held int64) {
	body := req.Body()
	rec.RequestSize = int64(len(body))
	n := min(len(body), p.cfg.RecordRequestBody)
	if n <= 0 {
		return 0
	}
	if !p.mem.try(int64(n)) {
		p.mem.skipped.Add(int64(n))
		rec.Error = fmt.Sprintf("request body not recorded: no room in the proxy's memory budget (--max-memory %d bytes)", p.mem.max)
		return 0
	}
	rec.RequestBody = append(rec.RequestBody[:0], body[:n]...)
	if !p.cfg.RecordSecrets {
		if r := redactJSON(rec.RequestBody); len(r) != len(rec.RequestBody) || &r[0] != &rec.RequestBody[0] {
			rec.RequestBody = append(rec.RequestBody[:0], r...)
		}
	}
	return int64(n)
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

// connectionTokens returns the header names a Connection header lists
// (other than close and keep-alive): hop-by-hop too (RFC 9110 7.6.1).
func connectionTokens(conn []byte) []string {
	var out []string
	for _, f := range strings.Split(string(conn), ",") {
		if f = strings.TrimSpace(f); f != "" && !strings.EqualFold(f, "close") && !strings.EqualFold(f, "keep-alive") {
			out = append(out, f)
		}
	}
	return out
}

// hopHeaderBytes is hopHeaders as byte slices (no conversion per call).
var hopHeaderBytes = func() [][]byte {
	out := make([][]byte, len(hopHeaders))
	for i, h := range hopHeaders {
		out[i] = []byte(h)
	}
	return out
}()

// isHop reports whether name is a hop-by-hop header.
func isHop(name []byte) bool {
	for _, h := range hopHeaderBytes {
		if bytes.EqualFold(h, name) {
			return true
		}
	}
	return false
}

// isFraming reports whether name frames a message body (the proxy's own
// connection decides it).
func isFraming(name []byte) bool {
	return bytes.EqualFold(name, []byte("Content-Length")) || bytes.EqualFold(name, []byte("Transfer-Encoding")) || bytes.EqualFold(name, []byte("Trailer"))
}
