package offline

import (
	"archive/zip"
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// fixedTime is a modification time no build uses, to show that mtimes do not reach the archive.
var fixedTime = time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)

// run runs a command with extra environment and returns its stdout, stderr and exit code.
func run(t *testing.T, dir string, env []string, name string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("%s %v: %v", name, args, err)
		}
		code = ee.ExitCode()
	}
	return out.String(), errb.String(), code
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func writeFile(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
}

// fakeTree writes a small site tree: a fake vllm package of the given version with
// the modules host.sh's check imports, an incompressible payload (so the archive splits
// into several parts), a console script with a build-machine #! line, and a .pyc that
// the bundle must drop.
func fakeTree(t *testing.T, dir, version string) {
	t.Helper()
	big := make([]byte, 96<<10)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "vllm", "_C.abi3.so"), big, 0o755)
	writeFile(t, filepath.Join(dir, "vllm", "__init__.py"), []byte("__version__ = '"+version+"'\n"), 0o644)
	for _, m := range []string{"vllm/entrypoints/__init__.py", "vllm/entrypoints/openai/__init__.py",
		"vllm/entrypoints/openai/api_server.py", "xgrammar/__init__.py", "llguidance/__init__.py", "outlines_core/__init__.py"} {
		writeFile(t, filepath.Join(dir, m), nil, 0o644)
	}
	writeFile(t, filepath.Join(dir, "vllm", "__pycache__", "x.cpython-312.pyc"), []byte("junk"), 0o644)
	writeFile(t, filepath.Join(dir, "bin", "vllm"), []byte("#!/root/.pyenv/versions/3.12.1/bin/python3.12\nimport vllm\n"), 0o755)
}

// fakeWheel writes a minimal pure-Python wheel that pip installs with --no-deps.
func fakeWheel(t *testing.T, path string) {
	t.Helper()
	var buf bytes.Buffer
	z := zip.NewWriter(&buf)
	files := map[string]string{
		"vbfake/__init__.py":                 "VALUE = 42\n",
		"vbfake-1.0.dist-info/METADATA":      "Metadata-Version: 2.1\nName: vbfake\nVersion: 1.0\n",
		"vbfake-1.0.dist-info/WHEEL":         "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
		"vbfake-1.0.dist-info/top_level.txt": "vbfake\n",
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	var record strings.Builder
	for _, n := range names {
		w, err := z.Create(n)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(files[n])); err != nil {
			t.Fatal(err)
		}
		record.WriteString(n + ",,\n")
	}
	record.WriteString("vbfake-1.0.dist-info/RECORD,,\n")
	w, err := z.Create("vbfake-1.0.dist-info/RECORD")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(record.String())); err != nil {
		t.Fatal(err)
	}
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, buf.Bytes(), 0o644)
}

type bundle struct {
	out   string   // the bundle's output folder
	calls []string // its call folders, in order
}

// buildBundle runs offline/bundle.sh on tree with small parts and returns its call folders.
func buildBundle(t *testing.T, tree, out string, extra ...string) bundle {
	t.Helper()
	return buildWith(t, []string{"bash", "offline/bundle.sh", "9.9.9"}, tree, out, extra...)
}

// buildWith runs a bundle build command (bundle.sh or make offline-bundle) on tree.
func buildWith(t *testing.T, cmd []string, tree, out string, extra ...string) bundle {
	t.Helper()
	env := append([]string{"TREE=" + tree, "OUT=" + out, "PART_SIZE=32K", "CALL_MIB=1", "XZ_LEVEL=0", "THREADS=1"}, extra...)
	_, stderr, code := run(t, repoRoot(t), env, cmd[0], cmd[1:]...)
	if code != 0 {
		t.Fatalf("%v exit %d: %s", cmd, code, stderr)
	}
	calls, err := filepath.Glob(filepath.Join(out, "call*"))
	if err != nil || len(calls) == 0 {
		t.Fatalf("no call folders in %s: %v", out, err)
	}
	slices.SortFunc(calls, cmpNatural)
	return bundle{out: out, calls: calls}
}

// cmpNatural orders call2 before call10.
func cmpNatural(a, b string) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	return strings.Compare(a, b)
}

// host runs offline/host.sh install on call folders, without the import check.
func host(t *testing.T, scratch string, args ...string) (string, string, int) {
	t.Helper()
	return hostCheck(t, scratch, append([]string{"--no-check"}, args...)...)
}

// hostCheck runs offline/host.sh install, checking the installed tree with python3.
func hostCheck(t *testing.T, scratch string, args ...string) (string, string, int) {
	t.Helper()
	all := append([]string{"offline/host.sh", "install", "--scratch", scratch}, args...)
	return run(t, repoRoot(t), []string{"PYTHON=python3"}, "bash", all...)
}

// treeFiles maps each regular file under dir to its content.
func treeFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		m[rel] = string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// fakeBundle builds a bundle of a fake 9.9.9 tree with the model "tiny" and
// a fake wheel into tmp/out, in 32-KiB parts, and returns it with the tree.
func fakeBundle(t *testing.T, tmp string) (bundle, string) {
	t.Helper()
	tree := filepath.Join(tmp, "tree")
	fakeTree(t, tree, "9.9.9")
	models := filepath.Join(tmp, "models")
	writeFile(t, filepath.Join(models, "tiny", "config.json"), []byte(`{"vocab_size": 512}`), 0o644)
	wheel := filepath.Join(tmp, "vbfake-1.0-py3-none-any.whl")
	fakeWheel(t, wheel)
	return buildBundle(t, tree, filepath.Join(tmp, "out"), "MODELS=tiny", "MODELS_DIR="+models, "EXTRA_WHEELS="+wheel), tree
}

func TestBundleAssemblesAcrossCalls(t *testing.T) {
	tmp := t.TempDir()
	b, tree := fakeBundle(t, tmp)
	if len(b.calls) < 3 {
		t.Fatalf("want at least 3 call folders for a ~100 KiB archive in 32 KiB parts, got %v", b.calls)
	}
	for _, c := range b.calls {
		for _, f := range []string{"bundle.env", "SHA256SUMS"} {
			if _, err := os.Stat(filepath.Join(c, f)); err != nil {
				t.Fatalf("%s lacks %s", c, f)
			}
		}
	}
	last := b.calls[len(b.calls)-1]
	for _, f := range []string{"model-tiny.tar.xz", "vbfake-1.0-py3-none-any.whl"} {
		if _, err := os.Stat(filepath.Join(last, f)); err != nil {
			t.Fatalf("the last call folder lacks %s", f)
		}
	}

	scratch := filepath.Join(tmp, "scratch")
	// Call 1: one part arrives; the rest is named as missing, with its call folder.
	out, stderr, code := host(t, scratch, b.calls[0])
	if code != 3 || out != "" {
		t.Fatalf("after call 1: exit %d, stdout %q, want 3 and no environment; stderr %s", code, out, stderr)
	}
	for _, want := range []string{"INCOMPLETE", "still missing", "vllm-9.9.9.tar.xz.part01 (in call2)", "model-tiny.tar.xz"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("after call 1, stderr lacks %q:\n%s", want, stderr)
		}
	}

	// Call 2 arrives corrupted: a clear error, and the bad copy is not kept.
	bad := filepath.Join(tmp, "badcall2")
	if err := os.CopyFS(bad, os.DirFS(b.calls[1])); err != nil {
		t.Fatal(err)
	}
	part := filepath.Join(bad, "vllm-9.9.9.tar.xz.part01")
	data, err := os.ReadFile(part)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	writeFile(t, part, data, 0o644)
	_, stderr, code = host(t, scratch, bad)
	if code != 1 || !strings.Contains(stderr, "vllm-9.9.9.tar.xz.part01 is corrupt") || !strings.Contains(stderr, "carry badcall2 again") {
		t.Fatalf("corrupt part: exit %d, stderr %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(scratch, "vllm-9.9.9", "incoming", "vllm-9.9.9.tar.xz.part01")); err == nil {
		t.Fatal("the corrupt part was kept in the scratch folder")
	}

	// The other calls, one at a time; only the last one installs, and checks that the
	// installed vllm imports and has the bundle's version.
	for i, c := range b.calls[1:] {
		out, stderr, code = hostCheck(t, scratch, c)
		if i < len(b.calls)-2 {
			if code != 3 {
				t.Fatalf("after call %d: exit %d, want 3; stderr %s", i+2, code, stderr)
			}
			continue
		}
		if code != 0 || !strings.Contains(stderr, "vllm 9.9.9 and its OpenAI entrypoint import (check: ok)") {
			t.Fatalf("after the last call: exit %d; stderr %s", code, stderr)
		}
	}
	site := filepath.Join(scratch, "vllm-9.9.9", "site")
	if !strings.Contains(out, "export PYTHONPATH="+site) || !strings.Contains(out, "export PATH="+site+"/bin:$PATH") ||
		!strings.Contains(out, "VLLM_USE_FLASHINFER_SAMPLER=0") || !strings.Contains(out, "HF_HUB_OFFLINE=1") {
		t.Fatalf("environment printed:\n%s", out)
	}
	got := treeFiles(t, site)
	want := treeFiles(t, tree)
	delete(want, filepath.Join("vllm", "__pycache__", "x.cpython-312.pyc"))
	want[filepath.Join("bin", "vllm")] = "#!/usr/bin/env python3\nimport vllm\n"
	for name, content := range want {
		if got[name] != content {
			t.Errorf("site file %s differs from the tree's (len %d, want %d)", name, len(got[name]), len(content))
		}
	}
	if got[filepath.Join("vbfake", "__init__.py")] != "VALUE = 42\n" {
		t.Errorf("the extra wheel was not installed into the site tree")
	}
	if _, ok := got[filepath.Join("vllm", "__pycache__", "x.cpython-312.pyc")]; ok {
		t.Errorf("a .pyc reached the site tree")
	}
	if _, err := os.Stat(filepath.Join(scratch, "models", "tiny", "config.json")); err != nil {
		t.Errorf("model not unpacked: %v", err)
	}

	// Idempotent: running again with every call folder changes nothing.
	out2, stderr, code := hostCheck(t, scratch, b.calls...)
	if code != 0 || out2 != out || !strings.Contains(stderr, "already installed") || strings.Contains(stderr, "check: ok") {
		t.Fatalf("second install: exit %d, stdout %q (want %q), stderr %s", code, out2, out, stderr)
	}
	envOut, stderr, code := run(t, repoRoot(t), nil, "bash", "offline/host.sh", "env", "--scratch", scratch)
	if code != 0 || envOut != out {
		t.Fatalf("host.sh env: exit %d, %q, want %q; %s", code, envOut, out, stderr)
	}
	// A later call that carries no call folder: the installed bundle's environment.
	empty := filepath.Join(tmp, "emptycheckout")
	writeFile(t, filepath.Join(empty, "offline", "host.sh"), mustRead(t, filepath.Join(repoRoot(t), "offline", "host.sh")), 0o755)
	envOut, stderr, code = run(t, empty, nil, "bash", "offline/host.sh", "install", "--scratch", scratch)
	if code != 0 || envOut != out || !strings.Contains(stderr, "no call folder carried; vllm-9.9.9 is installed already") {
		t.Fatalf("install with nothing carried: exit %d, %q, want %q; %s", code, envOut, out, stderr)
	}

	// A part of another build of the same bundle name: the scratch folder starts over.
	// Its vllm reports another version: once complete, the check fails and says so.
	tree2 := filepath.Join(tmp, "tree2")
	fakeTree(t, tree2, "1.0")
	b2 := buildBundle(t, tree2, filepath.Join(tmp, "out2"))
	_, stderr, code = host(t, scratch, b2.calls[0])
	if code != 3 || !strings.Contains(stderr, "another build") {
		t.Fatalf("part of another build: exit %d, stderr %s", code, stderr)
	}
	_, stderr, code = hostCheck(t, scratch, b2.calls...)
	if code != 1 || !strings.Contains(stderr, "'import vllm' with this environment gave '1.0', want 9.9.9") {
		t.Fatalf("wrong vllm version: exit %d, stderr %s", code, stderr)
	}
	_, stderr, code = host(t, scratch, b.calls[0], b2.calls[1])
	if code != 1 || !strings.Contains(stderr, "two different builds") {
		t.Fatalf("call folders of two builds in one run: exit %d, stderr %s", code, stderr)
	}
}

func TestBundleIsDeterministic(t *testing.T) {
	tmp := t.TempDir()
	tree := filepath.Join(tmp, "tree")
	fakeTree(t, tree, "9.9.9")
	a := buildBundle(t, tree, filepath.Join(tmp, "a"))
	// Touch a file: mtimes must not reach the archive.
	if err := os.Chtimes(filepath.Join(tree, "vllm", "__init__.py"), fixedTime, fixedTime); err != nil {
		t.Fatal(err)
	}
	// The second build goes through the make target users run (MODELS= : no model folders).
	b := buildWith(t, []string{"make", "-s", "offline-bundle", "VLLM=9.9.9", "MODELS="}, tree, filepath.Join(tmp, "b"))
	for _, f := range []string{"listing.txt", "SHA256SUMS"} {
		x, err1 := os.ReadFile(filepath.Join(a.out, f))
		y, err2 := os.ReadFile(filepath.Join(b.out, f))
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if !bytes.Equal(x, y) {
			t.Errorf("%s differs between two builds:\n%s\n---\n%s", f, x, y)
		}
	}
	listing, _ := os.ReadFile(filepath.Join(a.out, "listing.txt"))
	if !strings.Contains(string(listing), "./vllm/_C.abi3.so") || strings.Contains(string(listing), ".pyc") {
		t.Errorf("listing:\n%s", listing)
	}
}

func TestHostRefusesBadInput(t *testing.T) {
	tmp := t.TempDir()
	scratch := filepath.Join(tmp, "scratch")
	// A checkout with host.sh alone: the default call folders (.bundle/*/call*) of the
	// real checkout must not leak in.
	checkout := filepath.Join(tmp, "checkout")
	writeFile(t, filepath.Join(checkout, "offline", "host.sh"), mustRead(t, filepath.Join(repoRoot(t), "offline", "host.sh")), 0o755)
	notCall := filepath.Join(tmp, "notacall")
	writeFile(t, filepath.Join(notCall, "x"), []byte("x"), 0o644)
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"missing folder", []string{filepath.Join(tmp, "nope")}, 1, "is not a folder"},
		{"not a call folder", []string{notCall}, 1, "not a call folder of offline/bundle.sh"},
		{"unknown option", []string{"--frobnicate"}, 2, "unknown option --frobnicate"},
		{"nothing carried, nothing installed", nil, 1, "no call folder found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			all := append([]string{"offline/host.sh", "install", "--no-check", "--scratch", scratch}, tc.args...)
			_, stderr, code := run(t, checkout, nil, "bash", all...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, stderr, tc.code, tc.want)
			}
		})
	}
	_, stderr, code := run(t, repoRoot(t), nil, "bash", "offline/host.sh", "env", "--scratch", scratch)
	if code != 1 || !strings.Contains(stderr, "no bundle installed") {
		t.Fatalf("env before install: exit %d, %s", code, stderr)
	}
	_, stderr, code = run(t, repoRoot(t), nil, "bash", "offline/bundle.sh", "latest")
	if code != 2 || !strings.Contains(stderr, "bad vLLM version 'latest'") {
		t.Fatalf("bundle.sh latest: exit %d, %s", code, stderr)
	}
	_, stderr, code = run(t, repoRoot(t), []string{"MOE=yes"}, "bash", "offline/bundle.sh", "0.26.0")
	if code != 2 || !strings.Contains(stderr, "MOE must be 0 or 1") {
		t.Fatalf("bundle.sh MOE=yes: exit %d, %s", code, stderr)
	}
}

// pinned reads the vllm==X pin of pyproject.toml's vllm extra.
func pinned(t *testing.T) string {
	t.Helper()
	py, err := os.ReadFile(filepath.Join(repoRoot(t), "pyproject.toml"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^vllm = \[\s*"vllm==([0-9][0-9a-z.]*)",\s*\]`).FindSubmatch(py)
	if m == nil {
		t.Fatal(`pyproject.toml's vllm extra is not one exact pin ("vllm==X.Y.Z")`)
	}
	return string(m[1])
}

func TestOnlineAndOfflinePinTheSameVLLM(t *testing.T) {
	ver := pinned(t)
	lock, err := os.ReadFile(filepath.Join(repoRoot(t), "offline", "vllm-"+ver+".lock"))
	if err != nil {
		t.Fatalf("pyproject.toml pins vllm==%s but there is no offline lock for it: %v", ver, err)
	}
	if !regexp.MustCompile(`(?m)^vllm==` + regexp.QuoteMeta(ver) + `$`).Match(lock) {
		t.Errorf("offline/vllm-%s.lock does not pin vllm==%s", ver, ver)
	}
	// The lock leaves out what the host image already has (offline/image-packages.txt).
	img, err := os.ReadFile(filepath.Join(repoRoot(t), "offline", "image-packages.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range strings.Fields(string(img)) {
		if strings.HasPrefix(name, "#") || !regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`).MatchString(name) {
			continue
		}
		if regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `==`).Match(lock) {
			t.Errorf("the lock carries %s, which the host image already has", name)
		}
	}
	for _, name := range []string{"xgrammar==0.2.3", "apache-tvm-ffi==0.1.10", "llguidance==1.7.6", "outlines-core==0.2.14"} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `$`).Match(lock) {
			t.Errorf("the lock lacks %s, which vLLM imports at start-up", name)
		}
	}
}

func TestSetupGPUArgs(t *testing.T) {
	ver := pinned(t)
	bin := t.TempDir()
	argv := filepath.Join(bin, "argv")
	writeFile(t, filepath.Join(bin, "uv"), []byte("#!/bin/sh\nprintf '%s\\n' \"$*\" > "+argv+"\n"), 0o755)
	path := "PATH=" + bin + string(os.PathListSeparator) + os.Getenv("PATH")
	for _, tc := range []struct {
		vars []string
		want string // uv's argv, or the error text
		ok   bool
	}{
		{nil, "sync --extra torch", true},
		{[]string{"VLLM=1"}, "sync --extra torch --extra vllm", true},
		{[]string{"VLLM=" + ver}, "sync --extra torch --extra vllm", true},
		{[]string{"VLLM=0"}, "sync --extra torch", true},
		{[]string{"FLASH=1"}, "sync --extra torch --extra flash", true},
		{[]string{"VLLM=1", "FLASH=1"}, "sync --extra torch --extra vllm --extra flash", true},
		{[]string{"VLLM=0.1.0"}, "VLLM=0.1.0, but this checkout pins vllm==" + ver, false},
		{[]string{"FLASH=yes"}, "FLASH must be 0 or 1", false},
	} {
		t.Run(strings.Join(tc.vars, "_"), func(t *testing.T) {
			os.Remove(argv)
			args := append([]string{"-s", "setup-gpu"}, tc.vars...)
			_, stderr, code := run(t, repoRoot(t), []string{path}, "make", args...)
			if !tc.ok {
				if code == 0 || !strings.Contains(stderr, tc.want) {
					t.Fatalf("exit %d, stderr %q; want failure with %q", code, stderr, tc.want)
				}
				if _, err := os.Stat(argv); err == nil {
					t.Fatal("uv ran despite the bad argument")
				}
				return
			}
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			got, err := os.ReadFile(argv)
			if err != nil {
				t.Fatalf("fake uv not run: %v", err)
			}
			if strings.TrimSpace(string(got)) != tc.want {
				t.Fatalf("uv %q, want %q", strings.TrimSpace(string(got)), tc.want)
			}
		})
	}
	// No uv at all: a clear message, not "command not found".
	_, stderr, code := run(t, repoRoot(t), []string{"PATH=/usr/bin:/bin", "UV=/nonexistent/uv"}, "make", "-s", "setup-gpu", "VLLM=1")
	if code == 0 || !strings.Contains(stderr, "uv not found: install it with 'pip install uv'") {
		t.Fatalf("without uv: exit %d, %s", code, stderr)
	}
}

func TestPruneListIsWellFormed(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "offline", "prune.txt"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for i, line := range strings.Split(string(data), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 3 || f[0] == "" || (f[1] != "-" && f[1] != "MOE") || len(f[2]) < 10 {
			t.Errorf("prune.txt line %d: want glob<TAB>-|MOE<TAB>reason, got %q", i+1, line)
		}
		if strings.Contains(f[0], "..") || strings.HasPrefix(f[0], "/") {
			t.Errorf("prune.txt line %d: path %q must stay inside the site tree", i+1, f[0])
		}
		n++
	}
	if n == 0 {
		t.Fatal("prune.txt lists nothing")
	}
}

// TestBundleResplit: RESPLIT=1 lays a built bundle out again in smaller
// parts without rebuilding it: the same archive and extras (checked against
// its SHA256SUMS), more call folders, each under CALL_MIB, the same models
// and wheels in bundle.env, and host.sh installs the same tree from them. A
// damaged part stops it with a message, and the call folders stay as they
// were.
func TestBundleResplit(t *testing.T) {
	tmp := t.TempDir()
	b, tree := fakeBundle(t, tmp)
	out := b.out
	before := mustRead(t, filepath.Join(out, "SHA256SUMS"))
	archiveSum := func(sums []byte) string {
		for _, l := range strings.Split(string(sums), "\n") {
			if f := strings.Fields(l); len(f) == 2 && f[1] == "vllm-9.9.9.tar.xz" {
				return f[0]
			}
		}
		t.Fatalf("no archive line in SHA256SUMS:\n%s", sums)
		return ""
	}

	_, stderr, code := run(t, repoRoot(t), []string{"OUT=" + out, "RESPLIT=1", "PART_SIZE=16K", "CALL_MIB=1"}, "bash", "offline/bundle.sh", "9.9.9")
	if code != 0 {
		t.Fatalf("RESPLIT=1: exit %d: %s", code, stderr)
	}
	calls, _ := filepath.Glob(filepath.Join(out, "call*"))
	slices.SortFunc(calls, cmpNatural)
	if len(calls) <= len(b.calls) {
		t.Fatalf("re-split into %d call folders, had %d: want more with half the part size", len(calls), len(b.calls))
	}
	after := mustRead(t, filepath.Join(out, "SHA256SUMS"))
	if archiveSum(after) != archiveSum(before) {
		t.Errorf("the archive changed in the re-split")
	}
	env := string(mustRead(t, filepath.Join(out, "bundle.env")))
	for _, want := range []string{"MODELS=tiny", "WHEELS=vbfake-1.0-py3-none-any.whl", fmt.Sprintf("FILES_CALL%d=", len(calls))} {
		if !strings.Contains(env, want) {
			t.Errorf("bundle.env lacks %q:\n%s", want, env)
		}
	}
	if _, err := os.Stat(filepath.Join(out, ".work")); err == nil {
		t.Errorf("the work folder was left behind")
	}
	scratch := filepath.Join(tmp, "scratch")
	var code2 int
	for i, c := range calls {
		_, stderr, code2 = host(t, scratch, c)
		if i < len(calls)-1 && code2 != 3 {
			t.Fatalf("call %d: exit %d, want 3 (incomplete): %s", i+1, code2, stderr)
		}
	}
	if code2 != 0 {
		t.Fatalf("the last call: exit %d: %s", code2, stderr)
	}
	got, want := treeFiles(t, filepath.Join(scratch, "vllm-9.9.9", "site")), treeFiles(t, tree)
	if len(got) == 0 || got["vllm/_C.abi3.so"] != want["vllm/_C.abi3.so"] {
		t.Errorf("the tree installed from the re-split bundle differs from the original")
	}

	// A damaged part: refused, and the call folders are left as they were.
	part := filepath.Join(calls[1], "vllm-9.9.9.tar.xz.part01")
	data := mustRead(t, part)
	data[len(data)/2] ^= 0xff
	writeFile(t, part, data, 0o644)
	_, stderr, code = run(t, repoRoot(t), []string{"OUT=" + out, "RESPLIT=1", "PART_SIZE=64K", "CALL_MIB=1"}, "bash", "offline/bundle.sh", "9.9.9")
	if code == 0 || !strings.Contains(stderr, "does not match") || !strings.Contains(stderr, "rebuild the bundle") {
		t.Errorf("RESPLIT over a damaged part: exit %d, %q; want a refusal naming the mismatch", code, stderr)
	}
	if again, _ := filepath.Glob(filepath.Join(out, "call*")); len(again) != len(calls) {
		t.Errorf("after the refusal %d call folders, want the %d there were", len(again), len(calls))
	}
}

// TestCheckoutFitsBesideABundlePart: every GPU call carries the checkout
// (its tracked files) beside one bundle call folder, 64 MiB in all, and the
// default call folder holds up to CALL_MIB = 40 MiB (.dist rides with the
// smallest). The tracked files must
// leave that room (with 2 MiB to spare); a study's bulky results belong in
// .study-data/, not in git (docs/offline.md).
func TestCheckoutFitsBesideABundlePart(t *testing.T) {
	root := repoRoot(t)
	cmd := exec.Command("git", "ls-files", "-z")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Skipf("not a git checkout here (%v)", err)
	}
	var total int64
	type file struct {
		name string
		size int64
	}
	var big []file
	for _, name := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		fi, err := os.Lstat(filepath.Join(root, name))
		if err != nil {
			continue // deleted in the work tree
		}
		total += fi.Size()
		big = append(big, file{name, fi.Size()})
	}
	const limit = (64 - 40 - 2) << 20
	if total > limit {
		slices.SortFunc(big, func(a, b file) int { return int(b.size - a.size) })
		var top []string
		for _, f := range big[:min(5, len(big))] {
			top = append(top, fmt.Sprintf("%s (%d KiB)", f.name, f.size>>10))
		}
		t.Errorf("the tracked files take %.1f MiB, more than the %d MiB a GPU call leaves beside a 40-MiB bundle part; the largest: %s",
			float64(total)/(1<<20), limit>>20, strings.Join(top, ", "))
	}
}
