#!/usr/bin/env bash
# Replay fidelity of a recorded trace, one command (run from the repository
# root):
#
#   bench/scripts/replay_fidelity.sh [OUTDIR]
#
# Imports a slice of the real Azure LLM inference conversation trace
# (vbsynth import azure --window), replays it with vbreplay through the
# embedded recording proxy (--capture) against vbsim, and compares the
# arrival times the proxy saw with the trace's recorded offsets
# (bench/scripts/replay_fidelity: send, arrival and gap errors, p50/p90/p99/
# max). One run per entry of RUNS ("WINDOW@SPEED", played at --speed SPEED).
# Env: CSV (default ../shared/data/azure-llm-inference-2023/
# AzureLLMInferenceTrace_conv.csv; skipped with a message when absent),
# RUNS (default "10m,12m@1 10m,20m@10"), PRESET (vbsim preset, default
# llama-7b-a100), SIMSPEED (vbsim --speed, default 10: the simulated GPU is
# 10x faster so the simulator keeps up with the sped-up runs).
# Results: OUTDIR/summary.md (+ per run: trace, capture, vbreplay JSON,
# fidelity JSON).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-/tmp/replay-fidelity-$(date -u +%Y%m%dT%H%M%SZ)}
CSV=${CSV:-../shared/data/azure-llm-inference-2023/AzureLLMInferenceTrace_conv.csv}
RUNS=${RUNS:-"10m,12m@1 10m,20m@10"}
PRESET=${PRESET:-llama-7b-a100}
SIMSPEED=${SIMSPEED:-10}
if [ ! -f "$CSV" ]; then
  echo "replay_fidelity: $CSV not found (set CSV=...); nothing to measure" >&2
  exit 0
fi
mkdir -p "$OUT/bin"
go build -o "$OUT/bin/" ./cmd/vbsynth ./cmd/vbsim ./cmd/vbreplay ./bench/scripts/replay_fidelity
B="$OUT/bin"
SIM=""
cleanup() { if [ -n "$SIM" ]; then kill "$SIM" 2>/dev/null || true; fi; }
trap cleanup EXIT
"$B/vbsim" --preset "$PRESET" --speed "$SIMSPEED" --max-model-len 32768 --listen 127.0.0.1:0 2>"$OUT/vbsim.log" &
SIM=$!
URL=""
for _ in $(seq 100); do
  URL=$(grep -o 'http://[0-9.:]*' "$OUT/vbsim.log" | head -1 || true)
  [ -n "$URL" ] && break
  sleep 0.1
done
[ -n "$URL" ] || { echo "vbsim did not start:"; cat "$OUT/vbsim.log"; exit 1; }
{
  echo "# Replay fidelity: Azure conv trace slices replayed against vbsim ($PRESET, --speed $SIMSPEED)"
  echo
  echo "Date: $(date -u +%Y-%m-%dT%H:%MZ); host: $(nproc) cores; command: bench/scripts/replay_fidelity.sh (RUNS=\"$RUNS\")"
  echo
} >"$OUT/summary.md"
for run in $RUNS; do
  win=${run%@*}
  speed=${run#*@}
  d="$OUT/${win/,/-}@$speed"
  mkdir -p "$d"
  "$B/vbsynth" import azure "$CSV" -o "$d/trace.bin" --window "$win" >"$d/import.log" 2>&1
  rm -rf "$d/cap"
  "$B/vbreplay" "$d/trace.bin" --capture "$d/cap" --upstream "$URL" --speed "$speed" -q --json "$d/replay.json" \
    --scrape-interval 0 >"$d/replay.log" 2>&1 || { cat "$d/replay.log"; exit 1; }
  {
    echo "## window $win of the trace, --speed $speed"
    echo
    "$B/replay_fidelity" --trace "$d/trace.bin" --capture "$d/cap" --speed "$speed" --json "$d/fidelity.json"
    echo
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); l=r["levels"][0]; print("vbreplay: sent %d, ok %d, errors %s, achieved %.2f req/s (scheduled %.2f), lag p99 %.3f ms; load average at the end: %s" % (l["sent"], l["ok"], l.get("errors") or "none", l["achieved_rate"], l["scheduled_rate"], l["lag"]["p99_ns"]/1e6, open("/proc/loadavg").read().split()[0]))' "$d/replay.json" || true
    echo
  } >>"$OUT/summary.md"
done
cat "$OUT/summary.md"
