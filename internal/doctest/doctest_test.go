package doctest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vbench/vbench/internal/testbin"
)

func TestMain(m *testing.M) { os.Exit(testbin.Main(m)) }

// commands are the packages whose binaries the pages run.
var commands = []string{"cmd/vbsynth", "cmd/vbproxy", "cmd/vbreplay", "cmd/vbanalyze", "cmd/vbbench", "cmd/vbsim"}

// pages are the Markdown files whose shell blocks run, relative to the
// module root: README.md and docs/*.md, plus the benchmark pages (whose
// minutes-long commands are marked, so each says why it is not run).
func pages(t *testing.T, root string) []string {
	t.Helper()
	out := []string{"README.md", "BENCHMARKS.md"}
	for _, pat := range []string{"docs/*.md", "docs/benchmarks/*.md"} {
		m, err := filepath.Glob(filepath.Join(root, pat))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range m {
			rel, _ := filepath.Rel(root, p)
			out = append(out, filepath.ToSlash(rel))
		}
	}
	return out
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// TestREADMEIsShort keeps the README a page, not a manual.
func TestREADMEIsShort(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(moduleRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(b, []byte("\n")); n > 300 {
		t.Errorf("README.md has %d lines; keep it at 300 or fewer and move detail to docs/", n)
	}
}

// TestBlocksAreLabelled: every block names its language, so a reader (and
// this test) knows which are commands; a shell block that is not run says
// why; runnable servers name their address, so the test can map the port.
func TestBlocksAreLabelled(t *testing.T) {
	root := moduleRoot(t)
	for _, page := range pages(t, root) {
		text, err := os.ReadFile(filepath.Join(root, page))
		if err != nil {
			t.Fatal(err)
		}
		blocks, err := Parse(string(text))
		if err != nil {
			t.Errorf("%s: %v", page, err)
			continue
		}
		for _, b := range blocks {
			if b.Lang == "" {
				t.Errorf("%s:%d: a code block without a language: use sh for commands a user runs, text for output", page, b.Line)
			}
			if !b.Shell() || b.SkipReason() != "" {
				continue
			}
			for _, c := range Commands(b) {
				p := Program(c.Text)
				if (p == "vbsim" || p == "vbproxy") && !strings.Contains(c.Text, "--listen") && !strings.Contains(c.Text, "--port") &&
					!strings.Contains(c.Text, "--print-config") && !strings.Contains(c.Text, " dump ") && !strings.Contains(c.Text, "--help") && !strings.Contains(c.Text, "--version") {
					t.Errorf("%s:%d: %q starts a server on its default port; give --listen (or --port) so the docs test can map it to a free one", page, c.Line, c.Text)
				}
			}
		}
	}
}

// TestDocsRun runs every page's shell blocks, in order, as one script in a
// fresh directory, against the binaries of this tree.
func TestDocsRun(t *testing.T) {
	root := moduleRoot(t)
	bin := testbin.Dir(t, commands...)
	if _, err := exec.LookPath("jq"); err != nil {
		t.Fatal("the docs pipe captures into jq; install it (apt-get install jq)")
	}
	var results []pageRun
	for _, page := range pages(t, root) {
		text, err := os.ReadFile(filepath.Join(root, page))
		if err != nil {
			t.Fatal(err)
		}
		blocks, err := Parse(string(text))
		if err != nil {
			t.Fatalf("%s: %v", page, err)
		}
		var run []Block
		for _, b := range blocks {
			if b.Shell() && b.SkipReason() == "" {
				run = append(run, b)
			}
		}
		if len(run) == 0 {
			continue
		}
		// Every page runs at once (they mostly wait on simulated engines;
		// t.Parallel would hold them to -parallel, GOMAXPROCS), each in its
		// own directory; the subtests report them.
		dir := filepath.Join(t.TempDir(), strings.NewReplacer("/", "_", ".", "_").Replace(page))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		setup(t, root, bin, dir)
		demo := fmt.Sprintf("BIN=%s OUT=%s DURATION=1 SPEED=40 RATES='0.5 2 3' %s", shellQuote(bin), shellQuote(filepath.Join(dir, "demo-results")),
			shellQuote(filepath.Join(root, "scripts", "demo.sh")))
		script, err := Script(page, run, NewPorts(freePort), Limits{Demo: demo})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "docs-test.sh"), []byte(script), 0o644); err != nil {
			t.Fatal(err)
		}
		done := make(chan result, 1)
		go func() { done <- runScript(dir, bin, 3*time.Minute) }()
		results = append(results, pageRun{page, done})
	}
	for _, r := range results {
		t.Run(r.page, func(t *testing.T) {
			res := <-r.done
			t.Logf("ran in %v", res.took.Round(time.Millisecond))
			if testing.Verbose() {
				t.Logf("commands and their start times:\n%s", grepLines(res.out, "] $ "))
			}
			if res.err != nil || strings.Contains(res.out, "panic:") || strings.Contains(res.out, "goroutine ") {
				t.Fatalf("%v\n%s", res.err, tail(res.out, 200))
			}
		})
	}
}

type pageRun struct {
	page string
	done <-chan result
}

type result struct {
	out  string
	took time.Duration
	err  error
}

// TestVersion: every command prints its build with --version, exit 0,
// wherever the flag stands.
func TestVersion(t *testing.T) {
	bin := testbin.Dir(t, commands...)
	re := regexp.MustCompile(`^(vb[a-z]+) (v\S+|\(devel\)) \((revision [0-9a-f]{12}(, modified)?|no VCS revision[^;]*); go1\.[0-9.]+ [a-z0-9]+/[a-z0-9]+\)\n$`)
	for _, args := range [][]string{
		{"vbsynth", "--version"}, {"vbsynth", "inspect", "--version"}, {"vbproxy", "--version"}, {"vbproxy", "dump", "--version"},
		{"vbreplay", "--version"}, {"vbanalyze", "--version"}, {"vbanalyze", "export-trace", "--version"},
		{"vbbench", "--version"}, {"vbbench", "run", "--version"}, {"vbsim", "--speed", "2", "--version"},
	} {
		out, err := exec.Command(filepath.Join(bin, args[0]), args[1:]...).CombinedOutput()
		m := re.FindStringSubmatch(string(out))
		if err != nil || m == nil || m[1] != args[0] {
			t.Errorf("%q: %v\n%s\nwant one line: NAME VERSION (revision …; go… os/arch)", args, err, out)
		}
	}
}

// setup puts in dir what the pages' commands expect to find: bin/ (the
// binaries), examples/ (the study files, shortened like the commands), and
// small stand-ins for the data files the examples name (testdata files, and
// an Azure-format CSV).
func setup(t *testing.T, root, bin, dir string) {
	t.Helper()
	if err := os.Symlink(bin, filepath.Join(dir, "bin")); err != nil {
		t.Fatal(err)
	}
	ex := filepath.Join(dir, "examples")
	if err := os.MkdirAll(ex, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(filepath.Join(root, "examples"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(root, "examples", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(e.Name(), ".toml") {
			b = []byte(ShortenStudy(string(b)))
		}
		if err := os.WriteFile(filepath.Join(ex, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The Azure trace's format, 30 minutes of it (the real file is 1 h).
	var csv strings.Builder
	csv.WriteString("TIMESTAMP,ContextTokens,GeneratedTokens\n")
	t0 := time.Date(2023, 11, 16, 18, 15, 0, 0, time.UTC)
	for i := 0; i < 600; i++ {
		fmt.Fprintf(&csv, "%s,%d,%d\n", t0.Add(time.Duration(i)*3*time.Second).Format("2006-01-02 15:04:05.0000000"), 100+i%400, 20+i%150)
	}
	if err := os.WriteFile(filepath.Join(dir, "AzureLLMInferenceTrace_conv.csv"), []byte(csv.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	for src, dst := range map[string]string{
		"synth/testdata/sharegpt_small.json": "ShareGPT_V3_unfiltered_cleaned_split.json",
		"synth/testdata/tiny-tokenizer.json": "tokenizer.json",
	} {
		b, err := os.ReadFile(filepath.Join(root, src))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, dst), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

var (
	reStudyDur   = regexp.MustCompile(`(?m)^(duration|warmup|drain)\s*=\s*"[^"]*"`)
	reStudySpeed = regexp.MustCompile(`(?m)^sim_speed\s*=\s*[0-9.]+`)
)

// ShortenStudy caps a study file's durations like the commands' and runs
// its simulators fast: 1-s levels, 0.5-s warm-up, 5-s drain, sim_speed 100.
func ShortenStudy(s string) string {
	s = reStudyDur.ReplaceAllStringFunc(s, func(m string) string {
		k, _, _ := strings.Cut(m, "=")
		switch strings.TrimSpace(k) {
		case "duration":
			return `duration = "1s"`
		case "warmup":
			return `warmup = "500ms"`
		}
		return `drain = "5s"`
	})
	return reStudySpeed.ReplaceAllString(s, "sim_speed = 100")
}

// Script is the bash script that runs a page's blocks: each command after
// a marker naming its page line, so a failure says where it is.
func Script(page string, blocks []Block, ports *Ports, l Limits) (string, error) {
	var b strings.Builder
	b.WriteString(`set -euo pipefail
__t0=${EPOCHREALTIME/./}
__where=start
trap 'echo "docs test: exit $? at $__where" >&2' ERR
__cleanup() { kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; }
trap __cleanup EXIT
__wait_port() {
	for _ in $(seq 400); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.025
	done
	echo "docs test: nothing listens on port $1 after 10 s ($__where)" >&2
	return 1
}
`)
	for _, blk := range blocks {
		for _, c := range Commands(blk) {
			cmd, wait, err := Rewrite(c.Text, ports, l)
			if err != nil {
				return "", fmt.Errorf("%s:%d: %w", page, c.Line, err)
			}
			where := fmt.Sprintf("%s:%d: %s", page, c.Line, c.Text)
			fmt.Fprintf(&b, "__where=%s\nprintf '[%%5ds] %%s\\n' $(( (${EPOCHREALTIME/./} - __t0) / 1000000 )) %s >&2\n%s\n", shellQuote(where), shellQuote("$ "+cmd), cmd)
			if wait != "" {
				fmt.Fprintf(&b, "__wait_port %s\n", wait)
			}
		}
	}
	return b.String(), nil
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// runScript runs dir/docs-test.sh with bash in its own process group,
// which it kills afterwards (servers left in the background included).
func runScript(dir, bin string, limit time.Duration) result {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "docs-test.sh")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
		"HOME="+dir, "HF_HOME="+filepath.Join(dir, "hf"), "HF_HUB_OFFLINE=1", "NO_COLOR=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// Over time: SIGQUIT first, so the Go commands still running print
		// their goroutines (what they wait for), then SIGKILL.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGQUIT)
		time.Sleep(time.Second)
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("%w (over %v)", ctx.Err(), limit)
	}
	return result{out: out.String(), took: time.Since(start), err: err}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d lines before)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
