package scripts_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// simStudy is a two-variant study on the built-in simulator, small enough
// to run in seconds, with the layout of the H200 studies (its trace under
// traces/, carried in .dist/traces).
const simStudy = `name = "driver-sim"
results_dir = "results"
reports_dir = "reports"
budget = "10m"
[trace]
path = "traces/sim.bin"
[run]
rates = [4, 8]
duration = "3s"
warmup = "1s"
warmup_mode = "level"
engine_warmup = { duration = "1s", concurrency = 8 }
drain = "20s"
max_drain = "20s"
startup_timeout = "30s"
stop_grace = "5s"
[[models]]
name = "sim-8b"
model = "sim"
max_model_len = 4096
variants = ["sim-paged", "sim-contiguous"]
[variants.sim-paged]
preset = "sim-paged"
sim_speed = 20
[variants.sim-contiguous]
preset = "sim-contiguous"
sim_speed = 20
`

// fakeHost stands in for offline/host.sh: the bundle is always installed.
const fakeHost = `#!/usr/bin/env bash
echo "export VB_FAKE_BUNDLE=1"
echo "host.sh: fake: ready" >&2
`

// TestStudyDriverOnSim runs the device-side driver, h200_study.sh, as a
// GPU hold would, but on the simulator and with a fake bundle: in the
// background through h200_hold.sh, MODE=runall on two GPU lanes, MODE=run
// (which finds every trial done) and MODE=probe, then collects. What comes back
// must hold the results tree and each trial's captures, and the driver's
// log must say both jobs ended well. Slow (it builds vbbench and vbsynth).
func TestStudyDriverOnSim(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: builds vbbench and vbsynth and runs a study (make slow)")
	}
	for _, tool := range []string{"bash", "setsid", "tar", "split", "xz", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	repo, tmp := t.TempDir(), t.TempDir()
	run := func(dir string, env []string, name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), env...)
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, b)
		}
		return string(b)
	}
	dist := filepath.Join(repo, ".dist")
	for _, d := range []string{"bench/scripts", "offline", ".dist/traces"} {
		if err := os.MkdirAll(filepath.Join(repo, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	run(root, []string{"CGO_ENABLED=0"}, "go", "build", "-o", dist, "./cmd/vbbench", "./cmd/vbsynth")
	// The simulator backend runs vbsim from beside vbbench: on a GPU host
	// the driver unpacks only vbbench and vbsynth, so it goes there first.
	bin := filepath.Join(tmp, "bin")
	run(root, []string{"CGO_ENABLED=0"}, "go", "build", "-o", bin+"/", "./cmd/vbsim")
	run(dist, nil, "xz", "-0", "-f", "vbbench", "vbsynth")
	run(root, nil, "go", "run", "./cmd/vbsynth", "--dataset", "sharegpt", "--span", "5m", "--seed", "1", "--quiet", "-o", filepath.Join(dist, "traces", "sim.bin"))
	for name, body := range map[string]string{"offline/host.sh": fakeHost, "sim.toml": simStudy} {
		if err := os.WriteFile(filepath.Join(repo, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []string{"h200_study.sh", "h200_hold.sh", "fingerprint.py"} {
		b, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(repo, "bench/scripts", s), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}

	// A compile cache as a GPU host would leave it (CACHE_DIRS instead of
	// /root/.triton/cache and the rest).
	cacheDir := filepath.Join(tmp, "triton-cache")
	if err := os.MkdirAll(filepath.Join(cacheDir, "kernels"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cacheDir, "kernels", "k.bin"), []byte("compiled"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"HOLD=" + filepath.Join(tmp, "hold"), "STATE=" + filepath.Join(tmp, "state"), "VB_BIN=" + bin, "CACHE_DIRS=" + cacheDir}
	run(repo, env, "bash", "bench/scripts/h200_hold.sh", "start", "400",
		"CACHES_OUT=1 MODE=runall GPUS=0,1 STUDY=sim.toml", "MODE=run STUDY=sim.toml",
		`MODE=probe EST_VLLM=40 PROBE_FLAGS="--min-concurrency 2 --max-concurrency 4 --duration 2s" STUDY=sim.toml`)
	out := run(repo, env, "bash", "bench/scripts/h200_hold.sh", "poll", "300")
	if !strings.Contains(out, "ALL DONE") || !strings.Contains(out, "job 1 exit 0") || !strings.Contains(out, "job 2 exit 0") || !strings.Contains(out, "job 3 exit 0") {
		t.Fatalf("the jobs did not all end well:\n%s", out)
	}
	for _, v := range []string{"sim-paged", "sim-contiguous"} {
		if !strings.Contains(out, "probe "+v+": exit 0") {
			t.Errorf("the probe job did not probe %s:\n%s", v, out)
		}
	}
	if !strings.Contains(out, "run: exit 0") || !strings.Contains(out, "offline/host.sh: exit 0") {
		t.Errorf("the runall job's log lacks its run or the bundle step:\n%s", out)
	}
	back := filepath.Join(tmp, "back")
	if out := run(repo, append(env, "OUT="+back), "bash", "bench/scripts/h200_hold.sh", "collect"); !strings.Contains(out, "all sent") {
		t.Fatalf("collect:\n%s", out)
	}
	list := run(back, nil, "bash", "-c", `tar xf hold-small.tar && for c in out-*/call-*.tar; do tar tf "$c"; done && cat hold-captures.tar.part* | tar tf -`)
	for _, want := range []string{"results.tar.xz", "driver.txt", "device.txt", "run.log"} {
		if !strings.Contains(list, want) {
			t.Errorf("nothing named %s came back:\n%s", want, list)
		}
	}
	for _, want := range []string{"probe-sim-sim-paged.tar.xz", "probe-sim-sim-contiguous.tar.xz"} {
		if !strings.Contains(list, want) {
			t.Errorf("the probe's %s did not come back:\n%s", want, list)
		}
	}
	if n := strings.Count(list, "/captures-"); n != 2 {
		t.Errorf("%d captures tarballs came back, want one per trial (2):\n%s", n, list)
	}
	// Unpacked here as the study keeps a hold run: the run folder, the
	// captures out of git beside their SHA256, the caches for the next hold.
	if b, err := os.ReadFile(filepath.Join(root, "bench/scripts/h200_unpack.sh")); err != nil {
		t.Fatal(err)
	} else if err := os.WriteFile(filepath.Join(repo, "bench/scripts/h200_unpack.sh"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	runDir := filepath.Join("docs", "results", "sim-study", "runs", "rep1-hold1")
	out = run(repo, nil, "bash", "bench/scripts/h200_unpack.sh", runDir, "sim.toml", back)
	if !strings.Contains(out, "unpacked job 1 into "+runDir+": 2 trial(s), 2 captures tarball(s) in .study-data/sim-study/rep1-hold1") {
		t.Errorf("unpack:\n%s", out)
	}
	for _, f := range []string{"study.toml", "plan.txt", "run.log", "device.txt", "fingerprint.jsonl", "CAPTURES.txt", "results/README.md"} {
		if _, err := os.Stat(filepath.Join(repo, runDir, f)); err != nil {
			t.Errorf("unpacked run folder: %v", err)
		}
	}
	if caps, _ := filepath.Glob(filepath.Join(repo, ".study-data", "sim-study", "rep1-hold1", "captures-*.tar.xz")); len(caps) != 2 {
		t.Errorf("captures kept out of git: %v", caps)
	}
	if sums := run(filepath.Join(repo, ".study-data", "sim-study", "rep1-hold1"), nil, "bash", "-c", "head -2 ../../../"+runDir+"/CAPTURES.txt | sha256sum -c"); strings.Count(sums, ": OK") != 2 {
		t.Errorf("CAPTURES.txt does not check the kept captures:\n%s", sums)
	}
	if svgs, _ := filepath.Glob(filepath.Join(repo, runDir, "results", "*", "*", "*", "analysis", "charts", "*.svg")); len(svgs) != 0 {
		t.Errorf("the trials' SVG charts were kept: %v", svgs)
	}
	if pngs, _ := filepath.Glob(filepath.Join(repo, runDir, "results", "*", "*", "*", "analysis", "charts", "*.png")); len(pngs) == 0 {
		t.Errorf("the trials' PNG charts were not kept")
	}
	if logs, _ := filepath.Glob(filepath.Join(repo, runDir, "results", "*", "*", "*", "backend.log.xz")); len(logs) != 2 {
		t.Errorf("backend logs compressed: %v", logs)
	}
	if dirs, _ := filepath.Glob(filepath.Join(repo, runDir, "results", "*", "*", "*", "capture")); len(dirs) != 2 {
		t.Errorf("captures extracted beside the trials for studyreport: %v", dirs)
	}
	if _, err := os.Stat(filepath.Join(repo, ".dist", "caches", "compile-caches.tar.xz")); err != nil {
		t.Errorf("the compile caches for the next hold: %v", err)
	}
	if _, err := exec.Command("bash", filepath.Join(repo, "bench/scripts/h200_unpack.sh"), filepath.Join(repo, runDir), filepath.Join(repo, "sim.toml"), back).CombinedOutput(); err == nil {
		t.Error("unpacking into a run folder that is not empty: no error")
	}
	// The probe job (job 3): each variant's probe.json, probe.md and server
	// config.json, its captures kept out of git and checked by CAPTURES.txt;
	// unpacking it again refuses to overwrite; the run job is not a probe.
	probeDir := filepath.Join("docs", "results", "sim-study", "probe-sim")
	out = run(repo, []string{"JOB=3"}, "bash", "bench/scripts/h200_unpack.sh", "--probe", probeDir, back)
	if !strings.Contains(out, "unpacked job 3's probes into "+probeDir+": 2 variant(s), captures in .study-data/sim-study/probe-sim") {
		t.Errorf("unpack --probe:\n%s", out)
	}
	for _, v := range []string{"sim-paged", "sim-contiguous"} {
		for _, f := range []string{"probe.json", "probe.md", "config.json"} {
			if _, err := os.Stat(filepath.Join(repo, probeDir, v, f)); err != nil {
				t.Errorf("unpacked probe: %v", err)
			}
		}
	}
	if sums := run(filepath.Join(repo, ".study-data", "sim-study", "probe-sim"), nil, "bash", "-c", "head -2 ../../../"+probeDir+"/CAPTURES.txt | sha256sum -c"); strings.Count(sums, ": OK") != 2 {
		t.Errorf("the probe's CAPTURES.txt does not check its kept captures:\n%s", sums)
	}
	if b, err := exec.Command("bash", "-c", "cd "+repo+" && JOB=3 bash bench/scripts/h200_unpack.sh --probe "+probeDir+" "+back).CombinedOutput(); err == nil || !strings.Contains(string(b), "exists: not overwritten") {
		t.Errorf("unpacking a probe again: %v\n%s", err, b)
	}
	if b, err := exec.Command("bash", "-c", "cd "+repo+" && JOB=2 bash bench/scripts/h200_unpack.sh --probe x "+back).CombinedOutput(); err == nil || !strings.Contains(string(b), "no probe-*.tar.xz (a run job?") {
		t.Errorf("unpacking a run job as a probe: %v\n%s", err, b)
	}

	// The compile caches came back (CACHES_OUT=1 on the runall job), and a
	// later hold that carries them in .dist/caches/ unpacks them before its
	// first server starts.
	if !strings.Contains(list, "out-1/compile-caches.tar.xz") {
		t.Fatalf("the compile caches did not come back:\n%s", list)
	}
	run(back, nil, "bash", "-c", `mkdir -p c && cat hold-captures.tar.part* | tar xf - -C c`)
	if err := os.MkdirAll(filepath.Join(dist, "caches"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(back, "c", "out-1", "compile-caches.tar.xz"), filepath.Join(dist, "caches", "compile-caches.tar.xz")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(cacheDir); err != nil {
		t.Fatal(err)
	}
	// The second hold plans from what the first measured (PLAN_FLAGS
	// --measured over its results tree, carried in the checkout), and runs
	// trial 2 first (ORDER, as for a hold's anchor).
	run(back, nil, "bash", "-c", `mkdir m && for c in out-1/call-*.tar; do tar xf "$c" -C m; done && mkdir -p "$0/measured" && tar xJf m/results.tar.xz -C "$0/measured"`, repo)
	env2 := []string{"HOLD=" + filepath.Join(tmp, "hold2"), "STATE=" + filepath.Join(tmp, "state2"), "VB_BIN=" + bin}
	// .dist may come with an earlier call of the hold than the one that
	// starts it (here the install's): the driver keeps it on the machine,
	// and the hold, carrying none, runs from that copy (its trace too).
	inst := run(repo, append(env2, "OUT="+filepath.Join(tmp, "install-out"), "MODE=install"), "bash", "bench/scripts/h200_study.sh")
	if !strings.Contains(inst, ".dist: kept in "+filepath.Join(tmp, "state2", "dist")) || !strings.Contains(inst, "caches: restored compile-caches.tar.xz") {
		t.Errorf("the install call did not keep .dist or restore the caches:\n%s", inst)
	}
	if err := os.Rename(dist, dist+"-away"); err != nil {
		t.Fatal(err)
	}
	// Its second job waits for a gate: the polls while it waits must already
	// have sent everything job 1 made, as if the machine were then lost
	// (nothing collected). A poll that shows "job 1 exit" sent after it.
	gate := filepath.Join(tmp, "gate")
	run(repo, env2, "bash", "bench/scripts/h200_hold.sh", "start", "300", `PLAN_FLAGS="--measured measured" ORDER=2 MODE=run STUDY=sim.toml`,
		`while [ ! -e `+gate+` ]; do sleep 1; done; MODE=install`)
	var polls []string
	for deadline := time.Now().Add(4 * time.Minute); ; {
		dir := filepath.Join(tmp, "polls", strconv.Itoa(len(polls)+1))
		polls = append(polls, dir)
		out = run(repo, append(env2, "OUT="+dir), "bash", "bench/scripts/h200_hold.sh", "poll", "3")
		if strings.Contains(out, "job 1 exit") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job 1 of the second hold did not end:\n%s", out)
		}
	}
	if err := os.Rename(dist+"-away", dist); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "job 1 exit 0") || strings.Contains(out, ".dist: kept") {
		t.Errorf("the second hold, without .dist in its checkout, did not run from the kept copy:\n%s", out)
	}
	sent := run(tmp, nil, "bash", "-c", `for d in polls/*; do n=$(ls "$d" | wc -l); [ "$n" -le 8 ] || echo "$d: $n files"; for f in "$d"/hold-sent-*.tar; do [ -f "$f" ] && tar tf "$f"; done; done`)
	if n := strings.Count(sent, "/captures-"); n != 2 || strings.Contains(sent, "files") {
		t.Errorf("the polls sent %d captures tarballs (want each of the 2 trials' once, ≤ 8 files a poll):\n%s", n, sent)
	}
	lostDir := filepath.Join("docs", "results", "sim-study", "runs", "rep2-lost")
	out = run(repo, nil, "bash", append([]string{"bench/scripts/h200_unpack.sh", lostDir, "sim.toml"}, polls...)...)
	if !strings.Contains(out, "2 trial(s), 2 captures tarball(s)") {
		t.Errorf("unpacking a hold from its polls alone:\n%s", out)
	}
	if fp, err := os.ReadFile(filepath.Join(repo, lostDir, "fingerprint.jsonl")); err != nil || strings.Count(string(fp), "\n") != 3 {
		t.Errorf("the polls' fingerprints (start, trial 2, trial 1): %q, %v", fp, err)
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if out := run(repo, env2, "bash", "bench/scripts/h200_hold.sh", "poll", "120"); !strings.Contains(out, "ALL DONE") {
		t.Fatalf("the gated job did not end:\n%s", out)
	}
	if b, err := os.ReadFile(filepath.Join(cacheDir, "kernels", "k.bin")); err != nil || string(b) != "compiled" {
		t.Errorf("the restored cache file: %q, %v", b, err)
	}
	// (The driver packs its small files, plan.txt among them, into call-*.tar.)
	if plan := run(filepath.Join(tmp, "hold2", "out-1"), nil, "bash", "-c", `for c in call-*.tar; do tar xOf "$c" ./plan.txt; done`); len(regexp.MustCompile(`(?m)^ +\d+ +sim-8b +sim-\w+ +rep 1 .*\(measured\)$`).FindAllString(plan, -1)) != 2 {
		t.Errorf("the second hold's plan does not estimate both trials from the first's measurements:\n%s", plan)
	}
	if d := run(filepath.Join(tmp, "hold2", "out-1"), nil, "bash", "-c", `for c in call-*.tar; do tar xOf "$c" ./driver.txt; done`); !regexp.MustCompile(`(?s)trial 2: exit 0.*trial 1: exit 0`).MatchString(d) {
		t.Errorf("ORDER=2 did not run trial 2 before trial 1:\n%s", d)
	}
	// The machine's fingerprint before the work and before each trial, in
	// the order they ran (here without CUDA: the GPU's figures are null).
	fp := run(filepath.Join(tmp, "hold2", "out-1"), nil, "bash", "-c", `for c in call-*.tar; do tar xOf "$c" ./fingerprint.jsonl; done`)
	if !regexp.MustCompile(`(?s)^\{[^\n]*"label": "start"[^\n]*"py_loop_ns": [0-9.]+[^\n]*\}\n\{[^\n]*"label": "trial 2"[^\n]*\}\n\{[^\n]*"label": "trial 1"[^\n]*\}\n$`).MatchString(fp) {
		t.Errorf("fingerprint.jsonl: want start, trial 2, trial 1:\n%s", fp)
	}

	// The runall job ran both trials, on the two lanes.
	runLog := run(back, nil, "bash", "-c", `mkdir x && tar xf out-1/call-*.tar -C x && cat x/run.log x/driver.txt`)
	if !strings.Contains(runLog, "[gpu 0]") || !strings.Contains(runLog, "[gpu 1]") || !strings.Contains(runLog, "2 trials: 2 finished") {
		t.Errorf("the runall job's run.log does not mention its GPU lanes:\n%s", runLog)
	}
}
