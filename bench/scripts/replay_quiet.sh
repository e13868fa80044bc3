#!/usr/bin/env bash
# Replayer fidelity on a quiet host, one command (run from the repository
# root; no Go, no internet, no GuideLLM needed):
#
#   BINDIR=.dist bench/scripts/replay_quiet.sh "$OUT"
#
# The replay_bench.sh measurements with the mock server and the client
# pinned to disjoint cores (taskset), so they no longer starve each other:
#   1. TTFT overstatement ladder at ~1, ~100 and ~1,000 concurrent streams
#      (LOADS "1 96 960" req/s; mock server TTFT 50 ms, ITL 10 ms, 100
#      tokens; a request lasts ~1.04 s so R req/s keeps ~R streams open);
#   2. schedule lag p50/p99 against a 1-token server over a rate sweep
#      (RATES "100 1000 2000 5000 10000 20000"), and the highest rate with
#      lag p99 <= 1 ms.
# Writes to OUTDIR: summary.md (Markdown tables), results.csv (one row per
# run), every vbreplay --json (lag-vbreplay-R.json, ttft-vbreplay-R.json),
# the server's own figures (ttft-vbreplay-R.server.json), load.log,
# host.txt (CPU, kernel, pinning), the two traces.
#
# BINDIR holds linux binaries vbreplay and replaytool:
#   make linux-amd64 && GOOS=linux GOARCH=amd64 CGO_ENABLED=0 go build -trimpath -o .dist/ ./bench/scripts/replaytool
# Without BINDIR they are built with go into OUTDIR/bin.
# Env: SERVER_CPUS (default 0-5), CLIENT_CPUS (default 6-9), DUR (seconds
# per level, default 20 for the ladder; LAG_DUR 10 for the sweep), LOADS,
# RATES, NICE (default -10 as root, else 0), GUIDELLM (peer; skipped when
# absent). QUICK=1: a reduced run for a small box (server on CPU 0, client
# on CPU 1, LOADS "1 20 100", RATES "100 1000", 3-s levels, ~1 minute).
# Full run: ~4.5 minutes wall.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-${OUT:-/tmp/replay-quiet-$(date -u +%Y%m%dT%H%M%SZ)}}
if [ "${QUICK:-0}" = 1 ]; then
  : "${SERVER_CPUS:=0}" "${CLIENT_CPUS:=1}" "${LOADS:=1 20 100}" "${RATES:=100 1000}" "${DUR:=3}" "${LAG_DUR:=3}"
fi
SERVER_CPUS=${SERVER_CPUS:-0-5}
CLIENT_CPUS=${CLIENT_CPUS:-6-9}
LOADS=${LOADS:-"1 96 960"}
RATES=${RATES:-"100 1000 2000 5000 10000 20000"}
DUR=${DUR:-20}
LAG_DUR=${LAG_DUR:-10}
if [ -z "${NICE:-}" ]; then
  if [ "$(id -u)" = 0 ]; then NICE=-10; else NICE=0; fi
fi
GUIDELLM=${GUIDELLM:-} # peers only when named and present
command -v python3 >/dev/null || { echo "replay_quiet: python3 not found (the tables need it; the raw JSON would still be written)" >&2; exit 2; }
ncpu=$(nproc --all 2>/dev/null || nproc)
for c in $SERVER_CPUS $CLIENT_CPUS; do
  last=${c##*[-,]}
  if [ "$last" -ge "$ncpu" ]; then
    echo "replay_quiet: CPU $last not on this $ncpu-CPU host (set SERVER_CPUS/CLIENT_CPUS, or QUICK=1)" >&2
    exit 2
  fi
done
command -v taskset >/dev/null || { echo "replay_quiet: taskset not found (util-linux)" >&2; exit 2; }
mkdir -p "$OUT"
{
  echo "date: $(date -u +%FT%TZ)"
  echo "host: $ncpu CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), kernel $(uname -r)"
  echo "pinning: server (replaytool server --mock) on CPUs $SERVER_CPUS, client (vbreplay) on CPUs $CLIENT_CPUS, nice $NICE"
  echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "settings: LOADS=\"$LOADS\" DUR=$DUR RATES=\"$RATES\" LAG_DUR=$LAG_DUR QUICK=${QUICK:-0}"
  echo "binaries: ${BINDIR:-built into $OUT/bin}; Go sizes GOMAXPROCS to the pinned CPUs"
  if [ -x "$GUIDELLM" ]; then echo "peer: GuideLLM $GUIDELLM"; else echo "peer: GuideLLM not run (not installed; set GUIDELLM=path/to/guidellm)"; fi
} >"$OUT/host.txt"
cat "$OUT/host.txt"
export SERVER_CPUS CLIENT_CPUS NICE GUIDELLM
[ -n "${BINDIR:-}" ] && export BINDIR
t0=$(date +%s)
# The ladder first (the headline), then the sweep; one report over both.
DUR=$DUR LOADS=$LOADS PARTS=ttft bench/scripts/replay_bench.sh "$OUT" >/dev/null
DUR=$LAG_DUR RATES_LAG=$RATES SWEEP="" LOADS=$LOADS PARTS=lag bench/scripts/replay_bench.sh "$OUT" >"$OUT/report.md"
{
  echo "# vbreplay on a quiet host: server and client on disjoint cores"
  echo
  echo '```'
  cat "$OUT/host.txt"
  echo "wall: $(($(date +%s) - t0)) s"
  echo '```'
  echo
  cat "$OUT/report.md"
} >"$OUT/summary.md"
rm -f "$OUT/report.md"
cat "$OUT/summary.md"
