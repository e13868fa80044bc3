package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vbench/vbench/capture"
)

// rawExchange sends req as written over one TCP connection to the proxy
// and returns the response as read with net/http's parser (for a request
// of method) and the raw bytes of the head.
func rawExchange(t *testing.T, proxyURL, req, method string) (*http.Response, string, []byte) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(proxyURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	all, err := io.ReadAll(c) // until the proxy closes (Connection: close)
	if err != nil {
		t.Fatalf("read: %v (got %q)", err, all)
	}
	head, _, _ := strings.Cut(string(all), "\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(string(all))), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("parse %q: %v", all, err)
	}
	body, _ := io.ReadAll(resp.Body)
	return resp, head, body
}

// TestResponseHeadersUntouched: the upstream's Date and Server reach the
// client unchanged, and the proxy adds neither when the upstream sends
// none (it once replaced Date with its own and added Server: vbproxy).
func TestResponseHeadersUntouched(t *testing.T) {
	const date = "Mon, 02 Jan 2006 15:04:05 GMT"
	addr, _ := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/bare" {
			w.Header()["Date"] = nil // net/http adds none
		} else {
			w.Header().Set("Date", date)
			w.Header().Set("Server", "upstream/1.2")
		}
		w.Header().Set("X-Custom", "a")
		w.Header().Add("X-Custom", "b")
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: 1\n\n")
		w.(http.Flusher).Flush()
		io.WriteString(w, "data: [DONE]\n\n")
	})
	_, url := startProxy(t, Config{Upstream: addr}, newMemSink())
	resp, head, body := rawExchange(t, url, "GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "GET")
	if got := resp.Header.Values("Date"); len(got) != 1 || got[0] != date {
		t.Errorf("Date = %q; want the upstream's %q\n%s", got, date, head)
	}
	if got := resp.Header.Values("Server"); len(got) != 1 || got[0] != "upstream/1.2" {
		t.Errorf("Server = %q; want the upstream's\n%s", got, head)
	}
	if got := resp.Header.Values("X-Custom"); len(got) != 2 {
		t.Errorf("X-Custom = %q; want both values", got)
	}
	if string(body) != "data: 1\n\ndata: [DONE]\n\n" {
		t.Errorf("body %q", body)
	}
	resp, head, _ = rawExchange(t, url, "GET /bare HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "GET")
	if resp.Header.Get("Date") != "" || resp.Header.Get("Server") != "" {
		t.Errorf("the proxy added headers the upstream did not send:\n%s", head)
	}
}

// TestHTTP10Client: a client speaking HTTP/1.0 gets a response framed for
// HTTP/1.0 (RFC 9112 6.1: no Transfer-Encoding for a request that does
// not say HTTP/1.1): the body delimited by closing the connection, still
// forwarded as it streams.
func TestHTTP10Client(t *testing.T) {
	addr, _ := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 3 {
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
			time.Sleep(10 * time.Millisecond)
		}
	})
	sink := newMemSink()
	_, url := startProxy(t, Config{Upstream: addr}, sink)
	resp, head, body := rawExchange(t, url, "POST /v1/completions HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}", "POST")
	if strings.Contains(strings.ToLower(head), "transfer-encoding") || resp.ContentLength != -1 || !resp.Close {
		t.Errorf("HTTP/1.0 client got:\n%s\nwant no Transfer-Encoding, no Content-Length and Connection: close", head)
	}
	if string(body) != "data: 0\n\ndata: 1\n\ndata: 2\n\n" {
		t.Errorf("body %q", body)
	}
	if rec := sink.wait(t, 1)[0]; rec.Outcome != capture.OutcomeOK || rec.ResponseSize != int64(len(body)) || len(rec.Chunks) < 3 {
		t.Errorf("record outcome %q size %d chunks %d", rec.Outcome, rec.ResponseSize, len(rec.Chunks))
	}
	// A known length stays a known length.
	addr2, _ := startUpstream(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") })
	_, url2 := startProxy(t, Config{Upstream: addr2}, newMemSink())
	resp, head, body = rawExchange(t, url2, "GET / HTTP/1.0\r\n\r\n", "GET")
	if resp.ContentLength != 5 || string(body) != "hello" || strings.Contains(strings.ToLower(head), "chunked") {
		t.Errorf("HTTP/1.0 fixed-length response:\n%s\nbody %q", head, body)
	}
}

// TestTooLargeChunkedRecord: an over-limit chunked request body is
// recorded under its real method and path (it once said GET / with size
// 0 for POST /echo).
func TestTooLargeChunkedRecord(t *testing.T) {
	addr, _ := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {})
	sink := newMemSink()
	_, url := startProxy(t, Config{Upstream: addr, MaxRequestBody: 1000}, sink)
	var req strings.Builder
	req.WriteString("POST /echo?x=1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nX-Api-Key: s3cret\r\n\r\n")
	for range 5 {
		fmt.Fprintf(&req, "%x\r\n%s\r\n", 500, strings.Repeat("z", 500))
	}
	req.WriteString("0\r\n\r\n")
	resp, _, _ := rawExchange(t, url, req.String(), "POST")
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("status %d; want 413", resp.StatusCode)
	}
	rec := sink.wait(t, 1)[0]
	if rec.Method != "POST" || rec.Path != "/echo?x=1" || rec.Outcome != capture.OutcomeTooLarge || rec.RequestSize <= 1000 {
		t.Errorf("record %s %s outcome %q size %d; want POST /echo?x=1, too_large, size over 1000", rec.Method, rec.Path, rec.Outcome, rec.RequestSize)
	}
	for _, h := range rec.RequestHeaders {
		if h.Value == "s3cret" {
			t.Errorf("secret header recorded in clear: %v", h)
		}
	}
}

// TestDialErrors: an upstream that cannot be connected to is a 502 with
// its own outcome, upstream_connect_error, after --dial-timeout (a dial
// timeout was once a 504 "no response headers within 10m0s").
func TestDialErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := ln.Addr().String()
	ln.Close()
	for _, tc := range []struct {
		name, upstream string
		dial           time.Duration
		reason         string
	}{
		{"refused", refused, 0, "refused"},
		{"timeout", fullBacklog(t), 300 * time.Millisecond, "no connection within 300ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := newMemSink()
			_, url := startProxy(t, Config{Upstream: tc.upstream, DialTimeout: tc.dial}, sink)
			start := time.Now()
			resp, err := newClient(t).Post(url+"/v1/completions", "application/json", strings.NewReader("{}"))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			took := time.Since(start)
			rec := sink.wait(t, 1)[0]
			if resp.StatusCode != http.StatusBadGateway || rec.Outcome != capture.OutcomeUpstreamConnect {
				t.Errorf("status %d outcome %q (%s); want 502 upstream_connect_error", resp.StatusCode, rec.Outcome, body)
			}
			if !strings.Contains(string(body), "connect") || !strings.Contains(rec.Error, tc.reason) {
				t.Errorf("body %q error %q; want them to say the connect failed (%s)", body, rec.Error, tc.reason)
			}
			t.Logf("%s: answered after %v", tc.name, took)
		})
	}
}

// fullBacklog returns the address of a listener whose accept queue is full
// (backlog 0, never accepting): a further connect gets no answer to its
// SYN and waits for the dial timeout, as a burst overflowing a busy
// server's queue does.
func fullBacklog(t *testing.T) string {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, _ := syscall.Getsockname(fd)
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	for range 8 { // fill the queue until a connect hangs
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return addr
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Skip("could not fill a listen backlog here")
	return ""
}
