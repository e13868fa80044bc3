// Command proxytool is the load side of bench/scripts/proxy_bench.sh, the
// proxy benchmark: an SSE upstream whose events carry their send time, a
// Go httputil.ReverseProxy peer, and a streaming load generator that
// measures per-event latency (receive time − send time, one host clock).
//
//	proxytool upstream [--listen 127.0.0.1:0]        prints its URL
//	proxytool revproxy --upstream URL [--listen ...]  prints its URL
//	proxytool load --target URL --streams C --itl 50ms --events 40 --duration 10s
//	proxytool idle --target URL --streams C --hold 2s --pid PID[,PID...]
//	proxytool get URL                                 prints the body (curl-free)
//	proxytool freeport                                prints a free loopback port
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: proxytool upstream|revproxy|load|idle|get|freeport [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "upstream":
		err = upstream(os.Args[2:])
	case "revproxy":
		err = revproxy(os.Args[2:])
	case "load":
		err = load(os.Args[2:])
	case "idle":
		err = idle(os.Args[2:])
	case "get":
		err = get(os.Args[2:])
	case "freeport":
		err = freeport()
	default:
		err = fmt.Errorf("unknown subcommand %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "proxytool:", err)
		os.Exit(1)
	}
}

func listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	fmt.Printf("http://%s\n", ln.Addr())
	return ln, nil
}

// upstream serves GET/POST /stream?n=EVENTS&itl=DURATION: n SSE events on an
// absolute schedule (start + i×itl), each carrying "t": its send time in
// Unix ns, then [DONE]. itl=0 sends as fast as the connection takes them.
func upstream(args []string) error {
	fs := flag.NewFlagSet("upstream", flag.ExitOnError)
	addr := fs.String("listen", "127.0.0.1:0", "listen address")
	fs.Parse(args)
	ln, err := listen(*addr)
	if err != nil {
		return err
	}
	h := func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		itl, _ := time.ParseDuration(r.URL.Query().Get("itl"))
		w.Header().Set("Content-Type", "text/event-stream")
		f := w.(http.Flusher)
		f.Flush()
		start := time.Now()
		buf := make([]byte, 0, 256)
		for i := 0; i < n; i++ {
			if itl > 0 {
				if d := time.Until(start.Add(time.Duration(i) * itl)); d > 0 {
					select {
					case <-time.After(d):
					case <-r.Context().Done():
						return
					}
				}
			}
			buf = append(buf[:0], `data: {"id":"cmpl-b","object":"chat.completion.chunk","t":`...)
			buf = strconv.AppendInt(buf, time.Now().UnixNano(), 10)
			buf = append(buf, `,"choices":[{"index":0,"delta":{"content":" tok"},"finish_reason":null}]}`+"\n\n"...)
			if _, err := w.Write(buf); err != nil {
				return
			}
			f.Flush()
		}
		io.WriteString(w, "data: [DONE]\n\n")
	}
	return (&http.Server{Handler: http.HandlerFunc(h)}).Serve(ln)
}

// revproxy is Go's httputil.ReverseProxy with immediate flushing.
func revproxy(args []string) error {
	fs := flag.NewFlagSet("revproxy", flag.ExitOnError)
	addr := fs.String("listen", "127.0.0.1:0", "listen address")
	up := fs.String("upstream", "", "upstream URL")
	fs.Parse(args)
	u, err := url.Parse(*up)
	if err != nil {
		return err
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.FlushInterval = -1
	rp.Transport = &http.Transport{MaxIdleConnsPerHost: 4096, MaxConnsPerHost: 0, DisableCompression: true}
	ln, err := listen(*addr)
	if err != nil {
		return err
	}
	return (&http.Server{Handler: rp}).Serve(ln)
}

// result is what load prints as one JSON line.
type result struct {
	Target   string  `json:"target"`
	Streams  int     `json:"streams"`
	ITL      string  `json:"itl"`
	Events   int64   `json:"events"`
	Seconds  float64 `json:"seconds"`
	EventsPS float64 `json:"events_per_s"`
	Errors   int64   `json:"errors"`
	P50us    float64 `json:"p50_us"`
	P90us    float64 `json:"p90_us"`
	P99us    float64 `json:"p99_us"`
	MaxUs    float64 `json:"max_us"`
}

func load(args []string) error {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	target := fs.String("target", "", "base URL (direct or a proxy)")
	streams := fs.Int("streams", 1, "concurrent streams")
	itl := fs.Duration("itl", 50*time.Millisecond, "gap between events of a stream")
	events := fs.Int("events", 40, "events per stream (a new stream starts when one ends)")
	dur := fs.Duration("duration", 10*time.Second, "measurement length")
	warm := fs.Duration("warmup", 2*time.Second, "discard events before this")
	fs.Parse(args)
	tr := &http.Transport{MaxIdleConnsPerHost: *streams + 10, DisableCompression: true}
	client := &http.Client{Transport: tr}
	ctx, cancel := context.WithTimeout(context.Background(), *warm+*dur)
	defer cancel()
	measureFrom := time.Now().Add(*warm)
	var nerr atomic.Int64
	lat := make([][]float64, *streams)
	var wg sync.WaitGroup
	start := time.Now()
	for s := 0; s < *streams; s++ {
		wg.Add(1)
		go func(s int) {
			defer wg.Done()
			// Spread stream starts over one ITL so events do not align.
			time.Sleep(time.Duration(int64(*itl) * int64(s) / int64(*streams)))
			u := fmt.Sprintf("%s/stream?n=%d&itl=%s", *target, *events, *itl)
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, "POST", u, strings.NewReader(`{"stream":true}`))
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						nerr.Add(1)
						time.Sleep(10 * time.Millisecond)
					}
					continue
				}
				br := bufio.NewReaderSize(resp.Body, 4096)
				for {
					line, err := br.ReadSlice('\n')
					if err != nil {
						break
					}
					now := time.Now()
					i := strings.Index(string(line), `"t":`)
					if i < 0 {
						continue
					}
					j := i + 4
					k := j
					for k < len(line) && line[k] >= '0' && line[k] <= '9' {
						k++
					}
					t, _ := strconv.ParseInt(string(line[j:k]), 10, 64)
					if now.After(measureFrom) {
						lat[s] = append(lat[s], float64(now.UnixNano()-t)/1e3)
					}
				}
				resp.Body.Close()
			}
		}(s)
	}
	wg.Wait()
	elapsed := time.Since(start) - *warm
	var all []float64
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Float64s(all)
	r := result{Target: *target, Streams: *streams, ITL: itl.String(), Events: int64(len(all)), Seconds: elapsed.Seconds(),
		EventsPS: float64(len(all)) / elapsed.Seconds(), Errors: nerr.Load()}
	if len(all) > 0 {
		r.P50us, r.P90us, r.P99us, r.MaxUs = pct(all, 0.5), pct(all, 0.9), pct(all, 0.99), all[len(all)-1]
	}
	return json.NewEncoder(os.Stdout).Encode(r)
}

// pct is the percentile by linear interpolation between closest ranks.
func pct(s []float64, q float64) float64 {
	pos := q * float64(len(s)-1)
	i := int(pos)
	if i+1 >= len(s) {
		return s[len(s)-1]
	}
	return s[i] + (s[i+1]-s[i])*(pos-float64(i))
}

// idle opens C streams that stay open (one event, then a long gap) and
// prints the RSS of process PID before and after, per stream.
func idle(args []string) error {
	fs := flag.NewFlagSet("idle", flag.ExitOnError)
	target := fs.String("target", "", "base URL")
	streams := fs.Int("streams", 1000, "streams to hold open")
	hold := fs.Duration("hold", 2*time.Second, "how long to hold them after all are open")
	pid := fs.String("pid", "", "processes whose RSS is measured (comma-separated; summed)")
	fs.Parse(args)
	before := rss(*pid)
	tr := &http.Transport{MaxIdleConnsPerHost: *streams + 10, DisableCompression: true}
	client := &http.Client{Transport: tr}
	var resps []*http.Response
	failures := 0
	for i := 0; i < *streams; i++ {
		resp, err := client.Post(*target+"/stream?n=2&itl=10s", "application/json", strings.NewReader(`{}`))
		if err == nil {
			_, err = bufio.NewReader(resp.Body).ReadString('\n')
			if err != nil {
				resp.Body.Close()
			}
		}
		if err != nil {
			// Counted and retried: the figure is about memory, not errors.
			failures++
			if failures > *streams/10 {
				return fmt.Errorf("stream %d: %w (%d failures)", i, err, failures)
			}
			i--
			continue
		}
		resps = append(resps, resp)
	}
	time.Sleep(*hold)
	after := rss(*pid)
	for _, r := range resps {
		r.Body.Close()
	}
	fmt.Printf("{\"target\":%q,\"streams\":%d,\"rss_before_kib\":%d,\"rss_after_kib\":%d,\"kib_per_stream\":%.1f,\"open_failures\":%d}\n",
		*target, *streams, before, after, float64(after-before)/float64(*streams), failures)
	return nil
}

func rss(pids string) int64 {
	var total int64
	for _, p := range strings.Split(pids, ",") {
		total += rss1(strings.TrimSpace(p))
	}
	return total
}

func rss1(pid string) int64 {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}

// get prints the body of GET URL (the benchmark reads /vb/stats with it,
// so the script needs no curl).
func get(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: proxytool get URL")
	}
	resp, err := http.Get(args[0])
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", args[0], resp.Status)
	}
	_, err = io.Copy(os.Stdout, resp.Body)
	return err
}

// freeport prints a loopback TCP port that was free a moment ago (for
// nginx's listen directive).
func freeport() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	fmt.Println(ln.Addr().(*net.TCPAddr).Port)
	return nil
}
