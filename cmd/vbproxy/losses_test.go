package main

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vbench/vbench/internal/testserver"
)

// metric returns a series' value from /vb/metrics text.
func metric(t *testing.T, text, name string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindStringSubmatch(text)
	if m == nil {
		t.Errorf("/vb/metrics has no %s", name)
		return ""
	}
	return m[1]
}

// TestLossesAreVisible: a capture whose file system cannot keep the disk
// reserve loses every record. vbproxy warns at start-up, /vb/metrics has
// series for the lost records and the failed writes and does not count
// them as recorded, and the last line says what the capture holds (it
// once said "20 recorded" when all 20 were lost).
func TestLossesAreVisible(t *testing.T) {
	srv, err := testserver.Start(testserver.Config{ITL: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	dir := filepath.Join(t.TempDir(), "cap")
	url, stderr, stop := startRun(t, "--upstream", srv.URL, "--listen", "127.0.0.1:0", "--capture", dir, "--disk-reserve", "1000000GiB")
	if !strings.Contains(stderr.String(), "smaller than the disk reserve") {
		t.Errorf("no start-up warning about the disk reserve:\n%s", stderr)
	}
	client := &http.Client{Transport: &http.Transport{}}
	for i := range 20 {
		resp, err := client.Post(url+"/v1/completions", "application/json", strings.NewReader(fmt.Sprintf(`{"model":"m","prompt":"%d","max_tokens":2,"stream":true}`, i)))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	var text string
	for deadline := time.Now().Add(20 * time.Second); ; {
		resp, err := client.Get(url + "/vb/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		text = string(b)
		if strings.Contains(text, "vbproxy_records_lost_total 20") || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if v := metric(t, text, "vbproxy_records_lost_total"); v != "20" {
		t.Errorf("vbproxy_records_lost_total %s; want 20", v)
	}
	if v := metric(t, text, "vbproxy_records_total"); v != "0" {
		t.Errorf("vbproxy_records_total %s; want 0 (nothing is stored)", v)
	}
	if v := metric(t, text, "vbproxy_capture_write_errors_total"); v == "0" || v == "" {
		t.Errorf("vbproxy_capture_write_errors_total %s; want the failed writes counted", v)
	}
	client.CloseIdleConnections()
	code := stop()
	out := stderr.String()
	summary := regexp.MustCompile(`(?m)^vbproxy: 20 requests.*$`).FindString(out)
	if !strings.Contains(summary, "20 requests, 0 recorded in the capture, 0 dropped (queue full), 20 lost") || !strings.Contains(summary, "no space left") {
		t.Errorf("summary line %q; want it to say the 20 records were lost, and why\n%s", summary, out)
	}
	if code == 0 || !strings.Contains(out[strings.Index(out, summary):], "records/samples lost") {
		t.Errorf("exit code %d, and after the summary:\n%s\nwant a failure saying 20 were lost", code, out[strings.Index(out, summary):])
	}
}
