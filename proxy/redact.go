package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/url"
	"strings"

	"github.com/vbench/vbench/capture"
)

// Redaction. The proxy forwards every credential unchanged; only what it
// records is redacted (unless Config.RecordSecrets). A name is a
// credential's when it contains, in any case, one of secretWords: the
// header names, query parameter names (percent-decoded: ?Api%2Dkey= is
// api-key) and JSON object keys of the request body that match have their
// values replaced by capture.Redacted. Config.KeepHeaders names headers to
// keep anyway. In a JSON body only string values are replaced (a key such
// as "max_tokens" matches, but its value is a number and a replay needs
// it); objects and arrays under a matching key are searched like the rest.

// secretWords are the substrings that make a name a credential's.
var secretWords = []string{"key", "token", "secret", "auth", "password", "cookie", "signature", "credential"}

// secretExact are further names matched whole: Azure SAS signatures.
var secretExact = []string{"sig"}

// isSecretBytes is isSecretName on bytes, without allocating.
func isSecretBytes(name []byte) bool {
	for _, w := range secretWords {
		if containsFold(name, w) {
			return true
		}
	}
	for _, w := range secretExact {
		if len(name) == len(w) && containsFold(name, w) {
			return true
		}
	}
	return false
}

// containsFold reports whether s contains the lower-case ASCII word w, in
// any case.
func containsFold(s []byte, w string) bool {
	for i := 0; i+len(w) <= len(s); i++ {
		j := 0
		for ; j < len(w); j++ {
			c := s[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != w[j] {
				break
			}
		}
		if j == len(w) {
			return true
		}
	}
	return false
}

// isSecretName reports whether name is a credential's.
func isSecretName(name string) bool {
	l := strings.ToLower(name)
	for _, w := range secretWords {
		if strings.Contains(l, w) {
			return true
		}
	}
	for _, w := range secretExact {
		if l == w {
			return true
		}
	}
	return false
}

// isSecretHeader reports whether a request header's value is not recorded.
func (p *Proxy) isSecretHeader(name []byte) bool {
	if !isSecretBytes(name) {
		return false
	}
	for _, k := range p.cfg.KeepHeaders {
		if strings.EqualFold(k, string(name)) {
			return false
		}
	}
	return true
}

// redactQuery replaces the values of credential query parameters in a
// request URI with capture.Redacted; anything else stays byte-identical.
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
		decoded, err := url.QueryUnescape(name)
		if err != nil {
			decoded = name
		}
		if hasValue && isSecretName(decoded) {
			b.WriteString(name)
			b.WriteByte('=')
			b.WriteString(capture.Redacted)
			continue
		}
		b.WriteString(part)
	}
	return b.String()
}

var redactedJSON = []byte(`"` + capture.Redacted + `"`)

// redactJSON returns body with the string values of credential keys
// replaced by "[REDACTED]", every other byte as it was; body itself when
// it is not a JSON object or array or holds no such value. Every string
// inside an object or array that is a credential key's value is replaced
// too. A body cut short (the record keeps only its first bytes) is
// redacted as far as it goes, and a credential's value cut in the middle
// is replaced to the end.
func redactJSON(body []byte) []byte {
	if !mayHoldSecret(body) {
		return body // the common case, without a decoder's allocations
	}
	return redactJSONFull(body)
}

// redactJSONFull is redactJSON without the fast path.
func redactJSONFull(body []byte) []byte {
	i := 0
	for i < len(body) && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' || body[i] == '\n') {
		i++
	}
	if i == len(body) || (body[i] != '{' && body[i] != '[') {
		return body
	}
	type span struct{ start, end int }
	type frame struct{ obj, wantKey, secret bool }
	var spans []span
	var stack []frame
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	secretKey := false // the value about to come belongs to a credential key
	for {
		before := int(dec.InputOffset())
		tok, err := dec.Token()
		if err != nil {
			inSecret := secretKey || len(stack) > 0 && stack[len(stack)-1].secret
			if inSecret && !errors.Is(err, io.EOF) {
				// A credential's value cut short: from its start to the end.
				if s := valueStart(body, before); s >= 0 {
					spans = append(spans, span{s, len(body)})
				}
			}
			break
		}
		after := int(dec.InputOffset())
		var top *frame
		if len(stack) > 0 {
			top = &stack[len(stack)-1]
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			stack = stack[:len(stack)-1]
			if len(stack) > 0 && stack[len(stack)-1].obj {
				stack[len(stack)-1].wantKey = true
			}
			continue
		}
		if str, ok := tok.(string); ok && top != nil && top.obj && top.wantKey {
			secretKey = isSecretName(str)
			top.wantKey = false
			continue
		}
		// A value.
		inSecret := secretKey || top != nil && top.secret
		secretKey = false
		switch t := tok.(type) {
		case json.Delim: // '{' or '['
			stack = append(stack, frame{obj: t == '{', wantKey: t == '{', secret: inSecret})
			continue
		case string:
			if inSecret {
				if s := valueStart(body, before); s >= 0 {
					spans = append(spans, span{s, after})
				}
			}
		}
		if top != nil && top.obj {
			top.wantKey = true
		}
	}
	if len(spans) == 0 {
		return body
	}
	out := make([]byte, 0, len(body))
	last := 0
	for _, s := range spans {
		out = append(out, body[last:s.start]...)
		out = append(out, redactedJSON...)
		last = s.end
	}
	return append(out, body[last:]...)
}

// valueStart returns the offset of the opening quote of the string value
// that follows off (past any ':', ',' and whitespace), or -1.
func valueStart(body []byte, off int) int {
	for i := off; i < len(body); i++ {
		switch body[i] {
		case ' ', '\t', '\r', '\n', ':', ',':
		case '"':
			return i
		default:
			return -1
		}
	}
	return -1
}

// mayHoldSecret is redactJSON's fast path: it reports whether body may hold
// a credential's value, i.e. has an object key (a string followed by ':')
// whose name contains a secret word (or an escape, which hides the name)
// and whose value is not a number, true, false or null. It errs on the side
// of yes; a body cut short, or anything it cannot follow, is a yes.
func mayHoldSecret(body []byte) bool {
	for i := 0; i < len(body); i++ {
		if body[i] != '"' {
			continue
		}
		start, escaped := i+1, false
		for i++; i < len(body) && body[i] != '"'; i++ {
			if body[i] == '\\' {
				escaped = true
				i++
			}
		}
		if i >= len(body) {
			return true // cut inside a string
		}
		name := body[start:i]
		j := i + 1
		for j < len(body) && (body[j] == ' ' || body[j] == '\t' || body[j] == '\r' || body[j] == '\n') {
			j++
		}
		if j >= len(body) {
			return true
		}
		switch body[j] {
		case ',', '}', ']':
			continue // a value, not a key
		case ':':
		default:
			return true // not JSON as expected: let the decoder judge
		}
		if !escaped && !isSecretBytes(name) {
			continue
		}
		for j++; j < len(body) && (body[j] == ' ' || body[j] == '\t' || body[j] == '\r' || body[j] == '\n'); j++ {
		}
		if j >= len(body) {
			return true
		}
		switch body[j] {
		case '"', '{', '[':
			return true
		}
	}
	return false
}
