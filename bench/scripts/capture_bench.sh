#!/usr/bin/env bash
# Capture store benchmarks (docs/benchmarks/capture.md): writer throughput
# (records of 300 chunks and of 1 chunk), sustained offered load with zero
# drops, Put cost, codec cost, bytes on disk per record, flush latency.
# Usage: bench/scripts/capture_bench.sh [OUT_FILE]
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-/dev/stdout}
{
  echo "# $(date -u +%FT%TZ) $(go version) $(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg)"
  go test ./capture -run '^$' -bench 'Writer|^BenchmarkPut$|Record300' -benchtime 3s -count 2
  go test ./capture -run '^$' -bench 'Sustained' -benchtime 5x
  go test ./capture -run 'TestCrashKill9' -v -count 1 | grep -E 'round|PASS|FAIL'
  echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$out" 2>&1
