package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tree writes files (slash path → content) under a temporary root.
func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, body := range files {
		f := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestFind(t *testing.T) {
	root := tree(t, map[string]string{
		"a/a_test.go": `package a
import "testing"
func TestDirect(t *testing.T) { if testing.Short() { t.Skip("slow") } }
func TestUnit(t *testing.T) {}
func TestViaHelper(t *testing.T) { skipShort(t) }
func TestViaClosure(t *testing.T) { t.Run("x", func(t *testing.T) { if testing.Short() { return } }) }
func Testhelper(t *testing.T) { skipShort(t) }
func TestWrongSig(x int) { skipShort(nil) }
func BenchmarkX(b *testing.B) { if testing.Short() { return } }
func FuzzSlow(f *testing.F) { if testing.Short() { f.Skip() } }
func FuzzFast(f *testing.F) {}
func FuzzWrongSig(t *testing.T) { if testing.Short() {} }
`,
		"a/b_test.go": `package a_test
import "testing"
func TestOtherFile(t *testing.T) { twoDeep(t) }
func twoDeep(t *testing.T) { skipShortToo(t) }
func skipShortToo(t *testing.T) { skipShort(t) }
`,
		"a/helpers_test.go": `package a
import "testing"
func skipShort(t *testing.T) { if testing.Short() { t.Skip() } }
`,
		"a/b/c_test.go": `package b
import "testing"
func TestDirect(t *testing.T) { if testing.Short() { t.Skip() } }
func TestSameNameHelper(t *testing.T) { skipShort(t) } // skipShort is a's, not b's
func skipShort(t *testing.T) {}
`,
		"a/testdata/x_test.go": `package x
import "testing"
func TestIgnored(t *testing.T) { if testing.Short() {} }
`,
		"notatest.go": `package root
import "testing"
func TestNotATestFile(t *testing.T) { if testing.Short() {} }
`,
	})
	got, err := find(root)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, s := range got {
		lines = append(lines, s.pkg+" "+s.test)
	}
	want := []string{"./a FuzzSlow", "./a TestDirect", "./a TestOtherFile", "./a TestViaClosure", "./a TestViaHelper", "./a/b TestDirect"}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("find =\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}

	var out, errb bytes.Buffer
	if code := run([]string{"-root", root}, &out, &errb); code != 0 {
		t.Fatalf("run: exit %d: %s", code, errb.String())
	}
	if want := "^(FuzzSlow|TestDirect|TestOtherFile|TestViaClosure|TestViaHelper)$ ./a ./a/b\n"; out.String() != want {
		t.Errorf("run printed %q; want %q", out.String(), want)
	}
}

func TestBadInput(t *testing.T) {
	root := tree(t, map[string]string{"a/a_test.go": "package a\nfunc {"})
	var out, errb bytes.Buffer
	if code := run([]string{"-root", root}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "a_test.go") {
		t.Errorf("a file that does not parse: exit %d, stderr %q; want 1 naming the file", code, errb.String())
	}
	empty := t.TempDir()
	errb.Reset()
	if code := run([]string{"-root", empty}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "no test calls testing.Short()") {
		t.Errorf("no slow tests: exit %d, stderr %q; want 1 and why", code, errb.String())
	}
	errb.Reset()
	if code := run([]string{"-bogus"}, &out, &errb); code != 2 {
		t.Errorf("unknown flag: exit %d; want 2", code)
	}
}

// TestThisModule: the module's own slow tests are found, among them the
// reliability soak (a guard against the lister silently finding nothing).
func TestThisModule(t *testing.T) {
	got, err := find("../../..")
	if err != nil {
		t.Fatal(err)
	}
	seen := false
	for _, s := range got {
		if s.pkg == "./internal/reliability" && s.test == "TestReliabilitySoak" {
			seen = true
		}
	}
	if !seen {
		t.Errorf("TestReliabilitySoak is not among the module's slow tests: %v", got)
	}
}
