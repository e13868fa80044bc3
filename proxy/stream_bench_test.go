package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/vbench/vbench/capture"
)

// streamEvents is the length of a benchmark stream: vLLM-style chat chunks
// with per-chunk usage, then [DONE].
const streamEvents = 40

// rawUpstream serves every request on its connections with the same
// chunked SSE response of streamEvents events, one write per event, built
// once: the harness itself allocates (almost) nothing per stream, so what
// a benchmark reports per stream is the proxy's (and the capture's) work.
func rawUpstream(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	head := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
	var events [][]byte
	for i := range streamEvents {
		ev := fmt.Sprintf("data: {\"id\":\"chatcmpl-9f1c2a\",\"object\":\"chat.completion.chunk\",\"created\":1764158400,\"model\":\"facebook/opt-13b\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" tok%d\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":{\"prompt_tokens\":90,\"total_tokens\":%d,\"completion_tokens\":%d}}\n\n", i, 91+i, i+1)
		events = append(events, fmt.Appendf(nil, "%x\r\n%s\r\n", len(ev), ev))
	}
	done := "data: [DONE]\n\n"
	events = append(events, fmt.Appendf(nil, "%x\r\n%s\r\n0\r\n\r\n", len(done), done))
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
					n, err := readRequestHead(br)
					if err != nil {
						return
					}
					if _, err := br.Discard(n); err != nil {
						return
					}
					if _, err := c.Write(head); err != nil {
						return
					}
					for _, ev := range events {
						if _, err := c.Write(ev); err != nil {
							return
						}
					}
				}
			}()
		}
	}()
	tb.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

// readRequestHead reads an HTTP/1.1 request head and returns its
// Content-Length.
func readRequestHead(br *bufio.Reader) (int, error) {
	n := 0
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		if len(line) <= 2 {
			return n, nil
		}
		if k := []byte("content-length:"); len(line) > len(k) && bytes.EqualFold(line[:len(k)], k) {
			n, _ = strconv.Atoi(string(bytes.TrimSpace(line[len(k):])))
		}
	}
}

// benchRequest is a chat request as the replayer sends it: tags, auth and
// a ~600-byte body.
func benchRequest(host string) []byte {
	body := `{"model":"facebook/opt-13b","stream":true,"stream_options":{"include_usage":true,"continuous_usage_stats":true},"max_tokens":40,"messages":[{"role":"user","content":"` +
		string(bytes.Repeat([]byte("Tell me about paged attention and KV caches. "), 11)) + `"}]}`
	return fmt.Appendf(nil, "POST /v1/chat/completions HTTP/1.1\r\nHost: %s\r\nUser-Agent: vbreplay\r\nContent-Type: application/json\r\nAuthorization: Bearer sk-test\r\nX-VB-Run: r1\r\nX-VB-Trial: t1\r\nX-VB-Level: 10\r\nX-VB-Index: 17\r\nX-VB-Scheduled: 1764158400000000000\r\nContent-Length: %d\r\n\r\n%s", host, len(body), body)
}

// readChunkedResponse reads one response with a chunked body through the
// final zero-length chunk, into a reused buffer.
func readChunkedResponse(br *bufio.Reader) error {
	for { // head
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 {
			break
		}
	}
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		n, err := strconv.ParseUint(string(bytes.TrimSpace(line)), 16, 32)
		if err != nil {
			return fmt.Errorf("chunk size %q: %w", line, err)
		}
		if _, err := br.Discard(int(n) + 2); err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
	}
}

// runStreams sends n streams over conns keep-alive connections to addr and
// reads each response to its end.
func runStreams(b testing.TB, addr string, n, conns int) {
	req := benchRequest(addr)
	var wg sync.WaitGroup
	var next sync.Mutex
	left := n
	errs := make(chan error, conns)
	for range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			br := bufio.NewReaderSize(c, 16<<10)
			for {
				next.Lock()
				if left == 0 {
					next.Unlock()
					return
				}
				left--
				next.Unlock()
				if _, err := c.Write(req); err != nil {
					errs <- err
					return
				}
				if err := readChunkedResponse(br); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// TestStreamGarbage: a recorded 40-event stream through the proxy into a
// real capture leaves little garbage, because the record's buffers are
// pooled (capture.Record.UsePool) and return once the writer has encoded
// them. Before the pool: 53 KB per stream; with it: about 3 KB. The bound
// leaves room for Badger's and fasthttp's occasional allocations.
func TestStreamGarbage(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation and drops pooled items at random")
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := capture.Open(t.TempDir(), capture.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	up := rawUpstream(t)
	p, url := startProxy(t, Config{Upstream: up, Logger: quiet}, st.Writer())
	addr := url[len("http://"):]
	runStreams(t, addr, 200, 4) // warm pools and connections
	const n = 1000
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	runStreams(t, addr, n, 4)
	runtime.ReadMemStats(&m1)
	perStream := float64(m1.TotalAlloc-m0.TotalAlloc) / n
	t.Logf("%.0f bytes, %.1f allocations per recorded stream; %d GC cycles in %d streams", perStream, float64(m1.Mallocs-m0.Mallocs)/n, m1.NumGC-m0.NumGC, n)
	if perStream > 16<<10 {
		t.Errorf("%.0f bytes allocated per recorded stream; want at most 16 KiB (53 KB before the record buffers were pooled)", perStream)
	}
	// The last record is handed over after the client read its last byte.
	for deadline := time.Now().Add(10 * time.Second); p.Stats().Completed < 1200 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if s := p.Stats(); s.Recorded != 1200 || s.Dropped != 0 {
		t.Errorf("recorded %d, dropped %d; want 1200, 0", s.Recorded, s.Dropped)
	}
}

// BenchmarkStream is one whole recorded exchange per op through a real
// proxy on loopback: a tagged chat request in, a 40-event SSE stream out,
// the record committed to a real capture (rec) or not kept (norec); direct
// is the harness alone. B/op is the process's allocation per stream (the
// harness adds little: see direct); gc/1k-streams counts GC cycles per
// 1,000 streams, the rate at which a stream loop meets a mark phase.
func BenchmarkStream(b *testing.B) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, mode := range []string{"direct", "norec", "rec"} {
		b.Run(mode, func(b *testing.B) {
			up := rawUpstream(b)
			addr := up
			if mode != "direct" {
				var sink Sink
				if mode == "rec" {
					st, err := capture.Open(b.TempDir(), capture.Options{Logger: quiet})
					if err != nil {
						b.Fatal(err)
					}
					b.Cleanup(func() { st.Close() })
					sink = st.Writer()
				}
				_, url := startProxy(b, Config{Upstream: up, Logger: quiet}, sink)
				addr = url[len("http://"):]
			}
			runStreams(b, addr, 200, 8) // warm pools and connections
			var m0, m1 runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&m0)
			b.ReportAllocs()
			b.ResetTimer()
			runStreams(b, addr, b.N, 8)
			b.StopTimer()
			runtime.ReadMemStats(&m1)
			b.ReportMetric(float64(m1.NumGC-m0.NumGC)*1000/float64(b.N), "gc/1k-streams")
		})
	}
}
