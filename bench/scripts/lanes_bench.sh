#!/usr/bin/env bash
# GPU lanes vs serial: one simulator study of four trials (sim-paged and
# sim-contiguous × 2 repetitions; rates 2 and 8 req/s × 8 s, warm-up 2 s,
# sim_speed 20) run twice with the same binaries: serially, then with
# `--gpus 0,1` (two simulated GPU lanes). Prints both wall times, their
# ratio (the goal: ≤ 0.6), the plan's projections, and checks that the two
# runs have the same set of trial results (key, status, levels, requests
# sent per level).
#
# Usage: bench/scripts/lanes_bench.sh [OUTDIR]   (default /tmp/vbbench-lanes)
# Environment: BIN (prebuilt vbbench/vbsim/vbsynth; default: build them).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-/tmp/vbbench-lanes}
rm -rf "$out"
mkdir -p "$out"
if [ -z "${BIN:-}" ]; then
	BIN=$out/bin
	go build -trimpath -o "$BIN/" ./cmd/vbbench ./cmd/vbsim ./cmd/vbsynth
fi
BIN=$(cd "$BIN" && pwd)
echo "date: $(date -u +%FT%TZ)  host: $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg)  commit: $(git rev-parse --short HEAD 2>/dev/null || echo -)"

"$BIN/vbsynth" --dataset sharegpt --span 10m --seed 1 --quiet -o "$out/trace.bin"
study() { # name results_dir
	cat <<EOF
name = "lanes-bench"
results_dir = "$out/$1/results"
reports_dir = "$out/$1/reports"
budget = "30m"
[trace]
path = "$out/trace.bin"
[run]
rates = [2, 8]
duration = "8s"
warmup = "2s"
drain = "10s"
repetitions = 2
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
EOF
}
study serial >"$out/serial.toml"
study lanes >"$out/lanes.toml"

echo "plan (serial):  $("$BIN/vbbench" plan "$out/serial.toml" | grep '^estimate')"
echo "plan (2 lanes): $("$BIN/vbbench" plan --gpus 0,1 "$out/lanes.toml" | grep '^estimate')"

run() { # name extra-args...
	local name=$1
	shift
	local t0 t1
	t0=$(date +%s.%N)
	"$BIN/vbbench" run --quiet "$@" "$out/$name.toml" >"$out/$name.out" 2>"$out/$name.err" || {
		echo "$name run failed:"
		cat "$out/$name.out" "$out/$name.err"
		exit 1
	}
	t1=$(date +%s.%N)
	echo "$t1 - $t0" | bc
}
serial=$(run serial)
lanes=$(run lanes --gpus 0,1)
printf 'wall time: serial %.1f s, 2 lanes %.1f s, ratio %.2f\n' "$serial" "$lanes" "$(echo "$lanes / $serial" | bc -l)"

# The set of trial results: key, status, and per level the rate and the
# requests sent (the trace and the rate fix them).
results() {
	python3 - "$out/$1/results" <<'EOF'
import glob, json, sys
rows = []
for p in glob.glob(sys.argv[1] + "/*/*/*/status.json"):
    s = json.load(open(p))
    rows.append((s["key"], s["status"], tuple((l["rate"], l["sent"]) for l in s["levels"])))
for r in sorted(rows):
    print(*r)
EOF
}
results serial >"$out/serial.results"
results lanes >"$out/lanes.results"
if cmp -s "$out/serial.results" "$out/lanes.results"; then
	echo "trial results: the same set ($(wc -l <"$out/serial.results") trials):"
	sed 's/^/  /' "$out/serial.results"
else
	echo "trial results differ:"
	diff "$out/serial.results" "$out/lanes.results" || true
	exit 1
fi
echo "2-lane GPUs per trial:"
python3 - "$out/lanes/results" <<'EOF'
import glob, json, sys
for p in sorted(glob.glob(sys.argv[1] + "/*/*/*/status.json")):
    s = json.load(open(p))
    print(f'  {s["key"]:32} gpu {",".join(s.get("gpus", []))}  {s["started"][11:19]}–{s["ended"][11:19]}')
EOF
