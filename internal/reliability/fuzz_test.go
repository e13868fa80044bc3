package reliability

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vbench/vbench/synth"
)

// TestReliabilityFuzzSeeds: every Fuzz target of the module starts from
// seeds: f.Add calls in its body (or seeds read from testdata and added)
// or a checked-in corpus under testdata/fuzz/<Name>.
func TestReliabilityFuzzSeeds(t *testing.T) {
	t.Parallel() // its own servers, processes and directories
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	var targets []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if !strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), p, nil, 0)
		if err != nil {
			return nil
		}
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || !strings.HasPrefix(fn.Name.Name, "Fuzz") || fn.Body == nil {
				continue
			}
			rel, _ := filepath.Rel(root, p)
			name := filepath.Dir(rel) + "." + fn.Name.Name
			targets = append(targets, name)
			adds := 0
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				if call, ok := n.(*ast.CallExpr); ok {
					if sel, ok := call.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "Add" {
						adds++
					}
				}
				return true
			})
			corpus, _ := os.ReadDir(filepath.Join(filepath.Dir(p), "testdata", "fuzz", fn.Name.Name))
			if adds == 0 && len(corpus) == 0 {
				t.Errorf("%s has no seeds (no f.Add, no testdata/fuzz/%s)", name, fn.Name.Name)
			}
		}
		return nil
	})
	if len(targets) < 20 {
		t.Errorf("found only %d fuzz targets: %v", len(targets), targets)
	}
	t.Logf("%d fuzz targets, each with seeds: %s", len(targets), strings.Join(targets, ", "))
}

// FuzzLoadTokenizer: a tokenizer.json of any content loads or fails with
// an error (vbsynth --tokenizer), never a panic.
func FuzzLoadTokenizer(f *testing.F) {
	if b, err := os.ReadFile("../../synth/testdata/tiny-tokenizer.json"); err == nil {
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte(`{"model":{"type":"BPE","vocab":{"a":0},"merges":[]}}`))
	f.Add([]byte(`{"model":{"type":"WordPiece"}}`))
	f.Add([]byte(`{"model":{"type":"Unigram","vocab":[["a",1.5]]},"pre_tokenizer":{"type":"Whatever"}}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(t.TempDir(), "tokenizer.json")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		tk, err := synth.LoadTokenizer(p)
		if err != nil {
			return
		}
		tk.Count("hello world, ça va?")
	})
}
