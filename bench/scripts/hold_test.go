// Package scripts_test tests the device-side shell scripts of bench/scripts
// that can run without a GPU.
package scripts_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fakeStudy stands in for h200_study.sh: it records its environment and
// leaves a small file and a captures tarball of CAP_MIB MiB in $OUT (and,
// for MODE=run, the compile caches).
const fakeStudy = `#!/usr/bin/env bash
mkdir -p "$OUT"
echo "start $(date +%s%N)" > "$OUT/times"
[ -n "${SLEEP:-}" ] && sleep "$SLEEP"
echo "MODE=$MODE LIMIT=$LIMIT VARIANTS=${VARIANTS:-} GPU=${CUDA_VISIBLE_DEVICES:-}" > "$OUT/env.txt"
if [ "$MODE" != install ]; then
  head -c $((CAP_MIB * 1048576)) /dev/urandom > "$OUT/$MODE-captures.tar.xz"
fi
[ "$MODE" = run ] && head -c 1000 /dev/urandom > "$OUT/compile-caches.tar.xz"
echo "end $(date +%s%N)" >> "$OUT/times"
exit 0
`

// TestHoldScript: h200_hold.sh start runs its jobs in order in the
// background, each with the time left, poll waits for them, and collect
// hands the files back in rounds that a device call can return (≤ 3
// capture parts of 15 MiB besides the small tar), until "all sent"; the
// parts put back together hold every job's captures.
func TestHoldScript(t *testing.T) {
	hold, sh := holdWithFakeDriver(t)
	out := sh("", "start", "900", "MODE=run CAP_MIB=20 STUDY=a.toml", `MODE=probe CAP_MIB=31 STUDY=b.toml VARIANTS="x y+z"`)
	if !strings.Contains(out, "started 2 jobs") {
		t.Fatalf("start: %s", out)
	}
	out = sh("", "poll", "120")
	if !strings.Contains(out, "ALL DONE") || !strings.Contains(out, "job 2 exit 0") {
		t.Fatalf("poll did not see both jobs end:\n%s", out)
	}
	for k, want := range map[string]string{"1": "MODE=run LIMIT=", "2": "MODE=probe LIMIT="} {
		b, err := os.ReadFile(filepath.Join(hold, "out-"+k, "env.txt"))
		if err != nil || !strings.HasPrefix(string(b), want) {
			t.Errorf("job %s saw %q (%v), want %q…", k, b, err, want)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(hold, "out-2", "env.txt")); !strings.Contains(string(b), "VARIANTS=x y+z") {
		t.Errorf("job 2's quoted variable was not kept: %q", b)
	}

	// 51 MiB of captures: 4 parts, so two collect rounds.
	var parts []string
	for round, want := range []string{"more parts left", "all sent"} {
		dir := filepath.Join(t.TempDir(), "out")
		out := sh(dir, "collect")
		if !strings.Contains(out, want) {
			t.Fatalf("collect round %d: want %q in\n%s", round+1, want, out)
		}
		ents, _ := os.ReadDir(dir)
		if len(ents) > 4 {
			t.Errorf("collect round %d returned %d files, want ≤ 4", round+1, len(ents))
		}
		var total int64
		for _, e := range ents {
			fi, _ := e.Info()
			total += fi.Size()
			if strings.Contains(e.Name(), "part") {
				parts = append(parts, filepath.Join(dir, e.Name()))
			}
		}
		if total > 60<<20 {
			t.Errorf("collect round %d returned %d MiB, want ≤ 60", round+1, total>>20)
		}
		if round == 0 {
			if _, err := os.Stat(filepath.Join(dir, "hold-small.tar")); err != nil {
				t.Errorf("the small files did not come first: %v", err)
			}
		}
	}
	if len(parts) != 4 {
		t.Fatalf("got %d capture parts, want 4: %v", len(parts), parts)
	}
	cmd := exec.Command("bash", "-c", `cat "$@" | tar tf -`, "cat")
	cmd.Args = append(cmd.Args, parts...) // sorted: part00 … part03
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the parts do not make one tar: %v\n%s", err, b)
	}
	for _, want := range []string{"out-1/run-captures.tar.xz", "out-2/probe-captures.tar.xz", "out-1/compile-caches.tar.xz"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("the parts' tar lacks %s:\n%s", want, b)
		}
	}
}

// TestHoldPollSends: poll, where OUT is set, sends what the jobs have
// finished (a machine lost later keeps it): the small files, and each
// whole captures tarball once, up to 45 MiB a poll; a bigger one, and a
// file still being written (.tmp-), wait for collect.
func TestHoldPollSends(t *testing.T) {
	hold, sh := holdWithFakeDriver(t)
	sh("", "start", "900", "MODE=run CAP_MIB=20 STUDY=a.toml", "MODE=probe CAP_MIB=50 STUDY=b.toml")
	if out := sh("", "poll", "120"); !strings.Contains(out, "ALL DONE") {
		t.Fatalf("poll:\n%s", out)
	}
	if err := os.WriteFile(filepath.Join(hold, "out-1", ".tmp-captures-x.tar.xz"), []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}
	list := func(dir string) string {
		t.Helper()
		b, err := exec.Command("bash", "-c", `cd "$0" && ls && for f in hold-*.tar; do tar tf "$f"; done`, dir).CombinedOutput()
		if err != nil {
			t.Fatalf("%v\n%s", err, b)
		}
		return string(b)
	}
	first := filepath.Join(t.TempDir(), "poll1")
	out := sh(first, "poll", "1")
	got := list(first)
	for _, want := range []string{"hold-small.tar", "out-1/run-captures.tar.xz", "out-1/compile-caches.tar.xz", "out-2/env.txt", "progress.txt"} {
		if !strings.Contains(got, want) {
			t.Errorf("the first poll did not send %s:\n%s\n%s", want, got, out)
		}
	}
	for _, bad := range []string{"probe-captures", ".tmp-"} {
		if strings.Contains(got, bad) {
			t.Errorf("the first poll sent %s (over 45 MiB, or not whole):\n%s", bad, got)
		}
	}
	second := filepath.Join(t.TempDir(), "poll2")
	sh(second, "poll", "1")
	if got := list(second); strings.Contains(got, "hold-sent") || !strings.Contains(got, "hold-small.tar") {
		t.Errorf("the second poll sent again what the first had, or not the small files:\n%s", got)
	}
	// collect sends what is left: the 50-MiB tarball, in parts, and not
	// what the polls sent.
	var parts []string
	for round := 0; round < 3; round++ {
		dir := filepath.Join(t.TempDir(), "c")
		out := sh(dir, "collect")
		ps, _ := filepath.Glob(filepath.Join(dir, "hold-captures.tar.part*"))
		parts = append(parts, ps...)
		if strings.Contains(out, "all sent") {
			break
		}
	}
	cmd := exec.Command("bash", "-c", `cat "$@" | tar tf -`, "cat")
	cmd.Args = append(cmd.Args, parts...)
	b, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(b), "out-2/probe-captures.tar.xz") || strings.Contains(string(b), "run-captures") {
		t.Errorf("collect after the polls: %v\n%s", err, b)
	}
}

// holdWithFakeDriver makes a checkout with h200_hold.sh and the fake driver
// and returns the hold folder and a function that runs the script there
// (OUT set to its first argument).
func holdWithFakeDriver(t *testing.T) (string, func(out string, args ...string) string) {
	t.Helper()
	repo := fakeCheckout(t)
	hold := filepath.Join(t.TempDir(), "hold")
	return hold, func(out string, args ...string) string {
		t.Helper()
		cmd := exec.Command("bash", append([]string{"bench/scripts/h200_hold.sh"}, args...)...)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "HOLD="+hold, "OUT="+out)
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("h200_hold.sh %v: %v\n%s", args, err, b)
		}
		return string(b)
	}
}

// fakeCheckout makes a checkout with h200_hold.sh and the fake driver.
func fakeCheckout(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"bash", "setsid", "tar", "split", "head"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	repo := t.TempDir()
	src, err := os.ReadFile("h200_hold.sh")
	if err != nil {
		t.Fatal(err)
	}
	scripts := filepath.Join(repo, "bench", "scripts")
	if err := os.MkdirAll(scripts, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"h200_hold.sh": string(src), "h200_study.sh": fakeStudy} {
		if err := os.WriteFile(filepath.Join(scripts, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return repo
}

// TestHoldScriptParallel: with --parallel the bundle is installed once
// (MODE=install) before the jobs, which then run side by side, each with
// its own environment (its GPU) and log, and poll shows every log.
func TestHoldScriptParallel(t *testing.T) {
	hold, sh := holdWithFakeDriver(t)
	sh("", "start", "600", "--parallel", "CUDA_VISIBLE_DEVICES=0 MODE=run CAP_MIB=1 SLEEP=2 STUDY=a.toml", "CUDA_VISIBLE_DEVICES=1 MODE=probe CAP_MIB=1 SLEEP=2 STUDY=b.toml")
	out := sh("", "poll", "60")
	if !strings.Contains(out, "ALL DONE") || !strings.Contains(out, "== progress-1.txt") || !strings.Contains(out, "job 2 exit 0") || !strings.Contains(out, "install exit 0") {
		t.Fatalf("poll:\n%s", out)
	}
	times := func(k string) (start, end int64) {
		b, err := os.ReadFile(filepath.Join(hold, "out-"+k, "times"))
		if err != nil {
			t.Fatal(err)
		}
		var s, e int64
		if _, err := fmt.Sscanf(string(b), "start %d\nend %d", &s, &e); err != nil {
			t.Fatalf("out-%s/times %q: %v", k, b, err)
		}
		return s, e
	}
	_, installEnd := times("0")
	s1, e1 := times("1")
	s2, e2 := times("2")
	if s1 < installEnd || s2 < installEnd {
		t.Errorf("a job started before the install ended")
	}
	if s2 >= e1 || s1 >= e2 {
		t.Errorf("the jobs did not overlap: job 1 %d–%d, job 2 %d–%d", s1, e1, s2, e2)
	}
	for k, want := range map[string]string{"0": "MODE=install", "1": "MODE=run LIMIT=", "2": "MODE=probe LIMIT="} {
		b, _ := os.ReadFile(filepath.Join(hold, "out-"+k, "env.txt"))
		if !strings.HasPrefix(string(b), want) {
			t.Errorf("out-%s/env.txt %q, want %q…", k, b, want)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(hold, "out-2", "env.txt")); !strings.Contains(string(b), "GPU=1") {
		t.Errorf("job 2 lost its CUDA_VISIBLE_DEVICES: %q", b)
	}
}

// TestHoldScriptErrors: each misuse ends in exit 2 and a message that says
// what to do, and none starts anything.
func TestHoldScriptErrors(t *testing.T) {
	for _, tool := range []string{"bash", "setsid"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	script, err := filepath.Abs("h200_hold.sh")
	if err != nil {
		t.Fatal(err)
	}
	hold := filepath.Join(t.TempDir(), "hold")
	try := func(args ...string) (int, string) {
		cmd := exec.Command("bash", append([]string{script}, args...)...)
		cmd.Dir = t.TempDir()
		cmd.Env = append(os.Environ(), "HOLD="+hold, "OUT="+t.TempDir())
		b, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, string(b)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"poll", "1"}, "no hold was started"},
		{[]string{"collect"}, "no hold was started"},
		{[]string{"start", "soon", "MODE=run STUDY=a.toml"}, "want the seconds"},
		{[]string{"start", "600"}, "give at least one job"},
		{[]string{"start", "600", "--parallel"}, "give at least one job"},
		{[]string{"stop"}, "start, poll or collect"},
	} {
		code, out := try(c.args...)
		if code != 2 || !strings.Contains(out, c.want) {
			t.Errorf("h200_hold.sh %q: exit %d %q; want exit 2 with %q", c.args, code, out, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(hold, "jobs.txt")); err == nil {
		t.Fatal("a refused start left a hold behind")
	}

	// A hold already there, running or finished, is not started over.
	if err := os.MkdirAll(hold, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(hold, "jobs.txt"), []byte("MODE=run STUDY=a.toml\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out := try("start", "600", "MODE=run STUDY=b.toml"); code != 2 || !strings.Contains(out, "already running") {
		t.Errorf("start over a running hold: exit %d %q", code, out)
	}
	if err := os.WriteFile(filepath.Join(hold, "DONE"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out := try("start", "600", "MODE=run STUDY=b.toml"); code != 2 || !strings.Contains(out, "finished hold") {
		t.Errorf("start over a finished hold: exit %d %q", code, out)
	}
}

// TestHoldInsideCheckout: a hold folder inside the checkout is left out of
// the checkout's copy into it (no copy of a copy), and the jobs run.
func TestHoldInsideCheckout(t *testing.T) {
	repo := fakeCheckout(t)
	hold := filepath.Join(repo, "hold")
	run := func(args ...string) string {
		cmd := exec.Command("bash", append([]string{"bench/scripts/h200_hold.sh"}, args...)...)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "HOLD="+hold)
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("h200_hold.sh %v: %v\n%s", args, err, b)
		}
		return string(b)
	}
	run("start", "600", "MODE=run CAP_MIB=0 STUDY=a.toml")
	if out := run("poll", "60"); !strings.Contains(out, "ALL DONE") {
		t.Fatalf("poll:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(hold, "wk", "hold")); err == nil {
		t.Error("the hold was copied into itself")
	}
	if _, err := os.Stat(filepath.Join(hold, "wk", "bench", "scripts", "h200_hold.sh")); err != nil {
		t.Errorf("the checkout was not copied: %v", err)
	}
}
