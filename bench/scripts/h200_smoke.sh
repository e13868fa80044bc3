#!/usr/bin/env bash
# Device-side driver of the first real vLLM run through vbbench
# (examples/h200-vllm-smoke.toml; results in docs/results/h200-vllm-smoke-*).
# Run from the repository root on the GPU host, once per device call:
#
#   bash bench/scripts/h200_smoke.sh            # calls that carry one .bundle/*/callK folder each:
#                                               # the parts are stored; once all are there the
#                                               # bundle is installed and the study runs
#   bash bench/scripts/h200_smoke.sh --resume   # a later call on the same warm machine: finish it
#
# Carried besides the bundle (make h200-smoke-dist): .dist/vbbench.xz, .dist/vbsynth.xz
# (linux/amd64 builds) and .dist/traces/sharegpt-smoke.bin (the one trace, made here, so
# every call and session replays the same hash).
#
# Environment: OUT (folder whose files come back; default /tmp/out), LIMIT (seconds this
# call may take in all; default 570), STUDY (default examples/h200-vllm-smoke.toml),
# HOST_SH (the bundle's host script; default offline/host.sh).
set -u
T0=$(date +%s)
OUT=${OUT:-/tmp/out}
LIMIT=${LIMIT:-570}
STUDY=${STUDY:-examples/h200-vllm-smoke.toml}
mkdir -p "$OUT"
S=$OUT/driver.txt
log() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a "$S" >&2; }
left() { echo $(( LIMIT - ($(date +%s) - T0) )); }

# 1. The bundle: store this call's parts; install once all are there.
HOST_SH=${HOST_SH:-offline/host.sh}
shopt -s nullglob
calls=(.bundle/*/call*)
shopt -u nullglob
t=$(date +%s)
if [ ${#calls[@]} -eq 0 ]; then
  # Nothing carried this time: the bundle must be installed already.
  bash "$HOST_SH" env > "$OUT/host-env.sh" 2> "$OUT/host.log"
else
  bash "$HOST_SH" install "${calls[@]}" > "$OUT/host-env.sh" 2> "$OUT/host.log"
fi
rc=$?
log "offline/host.sh install: exit $rc in $(( $(date +%s) - t ))s ($(tail -1 "$OUT/host.log"))"
case $rc in
  0) ;;
  3) log "bundle incomplete: carry the next call folder"; exit 0 ;;
  *) tail -30 "$OUT/host.log" >&2; exit 1 ;;
esac
eval "$(bash "$HOST_SH" env)"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 PYTHONUNBUFFERED=1

# 2. Our binaries and the trace.
mkdir -p /root/vb traces
for b in vbbench vbsynth; do
  [ -x /root/vb/$b ] || xz -dc ".dist/$b.xz" > /root/vb/$b && chmod +x /root/vb/$b
done
export PATH=/root/vb:$PATH
[ -f traces/sharegpt-smoke.bin ] || cp .dist/traces/sharegpt-smoke.bin traces/
{
  echo "date: $(date -u +%FT%TZ)"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c 'import sys, torch; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda)'
  python3 -c 'import vllm; print("vllm", vllm.__version__)' 2>&1 | tail -1
  echo "cpus: $(nproc)  mem: $(free -g | awk '/Mem/{print $2}') GiB"
  vbbench --version 2>/dev/null || true
} > "$OUT/device.txt" 2>&1
log "device: $(head -2 "$OUT/device.txt" | tail -1)"

# 3. The study, stopped with SIGINT (vbbench stops the server and records the trial as
# interrupted; --resume in the next call re-runs it) before this call's limit.
vbbench plan "$STUDY" > "$OUT/plan.txt" 2>&1
budget=$(( $(left) - 75 ))
if [ "$budget" -gt 60 ]; then
  t=$(date +%s)
  timeout -s INT -k 45 "$budget" vbbench run "$STUDY" "$@" >> "$OUT/run.log" 2>&1
  log "vbbench run $*: exit $? after $(( $(date +%s) - t ))s"
else
  log "only $(left)s left: not starting vbbench run"
fi

# 4. What comes back: the results tree without raw captures, and the captures
# compressed (each file returned must stay under 16 MiB).
tar -C . --exclude='*/capture' --exclude='*/capture/*' -cJf "$OUT/results.tar.xz" results reports traces 2>/dev/null
caps=$(find results -type d -name capture 2>/dev/null)
[ -n "$caps" ] && tar -cf - $caps | xz -T0 -6 > "$OUT/captures.tar.xz"
nvidia-smi --query-gpu=memory.used --format=csv,noheader >> "$OUT/device.txt" 2>&1
ls -la "$OUT" >> "$S"
log "done"
