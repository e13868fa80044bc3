package replay

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/vbench/vbench/metric"
)

// cannedServer answers every request on a connection with the same
// chunked SSE response of n events, as fast as it can, so a benchmark
// measures the client and not the server.
func cannedServer(tb testing.TB, n int) string {
	tb.Helper()
	var body bytes.Buffer
	for i := 0; i < n; i++ {
		ev := "data: {\"choices\":[{\"index\":0,\"text\":\"tok\"}],\"usage\":{\"completion_tokens\":" + strconv.Itoa(i+1) + "}}\n\n"
		body.WriteString(strconv.FormatInt(int64(len(ev)), 16) + "\r\n" + ev + "\r\n")
	}
	done := "data: [DONE]\n\n"
	body.WriteString(strconv.FormatInt(int64(len(done)), 16) + "\r\n" + done + "\r\n0\r\n\r\n")
	resp := append([]byte("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"), body.Bytes()...)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					// Read headers, then the Content-Length body.
					cl := 0
					for {
						line, err := br.ReadString('\n')
						if err != nil {
							return
						}
						if line == "\r\n" {
							break
						}
						if len(line) > 16 && (line[:15] == "Content-Length:" || line[:15] == "content-length:") {
							cl, _ = strconv.Atoi(string(bytes.TrimSpace([]byte(line[15:]))))
						}
					}
					if _, err := br.Discard(cl); err != nil {
						return
					}
					if _, err := c.Write(resp); err != nil {
						return
					}
				}
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// BenchmarkClientNetHTTP and BenchmarkClientFastHTTP compare the two
// candidate clients on one request plus its 16-event stream read to the
// end, against a canned server: the per-request cost that decides how
// many requests/s one core can send and stream.
func BenchmarkClientNetHTTP(b *testing.B) {
	url := cannedServer(b, 16) + "/v1/completions"
	hdr, reqs := testTrace(1, 16)
	cfg := Config{Target: url, Model: "m"}.WithDefaults()
	r := newRunner(&cfg, &hdr, reqs)
	body, _ := Render(&reqs[0], RenderOptions{Model: "m"})
	r.prepare(0, body, url)
	r.base = r.baseHeader()
	ph := &phase{label: "1", rate: 1}
	deadline := []string{"0"}
	res := new(metric.Request)
	b.ReportAllocs()
	for b.Loop() {
		r.send(context.Background(), res, time.Now(), 0, ph, deadline)
		if !res.Completed() || res.ContentEvents != 16 {
			b.Fatalf("%s: %s (%d events)", res.ErrorKind, res.Error, res.ContentEvents)
		}
	}
}

func BenchmarkClientFastHTTP(b *testing.B) {
	url := cannedServer(b, 16) + "/v1/completions"
	_, reqs := testTrace(1, 16)
	body, _ := Render(&reqs[0], RenderOptions{Model: "m"})
	c := &fasthttp.Client{StreamResponseBody: true, MaxConnsPerHost: 1 << 16}
	var s streamer
	res := new(metric.Request)
	b.ReportAllocs()
	for b.Loop() {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.SetRequestURI(url)
		req.Header.SetMethod(http.MethodPost)
		req.Header.SetContentType("application/json")
		req.Header.Set("X-VB-Index", "0")
		req.Header.Set("X-VB-Scheduled", strconv.FormatInt(time.Now().UnixNano(), 10))
		req.Header.Set("X-VB-Sent", strconv.FormatInt(time.Now().UnixNano(), 10))
		req.SetBody(body)
		if err := c.Do(req, resp); err != nil {
			b.Fatal(err)
		}
		var rd io.Reader = resp.BodyStream()
		if rd == nil {
			rd = bytes.NewReader(resp.Body())
		}
		if err := s.read(rd, true, time.Now(), res); err != nil || res.ContentEvents != 16 {
			b.Fatalf("%v (%d events)", err, res.ContentEvents)
		}
		resp.CloseBodyStream()
		fasthttp.ReleaseRequest(req)
		fasthttp.ReleaseResponse(resp)
	}
}
