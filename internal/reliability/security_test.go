package reliability

import (
	"context"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vbench/vbench/bench"
	"github.com/vbench/vbench/capture"
	"github.com/vbench/vbench/internal/testserver"
	"github.com/vbench/vbench/proxy"
)

// TestReliabilityListenLoopback: every Go server listens on loopback
// unless told otherwise, and warns loudly on a public address. (vbtorch,
// the Python server: backends/torch/tests/test_listen_warning.py.)
func TestReliabilityListenLoopback(t *testing.T) {
	t.Parallel() // its own servers, processes and directories
	for _, c := range []string{"vbproxy", "vbsim"} {
		out, _ := exec.Command(bin(t, c), "--help").CombinedOutput()
		if !strings.Contains(string(out), `"127.0.0.1:`) {
			t.Errorf("%s --help: the --listen default is not on 127.0.0.1:\n%s", c, out)
		}
	}
	tests := []struct {
		cmd    string
		args   []string
		public bool
	}{
		{"vbproxy", []string{"--upstream", "127.0.0.1:1", "--capture", "", "--listen", "127.0.0.1:0"}, false},
		{"vbproxy", []string{"--upstream", "127.0.0.1:1", "--capture", "", "--listen", "0.0.0.0:0"}, true},
		{"vbproxy", []string{"--upstream", "127.0.0.1:1", "--capture", "", "--listen", ":0"}, true},
		{"vbsim", []string{"--preset", "tiny", "--port", "0"}, false},
		{"vbsim", []string{"--preset", "tiny", "--listen", "127.0.0.1:0"}, false},
		{"vbsim", []string{"--preset", "tiny", "--listen", "0.0.0.0:0"}, true},
		{"vbsim", []string{"--preset", "tiny", "--listen", ":0"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.cmd+" "+strings.Join(tt.args, " "), func(t *testing.T) {
			cmd := exec.Command(bin(t, tt.cmd), tt.args...)
			errBuf := &lockedBuf{}
			outBuf := &lockedBuf{}
			cmd.Stderr, cmd.Stdout = errBuf, outBuf
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			if !waitFor(10*time.Second, func() bool { return strings.Contains(errBuf.String()+outBuf.String(), "http://") }) {
				t.Fatalf("no startup line: %s %s", outBuf.String(), errBuf.String())
			}
			// The warning is written (to stderr) before the listen line (to
			// stdout), but the two pipes are copied separately: read both
			// once the process has exited.
			cmd.Process.Signal(os.Interrupt)
			stuck := time.AfterFunc(30*time.Second, func() { cmd.Process.Kill() })
			cmd.Wait()
			if !stuck.Stop() {
				t.Errorf("%s did not exit within 30 s of SIGINT", tt.cmd)
			}
			msg := errBuf.String() + outBuf.String()
			warned := strings.Contains(msg, "WARNING")
			if warned != tt.public {
				t.Errorf("public %v but warned %v:\n%s", tt.public, warned, msg)
			}
			if !tt.public && !strings.Contains(msg, "http://127.0.0.1:") {
				t.Errorf("not on loopback:\n%s", msg)
			}
		})
	}
}

// secrets sent through the proxy; none may appear in any file or log.
var secrets = map[string]string{
	"Authorization":       "Bearer sk-vbrel-SECRET-authz",
	"Proxy-Authorization": "Basic vbrel-SECRET-proxyauth",
	"X-Api-Key":           "vbrel-SECRET-xapikey",
	"Api-Key":             "vbrel-SECRET-apikey",
	"Cookie":              "session=vbrel-SECRET-cookie",
	"?api-key=":           "vbrel-SECRET-query1", // in the URL
	"?key=":               "vbrel-SECRET-query2",
}

// TestReliabilitySecretsRedacted: Authorization, Proxy-Authorization,
// X-Api-Key, Api-Key, Cookie and API keys in the query string go through the proxy to the upstream but
// appear in none of: the capture (raw Badger files and the dump), the
// proxy's debug log, export-trace's trace, vbanalyze's outputs (CSV,
// JSON, report, vLLM JSON), vbreplay's output and embedded capture.
func TestReliabilitySecretsRedacted(t *testing.T) {
	t.Parallel() // its own servers, processes and directories
	srv, err := testserver.Start(testserver.Config{ITL: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	var logBuf lockedBuf
	logger := slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	dir := filepath.Join(t.TempDir(), "cap")
	r := startRig(t, srv.URL, dir, proxy.Config{Logger: logger}, capture.Options{Logger: logger})
	client := newClient(t, 1)
	for i := range 5 {
		req, _ := http.NewRequest("POST", r.url+"/v1/completions?model=x&api-key=vbrel-SECRET-query1&key=vbrel-SECRET-query2", strings.NewReader(`{"model":"m","prompt":"hello","max_tokens":3,"stream":true}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-VB-Index", string(rune('0'+i)))
		req.Header.Set("X-VB-Scheduled", "1")
		for k, v := range secrets {
			if !strings.HasPrefix(k, "?") {
				req.Header.Set(k, v)
			}
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	r.stop(t)
	// Forwarded: the upstream got them.
	hs := srv.Headers()
	if len(hs) == 0 || hs[0].Get("Authorization") != secrets["Authorization"] || hs[0].Get("X-Api-Key") != secrets["X-Api-Key"] {
		t.Errorf("secrets must still reach the upstream; it got %v", hs)
	}

	out := t.TempDir()
	run := func(name string, args ...string) string {
		cmd := exec.Command(bin(t, name), args...)
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, b)
		}
		return string(b)
	}
	outputs := map[string]string{
		"proxy log":         logBuf.String(),
		"vbproxy dump":      run("vbproxy", "dump", dir),
		"vbanalyze --dump":  run("vbanalyze", "--dump", dir),
		"vbanalyze (table)": run("vbanalyze", dir, "--out", filepath.Join(out, "analysis"), "--vllm-json", "--format", "json"),
		"export-trace":      run("vbanalyze", "export-trace", dir, "-o", filepath.Join(out, "exported.jsonl")),
	}
	// vbreplay with an Authorization header, recording through its
	// embedded proxy.
	trace := filepath.Join(out, "exported.jsonl")
	rcap := filepath.Join(out, "replay-cap")
	outputs["vbreplay"] = run("vbreplay", trace, "--capture", rcap, "--upstream", srv.URL, "--header", "Authorization: "+secrets["Authorization"],
		"--header", "X-Api-Key: "+secrets["X-Api-Key"], "--json", filepath.Join(out, "replay.json"))
	outputs["vbreplay capture dump"] = run("vbproxy", "dump", rcap)
	files := 0
	for _, root := range []string{dir, out} {
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			b, _ := os.ReadFile(p)
			outputs[p] = string(b)
			files++
			return nil
		})
	}
	for where, text := range outputs {
		for k, v := range secrets {
			// The value, or its distinctive part (a writer may split
			// "Bearer x" or "session=x").
			needle := v[strings.Index(v, "vbrel-"):]
			if strings.Contains(text, needle) {
				t.Errorf("%s holds the %s value %q", where, k, needle)
			}
		}
	}
	if !strings.Contains(outputs["vbproxy dump"], "[REDACTED]") {
		t.Errorf("the dump does not show [REDACTED] headers")
	}
	t.Logf("searched %d outputs (%d files incl. raw Badger files and replay/analysis outputs) for %d secret values: none found", len(outputs), files, len(secrets))
}

// TestReliabilityResultsPathsConfined: model and variant names become one
// path element that stays inside the results directory.
func TestReliabilityResultsPathsConfined(t *testing.T) {
	t.Parallel() // its own servers, processes and directories
	root := t.TempDir()
	names := []string{"../../etc/passwd", "/etc/passwd", "..", ".", "...", "a/../../b", `..\..\windows`, "C:\\x", "~root", "$HOME", "`rm -rf /`",
		"name\x00null", "line\nbreak", "tab\there", "Qwen/Qwen3-8B", strings.Repeat("x", 5000), "ünïcødé/ﬁ", " ", "-rf", "a:b*c?d|e<f>g\"h"}
	seen := map[string]string{}
	for _, n := range names {
		got := bench.SanitizeName(n)
		if got == "" || strings.ContainsAny(got, "/\\\x00\n\t:*?|<>\"$`~ ") || strings.HasPrefix(got, ".") || len(got) > 100 {
			t.Errorf("SanitizeName(%q) = %q: not one plain path element", n, got)
		}
		p := filepath.Join(root, got)
		if rel, err := filepath.Rel(root, p); err != nil || rel != got || filepath.Dir(p) != root {
			t.Errorf("SanitizeName(%q) = %q escapes %s (%s)", n, got, root, p)
		}
		if err := os.MkdirAll(filepath.Join(p, "capture"), 0o700); err != nil {
			t.Errorf("SanitizeName(%q) = %q: cannot be a directory: %v", n, got, err)
		}
		if prev, ok := seen[got]; ok && prev != n {
			t.Logf("note: %q and %q both map to %q", prev, n, got)
		}
		seen[got] = n
	}
	// Nothing was created outside root.
	ents, _ := os.ReadDir(filepath.Dir(root))
	for _, e := range ents {
		if e.Name() != filepath.Base(root) && !strings.HasPrefix(e.Name(), "0") {
			t.Errorf("something was created next to the results dir: %s", e.Name())
		}
	}
}

// TestReliabilityCapturePermissions: a capture directory and every file
// in it are owner-only, also when the directory existed (empty) before.
func TestReliabilityCapturePermissions(t *testing.T) {
	old := syscallUmask(0) // the most permissive umask: modes are the code's
	defer syscallUmask(old)
	for _, pre := range []bool{false, true} {
		dir := filepath.Join(t.TempDir(), "cap")
		if pre {
			os.Mkdir(dir, 0o777)
		}
		srv, err := testserver.Start(testserver.Config{})
		if err != nil {
			t.Fatal(err)
		}
		r := startRig(t, srv.URL, dir, proxy.Config{}, capture.Options{})
		post(context.Background(), newClient(t, 1), r.url, 1, "")
		r.stop(t)
		srv.Close()
		st, _ := os.Stat(dir)
		if st.Mode().Perm()&0o077 != 0 {
			t.Errorf("capture dir (existed before: %v) mode %v; want owner-only", pre, st.Mode().Perm())
		}
		n := 0
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			info, _ := d.Info()
			n++
			if info.Mode().Perm()&0o077 != 0 {
				t.Errorf("%s mode %v; want owner-only", p, info.Mode().Perm())
			}
			return nil
		})
		t.Logf("capture (dir existed before: %v): %d entries, all owner-only", pre, n)
	}
}
