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
# RUN_DIR/study.toml); COLLECT_DIR the folders of the poll and collect
# calls' files, in call order (the last hold-small.tar is the newest; a
# hold whose machine was lost before collect unpacks from its polls'). It writes into RUN_DIR the job's plan.txt, driver.txt,
# run.log, device.txt, fingerprint.jsonl and results tree without captures (its trace copy
# removed, backend.log and requests.csv compressed with xz, the trials'
# SVG charts left out: their PNGs stay), CAPTURES.txt
# (each captures tarball's SHA256 and size); the tarballs into
# $STUDY_DATA (default .study-data/<results folder>/<run>, kept out of git)
# and extracted into RUN_DIR for studyreport (the capture folders are
# git-ignored); a compile-caches.tar.xz into .dist/caches/ for the next
# hold. JOB (default 1) picks the hold's job (out-JOB).
#
#   JOB=2 bash bench/scripts/h200_unpack.sh --probe PROBE_DIR COLLECT_DIR...
#
# unpacks a probe job (MODE=probe) instead: each probed variant's probe.md,
# probe.json and server config.json into PROBE_DIR/<variant>/ (a variant
# already there is refused, not overwritten), its captures tarball into
# $STUDY_DATA (default .study-data/<results folder>/<PROBE_DIR's name>)
# with its SHA256 and size appended to PROBE_DIR/CAPTURES.txt.
set -euo pipefail
probe=0
if [ "${1:-}" = --probe ]; then
  probe=1
  shift
  run_dir=${1:?--probe PROBE_DIR COLLECT_DIR...}
  shift
else
  run_dir=${1:?RUN_DIR HOLD.toml COLLECT_DIR...}
  hold=${2:?RUN_DIR HOLD.toml COLLECT_DIR...}
  shift 2
  [ -f "$hold" ] || { echo "h200_unpack.sh: $hold: no such hold file" >&2; exit 2; }
  if [ -d "$run_dir" ] && [ -n "$(ls -A "$run_dir")" ]; then
    echo "h200_unpack.sh: $run_dir is not empty: give a new run folder (or remove it to unpack again)" >&2
    exit 2
  fi
fi
[ $# -gt 0 ] || { echo "h200_unpack.sh: give the poll and collect calls' folders, in call order (with hold-small.tar, hold-sent-*.tar or hold-captures.tar.partNN)" >&2; exit 2; }
job=${JOB:-1}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

small=
for d in "$@"; do
  if [ -f "$d/hold-small.tar" ]; then small=$d/hold-small.tar; fi
done
[ -n "$small" ] || { echo "h200_unpack.sh: no hold-small.tar in $*: it comes with every poll (where OUT is set) and the first collect" >&2; exit 1; }
tar xf "$small" -C "$tmp"
# What the polls sent while the jobs ran (each captures tarball once).
for d in "$@"; do
  for f in "$d"/hold-sent-*.tar; do
    if [ -f "$f" ]; then tar xf "$f" -C "$tmp"; fi
  done
done
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

if [ $probe = 1 ]; then
  probes=$(find "$out" -maxdepth 1 -name 'probe-*.tar.xz' ! -name '*-captures.tar.xz' | sort)
  [ -n "$probes" ] || { echo "h200_unpack.sh: job $job brought back no probe-*.tar.xz (a run job? unpack it without --probe; see its driver.txt)" >&2; exit 1; }
  res=$(basename "$(dirname "$run_dir")")
  data=${STUDY_DATA:-.study-data/$res/$(basename "$run_dir")}
  mkdir -p "$run_dir"
  n=0
  for p in $probes; do
    x=$tmp/x-$n
    mkdir -p "$x"
    tar xJf "$p" -C "$x"
    for d in "$x"/*/; do
      v=$(basename "$d")
      [ -f "$d/probe.json" ] || { echo "h200_unpack.sh: $(basename "$p"): $v has no probe.json (the probe did not finish; its stderr.txt says why): skipped" >&2; continue; }
      if [ -e "$run_dir/$v" ]; then
        echo "h200_unpack.sh: $run_dir/$v exists: not overwritten (remove it to unpack this probe again)" >&2
        exit 2
      fi
      mkdir -p "$run_dir/$v"
      cp "$d/probe.json" "$d/probe.md" "$run_dir/$v/"
      cfg=$(find "$d" -name config.json | head -1)
      if [ -n "$cfg" ]; then cp "$cfg" "$run_dir/$v/"; fi
      n=$((n + 1))
    done
    c=${p%.tar.xz}-captures.tar.xz
    if [ -f "$c" ]; then
      mkdir -p "$data"
      cp "$c" "$data/"
      (cd "$(dirname "$c")" && sha256sum "$(basename "$c")" && stat -c '%s %n' "$(basename "$c")") >> "$run_dir/CAPTURES.txt"
    fi
  done
  if [ -f "$run_dir/CAPTURES.txt" ]; then
    # Checksums first, then sizes, as a run folder's (so that
    # sha256sum -c reads the first lines).
    sums=$run_dir/CAPTURES.txt
    { grep -E '^[0-9a-f]{64}  ' "$sums" || true; grep -vE '^[0-9a-f]{64}  ' "$sums" || true; } > "$tmp/sums" && cp "$tmp/sums" "$sums"
  fi
  echo "unpacked job $job's probes into $run_dir: $n variant(s), captures in $data"
  exit 0
fi
[ -f "$out/results.tar.xz" ] || { echo "h200_unpack.sh: job $job brought back no results.tar.xz (a probe job? unpack it with --probe PROBE_DIR)" >&2; exit 1; }

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
