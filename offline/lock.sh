#!/usr/bin/env bash
# Compiles offline/vllm-VERSION.lock from offline/vllm-VERSION.in: the exact version of
# vLLM and of every dependency that the GPU host's image lacks, for CPython 3.12 on
# manylinux x86_64, resolved as of the date on the .in file's "# exclude-newer:" line.
#
#   offline/lock.sh 0.26.0          (needs uv: pip install uv)
#
# Left out: the image's own packages (offline/image-packages.txt) and the optional
# requirements dropped in offline/vllm-VERSION.overrides. See docs/offline.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
die() { echo "offline/lock.sh: $*" >&2; exit 2; }

[ $# -eq 1 ] || die "usage: offline/lock.sh VERSION   (e.g. 0.26.0)"
ver=$1
[[ $ver =~ ^[0-9]+(\.[0-9]+)*([a-z0-9.+-]*)$ ]] || die "bad version '$ver' (expected e.g. 0.26.0)"
in=$here/vllm-$ver.in
[ -f "$in" ] || die "no $in: write it first (one line 'vllm==$ver' and a '# exclude-newer: YYYY-MM-DD' line with vLLM's release date)"
date=$(sed -n 's/^# exclude-newer: *\([0-9-]*\).*/\1/p' "$in" | head -1)
[ -n "$date" ] || die "$in has no '# exclude-newer: YYYY-MM-DD' line"
uv=${UV:-uv}
command -v "$uv" >/dev/null || die "uv not found (pip install uv, or set UV=/path/to/uv)"

args=()
while read -r name; do
  args+=(--no-emit-package "$name")
done < <(grep -v '^#' "$here/image-packages.txt" | sed '/^ *$/d')
ov=()
[ -f "$here/vllm-$ver.overrides" ] && ov=(--override "$here/vllm-$ver.overrides")

cd "$here/.."   # paths in the header are relative to the repository root
"$uv" pip compile "offline/vllm-$ver.in" "${ov[@]/#$here/offline}" \
  --exclude-newer "$date" --python-version 3.12 --python-platform x86_64-manylinux_2_28 \
  --custom-compile-command "offline/lock.sh $ver" "${args[@]}" \
  --quiet -o "offline/vllm-$ver.lock"
echo "wrote offline/vllm-$ver.lock ($(grep -c '==' "offline/vllm-$ver.lock") packages)"
