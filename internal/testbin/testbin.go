// Package testbin builds the module's commands for tests that run them as
// processes (vbproxy killed with SIGKILL, vbsim under vbbench, the whole
// CLI pipeline). Each test process builds each command at most once, into
// one temporary directory that TestMain removes through Main; go build's
// cache makes the build itself cheap when nothing changed. The binaries
// are built without -race, as users run them.
//
// A test package that uses it has
//
//	func TestMain(m *testing.M) { os.Exit(testbin.Main(m)) }
//
// (or calls Remove after m.Run in its own TestMain) and asks for a command
// by its directory from the module root:
//
//	vbsim := testbin.Path(t, "cmd/vbsim")
package testbin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/vbench/vbench/capture"
)

var (
	mu    sync.Mutex
	dir   string          // the process's binary directory, made on first use
	root  string          // module root (the directory of go.mod)
	built map[string]bool // package directories already built into dir
)

// Build builds the commands in the package directories pkgs (slash paths
// from the module root, e.g. "cmd/vbsim") that this process has not built
// yet, with one go build, and returns the directory that holds them (each
// binary named after the last element of its package path).
func Build(pkgs ...string) (string, error) {
	mu.Lock()
	defer mu.Unlock()
	if dir == "" {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			return "", fmt.Errorf("testbin: go env GOMOD: %w", err)
		}
		gomod := strings.TrimSpace(string(out))
		if gomod == "" || gomod == os.DevNull {
			return "", fmt.Errorf("testbin: not inside a Go module")
		}
		d, err := os.MkdirTemp("", "vbench-testbin-")
		if err != nil {
			return "", fmt.Errorf("testbin: %w", err)
		}
		dir, root, built = d, filepath.Dir(gomod), map[string]bool{}
	}
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	var todo []string
	for _, p := range pkgs {
		p = path.Clean(strings.TrimPrefix(p, "./"))
		if !built[p] && !slices.Contains(todo, p) {
			todo = append(todo, p)
			args = append(args, "./"+p)
		}
	}
	if len(todo) == 0 {
		return dir, nil
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("testbin: go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	for _, p := range todo {
		built[p] = true
	}
	return dir, nil
}

// Dir is Build for a test: it fails t when the build fails.
func Dir(t testing.TB, pkgs ...string) string {
	t.Helper()
	d, err := Build(pkgs...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// Path builds the command in the package directory pkg (as for Build) and
// returns the path of its binary; it fails t when the build fails.
func Path(t testing.TB, pkg string) string {
	t.Helper()
	return filepath.Join(Dir(t, pkg), path.Base(path.Clean(pkg)))
}

// Trace writes a trace to path with vbsynth (built as for Build) and the
// given flags before -o, e.g. "--dataset", "sharegpt", "--requests", "400";
// it fails t when vbsynth does.
func Trace(t testing.TB, path string, flags ...string) {
	t.Helper()
	synth := Path(t, "cmd/vbsynth")
	if out, err := exec.Command(synth, append(slices.Clone(flags), "-o", path)...).CombinedOutput(); err != nil {
		t.Fatalf("vbsynth %v: %v\n%s", flags, err, out)
	}
}

// Remove deletes the binary directory, if any; the next Build makes a new
// one. TestMain calls it after m.Run (Main does).
func Remove() {
	mu.Lock()
	defer mu.Unlock()
	if dir != "" {
		os.RemoveAll(dir)
		dir, built = "", nil
	}
}

// Main runs the tests and removes the binary directory afterwards; it
// returns m.Run's exit code for os.Exit.
func Main(m *testing.M) int {
	defer Remove()
	return m.Run()
}

// ProxyWritten returns capture.written of a running vbproxy's /vb/stats at
// url (its root, e.g. http://127.0.0.1:PORT): the records its capture
// writer has committed. It fails the test when the stats cannot be read.
func ProxyWritten(t testing.TB, url string) uint64 {
	t.Helper()
	resp, err := http.Get(url + "/vb/stats")
	if err != nil {
		t.Fatalf("/vb/stats: %v", err)
	}
	defer resp.Body.Close()
	var st struct {
		Capture *capture.WriterStats `json:"capture"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || st.Capture == nil {
		t.Fatalf("/vb/stats: %v (capture %v)", err, st.Capture)
	}
	return st.Capture.Written
}
