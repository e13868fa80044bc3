#!/usr/bin/env bash
# analyze-bench.sh: time and measure vbanalyze on a real capture of
# N requests × C chunks (default 100,000 × 300; goal < 30 s and < 2 GB).
#
#   bench/scripts/analyze-bench.sh [N] [C]
#
# Writes the capture with the analyze package's generator (through the real
# capture store and writer), builds vbanalyze, then runs it under
# /usr/bin/time -v twice: the summary (CSV/JSON/requests.csv/report) and
# the same with --chart --vllm-json. Prints wall time and peak RSS.
set -euo pipefail
N=${1:-100000}
C=${2:-300}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/vbanalyze-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$ROOT"
echo "capture: $N requests x $C chunks in $WORK/capture"
VBENCH_ANALYZE_CAPTURE="$WORK/capture" VBENCH_ANALYZE_N=$N VBENCH_ANALYZE_CHUNKS=$C \
	go test ./analyze/ -run '^TestWriteBenchCapture$' -count=1 -v -timeout 30m | grep -E 'wrote|ok|FAIL'
du -sh "$WORK/capture"
go build -o "$WORK/vbanalyze" ./cmd/vbanalyze
for args in "" "--chart --vllm-json"; do
	echo "== vbanalyze CAPTURE --out OUT $args"
	# shellcheck disable=SC2086
	/usr/bin/time -v "$WORK/vbanalyze" "$WORK/capture" --out "$WORK/out" $args >"$WORK/table.txt" 2>"$WORK/time.txt" || { cat "$WORK/time.txt"; exit 1; }
	grep -E 'Elapsed \(wall|Maximum resident|User time|System time' "$WORK/time.txt"
done
head -3 "$WORK/table.txt"
echo "nproc: $(nproc); load: $(cut -d' ' -f1-3 /proc/loadavg)"
