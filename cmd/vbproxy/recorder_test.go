package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vbench/vbench/analyze"
	"github.com/vbench/vbench/analyze/render"
	"github.com/vbench/vbench/internal/testserver"
)

// TestRecorderDropsReachTheAnalysis: vbproxy with a one-item capture queue
// under bursts of concurrent streams drops records; the counts it prints at
// exit are stored in the capture, and the analysis of that capture alone
// reports them (summary.csv recorder_dropped, a warning).
func TestRecorderDropsReachTheAnalysis(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the burst test")
	}
	srv, err := testserver.Start(testserver.Config{ITL: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "cap")
	url, stderr, stop := startRun(t, "--upstream", srv.URL, "--listen", "127.0.0.1:0", "--capture", dir,
		"--queue-size", "1", "--flush-interval", "1ms", "--label", "variant=burst")
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	client := &http.Client{Transport: tr}
	const streams = 64
	sent := 0
	bursts := 0
	for ; bursts < 40 && proxyDropped(t, client, url) == 0; bursts++ {
		var wg sync.WaitGroup
		for i := 0; i < streams; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				req, _ := http.NewRequest("POST", url+"/v1/completions", strings.NewReader(`{"model":"m","prompt":"x","max_tokens":3,"stream":true}`))
				req.Header.Set("X-VB-Index", fmt.Sprint(i))
				req.Header.Set("X-VB-Level", "1")
				resp, err := client.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}(sent + i)
		}
		wg.Wait()
		sent += streams
	}
	tr.CloseIdleConnections()
	if code := stop(); code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr)
	}
	m := regexp.MustCompile(`capture \S+ closed: (\d+) records, \d+ samples written, (\d+) dropped, (\d+) lost`).FindStringSubmatch(stderr.String())
	if m == nil {
		t.Fatalf("stderr lacks the capture summary:\n%s", stderr)
	}
	written, _ := strconv.Atoi(m[1])
	dropped, _ := strconv.Atoi(m[2])
	t.Logf("%d bursts of %d streams: %d requests, %d records written, %d dropped", bursts, streams, sent, written, dropped)
	if dropped == 0 {
		t.Fatalf("no record dropped in %d bursts of %d streams through a 1-item queue", bursts, streams)
	}

	out := filepath.Join(tmp, "out")
	var warns strings.Builder
	if err := render.Run(context.Background(), analyze.Config{Captures: []string{dir}, Out: out, Stderr: &warns}); err != nil {
		t.Fatal(err)
	}
	row := summaryRow(t, filepath.Join(out, "summary.csv"))
	if row["recorder_dropped"] != m[2] || row["recorder_lost"] != m[3] || row["captures_unclean"] != "0" {
		t.Errorf("summary.csv recorder_dropped %q recorder_lost %q captures_unclean %q; want %s, %s, 0 (vbproxy's counts)",
			row["recorder_dropped"], row["recorder_lost"], row["captures_unclean"], m[2], m[3])
	}
	if row["count"] != strconv.Itoa(written) {
		t.Errorf("summary.csv count %s; want the %d records written", row["count"], written)
	}
	want := fmt.Sprintf("the recorder dropped %d (queue full)", dropped)
	if !strings.Contains(row["warnings"], want) || !strings.Contains(warns.String(), want) {
		t.Errorf("warnings lack %q:\nsummary: %s\nstderr: %s", want, row["warnings"], warns.String())
	}
	t.Logf("warning: %s", warns.String())
}

// proxyDropped returns the capture writer's dropped count from /vb/stats.
func proxyDropped(t *testing.T, client *http.Client, url string) uint64 {
	t.Helper()
	resp, err := client.Get(url + "/vb/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct {
		Capture *struct {
			Dropped uint64 `json:"dropped"`
		} `json:"capture"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || st.Capture == nil {
		t.Fatalf("/vb/stats: %v, capture %v", err, st.Capture)
	}
	return st.Capture.Dropped
}

// summaryRow reads a one-group summary.csv into column -> cell.
func summaryRow(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil || len(rows) != 2 {
		t.Fatalf("%s: %d rows, %v; want a header and one group", path, len(rows), err)
	}
	row := map[string]string{}
	for i, c := range rows[0] {
		row[c] = rows[1][i]
	}
	if !slices.Contains(rows[0], "recorder_dropped") {
		t.Fatalf("%s: no recorder_dropped column: %v", path, rows[0])
	}
	return row
}
