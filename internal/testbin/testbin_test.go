package testbin

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// TestPathBuildsOnce builds a small command, runs it, and checks that a
// second request reuses the binary instead of building it again.
func TestPathBuildsOnce(t *testing.T) {
	p := Path(t, "./bench/scripts/replaytool")
	if filepath.Base(p) != "replaytool" {
		t.Fatalf("Path = %s; want .../replaytool", p)
	}
	out, _ := exec.Command(p).CombinedOutput() // no subcommand: usage, exit 2
	if !strings.Contains(string(out), "usage: replaytool") {
		t.Fatalf("replaytool printed %q; want its usage", out)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if p2 := Path(t, "bench/scripts/replaytool"); p2 != p {
		t.Fatalf("second Path = %s; want %s", p2, p)
	}
	st2, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if !st2.ModTime().Equal(st.ModTime()) {
		t.Fatal("the second Path rebuilt the binary")
	}
}

// TestBuildError reports a package that does not exist, with go's output.
func TestBuildError(t *testing.T) {
	_, err := Build("cmd/no-such-command")
	if err == nil || !strings.Contains(err.Error(), "no-such-command") {
		t.Fatalf("Build(cmd/no-such-command) = %v; want an error naming it", err)
	}
}

// TestRemove deletes the directory and a later Build makes a new one.
func TestRemove(t *testing.T) {
	d := Dir(t, "bench/scripts/replaytool")
	Remove()
	if _, err := os.Stat(d); !os.IsNotExist(err) {
		t.Fatalf("after Remove, stat %s = %v; want not exist", d, err)
	}
	d2 := Dir(t, "bench/scripts/replaytool")
	if _, err := os.Stat(filepath.Join(d2, "replaytool")); err != nil {
		t.Fatalf("rebuild after Remove: %v", err)
	}
}
