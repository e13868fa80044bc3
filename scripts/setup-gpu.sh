#!/usr/bin/env bash
# Installs the Python inference servers with uv on a machine with network:
#
#   make setup-gpu                 uv sync --extra torch
#   make setup-gpu VLLM=1          uv sync --extra torch --extra vllm   (vLLM as pinned in pyproject.toml)
#   make setup-gpu VLLM=0.26.0     the same, after checking that 0.26.0 is the pinned version
#   make setup-gpu FLASH=1         ... --extra flash
#
# The vllm extra pins one version (pyproject.toml), the same one that
# offline/vllm-VERSION.lock bundles for hosts without network (docs/offline.md).
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "setup-gpu: $*" >&2; exit 2; }

pin=$(sed -n 's/^ *"vllm==\([0-9][0-9a-z.]*\)".*/\1/p' pyproject.toml | head -1)
[ -n "$pin" ] || die "pyproject.toml's vllm extra pins no version (expected a line \"vllm==X.Y.Z\",)"
args=(sync --extra torch)
case ${VLLM:-} in
  "" | 0) ;;
  1 | "$pin") args+=(--extra vllm) ;;
  *) die "VLLM=$VLLM, but this checkout pins vllm==$pin (pyproject.toml; the offline bundle's lock is offline/vllm-$pin.lock). Use VLLM=1 or VLLM=$pin; to move to another version, change the pin in pyproject.toml and compile its lock with offline/lock.sh." ;;
esac
case ${FLASH:-} in
  "" | 0) ;;
  1) args+=(--extra flash) ;;
  *) die "FLASH must be 0 or 1, not '$FLASH'" ;;
esac
uv=${UV:-uv}
command -v "$uv" >/dev/null || die "uv not found: install it with 'pip install uv' (or set UV=/path/to/uv)"
echo "+ $uv ${args[*]}" >&2
exec "$uv" "${args[@]}"
