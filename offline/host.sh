#!/usr/bin/env bash
# Host side of the offline vLLM bundle (docs/offline.md): run it on the GPU host after
# each device call that carried one of the bundle's callK folders.
#
#   bash offline/host.sh [install] [--scratch DIR] [--no-check] [CALL_DIR...]
#   eval "$(bash offline/host.sh env [--scratch DIR] [NAME])"     (NAME: default the newest installed)
#
# install (the default) copies every part found in the CALL_DIRs (default: all
# .bundle/*/call* folders of this checkout) into the scratch folder DIR/NAME/incoming
# (default DIR: /root/vbench-bundle, or $VB_BUNDLE_DIR), checking each file against
# SHA256SUMS as it arrives. Once every part is there it joins them, checks the whole
# archive, unpacks the site tree into DIR/NAME/site, unpacks the models into DIR/models,
# installs the extra wheels, checks that vLLM imports (unless --no-check) and prints the
# environment to use on stdout (progress goes to stderr). Running it again is harmless:
# an installed bundle is not unpacked twice.
#
# Exit status: 0 installed, 3 parts still missing (the message names them and the call
# folders that hold them), 1 a corrupt or inconsistent part or a failed step, 2 usage.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
say() { echo "host.sh: $*" >&2; }
fail() { echo "host.sh: ERROR: $*" >&2; exit 1; }
usage() { echo "host.sh: $*" >&2; echo "usage: bash offline/host.sh [install|env] [--scratch DIR] [--no-check] [CALL_DIR...|NAME]" >&2; exit 2; }

cmd=install
case ${1:-} in install|env) cmd=$1; shift ;; esac
scratch=${VB_BUNDLE_DIR:-/root/vbench-bundle}
check=1
args=()
while [ $# -gt 0 ]; do
  case $1 in
    --scratch) [ $# -ge 2 ] || usage "--scratch needs a folder"; scratch=$2; shift 2 ;;
    --scratch=*) scratch=${1#*=}; shift ;;
    --no-check) check=0; shift ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) usage "unknown option $1" ;;
    *) args+=("$1"); shift ;;
  esac
done

# getvar FILE KEY: the value of KEY=... in a bundle.env (never sourced: it is data).
getvar() { sed -n "s/^$2=//p" "$1" | head -1; }
safe_name() { [[ $1 =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]]; }

# env_lines DIR: the environment for the bundle installed in DIR, as shell code.
env_lines() {
  local site=$1/site
  echo "export PYTHONPATH=$site\${PYTHONPATH:+:\$PYTHONPATH}"
  echo "export PATH=$site/bin:\$PATH"
  echo "export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1"
  echo "export VLLM_USE_FLASHINFER_SAMPLER=0   # no FlashInfer in the bundle: PyTorch top-k/top-p sampler"
  local m
  for m in $(getvar "$1/incoming/bundle.env" MODELS); do
    echo "# model: $scratch/models/$m   (serve it with --load-format dummy)"
  done
}

if [ "$cmd" = env ]; then
  [ ${#args[@]} -le 1 ] || usage "env takes at most one bundle NAME"
  if [ ${#args[@]} -eq 1 ]; then
    safe_name "${args[0]}" || usage "bad bundle name '${args[0]}'"
    d=$scratch/${args[0]}
  else
    # the most recently installed bundle
    mapfile -t ds < <(ls -dt "$scratch"/*/.installed 2>/dev/null | xargs -r -n1 dirname)
    [ ${#ds[@]} -gt 0 ] || fail "no bundle installed under $scratch (run: bash offline/host.sh install)"
    d=${ds[0]}
    [ ${#ds[@]} -eq 1 ] || say "several bundles installed under $scratch ($(printf '%s ' "${ds[@]##*/}")): the environment of the newest, $(basename "$d"); name another with: host.sh env NAME"
  fi
  [ -f "$d/.installed" ] || fail "bundle $(basename "$d") is not installed under $scratch (run: bash offline/host.sh install)"
  env_lines "$d"
  exit 0
fi

# install
if [ ${#args[@]} -eq 0 ]; then
  shopt -s nullglob
  args=("$repo"/.bundle/*/call*)
  shopt -u nullglob
fi
mkdir -p "$scratch"

# 1. Copy what this call carried, checking each file as it arrives.
names=()
declare -A sums_of=()
for src in "${args[@]}"; do
  [ -d "$src" ] || fail "$src is not a folder"
  [ -f "$src/bundle.env" ] && [ -f "$src/SHA256SUMS" ] || fail "$src holds no bundle.env and SHA256SUMS: not a call folder of offline/bundle.sh"
  name=$(getvar "$src/bundle.env" NAME)
  safe_name "$name" || fail "$src/bundle.env has a bad NAME '$name'"
  sum=$(sha256sum < "$src/SHA256SUMS" | cut -d' ' -f1)
  if [ -n "${sums_of[$name]:-}" ] && [ "${sums_of[$name]}" != "$sum" ]; then
    fail "the call folders of $name given here come from two different builds (their SHA256SUMS differ): carry the folders of one build"
  fi
  in=$scratch/$name/incoming
  mkdir -p "$in"
  if [ -z "${sums_of[$name]:-}" ]; then
    names+=("$name")
    if [ -f "$in/SHA256SUMS" ] && ! cmp -s "$in/SHA256SUMS" "$src/SHA256SUMS"; then
      say "$name: these parts come from another build than the ones already in $in: starting over with this build"
      rm -rf "$in" "$scratch/$name/.installed"
      mkdir -p "$in"
    fi
    cp "$src/SHA256SUMS" "$src/bundle.env" "$in/"
  fi
  sums_of[$name]=$sum
  for f in "$src"/*; do
    b=$(basename "$f")
    [ "$b" = SHA256SUMS ] || [ "$b" = bundle.env ] && continue
    line=$(grep -F "  $b" "$in/SHA256SUMS" | awk -v b="$b" '$2 == b' || true)
    [ -n "$line" ] || fail "$f is not listed in SHA256SUMS of $name"
    want=${line%% *}
    if [ -f "$in/$b" ] && [ "$(sha256sum < "$in/$b" | cut -d' ' -f1)" = "$want" ]; then
      continue
    fi
    cp "$f" "$in/$b.tmp"
    got=$(sha256sum < "$in/$b.tmp" | cut -d' ' -f1)
    if [ "$got" != "$want" ]; then
      rm -f "$in/$b.tmp"
      fail "$b is corrupt (sha256 $got, SHA256SUMS says $want): carry $(basename "$src") again"
    fi
    mv "$in/$b.tmp" "$in/$b"
    say "$name: got $b ($(stat -c %s "$in/$b") bytes, sha256 ok)"
  done
done
if [ ${#names[@]} -eq 0 ]; then
  # Nothing carried this time: fine on a machine where a bundle is installed already.
  newest=$(ls -dt "$scratch"/*/.installed 2>/dev/null | head -1 || true)
  [ -n "$newest" ] || fail "no call folder found (looked in: $repo/.bundle/*/call*) and no bundle installed under $scratch; carry one with the device call"
  say "no call folder carried; $(basename "$(dirname "$newest")") is installed already"
  env_lines "$(dirname "$newest")"
  exit 0
fi

# 2. For each bundle: install once complete, else say what is missing.
status=0
for name in "${names[@]}"; do
  d=$scratch/$name; in=$d/incoming; env=$in/bundle.env
  archive=$(getvar "$env" ARCHIVE); parts=$(getvar "$env" PARTS)
  [[ $parts =~ ^[0-9]+$ ]] && [ "$parts" -ge 1 ] || fail "$env: bad PARTS '$parts'"
  safe_name "$archive" || fail "$env: bad ARCHIVE '$archive'"
  need=()
  for ((i = 0; i < parts; i++)); do need+=("$(printf '%s.part%02d' "$archive" "$i")"); done
  for m in $(getvar "$env" MODELS); do need+=("model-$m.tar.xz"); done
  for w in $(getvar "$env" WHEELS); do need+=("$w"); done
  missing=()
  for f in "${need[@]}"; do
    safe_name "$f" || fail "$env names a bad file '$f'"
    [ -f "$in/$f" ] || missing+=("$f")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    where=""
    for f in "${missing[@]}"; do
      c=$(grep -E "^FILES_CALL[0-9]+=" "$env" | grep -E "[= ]$f( |\$)" | sed 's/^FILES_CALL\([0-9]*\)=.*/call\1/' | head -1)
      where="${where:+$where, }$f${c:+ (in $c)}"
    done
    have=$(cd "$in" && ls | grep -v -e '^SHA256SUMS$' -e '^bundle.env$' | paste -sd, - | sed 's/,/, /g')
    say "$name: INCOMPLETE: have ${have:-nothing}; still missing: $where. Carry the missing call folders in the next device calls to this same machine, then run this again."
    status=3
    continue
  fi
  arch_sum=$(awk -v a="$archive" '$2 == a {print $1}' "$in/SHA256SUMS")
  [ -n "$arch_sum" ] || fail "SHA256SUMS of $name has no line for $archive"
  if [ -f "$d/.installed" ] && [ "$(cat "$d/.installed")" = "$arch_sum" ] && [ -d "$d/site" ]; then
    say "$name: already installed in $d/site"
  else
    say "$name: all ${#need[@]} files present: joining $parts parts"
    rm -f "$d/.installed" "$d/.checked"
    (cd "$in" && for ((i = 0; i < parts; i++)); do cat "$(printf '%s.part%02d' "$archive" "$i")"; done) > "$d/$archive"
    got=$(sha256sum < "$d/$archive" | cut -d' ' -f1)
    [ "$got" = "$arch_sum" ] || { rm -f "$d/$archive"; fail "$name: the joined $archive has sha256 $got, SHA256SUMS says $arch_sum"; }
    rm -rf "$d/site.new"
    mkdir -p "$d/site.new"
    t=$(date +%s)
    tar -xJf "$d/$archive" -C "$d/site.new" --no-same-owner || fail "$name: unpacking $archive failed (disk full?)"
    rm -f "$d/$archive"
    say "$name: unpacked the site tree ($(du -sm "$d/site.new" | cut -f1) MiB) in $(( $(date +%s) - t )) s"
    for w in $(getvar "$env" WHEELS); do
      py=${PYTHON:-python3}
      rm -rf "$d/wheel.tmp"
      "$py" -m pip install -q --disable-pip-version-check --no-index --no-deps --no-compile \
        --target "$d/wheel.tmp" "$in/$w" >&2 || fail "$name: pip could not install $w"
      cp -a "$d/wheel.tmp/." "$d/site.new/"
      rm -rf "$d/wheel.tmp"
      say "$name: installed $w"
    done
    for m in $(getvar "$env" MODELS); do
      mkdir -p "$scratch/models"
      rm -rf "${scratch:?}/models/$m"
      tar -xJf "$in/model-$m.tar.xz" -C "$scratch/models" --no-same-owner || fail "$name: unpacking model-$m.tar.xz failed"
      [ -f "$scratch/models/$m/config.json" ] || fail "$name: model-$m.tar.xz holds no $m/config.json"
      say "$name: model $m in $scratch/models/$m"
    done
    rm -rf "$d/site"
    mv "$d/site.new" "$d/site"
    env_lines "$d" > "$d/env.sh"
    echo "$arch_sum" > "$d/.installed"
  fi
  if [ $check = 1 ] && ! { [ -f "$d/.checked" ] && [ "$(cat "$d/.checked")" = "$arch_sum" ]; }; then
    want=$(getvar "$env" VLLM)
    got=$( (eval "$(env_lines "$d")"; "${PYTHON:-python3}" -c '
import vllm, xgrammar, llguidance, outlines_core
import vllm.entrypoints.openai.api_server
print(vllm.__version__)' 2>"$d/check.log" | tail -1) || true)
    [ "$got" = "$want" ] || fail "$name: 'import vllm' with this environment gave '${got:-an error}', want $want; see $d/check.log"
    echo "$arch_sum" > "$d/.checked"
    say "$name: vllm $got and its OpenAI entrypoint import (check: ok)"
  fi
  say "$name: ready; environment (also in $d/env.sh):"
  env_lines "$d"
done
exit $status
