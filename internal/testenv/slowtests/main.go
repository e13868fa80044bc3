// Command slowtests lists the module's slow tests: the top-level Test
// functions and fuzz targets (their seed corpus) that call testing.Short(),
// directly or through a helper of their own package (see package testenv). `make slow` runs what it prints:
//
//	go run ./internal/testenv/slowtests            # one line: -run regexp, then the packages
//	go run ./internal/testenv/slowtests -list      # package<TAB>test, one a line
//
// It reads the *_test.go files under the module root (the current
// directory, or -root), skipping testdata, vendor, node_modules and hidden
// directories. It parses; it does not type-check, so a helper is matched by
// its name within the package directory, and testing must be imported
// under its own name.
package main

import (
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("slowtests", flag.ContinueOnError)
	fl.SetOutput(stderr)
	root := fl.String("root", ".", "module root")
	list := fl.Bool("list", false, "print package<TAB>test lines instead of a go test -run argument and packages")
	if err := fl.Parse(args); err != nil {
		return 2
	}
	found, err := find(*root)
	if err != nil {
		fmt.Fprintln(stderr, "slowtests:", err)
		return 1
	}
	if *list {
		for _, s := range found {
			fmt.Fprintf(stdout, "%s\t%s\n", s.pkg, s.test)
		}
		return 0
	}
	if len(found) == 0 {
		fmt.Fprintln(stderr, "slowtests: no test calls testing.Short()")
		return 1
	}
	var names, pkgs []string
	for _, s := range found {
		if !slices.Contains(names, s.test) {
			names = append(names, s.test)
		}
		if !slices.Contains(pkgs, s.pkg) {
			pkgs = append(pkgs, s.pkg)
		}
	}
	slices.Sort(names)
	fmt.Fprintf(stdout, "^(%s)$ %s\n", strings.Join(names, "|"), strings.Join(pkgs, " "))
	return 0
}

// slow is one slow test: its package directory (./dir, as go test takes
// it) and its function name.
type slow struct{ pkg, test string }

// find returns the slow tests under root, sorted by package then name.
func find(root string) ([]slow, error) {
	dirs := map[string][]string{} // directory → its _test.go files
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			n := d.Name()
			if p != root && (n == "testdata" || n == "vendor" || n == "node_modules" || strings.HasPrefix(n, ".") || strings.HasPrefix(n, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(p, "_test.go") {
			dirs[filepath.Dir(p)] = append(dirs[filepath.Dir(p)], p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []slow
	for dir, files := range dirs {
		tests, err := slowIn(files)
		if err != nil {
			return nil, err
		}
		rel, err := filepath.Rel(root, dir)
		if err != nil {
			return nil, err
		}
		pkg := "./" + filepath.ToSlash(rel)
		if rel == "." {
			pkg = "."
		}
		for _, t := range tests {
			out = append(out, slow{pkg, t})
		}
	}
	slices.SortFunc(out, func(a, b slow) int {
		if c := strings.Compare(a.pkg, b.pkg); c != 0 {
			return c
		}
		return strings.Compare(a.test, b.test)
	})
	return out, nil
}

// slowIn returns the slow tests of one package directory's test files
// (the package and its _test package share one test binary).
func slowIn(files []string) ([]string, error) {
	fset := token.NewFileSet()
	funcs := map[string]*ast.FuncDecl{} // top-level functions by name (methods are left out)
	for _, f := range files {
		af, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		for _, d := range af.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv == nil && fd.Body != nil {
				funcs[fd.Name.Name] = fd
			}
		}
	}
	// marked: functions that call testing.Short() or a marked function,
	// to a fixed point.
	marked := map[string]bool{}
	for changed := true; changed; {
		changed = false
		for name, fd := range funcs {
			if !marked[name] && callsShort(fd, marked) {
				marked[name], changed = true, true
			}
		}
	}
	var tests []string
	for name := range marked {
		if isTest(funcs[name]) {
			tests = append(tests, name)
		}
	}
	return tests, nil
}

// callsShort reports whether fd's body calls testing.Short() or a function
// in marked.
func callsShort(fd *ast.FuncDecl, marked map[string]bool) bool {
	found := false
	ast.Inspect(fd.Body, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || found {
			return !found
		}
		switch f := call.Fun.(type) {
		case *ast.SelectorExpr:
			if x, ok := f.X.(*ast.Ident); ok && x.Name == "testing" && f.Sel.Name == "Short" {
				found = true
			}
		case *ast.Ident:
			if marked[f.Name] {
				found = true
			}
		}
		return !found
	})
	return found
}

// isTest reports whether fd is a top-level test, TestXxx(t *testing.T),
// or a fuzz target, FuzzXxx(f *testing.F), whose seed corpus go test runs
// as a test (and -run selects).
func isTest(fd *ast.FuncDecl) bool {
	name := fd.Name.Name
	prefix, typ := "Test", "T"
	if strings.HasPrefix(name, "Fuzz") {
		prefix, typ = "Fuzz", "F"
	}
	if !strings.HasPrefix(name, prefix) || name == "TestMain" {
		return false
	}
	if r, _ := utf8.DecodeRuneInString(name[len(prefix):]); unicode.IsLower(r) {
		return false // Testify is not a test
	}
	params := fd.Type.Params.List
	if len(params) != 1 || len(params[0].Names) > 1 {
		return false
	}
	star, ok := params[0].Type.(*ast.StarExpr)
	if !ok {
		return false
	}
	sel, ok := star.X.(*ast.SelectorExpr)
	return ok && sel.Sel.Name == typ
}
