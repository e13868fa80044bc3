#!/usr/bin/env bash
# Device-side driver of the first real vLLM run through vbbench
# (examples/h200-vllm-smoke.toml; results in docs/results/h200-vllm-smoke-*).
# It is now bench/scripts/h200_study.sh in run mode on the smoke study: run
# from the repository root on the GPU host, once per device call, the calls
# carrying one .bundle/*/callK folder each until the bundle is installed,
# then .dist (make h200-smoke-dist: vbbench, vbsynth and the smoke trace):
#
#   bash bench/scripts/h200_smoke.sh            # every call the same
#
# Environment: as h200_study.sh's (OUT, LIMIT, STATE, HOST_SH, MARGIN);
# STUDY defaults to examples/h200-vllm-smoke.toml. Extra arguments go to
# vbbench run.
exec env MODE=run STUDY="${STUDY:-examples/h200-vllm-smoke.toml}" bash "$(dirname "$0")/h200_study.sh" "$@"
