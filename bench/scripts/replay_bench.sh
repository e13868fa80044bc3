#!/usr/bin/env bash
# Replayer benchmark, one command (run from the repository root):
#
#   bench/scripts/replay_bench.sh [OUTDIR]
#
# Measures vbreplay against a local streaming server run as its own
# process (bench/scripts/replaytool server --mock: known TTFT/ITL, and it
# reports when it really flushed each first token):
#   1. schedule lag p50/p99 at 100, 1,000 and 5,000 req/s (1-token replies);
#   2. the highest rate sustained with lag p99 <= 1 ms (rate sweep);
#   3. TTFT overstatement at ~1, ~100 and ~1,000 concurrent streams against
#      a server with TTFT 50 ms / ITL 10 ms / 100 tokens (requests last
#      ~1.04 s, so R req/s keeps ~R streams open);
#   4. the same loads with GuideLLM when GUIDELLM points at its CLI
#      (default: /tmp/guidellm-venv/bin/guidellm if present; install with
#      `python3 -m venv /tmp/guidellm-venv && /tmp/guidellm-venv/bin/pip install guidellm`).
# Results: OUTDIR/summary.md (+ every raw JSON). Env: DUR (seconds per
# level, default 10), RATES_LAG, SWEEP, LOADS, PACER (vbreplay --pacer),
# NICE (run the server and every client under `nice -n $NICE`, e.g. -10 as
# root, so other jobs on a shared machine do not starve them; both tools
# get the same treatment), PARTS ("lag ttft": which parts to run; results
# already in OUTDIR are kept and summarized), BINDIR (prebuilt vbreplay and
# replaytool, e.g. .dist from `make linux-amd64` plus
# `go build -o .dist/ ./bench/scripts/replaytool`; no Go needed then),
# SERVER_CPUS / CLIENT_CPUS (taskset CPU lists, e.g. 0-5 and 6-9: the server
# and the clients on disjoint cores; empty = no pinning).
# bench/scripts/replay_quiet.sh wraps this with the quiet-host settings.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-/tmp/replay-bench-$(date -u +%Y%m%dT%H%M%SZ)}
DUR=${DUR:-10}
RATES_LAG=${RATES_LAG:-"100 1000 5000"}
SWEEP=${SWEEP-"250 500 1000 2000 3000 4000 5000 7500 10000"}
LOADS=${LOADS:-"1 96 960"}
PACER=${PACER:-precise}
NICE=${NICE:-0}
SERVER_CPUS=${SERVER_CPUS:-}
CLIENT_CPUS=${CLIENT_CPUS:-}
pin() { if [ -n "$1" ]; then echo "taskset -c $1"; fi; }
NS="$(pin "$SERVER_CPUS") nice -n $NICE" # the server
N="$(pin "$CLIENT_CPUS") nice -n $NICE"  # every client
PARTS=${PARTS:-"lag ttft"}
GUIDELLM=${GUIDELLM-/tmp/guidellm-venv/bin/guidellm} # empty: no peer
mkdir -p "$OUT"
if [ -n "${BINDIR:-}" ]; then
  B=$(cd "$BINDIR" && pwd)
  for b in vbreplay replaytool; do
    [ -x "$B/$b" ] || { echo "replay_bench: $B/$b missing (build: GOOS=linux GOARCH=amd64 CGO_ENABLED=0 go build -trimpath -o $BINDIR/ ./cmd/vbreplay ./bench/scripts/replaytool)" >&2; exit 1; }
  done
else
  mkdir -p "$OUT/bin"
  go build -o "$OUT/bin/" ./cmd/vbreplay ./bench/scripts/replaytool
  B="$OUT/bin"
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

serve() { # serve NAME ARGS... -> sets URL
  $NS "$B/replaytool" server --mock "${@:2}" >"$OUT/$1.url" 2>"$OUT/$1.log" &
  PIDS+=($!)
  for _ in $(seq 50); do [ -s "$OUT/$1.url" ] && break; sleep 0.1; done
  URL=$(cat "$OUT/$1.url")
}
load() { echo "$(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/load.log"; }

echo "# replay benchmark $(date -u +%FT%TZ), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), DUR=$DUR PACER=$PACER NICE=$NICE server CPUs ${SERVER_CPUS:-any} client CPUs ${CLIENT_CPUS:-any}, nofile $(ulimit -n), PARTS=$PARTS" >>"$OUT/load.log"

# 1 + 2: lag against a fast server (1-token replies, no delay).
if [[ " $PARTS " == *" lag "* ]]; then
maxrate=$(echo $RATES_LAG $SWEEP | tr ' ' '\n' | sort -n | tail -1)
"$B/replaytool" trace --out "$OUT/fast.bin" --n $((maxrate * (DUR + 2))) --arrival poisson --output-tokens 1
serve fast --tokens 1
for r in $(echo $RATES_LAG $SWEEP | tr ' ' '\n' | sort -n | uniq); do
  load
  $N "$B/vbreplay" "$OUT/fast.bin" --target "$URL" --rate "$r" --duration "${DUR}s" --pacer "$PACER" -q --json "$OUT/lag-vbreplay-$r.json" >/dev/null || true
done
if [ -x "$GUIDELLM" ]; then
  python3 -c "
import json
with open('$OUT/gl-fast.jsonl','w') as f:
    for i in range(200000): f.write(json.dumps({'prompt':'word word word word word word word word','output_tokens_count':1})+'\n')"
  for r in $RATES_LAG; do
    load
    timeout 600 $N "$GUIDELLM" run --backend kind=openai_http,target="$URL",request_format=/v1/completions --profile kind=constant,rate="$r" \
      --constraint kind=max_duration,seconds="$DUR" --data kind=json_file,path="$OUT/gl-fast.jsonl" \
      --output kind=json,path="$OUT/lag-guidellm-$r.json" --disable-console >"$OUT/lag-guidellm-$r.log" 2>&1 || echo "guidellm rate $r failed (see $OUT/lag-guidellm-$r.log)"
  done
fi

fi

# 3 + 4: TTFT overstatement, server TTFT 50 ms / ITL 10 ms / 100 tokens.
if [[ " $PARTS " == *" ttft "* ]]; then
maxload=$(echo $LOADS | tr ' ' '\n' | sort -n | tail -1)
"$B/replaytool" trace --out "$OUT/slow.bin" --n $((maxload * (DUR + 2))) --arrival constant --output-tokens 100
serve slow --ttft 50ms --itl 10ms --tokens 100
for r in $LOADS; do
  load
  "$B/replaytool" stats --reset "$URL"
  $N "$B/vbreplay" "$OUT/slow.bin" --target "$URL" --rate "$r" --duration "${DUR}s" --drain 60s --pacer "$PACER" -q --json "$OUT/ttft-vbreplay-$r.json" >/dev/null || true
  "$B/replaytool" stats "$URL" >"$OUT/ttft-vbreplay-$r.server.json"
done
if [ -x "$GUIDELLM" ]; then
  python3 -c "
import json
with open('$OUT/gl-slow.jsonl','w') as f:
    for i in range(20000): f.write(json.dumps({'prompt':'word word word word word word word word','output_tokens_count':100})+'\n')"
  for r in $LOADS; do
    load
    "$B/replaytool" stats --reset "$URL"
    timeout 600 $N "$GUIDELLM" run --backend kind=openai_http,target="$URL",request_format=/v1/completions --profile kind=constant,rate="$r" \
      --constraint kind=max_duration,seconds="$DUR" --data kind=json_file,path="$OUT/gl-slow.jsonl" \
      --output kind=json,path="$OUT/ttft-guidellm-$r.json" --disable-console >"$OUT/ttft-guidellm-$r.log" 2>&1 || echo "guidellm rate $r failed (see $OUT/ttft-guidellm-$r.log)"
    "$B/replaytool" stats "$URL" >"$OUT/ttft-guidellm-$r.server.json"
  done
fi
fi
load
python3 bench/scripts/replay_bench_report.py "$OUT" | tee "$OUT/summary.md"
