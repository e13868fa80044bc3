package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vbench/vbench/capture"
)

// dialFrom connects to the proxy from a given loopback address (another
// client host, as far as the proxy can tell).
func dialFrom(t *testing.T, proxyURL, local string) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	return d.Dial("tcp", strings.TrimPrefix(proxyURL, "http://"))
}

// readAllFrom reads what the proxy sends on c until it closes it (or 20 s).
func readAllFrom(c net.Conn) (string, error) {
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	b, err := io.ReadAll(c)
	return string(b), err
}

// TestClientHeaderTimeout: a client that trickles its request headers is
// cut at the header deadline, however long it would go on (slowloris,
// once held for the 5-min read timeout); one that sends its headers in
// time may take longer for its body (ClientBodyTimeout).
func TestClientHeaderTimeout(t *testing.T) {
	addr, _ := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "got %d", len(b))
	})
	sink := newMemSink()
	_, url := startProxy(t, Config{Upstream: addr, ClientHeaderTimeout: 300 * time.Millisecond}, sink)
	c, err := dialFrom(t, url, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	closed := make(chan struct{})
	go func() {
		readAllFrom(c)
		close(closed)
	}()
	start := time.Now()
	trickle := "GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("a", 200)
trickling:
	for i := range len(trickle) {
		if _, err := c.Write([]byte{trickle[i]}); err != nil {
			break
		}
		select {
		case <-closed:
			break trickling
		case <-time.After(50 * time.Millisecond):
		}
	}
	select {
	case <-closed:
		t.Logf("slow-header connection closed after %v", time.Since(start))
	default:
		t.Fatalf("a client trickling its headers for %v was not cut", time.Since(start))
	}
	if n := len(sink.records()); n != 0 {
		t.Errorf("%d records for a request that never arrived", n)
	}

	// Headers at once, then a body slower than the header deadline.
	c2, err := dialFrom(t, url, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	io.WriteString(c2, "POST /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 30\r\n\r\n")
	for range 3 {
		time.Sleep(200 * time.Millisecond) // the client is slow, on purpose
		io.WriteString(c2, strings.Repeat("b", 10))
	}
	out, _ := readAllFrom(c2)
	if !strings.Contains(out, "200 OK") || !strings.HasSuffix(out, "got 30") {
		t.Errorf("a body sent over 600 ms after timely headers got %q; want it forwarded", out)
	}
}

// TestMaxConnsPerClient: past its per-address limit a client gets a 503
// and its connection closed; another address is still served.
func TestMaxConnsPerClient(t *testing.T) {
	addr, _ := startUpstream(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	_, url := startProxy(t, Config{Upstream: addr, MaxConnsPerClient: 3}, newMemSink())
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range 3 {
		c, err := dialFrom(t, url, "127.0.0.2")
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "GET / HTTP/1.1\r\nHo") // and never more
		held = append(held, c)
	}
	c, err := dialFrom(t, url, "127.0.0.2")
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n") // answered, not preempted
	out, _ := readAllFrom(c)
	c.Close()
	if !strings.HasPrefix(out, "HTTP/1.1 503") || !strings.Contains(out, "--max-conns-per-client") {
		t.Errorf("4th connection from 127.0.0.2 got %q; want a 503 naming --max-conns-per-client", out)
	}
	c, err = dialFrom(t, url, "127.0.0.3")
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	out, _ = readAllFrom(c)
	c.Close()
	if !strings.HasPrefix(out, "HTTP/1.1 200") {
		t.Errorf("another client address got %q while 127.0.0.2 held its limit; want 200", out)
	}
}

// TestDescriptorAdmission: a connection still sending its headers holds
// one descriptor, an exchange two: with room for 10 connections, 8 slow
// ones leave room for a real request (each once took a slot sized for
// two), and while it is forwarded the next connection gets a 503.
func TestDescriptorAdmission(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 1)
	addr, _ := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		io.WriteString(w, "ok")
	})
	p, url := startProxy(t, Config{Upstream: addr, fdCap: 10, MaxConnsPerClient: 10}, newMemSink())
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range 8 {
		c, err := dialFrom(t, url, "127.0.0.2")
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "GET / HTTP/1.1\r\nHo")
		held = append(held, c)
	}
	deadline := time.Now().Add(10 * time.Second)
	for p.adm.open.Load() < 8 && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	c, err := dialFrom(t, url, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	<-arrived // forwarded: 8 slow + this client + its upstream connection
	c2, err := dialFrom(t, url, "127.0.0.3")
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c2, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	out2, _ := readAllFrom(c2)
	c2.Close()
	close(release)
	out, _ := readAllFrom(c)
	if !strings.HasPrefix(out, "HTTP/1.1 200") {
		t.Errorf("a real request with 8 of 10 slots held by slow clients got %q; want 200", out)
	}
	if !strings.HasPrefix(out2, "HTTP/1.1 503") || !strings.Contains(out2, "file descriptor") {
		t.Errorf("a connection past the descriptor limit got %q; want a 503 saying so", out2)
	}
}

// TestMemoryBudgetBodies: request bodies are read into memory reserved
// from the budget and held until the upstream answers (a stale pooled
// connection may need the body again). Past the budget a body waits for
// room (back-pressure) and gets a 503 if none comes in time; a body that
// can never fit gets a 413 at once.
func TestMemoryBudgetBodies(t *testing.T) {
	release := make(chan struct{})
	var arrived sync.WaitGroup
	addr, _ := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/hold" {
			arrived.Done()
			<-release
		}
		fmt.Fprintf(w, "got %d", n)
	})
	sink := newMemSink()
	p, url := startProxy(t, Config{Upstream: addr, MaxMemory: 16 << 20, bodyWait: 200 * time.Millisecond}, sink)
	post := func(path string, size int) (int, string) {
		resp, err := newClient(t).Post(url+path, "application/octet-stream", bytes.NewReader(make([]byte, size)))
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// Two 6-MiB bodies held upstream: 12 MiB (and their 1-MiB record
	// copies) of 16 reserved.
	arrived.Add(2)
	results := make(chan string, 2)
	for range 2 {
		go func() {
			code, body := post("/hold", 6<<20)
			results <- fmt.Sprint(code, " ", body)
		}()
	}
	arrived.Wait()
	if used, _ := p.mem.state(); used < 12<<20 {
		t.Errorf("%d bytes reserved while two 6-MiB bodies wait upstream", used)
	}
	// No room for a third: it waits, then gets a 503.
	code, body := post("/waits", 4<<20)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "within 200ms") {
		t.Errorf("body with no room: %d %q; want 503 after waiting", code, body)
	}
	close(release)
	for range 2 {
		if r := <-results; r != fmt.Sprint(200, " got ", 6<<20) {
			t.Errorf("held request: %s", r)
		}
	}
	// Room comes back: the same body goes through.
	if code, body := post("/again", 4<<20); code != 200 {
		t.Errorf("body after room came back: %d %q", code, body)
	}
	// A body larger than the whole budget can never fit: 413 at once.
	c, err := dialFrom(t, url, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", 20<<20)
	c.Write(make([]byte, 16<<10)) // fasthttp reads up to 8 KiB of body before the handler
	out, _ := readAllFrom(c)
	c.Close()
	if !strings.HasPrefix(out, "HTTP/1.1 413") || !strings.Contains(out, "--max-memory") {
		t.Errorf("20-MiB body with a 16-MiB budget: %q; want 413 naming --max-memory", out)
	}
	recs := sink.wait(t, 5)
	var over, large int
	for _, r := range recs {
		switch r.Outcome {
		case capture.OutcomeOverloaded:
			over++
		case capture.OutcomeTooLarge:
			large++
		}
	}
	if over != 1 || large != 1 {
		t.Errorf("%d proxy_overloaded and %d too_large records; want 1 and 1", over, large)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		used, _ := p.mem.state()
		if used == p.adm.open.Load()*connCost {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes still reserved after every exchange ended, %d connections open", used, p.adm.open.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRecordBodyBudget: when the budget has no room left, a stream is
// still forwarded in full but its record stops copying body bytes, and
// says so.
func TestRecordBodyBudget(t *testing.T) {
	chunk := bytes.Repeat([]byte("z"), 64<<10)
	addr, _ := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		for range 64 { // 4 MiB
			w.Write(chunk)
			w.(http.Flusher).Flush()
		}
	})
	sink := newMemSink()
	p, url := startProxy(t, Config{Upstream: addr, MaxMemory: 16 << 20, RecordResponseBody: 8 << 20}, sink)
	if !p.mem.try(14 << 20) { // another exchange's memory
		t.Fatal("could not take the budget")
	}
	resp, err := newClient(t).Get(url + "/big")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	p.mem.release(14 << 20)
	rec := sink.wait(t, 1)[0]
	if len(got) != 4<<20 || rec.Outcome != capture.OutcomeOK || rec.ResponseSize != 4<<20 {
		t.Errorf("client got %d bytes, record %q size %d; want the whole 4 MiB forwarded and ok", len(got), rec.Outcome, rec.ResponseSize)
	}
	if len(rec.ResponseBody) >= 4<<20 || len(rec.ResponseBody) > 2<<20 || !strings.Contains(rec.Error, "--max-memory") {
		t.Errorf("recorded %d body bytes, error %q; want the copy stopped near the budget and said", len(rec.ResponseBody), rec.Error)
	}
	if st := p.Stats(); st.Memory.RecordBytesSkipped == 0 {
		t.Errorf("skipped record bytes not counted: %+v", st.Memory)
	}
}

// TestTimelineCap: past the cap on timeline entries (capture.MaxChunks),
// further reads are merged into the last entry, so the record reads back.
func TestTimelineCap(t *testing.T) {
	addr, _ := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		for i := range 20 {
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
			time.Sleep(2 * time.Millisecond) // separate reads
		}
	})
	sink := newMemSink()
	_, url := startProxy(t, Config{Upstream: addr, maxChunks: 5}, sink)
	resp, err := newClient(t).Get(url + "/")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	rec := sink.wait(t, 1)[0]
	var sum int64
	for _, c := range rec.Chunks {
		sum += int64(c.Size)
	}
	if len(rec.Chunks) != 5 || sum != int64(len(got)) || !strings.Contains(rec.Error, "merged") {
		t.Errorf("%d entries summing to %d of %d bytes, error %q; want 5 entries, every byte, the merge said", len(rec.Chunks), sum, len(got), rec.Error)
	}
}

// TestRefusedAnsweredNotPreempted: a refused connection gets its 503 in
// answer to its request, never before it (Go's client logged those as
// "Unsolicited response received on idle HTTP channel", and its request
// failed with a reset), and the client reads it as the response.
func TestRefusedAnsweredNotPreempted(t *testing.T) {
	addr, _ := startUpstream(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	_, url := startProxy(t, Config{Upstream: addr, MaxConnsPerClient: 1}, newMemSink())
	held, err := dialFrom(t, url, "127.0.0.2")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	io.WriteString(held, "GET / HTTP/1.1\r\nHo") // and never more: holds 127.0.0.2's one slot

	// A raw client that reads first sees nothing until it asks.
	c, err := dialFrom(t, url, "127.0.0.2")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, _ := c.Read(make([]byte, 1)); n != 0 {
		t.Fatal("the proxy wrote to a refused connection before its request")
	}
	c.SetReadDeadline(time.Time{})
	io.WriteString(c, "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("refused request: %v %v; want a 503 with Retry-After", resp, err)
	}

	// Go's client, from the held address, gets the 503 as its response.
	var logged bytes.Buffer
	log.SetOutput(&logged)
	defer log.SetOutput(os.Stderr)
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	client := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}, Timeout: 10 * time.Second}
	r2, err := client.Post(url+"/v1/completions", "application/json", strings.NewReader(`{"prompt":"x"}`))
	if err != nil {
		t.Fatalf("Go client past the limit: %v; want a 503 response", err)
	}
	r2.Body.Close()
	if r2.StatusCode != 503 || strings.Contains(logged.String(), "Unsolicited") {
		t.Errorf("Go client past the limit: %d, logged %q", r2.StatusCode, logged.String())
	}
}
