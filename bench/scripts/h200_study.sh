#!/usr/bin/env bash
# Device-side driver of the H200 studies (issues #16 and #17): the dense
# study per workload (examples/h200-dense-{sharegpt,alpaca}.toml) and the MoE
# study (examples/moe-h200.toml). Run from the repository root on the GPU
# host, once per device call, all calls on one warm machine (a hold):
#
#   MODE=probe STUDY=examples/h200-dense-sharegpt.toml bash bench/scripts/h200_study.sh
#   MODE=run   STUDY=docs/results/h200-2026-12-03/holds/h200-dense-sharegpt-hold1.toml bash bench/scripts/h200_study.sh
#   MODE=runall GPUS=0,1,2,3 STUDY=examples/h200-dense-sharegpt.toml bash bench/scripts/h200_study.sh   # several GPUs, in the background (h200_hold.sh)
#
# The calls that carry one .bundle/*/callK folder each store its part; once
# all are there the bundle is installed (offline/host.sh) and the work
# starts. Work left when the call's time runs out is picked up by the next
# call: MODE=probe probes one variant at a time (vbbench probe --variants V)
# and MODE=run runs one trial at a time (vbbench run --trial N --resume),
# each started only when its estimate fits in the call's time left (a cut
# trial is re-run whole). Every call of a hold runs the same command, or,
# better, bench/scripts/h200_hold.sh runs it once in the background for the
# whole hold (no trial postponed at a call's end).
#
# Carried besides the bundle (make h200-study-dist), with any call of the
# hold (kept on the machine, step 0 below): .dist/vbbench.xz,
# .dist/vbsynth.xz (linux/amd64) and .dist/traces/*.bin (each workload's one
# trace, made here, so every call, hold and session replays the same hash),
# and .dist/caches/*.tar.xz when an earlier hold brought its compile caches
# back (CACHES_OUT=1; CACHES_MAX_MIB, default 28; CACHE_DIRS, the absolute
# folders packed, default Triton's, vLLM's and Inductor's).
#
# Environment: OUT (folder whose files come back; default /tmp/out), LIMIT
# (seconds this call may take; default 570), STUDY, MODE (probe|run),
# STATE (where probes and results live across calls; default /root/vbstate),
# VARIANTS (probe: which, in order; default every variant of the study),
# PROBE_FLAGS (default --min-concurrency 4 --max-concurrency 128
# --duration 12s), EST_TORCH/EST_VLLM (probe: seconds one variant takes,
# start-up included; defaults 170/310), MARGIN (run: seconds kept beyond a
# trial's plan estimate; default 45), HOST_SH (default offline/host.sh),
# VB_BIN (where the binaries are unpacked; default /root/vb), GPUS (runall),
# PLAN_FLAGS (added to every vbbench plan, e.g. "--measured
# docs/results/h200-2026-12-03/runs": trial estimates from earlier holds),
# ORDER (run: trial numbers to run first, e.g. "3" for a hold's anchor),
# SEND_MAX (run: captures tarballs one call writes, default 6: a call
# returns at most 8 files; h200_hold.sh sets it to 1000).
#
# Every file this driver leaves in OUT is whole: it is written under a
# .tmp- name and renamed when complete, so h200_hold.sh poll can send it
# while the job runs on. MODE=run leaves the results tree, the captures of
# each finished trial and the fingerprints after every trial, not only at
# its end: a machine lost mid-hold loses only the trial it was running.
set -u
T0=$(date +%s)
OUT=${OUT:-/tmp/out}
LIMIT=${LIMIT:-570}
MODE=${MODE:-run}
if [ "$MODE" = install ]; then STUDY=${STUDY:-}; else STUDY=${STUDY:?set STUDY to the study TOML}; fi
STATE=${STATE:-/root/vbstate}
PROBE_FLAGS=${PROBE_FLAGS:---min-concurrency 4 --max-concurrency 128 --duration 12s}
# The ShareGPT probe's longest per-variant wall times on the H200, start-up
# included (136–161 s vbtorch, 215–301 s vLLM), rounded up.
EST_TORCH=${EST_TORCH:-170}
EST_VLLM=${EST_VLLM:-310}
MARGIN=${MARGIN:-45}
[ "$MARGIN" -ge 25 ] || MARGIN=25 # the call stops vbbench 20 s before its end
mkdir -p "$OUT" "$STATE"
OUT=$(cd "$OUT" && pwd)
S=$OUT/driver.txt
log() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a "$S" >&2; }
left() { echo $(( LIMIT - ($(date +%s) - T0) )); }
# put NAME: stdin into $OUT/NAME, whole or not at all (see above).
put() { cat > "$OUT/.tmp-$1" && mv -f "$OUT/.tmp-$1" "$OUT/$1"; }
SEND_MAX=${SEND_MAX:-6}
sent_n=0

# 0. .dist may come with any call of a hold, not only the last bundle
# part's: it is kept in $STATE/dist (outside the checkout, which each call
# copies afresh) for the machine's life, and used from there. So a call with
# room to spare carries it (the checkout grows with docs/results; a call
# carries at most 64 MiB).
DIST=$STATE/dist
if [ -d .dist ]; then
  mkdir -p "$DIST" && cp -a .dist/. "$DIST/" && log ".dist: kept in $DIST ($(du -sh .dist | cut -f1))"
fi

# 1. The bundle: store this call's parts; install once all are there.
HOST_SH=${HOST_SH:-offline/host.sh}
shopt -s nullglob
calls=(.bundle/*/call*)
shopt -u nullglob
t=$(date +%s)
if [ ${#calls[@]} -eq 0 ]; then
  bash "$HOST_SH" env > "$OUT/host-env.sh" 2> "$OUT/host.log"
else
  bash "$HOST_SH" install "${calls[@]}" > "$OUT/host-env.sh" 2> "$OUT/host.log"
fi
rc=$?
log "offline/host.sh: exit $rc in $(( $(date +%s) - t ))s ($(tail -1 "$OUT/host.log"))"
case $rc in
  0) ;;
  3) log "bundle incomplete: carry the next call folder"; exit 0 ;;
  *) tail -30 "$OUT/host.log" >&2; exit 1 ;;
esac
eval "$(bash "$HOST_SH" env)"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 PYTHONUNBUFFERED=1

# Compile caches carried from an earlier hold (.dist/caches/*.tar.xz, each a
# compile-caches.tar.xz an earlier call brought back; see CACHES_OUT):
# Triton's kernels (the FP8 MoE ones took 137 s to build), vLLM's
# torch.compile artefacts and Inductor's. Unpacked once per machine, before
# any server starts; a server that finds them starts sooner (its start-up
# is recorded in each trial's meta.json either way).
if [ ! -f "$STATE/caches-restored" ]; then
  for c in "$DIST"/caches/*.tar.xz; do
    [ -f "$c" ] || continue
    if tar -C / -xJf "$c"; then log "caches: restored $(basename "$c") ($(du -h "$c" | cut -f1))"; else log "caches: $(basename "$c") did not unpack"; fi
  done
  touch "$STATE/caches-restored"
fi

# 2. Our binaries and the traces (a fresh checkout copy each call: the
# traces go back into traces/ each time; their hashes never change).
VB_BIN=${VB_BIN:-/root/vb}
mkdir -p "$VB_BIN" traces
for b in vbbench vbsynth; do
  [ -x "$VB_BIN/$b" ] && continue
  [ -f "$DIST/$b.xz" ] || { log "no $b.xz in .dist, on this call or an earlier one: carry .dist (make h200-study-dist) with a call of this hold"; exit 1; }
  xz -dc "$DIST/$b.xz" > "$VB_BIN/$b" && chmod +x "$VB_BIN/$b"
done
export PATH=$VB_BIN:$PATH
for f in "$DIST"/traces/*.bin; do [ -f "traces/$(basename "$f")" ] || cp "$f" traces/; done
{
  echo "date: $(date -u +%FT%TZ)"
  nvidia-smi --query-gpu=name,memory.total,driver_version,uuid,pci.bus_id --format=csv,noheader
  echo "host: $(hostname)"
  python3 -c 'import sys, torch; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda)'
  python3 -c 'import vllm; print("vllm", vllm.__version__)' 2>&1 | tail -1
  echo "cpus: $(nproc)  mem: $(free -g | awk '/Mem/{print $2}') GiB  uptime: $(cut -d' ' -f1 /proc/uptime)s"
  vbbench --version 2>/dev/null || true
} > "$OUT/device.txt" 2>&1
log "device: $(sed -n 2p "$OUT/device.txt")"
# The machine's speed now (bench/scripts/fingerprint.py: the host's Python
# and kernel-launch cost, the GPU's copy and matmul rates, its clocks, what
# else uses the CPU), before each trial or probed variant and once here: the
# anchor's drift between holds is then explained, or not, by the machine.
fingerprint() {
  local line
  line=$(timeout 120 python3 bench/scripts/fingerprint.py --label "$1" 2>>"$OUT/host.log") || { log "fingerprint $1: failed (host.log)"; return 0; }
  echo "$line" >> "$STATE/fingerprint.jsonl"
  log "fingerprint $1: $(echo "$line" | python3 -c 'import json, sys; r = json.load(sys.stdin); g = r.get("gpu") or {}; print("python %s ns/iter, launch %s µs, sync %s µs, copy %s GB/s, bf16 %s TFLOP/s, SM %s/%s MHz, %s °C, load %s, busiest %s" % (r["py_loop_ns"], r["launch_us"], r["sync_us"], r["hbm_gbs"], r["bf16_tflops"], g.get("sm_mhz"), g.get("max_sm_mhz"), g.get("temp_c"), r["load1"], ", ".join(r["busiest"]) or "-"))')"
}
[ "$MODE" = install ] || fingerprint start
if [ "$MODE" = install ]; then
  # Only the bundle, the binaries and the traces (h200_hold.sh --parallel
  # runs this once before its jobs start side by side).
  log "installed"
  exit 0
fi
PLAN_FLAGS=${PLAN_FLAGS:-}
# shellcheck disable=SC2086 # PLAN_FLAGS is a list of flags
vbbench plan $PLAN_FLAGS "$STUDY" > "$OUT/plan.txt" 2>&1
name=$(basename "$STUDY" .toml)

# The results tree without captures, and each finished trial's captures
# once, in their own tarball, at most SEND_MAX of them per call (a call
# returns at most 8 files; h200_hold.sh sends any number as they come): the
# trials not sent yet. Finished: status ok or early-stopped
# (bench.StatusOK, bench.StatusEarlyStopped). And the fingerprints so far.
send_results() {
  tar -C . --exclude='*/capture' --exclude='*/capture/*' -cJf - results reports 2>/dev/null | put results.tar.xz
  [ -f "$STATE/fingerprint.jsonl" ] && put fingerprint.jsonl < "$STATE/fingerprint.jsonl"
  mkdir -p "$STATE/sent"
  local st d id
  for st in $(find results -name status.json 2>/dev/null | sort); do
    d=$(dirname "$st"); id=$(basename "$d")
    grep -q '"status": *"\(ok\|early-stopped\)"' "$st" || continue
    [ -f "$STATE/sent/$id" ] && continue
    [ $sent_n -ge "$SEND_MAX" ] && { log "more trials' captures wait for the next call"; break; }
    tar -cf - "$d/capture" | xz -T0 -6 | put "captures-${id//+/_}.tar.xz" && touch "$STATE/sent/$id"
    sent_n=$((sent_n + 1))
  done
}

# 3. The work.
case $MODE in
probe)
  vs=${VARIANTS:-$(sed -n 's/^variants = \[\(.*\)\]/\1/p' "$STUDY" | tr -d '",')}
  for v in $vs; do
    d=$STATE/probe-$name/$v
    [ -f "$d/DONE" ] && continue
    est=$EST_VLLM; case $v in torch*) est=$EST_TORCH ;; esac
    if [ "$(left)" -lt $(( est + 45 )) ]; then
      log "probe $v: ≈${est}s needed, $(left)s left: next call"
      break
    fi
    rm -rf "$d"; mkdir -p "$d"
    fingerprint "probe $v"
    t=$(date +%s)
    # shellcheck disable=SC2086
    timeout -s INT -k 30 $(( $(left) - 40 )) vbbench probe --quiet --variants "$v" $PROBE_FLAGS --out "$d" "$STUDY" > "$d/stdout.md" 2> "$d/stderr.txt"
    rc=$?
    log "probe $v: exit $rc after $(( $(date +%s) - t ))s: $(grep -m1 -o 'Saturation[^;]*' "$d/probe.md" 2>/dev/null)"
    [ $rc -eq 0 ] && touch "$d/DONE"
    # What comes back may not have a '+' in its name (vllm-page+flash).
    f=$name-${v//+/_}
    tar -C "$STATE/probe-$name" --exclude='*/capture' -cJf - "$v" | put "probe-$f.tar.xz"
    cap=$(find "$d" -type d -name capture | head -1)
    [ -n "$cap" ] && tar -C "$STATE/probe-$name" -cf - "$v/${cap#"$d"/}" | xz -T0 -6 | put "probe-$f-captures.tar.xz"
  done
  ;;
run)
  # One trial at a time (vbbench run --trial N --resume), each started only
  # when its plan estimate plus a margin fits in the call's time left: a
  # trial cut by the call's end is re-run whole by the next call, so cutting
  # one wastes everything it had done. A trial that does not fit waits for
  # the next call; a later, shorter one that fits still runs now.
  # shellcheck disable=SC2086
  vbbench plan --json $PLAN_FLAGS "$STUDY" 2>/dev/null |
    ORDER=${ORDER:-} python3 -c '
import json, os, sys
ts = [(t["index"] + 1, t["estimate_ns"] // 10**9) for t in json.load(sys.stdin)["trials"]]
# ORDER (e.g. "3 1"): these trials first, in this order, then the rest in
# the plan order; for an anchor that must run even if the hold runs late.
first = [int(i) for i in os.environ["ORDER"].split()]
ts.sort(key=lambda t: first.index(t[0]) if t[0] in first else len(first))
for i, est in ts: print(i, est)' > "$OUT/trials.txt"
  mkdir -p "$STATE/run-$name"
  while read -r i est; do
    m=$STATE/run-$name/trial-$i
    [ -f "$m.done" ] && continue
    if [ -f "$m.failed2" ]; then log "trial $i failed twice: skipped (see run.log)"; continue; fi
    # (+10 s: the fingerprint before it, torch's import and CUDA's start.)
    if [ "$(left)" -lt $(( est + MARGIN + 10 )) ]; then
      log "trial $i: ≈${est}s + ${MARGIN}s margin + 10s fingerprint needed, $(left)s left: next call"
      continue
    fi
    fingerprint "trial $i"
    t=$(date +%s)
    timeout -s INT -k 15 $(( $(left) - 20 )) vbbench run --trial "$i" --resume "$STUDY" "$@" < /dev/null >> "$OUT/run.log" 2>&1
    rc=$?
    log "trial $i: exit $rc after $(( $(date +%s) - t ))s (planned ≈${est}s)"
    if [ $rc -ge 124 ]; then log "trial $i: stopped at the call's end (timeout exit $rc): the next call runs it again"; break; fi
    if [ $rc -eq 0 ]; then touch "$m.done"
    elif [ -f "$m.failed1" ]; then touch "$m.failed2"
    else touch "$m.failed1"; fi
    send_results
  done < "$OUT/trials.txt"
  send_results
  ;;
runall)
  # The whole study in one vbbench run, its trials on GPU lanes (GPUS, e.g.
  # 0,1,2,3 on a machine of four GPUs: each trial pinned to one with
  # CUDA_VISIBLE_DEVICES, several at once): for a hold that runs in the
  # background (h200_hold.sh), where no call's end cuts it. --resume keeps
  # what an earlier run finished.
  t=$(date +%s)
  # shellcheck disable=SC2086
  timeout -s INT -k 15 $(( $(left) - 20 )) vbbench run --resume ${GPUS:+--gpus "$GPUS"} "$STUDY" < /dev/null >> "$OUT/run.log" 2>&1
  log "run: exit $? after $(( $(date +%s) - t ))s"
  SEND_MAX=1000 send_results
  ;;
*) log "MODE=$MODE: want probe, run, runall or install"; exit 2 ;;
esac
nvidia-smi --query-gpu=memory.used --format=csv,noheader >> "$OUT/device.txt" 2>&1
# The compile caches this machine built, to carry to a later hold (put the
# file in .dist/caches/ there): only with CACHES_OUT=1, and only when small
# enough to ride along with a bundle part (CACHES_MAX_MIB, default 28).
if [ "${CACHES_OUT:-0}" = 1 ]; then
  dirs=()
  for d in ${CACHE_DIRS:-/root/.triton/cache /root/.cache/vllm /tmp/torchinductor_root}; do
    d=${d#/}
    [ -d "/$d" ] && dirs+=("$d")
  done
  if [ ${#dirs[@]} -gt 0 ]; then
    tar -C / -cf - "${dirs[@]}" 2>/dev/null | xz -T0 -6 > "$OUT/.tmp-caches"
    bytes=$(stat -c %s "$OUT/.tmp-caches")
    mib=$(( bytes / 1048576 ))
    log "caches: ${dirs[*]}: $(du -sh "${dirs[@]/#//}" 2>/dev/null | awk '{print $1}' | tr '\n' ' ')→ $(( bytes / 1024 )) KiB compressed"
    if [ "$mib" -ge "${CACHES_MAX_MIB:-28}" ]; then
      log "caches: ${mib} MiB is too big to carry: not kept"
      rm -f "$OUT/.tmp-caches"
    else
      mv -f "$OUT/.tmp-caches" "$OUT/compile-caches.tar.xz"
    fi
  fi
fi
[ -f "$STATE/fingerprint.jsonl" ] && put fingerprint.jsonl < "$STATE/fingerprint.jsonl"
ls -la "$OUT" >> "$S"
log "done"
# Only a few files come back per call: everything but the captures goes into
# one call-<time>.tar (driver log, device, plan, host log, probe summaries).
c=call-$(date -u +%H%M%S).tar
cd "$OUT" && tar cf - --exclude='*captures*' --exclude='*caches*' --exclude='call-*.tar' --exclude='.tmp-*' ./* | put "$c" &&
  find . -maxdepth 1 -type f ! -name 'call-*.tar' ! -name '*captures*' ! -name '*caches*' ! -name '.tmp-*' -delete
