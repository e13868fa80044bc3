#!/usr/bin/env bash
# Before/after, interleaved: the replayer's, decoder's, proxy's and
# analysis's Go benchmarks at two commits, run old, new, old, new… in one
# session so that both see the same machine load, then compared with
# benchstat. Issue 18 (one decoder for the proxy, the replayer and the
# analysis) recorded its figures with it (docs/benchmarks/replay.md).
#
# Usage: bench/scripts/ab_bench.sh OLD NEW [OUTDIR] [ROUNDS]
#   OLD, NEW: commits (e.g. f181e12 HEAD); OUTDIR default /tmp/vbench-ab;
#   ROUNDS default 12 (the schedule-lag and whole-analysis benchmarks run
#   ROUNDS/2 times: they take seconds each).
# Environment: BENCHSTAT (default: benchstat on PATH or in ~/go/bin),
#   VBENCH_ANALYZE_N (default 20000 requests for BenchmarkAnalyzeStore).
set -euo pipefail
cd "$(dirname "$0")/../.."
old=${1:?usage: ab_bench.sh OLD NEW [OUTDIR] [ROUNDS]}
new=${2:?usage: ab_bench.sh OLD NEW [OUTDIR] [ROUNDS]}
out=${3:-/tmp/vbench-ab}
rounds=${4:-12}
export VBENCH_ANALYZE_N=${VBENCH_ANALYZE_N:-20000}
rm -rf "$out"
mkdir -p "$out"
out=$(cd "$out" && pwd)

# build: each package's test binary at each commit, from a detached worktree
for v in old new; do
	rev=${!v}
	git worktree add -q --detach "$out/src-$v" "$rev"
	git -C "$out/src-$v" rev-parse --short HEAD >"$out/$v.commit"
	for p in replay internal/openai proxy analyze analyze/render; do
		if [ -d "$out/src-$v/$p" ]; then
			(cd "$out/src-$v" && go test -c -o "$out/bin-$v/$(basename "$p").test" "./$p")
		fi
	done
	git worktree remove --force "$out/src-$v"
done
echo "old $(cat "$out/old.commit"), new $(cat "$out/new.commit"); $(nproc) cores; load before: $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$out/conditions.txt"

bench() { # binary regex benchtime file
	"$1" -test.run '^$' -test.bench "$2" -test.benchtime "$3" -test.benchmem >>"$4" 2>&1
}
for i in $(seq "$rounds"); do
	for v in old new; do
		b=$out/bin-$v
		bench "$b/replay.test" '^(BenchmarkStreamerRead|BenchmarkSend|BenchmarkClientNetHTTP)$' 1s "$out/$v.txt"
		bench "$b/openai.test" '^BenchmarkScan$' 1s "$out/$v.txt"
		bench "$b/proxy.test" '^BenchmarkForwardChunk$' 1s "$out/$v.txt"
		bench "$b/analyze.test" '^BenchmarkMeasure$' 1s "$out/$v.txt"
	done
done
for i in $(seq $((rounds / 2))); do
	for v in old new; do
		b=$out/bin-$v
		bench "$b/replay.test" '^BenchmarkScheduleLag$' 1x "$out/$v.lag.txt"
		# the whole analysis moved to analyze/render with issue 18
		a=$b/analyze.test
		[ -x "$b/render.test" ] && a=$b/render.test
		bench "$a" '^BenchmarkAnalyzeStore$' 1x "$out/$v.txt"
	done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/conditions.txt"

# BenchmarkAnalyzeStore's package was analyze before issue 18 and is
# analyze/render after: one name, so that benchstat compares the two
sed -i 's#^pkg: \(.*\)/analyze/render$#pkg: \1/analyze#' "$out/old.txt" "$out/new.txt"
bs=${BENCHSTAT:-$(command -v benchstat || echo "$HOME/go/bin/benchstat")}
"$bs" "$out/old.txt" "$out/new.txt" | tee "$out/benchstat.txt"
"$bs" "$out/old.lag.txt" "$out/new.lag.txt" | tee "$out/benchstat.lag.txt"
