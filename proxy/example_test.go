package proxy_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/vbench/vbench/capture"
	"github.com/vbench/vbench/proxy"
)

// New puts a recording proxy in front of an upstream: every byte is
// forwarded unchanged, and each finished exchange becomes one record in
// the sink (a capture's writer; nil forwards only). X-VB-* headers are
// recorded as tags and not forwarded.
func ExampleNew() {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "data: {\"choices\":[{\"text\":\"hi\"}]}\n\ndata: [DONE]\n\n")
	}))
	defer upstream.Close()
	dir, _ := os.MkdirTemp("", "proxy-example")
	defer os.RemoveAll(dir)
	st, err := capture.Open(filepath.Join(dir, "capture"), capture.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}

	px, err := proxy.New(proxy.Config{Upstream: upstream.URL, Labels: map[string]string{"variant": "example"}}, st.Writer())
	if err != nil {
		fmt.Println(err)
		return
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go px.Serve(ln)

	req, _ := http.NewRequest("POST", "http://"+ln.Addr().String()+"/v1/completions", strings.NewReader(`{"prompt":"x","stream":true}`))
	req.Header.Set("X-VB-Level", "10")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Printf("%d %q\n", resp.StatusCode, body)

	px.Shutdown(context.Background()) // drain, then cut what is left
	st.Close()                        // flush the records
	ro, _ := capture.Open(filepath.Join(dir, "capture"), capture.Options{ReadOnly: true})
	defer ro.Close()
	ro.Records(func(r *capture.Record) error {
		fmt.Println(r.Path, r.Outcome, r.Tags.Level, r.Labels["variant"], len(r.Chunks) > 0)
		return nil
	})
	// Output:
	// 200 "data: {\"choices\":[{\"text\":\"hi\"}]}\n\ndata: [DONE]\n\n"
	// /v1/completions ok 10 example true
}
