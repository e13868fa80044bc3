#!/usr/bin/env bash
# After a GPU hold, here: put what h200_hold.sh's collect calls brought back
# where the study keeps it (docs/results/h200-2026-12-03/README.md, "After a
# hold").
#
#   bash bench/scripts/h200_unpack.sh RUN_DIR HOLD.toml COLLECT_DIR...
#
# RUN_DIR is the hold run's folder, e.g.
# docs/results/h200-2026-12-03/runs/sharegpt-rep1-hold1 (it must not exist
# yet, or be empty); HOLD.toml the hold file as it ran (copied to
# RUN_DIR/study.toml); COLLECT_DIR the folders of the collect calls' files,
# in call order. It writes into RUN_DIR the job's plan.txt, driver.txt,
# run.log, device.txt, fingerprint.jsonl and results tree without captures (its trace copy
# removed, backend.log and requests.csv compressed with xz, the trials'
# SVG charts left out: their PNGs stay), CAPTURES.txt
# (each captures tarball's SHA256 and size); the tarballs into
# $STUDY_DATA (default .study-data/<results folder>/<run>, kept out of git)
# and extracted into RUN_DIR for studyreport (the capture folders are
# git-ignored); a compile-caches.tar.xz into .dist/caches/ for the next
# hold. JOB (default 1) picks the hold's job (out-JOB).
set -euo pipefail
run_dir=${1:?RUN_DIR HOLD.toml COLLECT_DIR...}
hold=${2:?RUN_DIR HOLD.toml COLLECT_DIR...}
shift 2
[ $# -gt 0 ] || { echo "h200_unpack.sh: give the collect calls' folders (each with hold-small.tar or hold-captures.tar.partNN)" >&2; exit 2; }
[ -f "$hold" ] || { echo "h200_unpack.sh: $hold: no such hold file" >&2; exit 2; }
if [ -d "$run_dir" ] && [ -n "$(ls -A "$run_dir")" ]; then
  echo "h200_unpack.sh: $run_dir is not empty: give a new run folder (or remove it to unpack again)" >&2
  exit 2
fi
job=${JOB:-1}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

small=$(find "$@" -maxdepth 1 -name hold-small.tar | head -1)
[ -n "$small" ] || { echo "h200_unpack.sh: no hold-small.tar in $*: collect again (it comes with the first call)" >&2; exit 1; }
tar xf "$small" -C "$tmp"
# The capture parts, in part order whichever call brought them.
parts=$(find "$@" -maxdepth 1 -name 'hold-captures.tar.part*' | awk -F/ '{print $NF "\t" $0}' | sort | cut -f2-)
if [ -n "$parts" ]; then
  # shellcheck disable=SC2086 # one path per line, no spaces in the collect folders' names
  cat $parts | tar xf - -C "$tmp"
fi
out=$tmp/out-$job
[ -d "$out" ] || { echo "h200_unpack.sh: the hold has no job $job (out-$job); JOB picks another" >&2; exit 1; }
for c in "$out"/call-*.tar; do
  if [ -f "$c" ]; then tar xf "$c" -C "$out"; fi
done
[ -f "$out/results.tar.xz" ] || { echo "h200_unpack.sh: job $job brought back no results.tar.xz (a probe job? see its driver.txt)" >&2; exit 1; }

mkdir -p "$run_dir"
for f in plan.txt driver.txt run.log device.txt fingerprint.jsonl; do
  if [ -f "$out/$f" ]; then cp "$out/$f" "$run_dir/"; fi
done
cp "$hold" "$run_dir/study.toml"
tar xJf "$out/results.tar.xz" -C "$run_dir"
rm -rf "$run_dir/results/traces"
find "$run_dir/results" \( -name backend.log -o -name requests.csv \) -type f -exec xz -9 {} +
# Each trial's charts as PNG only (its report.md links those; the SVGs say
# the same, ≈0.3 MB a hold, and the checkout travels with every GPU call).
find "$run_dir/results" -path '*/analysis/charts/*.svg' -type f -delete

res=$(basename "$(dirname "$(dirname "$run_dir")")")
data=${STUDY_DATA:-.study-data/$res/$(basename "$run_dir")}
caps=$(find "$out" -maxdepth 1 -name 'captures-*.tar.xz' | sort)
: > "$run_dir/CAPTURES.txt"
if [ -n "$caps" ]; then
  mkdir -p "$data"
  (cd "$out" && sha256sum captures-*.tar.xz && stat -c '%s %n' captures-*.tar.xz) > "$run_dir/CAPTURES.txt"
  for c in $caps; do
    cp "$c" "$data/"
    tar xJf "$c" -C "$run_dir"
  done
fi
if [ -f "$out/compile-caches.tar.xz" ]; then
  mkdir -p .dist/caches
  cp "$out/compile-caches.tar.xz" .dist/caches/
  echo "compile caches: .dist/caches/compile-caches.tar.xz ($(du -h "$out/compile-caches.tar.xz" | cut -f1))"
fi
trials=$(find "$run_dir/results" -name status.json | wc -l)
echo "unpacked job $job into $run_dir: $trials trial(s), $(echo "$caps" | grep -c . || true) captures tarball(s) in $data"
