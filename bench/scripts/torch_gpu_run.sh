#!/usr/bin/env bash
# One device call: vbtorch engine benchmark vs transformers, HTTP end-to-end probe of
# vbtorch, and the `transformers serve --continuous-batching` check for the study.
# Run from the repo root on the GPU machine with .dist carried; results go to $OUT (or ./out).
set -u
OUT=${OUT:-./out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
M=.dist/llama3-8b-dummy
T0=$(date +%s)
stamp() { echo "=== [$(( $(date +%s) - T0 ))s] $*"; }
stamp env
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c 'import sys, torch, transformers, aiohttp; print(sys.version.split()[0], torch.__version__, torch.version.cuda, transformers.__version__, aiohttp.__version__)'
python3 -c 'import importlib.util as u; print("missing:", [m for m in ["fastapi","uvicorn","pydantic","openai","flash_attn","psutil"] if u.find_spec(m) is None])'

if [ "${SKIP_BENCH:-0}" != 1 ]; then
stamp engine bench
timeout 300 python3 bench/scripts/torch_gpu_bench.py --model $M --outdir "$OUT" ${BENCH_ARGS:-} 2>&1 | grep -v "^Loading\|it/s\]" | tee "$OUT/bench.log" | tail -120
fi

if [ "${SKIP_HTTP:-0}" != 1 ]; then
stamp vbtorch HTTP probe
(cd backends/torch && exec python3 -m vbtorch.server --model ../../$M --load-format dummy --port 8100 \
   --served-model-name llama3-8b --kv-policy oracle --kv-budget-gib 16 --max-model-len 2048) > "$OUT/vbtorch_server.log" 2>&1 &
SP=$!
timeout 200 python3 bench/scripts/torch_http_probe.py --url http://127.0.0.1:8100 --model llama3-8b --concurrency 64 --max-tokens 256 --out "$OUT/vbtorch_http.json" 2>&1 | tail -45
timeout 100 python3 bench/scripts/torch_http_probe.py --url http://127.0.0.1:8100 --model llama3-8b --chat-only --no-ignore-eos --concurrency 64 --max-tokens 256 --out "$OUT/vbtorch_http_chat.json" 2>&1 | grep -E "output_tok_s|wall_s|ttft|gap|\"ok"
kill $SP; wait $SP 2>/dev/null
tail -3 "$OUT/vbtorch_server.log"
stamp vbtorch HTTP probe, --engine-process
(cd backends/torch && exec python3 -m vbtorch.server --model ../../$M --load-format dummy --port 8103 --engine-process \
   --served-model-name llama3-8b --kv-policy oracle --kv-budget-gib 16 --max-model-len 2048) >> "$OUT/vbtorch_server.log" 2>&1 &
SP=$!
timeout 200 python3 bench/scripts/torch_http_probe.py --url http://127.0.0.1:8103 --model llama3-8b --concurrency 64 --max-tokens 256 --out "$OUT/vbtorch_http_proc.json" 2>&1 | grep -E "ready|output_tok_s|wall_s|ttft|gap|\"ok|errors|step_seconds|steps_total"
timeout 100 python3 bench/scripts/torch_http_probe.py --url http://127.0.0.1:8103 --model llama3-8b --chat-only --no-ignore-eos --concurrency 64 --max-tokens 256 2>&1 | grep -E "output_tok_s|wall_s|ttft|gap|\"ok"
kill $SP; wait $SP 2>/dev/null
fi

if [ "${SKIP_TSERVE:-0}" != 1 ]; then
stamp transformers serve check: install carried wheels
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .dist/wheels/*.whl 2>&1 | tail -3
stamp write random-weight safetensors model dir /tmp/m8b
( cd backends/torch && timeout 240 python3 -m vbtorch.tokbuild --out /tmp/m8b --shape llama3-8b --tokenizer-from ../../$M --weights ) 2>&1 | grep -v "it/s\]" | tail -5
ls -la /tmp/m8b; du -sh /tmp/m8b
stamp start transformers serve
mkdir -p /root/.cache/huggingface/hub   # /v1/models scans the HF cache and fails with 500 when it is missing
PYTHONPATH=/tmp/site timeout 250 transformers serve /tmp/m8b --continuous-batching --host 127.0.0.1 --port 8101 --log-level info > "$OUT/tserve.log" 2>&1 &
TP=$!
timeout 240 python3 bench/scripts/torch_http_probe.py --url http://127.0.0.1:8101 --model /tmp/m8b --chat-only --no-ignore-eos --concurrency 64 --max-tokens 256 --out "$OUT/tserve_http.json" 2>&1 | tail -40
kill $TP; wait $TP 2>/dev/null
tail -25 "$OUT/tserve.log"
PYTHONPATH=/tmp/site transformers serve --help > /tmp/tserve_help.txt 2>&1
if [ "${LOADER:-1}" = 1 ]; then
stamp vbtorch --load-format auto on the safetensors dir
(cd backends/torch && exec python3 -m vbtorch.server --model /tmp/m8b --port 8102 --kv-budget-gib 8 --max-model-len 2048) > "$OUT/vbtorch_auto.log" 2>&1 &
SP=$!
timeout 150 python3 bench/scripts/torch_http_probe.py --url http://127.0.0.1:8102 --model m8b --concurrency 8 --max-tokens 32 2>&1 | grep -E "ready|chat chunks|output_tok_s|errors"
kill $SP; wait $SP 2>/dev/null
grep -E "loaded|Error|error" "$OUT/vbtorch_auto.log" | head -5
fi
fi
stamp done
