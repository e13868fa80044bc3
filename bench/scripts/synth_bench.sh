#!/usr/bin/env bash
# Synthesizer benchmarks: the Go benchmarks of synth (1M-request synthesis and
# decode, per-request cost) and the vbsynth CLI on 1M requests, wall time and
# peak RSS. Usage: bench/scripts/synth_bench.sh [OUTDIR]   (default /tmp/vbsynth-bench)
set -euo pipefail
out=${1:-/tmp/vbsynth-bench}
mkdir -p "$out"
echo "date: $(date -u +%FT%TZ)  host: $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg)"
go version
go test -run XXX -bench 'Synthesize1M|Decode1M' -benchtime 3x -count 1 ./synth/ | grep -E '^(Benchmark|cpu)'
go test -run XXX -bench 'Next' -benchtime 1000000x -count 3 ./synth/ | grep -E '^Benchmark'
go build -o "$out/vbsynth" ./cmd/vbsynth
t() { /usr/bin/time -o "$out/time.txt" -f "  %e s wall, %M KB max RSS" "$@"; cat "$out/time.txt" >&2; }
echo "vbsynth --requests 1000000 (sharegpt profile, token-id prompts):"
t "$out/vbsynth" -q --requests 1000000 -o "$out/1m.bin"
ls -l "$out/1m.bin" | awk '{printf "  file %.1f MB\n", $5/1e6}'
echo "vbsynth inspect (1M):"
t "$out/vbsynth" inspect "$out/1m.bin" >/dev/null
echo "vbsynth convert 1M bin -> jsonl -> bin:"
t "$out/vbsynth" convert "$out/1m.bin" "$out/1m.jsonl" 2>/dev/null
t "$out/vbsynth" convert "$out/1m.jsonl" "$out/1m-back.bin" 2>/dev/null
cmp "$out/1m.bin" "$out/1m-back.bin" && echo "  round trip byte-identical"
if [ -f ../shared/data/azure-llm-inference-2023/AzureLLMInferenceTrace_conv.csv ]; then
  echo "vbsynth import azure (19,366 rows):"
  t "$out/vbsynth" import azure ../shared/data/azure-llm-inference-2023/AzureLLMInferenceTrace_conv.csv -o "$out/azure.bin"
fi
rm -f "$out"/1m*.bin "$out"/1m.jsonl "$out/time.txt"
