#!/usr/bin/env bash
# A real study of the PyTorch baseline server (backends/torch) through vbbench:
# torch-baseline (max reservation) vs pow2, dummy weights, token-id prompts.
#
#   bench/scripts/vbbench_torch_study.sh cpu  [OUT]   # tiny Llama on the CPU (≈2 min)
#   bench/scripts/vbbench_torch_study.sh gpu  [OUT]   # Llama-3-8B shape on a GPU (≈4 min)
#
# Needs python3 with torch, transformers, tokenizers, aiohttp; run from the repo
# root. Binaries come from bin/ (make build) or $VBBIN.
set -euo pipefail
MODE=${1:-cpu}
OUT=$(realpath -m "${2:-/tmp/vbbench-torch-$MODE}")
BIN=${VBBIN:-bin}
mkdir -p "$OUT"
case "$MODE" in
cpu)
  MODEL="$OUT/tiny-llama"
  [ -f "$MODEL/config.json" ] || (cd backends/torch && python3 -m vbtorch.tokbuild --out "$MODEL" --shape tiny-llama)
  MAXLEN=256; MAXTOTAL=200; RANGE=10,400; RATES="[0.5, 2]"; DUR=15s
  EXTRA='extra_args = ["--device", "cpu", "--kv-budget-tokens", "2048"]'
  ;;
gpu)
  MODEL=${MODEL:-$OUT/llama3-8b}
  [ -f "$MODEL/config.json" ] || (cd backends/torch && python3 -m vbtorch.tokbuild --out "$MODEL" --shape llama3-8b)
  MAXLEN=2048; MAXTOTAL=1536; RANGE=1000,100000; RATES=${RATES:-"[2, 8, 16]"}; DUR=${DUR:-15s}
  EXTRA='kv_budget_gib = 16'
  ;;
*) echo "usage: $0 cpu|gpu [OUT]" >&2; exit 2 ;;
esac
TRACE="$OUT/trace.bin"
[ -f "$TRACE" ] || "$BIN/vbsynth" --dataset sharegpt --span 10m --max-total $MAXTOTAL --prompt tokens \
  --token-range $RANGE --seed 3 --quiet -o "$TRACE"
cat > "$OUT/study.toml" <<TOML
name = "torch-$MODE"
results_dir = "$OUT/results"
reports_dir = "$OUT/reports"
budget = "15m"
[trace]
path = "$TRACE"
[run]
rates = $RATES
duration = "$DUR"
warmup = "5s"
drain = "30s"
startup_timeout = "5m"
stop_grace = "15s"
early_stop = { normalized_latency = "1s" }
[[models]]
name = "$(basename "$MODEL")"
model = "$MODEL"
max_model_len = $MAXLEN
load_format = "dummy"
variants = ["torch-baseline", "torch-pow2"]
[variants.torch-baseline]
preset = "torch-baseline"
$EXTRA
[variants.torch-pow2]
preset = "torch-baseline"
kv_policy = "pow2"
$EXTRA
TOML
"$BIN/vbbench" plan "$OUT/study.toml"
time "$BIN/vbbench" run ${VBFLAGS:-} "$OUT/study.toml"
