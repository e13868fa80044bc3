#!/usr/bin/env bash
# One GPU hold as one background job: a device call returns within 10
# minutes, but a process started with setsid keeps running between the calls
# of a warm machine (measured 2026-12-03: it runs on while no call is in
# flight). So the hold's work runs once, in order, with no trial cut or
# postponed at a call's end; the later calls only wait and report.
#
#   bash bench/scripts/h200_hold.sh start SECONDS 'MODE=run STUDY=a.toml' 'MODE=probe STUDY=b.toml VARIANTS="x y"'
#   bash bench/scripts/h200_hold.sh start SECONDS --parallel 'CUDA_VISIBLE_DEVICES=0 MODE=probe …' 'CUDA_VISIBLE_DEVICES=1 MODE=probe …'
#   bash bench/scripts/h200_hold.sh poll SECONDS     # wait (≤ SECONDS), print progress, send what is ready; returns early when all jobs are done
#   bash bench/scripts/h200_hold.sh collect          # move the next ≤ 45 MiB of the jobs' files into $OUT (repeat until "all sent")
#
# poll, where OUT is set (as on the device), also sends what the jobs have
# finished so far: hold-small.tar (the progress, the jobs' logs, plans,
# fingerprints and results trees as they stand) and hold-sent-<time>.tar
# (the captures tarballs finished since the last poll, up to 45 MiB; a
# bigger one waits for collect). A lent machine can be lost between two
# calls (measured 2026-12-03: 21 minutes into a hold, one call after the
# other, the next call found a bare machine): what the polls sent is kept,
# and the unpacker reads it as it reads collect's files. Give
# h200_unpack.sh every call's folder, polls and collects, in call order
# (the last hold-small.tar is the newest).
#
# start copies the checkout (with its .bundle and .dist) to $HOLD (default
# /root/hold) and runs the jobs there one after another with
# bench/scripts/h200_study.sh, each with OUT=$HOLD/out-K and a LIMIT that
# ends it SECONDS after start. The call that starts it must carry the last
# bundle part (or come after it).
set -u
HOLD=${HOLD:-/root/hold}
cmd=${1:?start, poll or collect}
shift
started() {
  [ -f "$HOLD/jobs.txt" ] || { echo "h200_hold.sh: no hold was started in $HOLD: run 'start SECONDS JOB…' first (HOLD sets the folder)" >&2; exit 2; }
}
case $cmd in
start)
  secs=${1:?seconds the jobs may take}
  shift
  case $secs in ''|*[!0-9]*) echo "h200_hold.sh: start $secs: want the seconds the jobs may take, e.g. start 1500 'MODE=run STUDY=…'" >&2; exit 2 ;; esac
  if [ -f "$HOLD/jobs.txt" ]; then
    if [ -f "$HOLD/DONE" ]; then
      echo "h200_hold.sh: a finished hold is in $HOLD: collect it, or remove $HOLD to start over" >&2
    else
      echo "h200_hold.sh: a hold is already running in $HOLD (no DONE yet): poll it, or remove $HOLD to start over" >&2
    fi
    exit 2
  fi
  par=0
  if [ "${1:-}" = --parallel ]; then par=1; shift; fi
  [ $# -gt 0 ] || { echo "h200_hold.sh: start: give at least one job, e.g. 'MODE=run STUDY=examples/h200-dense-sharegpt.toml'" >&2; exit 2; }
  mkdir -p "$HOLD/wk"
  # The checkout into the hold, leaving the hold itself out when it lies
  # inside the checkout.
  hold_abs=$(cd "$HOLD" && pwd -P)
  here=$(pwd -P)
  excl=()
  case "$hold_abs/" in "$here"/*) excl=(--exclude="./${hold_abs#"$here"/}") ;; esac
  tar -C . "${excl[@]}" -cf - . | tar -C "$HOLD/wk" -xf - || { echo "h200_hold.sh: copying the checkout into $HOLD/wk failed" >&2; exit 1; }
  t0=$(date +%s)
  printf '%s\n' "$@" > "$HOLD/jobs.txt"
  if [ $par = 0 ]; then
    cat > "$HOLD/runner.sh" <<RUN
cd "$HOLD/wk"
k=0
while IFS= read -r job; do
  k=\$((k + 1))
  left=\$(( $t0 + $secs - \$(date +%s) ))
  echo "[\$(date +%T)] job \$k (\${left}s left): \$job" >> "$HOLD/progress.txt"
  [ \$left -gt 60 ] || { echo "no time left for job \$k" >> "$HOLD/progress.txt"; continue; }
  env OUT="$HOLD/out-\$k" LIMIT=\$left SEND_MAX=1000 bash -c "\$job bash bench/scripts/h200_study.sh" >> "$HOLD/progress.txt" 2>&1
  echo "[\$(date +%T)] job \$k exit \$?" >> "$HOLD/progress.txt"
done < "$HOLD/jobs.txt"
touch "$HOLD/DONE"
RUN
  else
    # Side by side (each job on its own GPUs, e.g. CUDA_VISIBLE_DEVICES=1 in
    # the job): the bundle, binaries and traces are installed once first,
    # then every job starts at once, each logging to progress-K.txt.
    cat > "$HOLD/runner.sh" <<RUN
cd "$HOLD/wk"
env OUT="$HOLD/out-0" LIMIT=$secs MODE=install bash bench/scripts/h200_study.sh >> "$HOLD/progress.txt" 2>&1
echo "[\$(date +%T)] install exit \$?" >> "$HOLD/progress.txt"
k=0
while IFS= read -r job; do
  k=\$((k + 1))
  left=\$(( $t0 + $secs - \$(date +%s) ))
  echo "[\$(date +%T)] job \$k (\${left}s left, side by side): \$job" >> "$HOLD/progress.txt"
  ( env OUT="$HOLD/out-\$k" LIMIT=\$left SEND_MAX=1000 bash -c "\$job bash bench/scripts/h200_study.sh" > "$HOLD/progress-\$k.txt" 2>&1
    echo "[\$(date +%T)] job \$k exit \$?" >> "$HOLD/progress-\$k.txt" ) &
done < "$HOLD/jobs.txt"
wait
touch "$HOLD/DONE"
RUN
  fi
  (setsid nohup bash "$HOLD/runner.sh" > "$HOLD/runner.log" 2>&1 < /dev/null &)
  sleep 2
  echo "started $(wc -l < "$HOLD/jobs.txt") jobs$([ $par = 1 ] && echo ' side by side'), deadline in ${secs}s"
  ;;
poll)
  started
  secs=${1:-540}
  end=$(( $(date +%s) + secs ))
  while [ "$(date +%s)" -lt $end ] && [ ! -f "$HOLD/DONE" ]; do sleep 2; done
  # The progress first, then what is sent: every job end shown here was
  # before the sending, so that job's files are all in what is sent.
  report=$(
    tail -40 "$HOLD/progress.txt"
    for f in "$HOLD"/progress-*.txt; do
      [ -f "$f" ] && { echo "== $(basename "$f")"; tail -15 "$f"; }
    done
    [ -f "$HOLD/DONE" ] && echo "ALL DONE"
  )
  if [ -n "${OUT:-}" ]; then
    mkdir -p "$OUT" "$HOLD/sent"
    (
      cd "$HOLD" || exit 1
      budget=$((45 * 1048576))
      list=()
      for f in $(find out-* -maxdepth 1 -type f \( -name '*captures*.tar.xz' -o -name 'compile-caches.tar.xz' \) ! -name '.tmp-*' 2>/dev/null | sort); do
        sz=$(stat -c %s "$f")
        [ "$sz" -le $budget ] || continue
        list+=("$f")
        budget=$((budget - sz))
      done
      if [ ${#list[@]} -gt 0 ]; then
        t=$OUT/hold-sent-$(date -u +%H%M%S).tar
        if tar cf "$t" "${list[@]}"; then
          for f in "${list[@]}"; do mkdir -p "sent/$(dirname "$f")" && mv "$f" "sent/$f"; done
          echo "sent: ${list[*]} ($(( $(stat -c %s "$t") / 1048576 )) MiB)"
        else
          rm -f "$t"
        fi
      fi
      tar cf "$OUT/hold-small.tar" --exclude='*captures*' --exclude='*caches*' --exclude='.tmp-*' progress*.txt runner.log jobs.txt out-* 2>/dev/null
      echo "sent: hold-small.tar ($(( $(stat -c %s "$OUT/hold-small.tar") / 1024 )) KiB)"
    ) >&2
  fi
  echo "$report"
  ;;
collect)
  # A call returns at most 8 files and about 64 MiB in all: the first
  # collect packs everything (all the small files in one tar, the captures,
  # already .tar.xz, in parts of 15 MiB) and each collect moves the parts
  # not sent yet, up to 3 (≈45 MiB + the small tar), into $OUT. Repeat
  # collect, in back-to-back calls, until it says "all sent".
  started
  [ -f "$HOLD/DONE" ] || echo "h200_hold.sh: warning: the jobs are still running; collecting what is there now, and nothing more later" >&2
  OUT=${OUT:-/tmp/out}
  mkdir -p "$OUT" "$HOLD/collect"
  cd "$HOLD" || exit 1
  if [ ! -f collect/packed ]; then
    tar cf collect/hold-small.tar --exclude='*captures*' --exclude='*caches*' --exclude='.tmp-*' progress*.txt runner.log jobs.txt out-* 2>/dev/null
    if find out-* \( -name '*captures*' -o -name '*caches*' \) 2>/dev/null | grep -q .; then
      find out-* \( -name '*captures*' -o -name '*caches*' \) -print0 | tar cf - --null -T - | split -b 15M -d -a 2 - collect/hold-captures.tar.part
    fi
    touch collect/packed
  fi
  n=0
  for f in collect/hold-small.tar collect/hold-captures.tar.part*; do
    [ -f "$f" ] || continue
    case $f in *part*) [ $n -lt 3 ] || break; n=$((n + 1)) ;; esac
    mv "$f" "$OUT/"
  done
  ls -la "$OUT"
  if ls collect/hold-captures.tar.part* > /dev/null 2>&1; then
    echo "more parts left: run collect again"
  else
    echo "all sent"
  fi
  ;;
*) echo "h200_hold.sh: unknown command $cmd: want start, poll or collect" >&2; exit 2 ;;
esac
