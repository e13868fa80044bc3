package reliability

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestReliabilityCLIBadInput runs every command with missing files, files
// of the wrong type, unknown flags, bad values and impossible
// combinations. Each must exit non-zero with a short message on stderr
// that names the problem, and never a panic or stack trace.
func TestReliabilityCLIBadInput(t *testing.T) {
	t.Parallel() // its own servers, processes and directories
	dir := t.TempDir()
	w := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	garbage := w("garbage.bin", "\x00\x01not a trace at all\xff\xfe")
	empty := w("empty.bin", "")
	jsonFile := w("not-a-trace.json", `{"hello": "world"}`)
	jsonl := w("bad.jsonl", "{\"index\":0}\n{broken\n")
	badTOML := w("bad.toml", "[study\nname = ")
	typeTOML := w("type.toml", "name = 5\nrates = \"fast\"\n")
	unknownTOML := w("unknown.toml", "name = \"s\"\nbogus_key = 1\n")
	notCapture := filepath.Join(dir, "plain-dir")
	os.Mkdir(notCapture, 0o700)
	w("plain-dir/file.txt", "hello")
	missing := filepath.Join(dir, "does-not-exist")
	trace := filepath.Join(dir, "ok.bin")
	if out, err := exec.Command(bin(t, "vbsynth"), "--dataset", "sharegpt", "--requests", "20", "-o", trace).CombinedOutput(); err != nil {
		t.Fatalf("vbsynth: %v\n%s", err, out)
	}

	tests := []struct {
		cmd  string
		args []string
		want string // a word the message must contain (case-insensitive); "" = any message
	}{
		// vbsynth
		{"vbsynth", []string{"--bogus-flag"}, "bogus-flag"},
		{"vbsynth", []string{"--dataset", "sharegpt"}, "-o"},
		{"vbsynth", []string{"--dataset", "sharegpt", "--requests", "many", "-o", filepath.Join(dir, "x.bin")}, "requests"},
		{"vbsynth", []string{"--dataset", "sharegpt", "--requests", "-5", "-o", filepath.Join(dir, "x.bin")}, "requests"},
		{"vbsynth", []string{"--dataset", missing, "-o", filepath.Join(dir, "x.bin")}, "does-not-exist"},
		{"vbsynth", []string{"--dataset", garbage, "-o", filepath.Join(dir, "x.bin")}, ""},
		{"vbsynth", []string{"--dataset", "sharegpt", "--mix", jsonFile, "-o", filepath.Join(dir, "x.bin")}, "not both"},
		{"vbsynth", []string{"--mix", garbage, "-o", filepath.Join(dir, "x.bin")}, ""},
		{"vbsynth", []string{"--dataset", "sharegpt", "--tokenizer", garbage, "-o", filepath.Join(dir, "x.bin")}, ""},
		{"vbsynth", []string{"--dataset", "sharegpt", "--endpoint", "telnet", "-o", filepath.Join(dir, "x.bin")}, "endpoint"},
		{"vbsynth", []string{"--dataset", "sharegpt", "--token-range", "9,3", "-o", filepath.Join(dir, "x.bin")}, "token-range"},
		{"vbsynth", []string{"--dataset", "sharegpt", "-o", filepath.Join(missing, "sub", "x.bin")}, ""},
		{"vbsynth", []string{"inspect", missing}, "does-not-exist"},
		{"vbsynth", []string{"inspect", garbage}, ""},
		{"vbsynth", []string{"inspect", empty}, ""},
		{"vbsynth", []string{"inspect", jsonFile}, ""},
		{"vbsynth", []string{"inspect", jsonl}, ""},
		{"vbsynth", []string{"inspect", dir}, "directory"},
		{"vbreplay", []string{dir, "--target", "http://127.0.0.1:1"}, "directory"},
		{"vbsynth", []string{"convert", garbage, filepath.Join(dir, "y.jsonl")}, ""},
		{"vbsynth", []string{"convert", trace}, ""},
		{"vbsynth", []string{"import", "nosuchformat", garbage, "-o", filepath.Join(dir, "z.bin")}, ""},
		{"vbsynth", []string{"import", "azure", garbage, "-o", filepath.Join(dir, "z.bin")}, ""},
		{"vbsynth", []string{"import", "mooncake", jsonFile, "-o", filepath.Join(dir, "z.bin")}, ""},
		{"vbsynth", []string{"stats", "nosuchprofile"}, ""},
		// vbproxy
		{"vbproxy", []string{}, "upstream"},
		{"vbproxy", []string{"--bogus"}, "bogus"},
		{"vbproxy", []string{"--upstream", "ftp://x:1"}, ""},
		{"vbproxy", []string{"--upstream", "127.0.0.1:1", "--max-body", "lots"}, "max-body"},
		{"vbproxy", []string{"--upstream", "127.0.0.1:1", "--idle-timeout", "soon"}, "idle-timeout"},
		{"vbproxy", []string{"--upstream", "127.0.0.1:1", "--listen", "not-an-address"}, "listen"},
		{"vbproxy", []string{"--upstream", "127.0.0.1:1", "--listen", "127.0.0.1:0", "--capture", garbage}, "capture"},
		{"vbproxy", []string{"--upstream", "127.0.0.1:1", "--listen", "127.0.0.1:0", "--capture", notCapture}, "other files"}, // never writes Badger files among a user's
		{"vbproxy", []string{"--upstream", "127.0.0.1:1", "--label", "novalue"}, "label"},
		{"vbproxy", []string{"--upstream", "127.0.0.1:1", "--log-level", "loud"}, "log-level"},
		{"vbproxy", []string{"dump", missing}, ""},
		{"vbproxy", []string{"dump", notCapture}, ""},
		{"vbproxy", []string{"dump", garbage}, ""},
		{"vbproxy", []string{"dump"}, ""},
		// vbreplay
		{"vbreplay", []string{}, ""},
		{"vbreplay", []string{trace}, "target"},
		{"vbreplay", []string{missing, "--target", "http://127.0.0.1:1"}, "does-not-exist"},
		{"vbreplay", []string{garbage, "--target", "http://127.0.0.1:1"}, ""},
		{"vbreplay", []string{empty, "--target", "http://127.0.0.1:1"}, ""},
		{"vbreplay", []string{jsonFile, "--target", "http://127.0.0.1:1"}, ""},
		{"vbreplay", []string{trace, "--target", "http://127.0.0.1:1", "--rate", "fast"}, "rate"},
		{"vbreplay", []string{trace, "--target", "http://127.0.0.1:1", "--rate", "-3"}, "rate"},
		{"vbreplay", []string{trace, "--target", "http://127.0.0.1:1", "--rate", "5", "--rates", "1,2"}, "rate"},
		{"vbreplay", []string{trace, "--target", "http://127.0.0.1:1", "--duration", "-1s"}, "duration"},
		{"vbreplay", []string{trace, "--target", "http://127.0.0.1:1", "--max-concurrency", "-1"}, "max-concurrency"},
		{"vbreplay", []string{trace, "--target", "http://127.0.0.1:1", "--nope"}, "nope"},
		{"vbreplay", []string{trace, "--target", "http://127.0.0.1:1", "--rate", "1"}, ""}, // nothing listens: preflight fails
		// vbanalyze
		{"vbanalyze", []string{}, ""},
		{"vbanalyze", []string{missing}, "does-not-exist"},
		{"vbanalyze", []string{notCapture}, ""},
		{"vbanalyze", []string{garbage}, ""},
		{"vbanalyze", []string{"--wat", notCapture}, "wat"},
		{"vbanalyze", []string{"--slo", "ttft=banana", notCapture}, "slo"},
		{"vbanalyze", []string{"--format", "xml", notCapture}, "format"},
		{"vbanalyze", []string{"export-trace", missing, "-o", filepath.Join(dir, "e.bin")}, ""},
		{"vbanalyze", []string{"export-trace", notCapture, "-o", filepath.Join(dir, "e.bin")}, ""},
		{"vbanalyze", []string{"export-trace", notCapture}, ""},
		// vbbench
		{"vbbench", []string{}, ""},
		{"vbbench", []string{"frobnicate"}, "frobnicate"},
		{"vbbench", []string{"plan"}, ""},
		{"vbbench", []string{"plan", missing}, "does-not-exist"},
		{"vbbench", []string{"plan", badTOML}, ""},
		{"vbbench", []string{"plan", typeTOML}, ""},
		{"vbbench", []string{"plan", unknownTOML}, "bogus_key"},
		{"vbbench", []string{"plan", garbage}, ""},
		{"vbbench", []string{"run", missing}, "does-not-exist"},
		{"vbbench", []string{"run", badTOML}, ""},
		{"vbbench", []string{"run", "--nope", badTOML}, "nope"},
		{"vbbench", []string{"presets", "--nope"}, "nope"},
		// vbsim
		{"vbsim", []string{"--policy", "psychic", "--listen", "127.0.0.1:0"}, "policy"},
		{"vbsim", []string{"--preset", "gpt-9", "--listen", "127.0.0.1:0"}, "preset"},
		{"vbsim", []string{"--kv-tokens", "-1", "--listen", "127.0.0.1:0"}, "kv tokens"},
		{"vbsim", []string{"--speed", "0", "--listen", "127.0.0.1:0"}, "speed"},
		{"vbsim", []string{"--block-size", "many"}, "block-size"},
		{"vbsim", []string{"--listen", "nowhere"}, ""},
		{"vbsim", []string{"--port", "70000"}, "70000"},
		{"vbsim", []string{"--nope"}, "nope"},
		{"vbsim", []string{"extra-arg"}, ""},
	}
	for _, tt := range tests {
		name := tt.cmd + " " + strings.Join(tt.args, " ")
		name = strings.ReplaceAll(name, dir+string(filepath.Separator), "")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin(t, tt.cmd), tt.args...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			cmd.Stdin = strings.NewReader("")
			cmd.Env = append(os.Environ(), "HF_HUB_OFFLINE=1")
			err := cmd.Run()
			msg := stderr.String()
			if ctx.Err() != nil {
				t.Fatalf("still running after 20 s (it should have refused the input); stderr:\n%s", msg)
			}
			if err == nil {
				t.Errorf("exit 0; want a non-zero exit\nstdout: %s\nstderr: %s", tail(stdout.String(), 500), msg)
			}
			for _, bad := range []string{"goroutine ", "panic:", "runtime error", "fatal error", ".go:"} {
				if strings.Contains(msg, bad) {
					t.Errorf("stderr has %q (a crash or a stack trace):\n%s", bad, tail(msg, 2000))
				}
			}
			if strings.TrimSpace(msg) == "" {
				t.Errorf("nothing on stderr: the user is not told what is wrong")
			}
			if tt.want != "" && !strings.Contains(strings.ToLower(msg), strings.ToLower(tt.want)) {
				t.Errorf("message does not mention %q:\n%s", tt.want, msg)
			}
			if n := len(msg); n > 6000 {
				t.Errorf("message is %d bytes long; want a short one", n)
			}
			t.Logf("exit %v: %s", err, firstLines(msg, 3))
		})
	}
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(strings.TrimSpace(s), "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, " | ")
}
