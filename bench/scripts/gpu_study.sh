#!/usr/bin/env bash
# The first real GPU study (issue 10): contiguous KV reservation (vbtorch, max
# and oracle) vs paged attention with continuous batching (transformers serve,
# eager and with CUDA graphs), one workload per call, run with `vbbench run`.
#
#   bench/scripts/gpu_study.sh gpu sharegpt|alpaca   # Llama-3-8B shape, bf16, random weights, on a GPU
#   bench/scripts/gpu_study.sh cpu sharegpt|alpaca   # dry run: tiny Llama on the CPU, short levels
#
# Overrides (env): VARIANTS (space-separated subset of torch-oracle torch-max
# transformers-cb transformers-cb-graphs), RATES ("[2, 4, 8]"), DUR, DRAIN,
# WARM (Go durations), SPAN (trace length at 1 req/s, default 20m) and TAG (a
# suffix for the study name and file, so that several calls keep apart),
# PROBE=1 (run `vbbench probe` first and replace the rates by its ladder;
# PROBE_LEVEL, PROBE_MAXC set its step length and top concurrency).
#
# Run from the repo root. Binaries come from $VBBIN (default .dist/bin, built
# with GOOS=linux GOARCH=amd64 go build -o .dist/bin/ ./cmd/vbbench ./cmd/vbsynth).
# GPU mode needs python3 with torch, transformers (serve), tokenizers,
# aiohttp, safetensors; missing serving wheels (fastapi, uvicorn, pydantic,
# openai) are installed from .dist/wheels into /tmp/site when present.
# Everything goes to $WORK (default .dist/gpu-study); $OUT (when set) gets
# the reports, the per-trial results without raw captures, and the logs.
# STUDY_BUDGET_S bounds the vbbench run (SIGINT, then finished trials stay).
set -uo pipefail
MODE=${1:-cpu}
WL=${2:-sharegpt}
BIN=$(realpath "${VBBIN:-.dist/bin}")
WORK=${WORK:-.dist/gpu-study}
mkdir -p "$WORK"
WORK=$(realpath "$WORK")
export PATH="$BIN:$PATH" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
T0=$(date +%s)
stamp() { echo "=== [$(($(date +%s) - T0))s] $*"; }
PY=$(command -v python3)

# The same KV budget for every variant: 32768 tokens (4 GiB of Llama-3-8B
# bf16 KV, 128 KiB per token). Contiguous max reservation fits 16 requests
# of max_model_len 2048 into it; oracle reserves prompt + output exactly;
# transformers' paged cache gets the same tokens as 1024 blocks of 32.
KV_TOKENS=32768
BLOCK=32
case "$MODE" in
gpu)
  TMODEL=.dist/llama3-8b-dummy # config + tokenizer; vbtorch loads dummy (random) weights
  PMODEL=/tmp/m8b              # random safetensors for transformers serve (no dummy loader there)
  MAXLEN=2048
  if [ ! -f $PMODEL/model.safetensors.index.json ] && [ ! -f $PMODEL/model.safetensors ]; then
    stamp "write random-weight safetensors to $PMODEL"
    (cd backends/torch && python3 -m vbtorch.tokbuild --out $PMODEL --shape llama3-8b --tokenizer-from ../../$TMODEL --weights) 2>&1 | grep -v "it/s\]" | tail -3
  fi
  if [ -d .dist/wheels ] && ! PYTHONPATH=/tmp/site python3 -c 'import fastapi, uvicorn' 2>/dev/null; then
    stamp "install serving wheels into /tmp/site"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .dist/wheels/*.whl 2>&1 | tail -3
  fi
  TORCH_EXTRA="\"--engine-process\", \"--kv-budget-tokens\", \"$KV_TOKENS\""
  TF_EXTRA=""
  if [ "$WL" = sharegpt ]; then
    RATES="[1.5, 3, 6, 12]"; DUR=20s; DRAIN=10s
  else
    RATES="[5, 15, 40]"; DUR=15s; DRAIN=8s
  fi
  WARM=5s
  STARTUP=4m
  ;;
cpu)
  TMODEL=$WORK/tiny-llama
  PMODEL=$WORK/tiny-llama
  MAXLEN=2048
  [ -f $TMODEL/config.json ] || (cd backends/torch && python3 -m vbtorch.tokbuild --out "$TMODEL" --shape tiny-llama --weights) 2>&1 | tail -2
  TORCH_EXTRA="\"--engine-process\", \"--device\", \"cpu\", \"--kv-budget-tokens\", \"$KV_TOKENS\""
  TF_EXTRA="\"--device\", \"cpu\", "
  RATES="[0.5, 1]"; DUR=6s; DRAIN=5s; WARM=2s; STARTUP=3m
  ;;
*) echo "usage: $0 gpu|cpu sharegpt|alpaca" >&2; exit 2 ;;
esac
RATES=${RATES_OVERRIDE:-$RATES}; DUR=${DUR_OVERRIDE:-$DUR}; DRAIN=${DRAIN_OVERRIDE:-$DRAIN}; WARM=${WARM_OVERRIDE:-$WARM}
SPAN=${SPAN:-20m}
VARIANTS=${VARIANTS:-torch-oracle torch-max transformers-cb transformers-cb-graphs}
VLIST=$(printf '"%s", ' $VARIANTS); VLIST="[${VLIST%, }]"
TAG=${TAG:+-$TAG}
mkdir -p /root/.cache/huggingface/hub 2>/dev/null || mkdir -p "$HOME/.cache/huggingface/hub"

TRACE=$WORK/$WL-$SPAN.bin
GEN="\"vbsynth\", \"--dataset\", \"$WL\", \"--span\", \"20m\", \"--endpoint\", \"chat\", \"--prompt\", \"words\", \"--max-input\", \"900\", \"--max-total\", \"1200\", \"--seed\", \"7\", \"--quiet\", \"-o\", \"{path}\""
STUDY=$WORK/study-$WL$TAG.toml
cat > "$STUDY" <<TOML
# Issue 10: contiguous KV reservation vs paged attention on one GPU, $WL workload.
name = "gpu-$MODE-$WL$TAG"
description = "Llama-3-8B shape (bf16, random weights): vbtorch max/oracle vs transformers serve continuous batching (paged), same $KV_TOKENS-token KV budget"
results_dir = "$WORK/results"
reports_dir = "$WORK/reports-$WL$TAG"
budget = "30m"

[trace]
path = "$TRACE"
generate = [$GEN]

[run]
rates = $RATES
duration = "$DUR"
warmup = "$WARM"
drain = "$DRAIN"
startup_timeout = "$STARTUP"
stop_grace = "10s"
early_stop = { normalized_latency = "0.5s" }

[[models]]
name = "llama3-8b"
model = "$TMODEL"
max_model_len = $MAXLEN
dtype = "bfloat16"
load_format = "dummy"
served_model_name = "llama3-8b"
variants = $VLIST

[variants.torch-oracle]
preset = "torch-baseline"
kv_policy = "oracle"
python = "$PY"
extra_args = [$TORCH_EXTRA]

[variants.torch-max]
preset = "torch-baseline"
kv_policy = "max"
python = "$PY"
extra_args = [$TORCH_EXTRA]

[variants.transformers-cb]
preset = "transformers-cb"
model = "$PMODEL"
served_model_name = "$PMODEL"
cuda_graphs = false
block_size = $BLOCK
extra_args = [$TF_EXTRA"--cb-num-blocks", "$((KV_TOKENS / BLOCK))", "--log-level", "info"]
env = { PYTHONPATH = "/tmp/site", HF_HUB_OFFLINE = "1" }

[variants.transformers-cb-graphs]
preset = "transformers-cb"
model = "$PMODEL"
served_model_name = "$PMODEL"
cuda_graphs = true
block_size = $BLOCK
extra_args = [$TF_EXTRA"--cb-num-blocks", "$((KV_TOKENS / BLOCK))", "--log-level", "info"]
env = { PYTHONPATH = "/tmp/site", HF_HUB_OFFLINE = "1" }
TOML
[ "$MODE" = cpu ] && [ -d /tmp/site311 ] && sed -i 's#PYTHONPATH = "/tmp/site"#PYTHONPATH = "/tmp/site311"#' "$STUDY"
[ -f "$TRACE" ] || "$BIN/vbsynth" --dataset "$WL" --span "$SPAN" --endpoint chat --prompt words --max-input 900 --max-total 1200 --seed 7 --quiet -o "$TRACE"
if [ "${PROBE:-0}" = 1 ]; then
  # A quick closed-loop probe first (vbbench probe), and its ladder for the run.
  stamp "vbbench probe"
  "$BIN/vbbench" probe "$STUDY" --quiet --level "${PROBE_LEVEL:-8s}" --max-concurrency "${PROBE_MAXC:-512}" \
    --out "$WORK/probe-$WL$TAG" 2>&1 | tail -40
  LADDER=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ladder"])' "$WORK/probe-$WL$TAG/probe.json")
  if [ -n "$LADDER" ] && [ "$LADDER" != "[]" ]; then
    stamp "probe ladder $LADDER"
    sed -i "s/^rates = .*/rates = $LADDER/" "$STUDY"
  fi
fi
stamp "vbbench plan"
"$BIN/vbbench" plan "$STUDY" 2>&1 | tail -25
stamp "vbbench run $STUDY"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv,noheader
timeout -s INT -k 40 "${STUDY_BUDGET_S:-1800}" "$BIN/vbbench" run --archive "$STUDY" 2>&1 | tee "$WORK/vbbench-$WL$TAG.log" | grep -v "^      " | tail -80
stamp "vbbench exit ${PIPESTATUS[0]}"
if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT"
  cp "$STUDY" "$WORK/vbbench-$WL$TAG.log" "$OUT/" 2>/dev/null
  (cd "$WORK" && tar czf "$OUT/results-$WL$TAG.tgz" --exclude=capture --exclude=capture.tar.gz results "reports-$WL$TAG" $(ls -d "probe-$WL$TAG" 2>/dev/null))
  (cd "$WORK" && tar czf "$OUT/captures-$WL$TAG.tgz" $(find results -name capture.tar.gz -newer "$STUDY" 2>/dev/null)) 2>/dev/null
  ls -la "$OUT"
fi
stamp done
