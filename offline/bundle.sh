#!/usr/bin/env bash
# Builds the offline vLLM bundle for a GPU host without network (docs/offline.md).
#
#   make offline-bundle VLLM=0.26.0 [MOE=1]        (= offline/bundle.sh 0.26.0)
#
# Steps: download the wheels of offline/vllm-VERSION.lock (CPython 3.12, manylinux
# x86_64), install them into a --target tree without a resolver, prune the parts
# listed in offline/prune.txt, pack the tree into one deterministic tar (sorted names,
# fixed mtime, owner 0, no .pyc), compress it, split it into parts of at most 58 MiB
# and lay the parts out as one folder per device call:
#
#   .bundle/vllm-VERSION[-moe]/call1/  part00 + bundle.env + SHA256SUMS
#   .bundle/vllm-VERSION[-moe]/call2/  part01 + ...
#   .bundle/vllm-VERSION[-moe]/callN/  last part + model tars + extra wheels
#
# Carry one callK folder per device call; offline/host.sh assembles them there.
#
# Settings (environment):
#   MOE=1          keep vLLM's fused-MoE library (needed by MoE models such as Qwen3-30B-A3B)
#   MODELS="a b"   model folders under $MODELS_DIR (default .bundle/models) to pack into
#                  the last call (build them with `make dummy-model MODEL=a`)
#   EXTRA_WHEELS="x.whl ..."  wheels carried as files and installed by host.sh
#   OUT=DIR        output folder (default .bundle/vllm-VERSION, -moe appended with MOE=1)
#   CACHE=DIR      wheel download cache (default .bundle/cache)
#   PY=python3     the Python whose pip downloads and installs (any version: the
#                  target is given as --python-version 3.12)
#   XZ_LEVEL=6     xz preset (docs/benchmarks/offline.md has the measurements)
#   THREADS=2      xz threads (any count >= 2 gives the same bytes; 1 gives a one-block stream)
#   PART_SIZE=39M  size of a part (split -b syntax)
#   CALL_MIB=40    most MiB one call folder may hold: 64 MiB per call minus the
#                  checkout, which travels with every call (10 MiB in Dec 2026, and
#                  growing with docs/results); .dist (≈14 MiB) goes with the
#                  smallest call, the last part's
#   TREE=DIR       skip download/install/prune and pack DIR as the site tree (tests)
#   RESPLIT=1      lay the bundle already in OUT out again in parts of PART_SIZE
#                  (checked against its SHA256SUMS; nothing downloaded or packed)
set -euo pipefail
export LC_ALL=C

repo=$(cd "$(dirname "$0")/.." && pwd)
die() { echo "offline/bundle.sh: $*" >&2; exit 2; }
say() { echo "[$(( $(date +%s) - t0 ))s] $*" >&2; }
t0=$(date +%s)

[ $# -eq 1 ] || die "usage: offline/bundle.sh VERSION   (e.g. make offline-bundle VLLM=0.26.0)"
ver=$1
if [ "$ver" = 1 ]; then   # VLLM=1: the version pyproject.toml pins (as make setup-gpu VLLM=1)
  ver=$(sed -n 's/^ *"vllm==\([0-9][0-9a-z.]*\)".*/\1/p' "$repo/pyproject.toml" | head -1)
fi
[[ $ver =~ ^[0-9]+(\.[0-9]+)+$ ]] || die "bad vLLM version '$ver' (expected e.g. 0.26.0)"
lock=$repo/offline/vllm-$ver.lock
moe=${MOE:-0}
case $moe in 0|"") moe=0 ;; 1) ;; *) die "MOE must be 0 or 1, not '$moe'" ;; esac
name=vllm-$ver
[ "$moe" = 1 ] && name=$name-moe
out=${OUT:-$repo/.bundle/$name}
cache=${CACHE:-$repo/.bundle/cache}
models_dir=${MODELS_DIR:-$repo/.bundle/models}
py=${PY:-python3}
level=${XZ_LEVEL:-6}
threads=${THREADS:-2}
part_size=${PART_SIZE:-39M}
call_mib=${CALL_MIB:-40}
[[ $level =~ ^[0-9]e?$ ]] || die "XZ_LEVEL must be 0-9 (optionally with e), not '$level'"
command -v xz >/dev/null || die "xz not found (apt-get install xz-utils)"
tar --version 2>/dev/null | grep -q 'GNU tar' || die "GNU tar is needed (for --sort=name)"

# The wheel tags the host accepts: CPython 3.12, glibc 2.31 or newer (llguidance's
# manylinux_2_31 wheel ran there; the exact files are pinned in vllm-VERSION.wheels.sha256).
plat=()
for t in manylinux1 manylinux2010 manylinux2014 $(seq -f 'manylinux_2_%g' 5 31); do
  plat+=(--platform "${t}_x86_64")
done
pipx() { "$py" -m pip --disable-pip-version-check "$@"; }

work=$out/.work
resplit=${RESPLIT:-0}
case $resplit in 0|1) ;; *) die "RESPLIT must be 0 or 1, not '$resplit'" ;; esac
if [ "$resplit" = 1 ]; then
  # Lay an existing bundle out again in parts of PART_SIZE (the checkout that
  # travels with every call grew, say): join its parts, check them against
  # its SHA256SUMS, and split again. Nothing is downloaded or compressed.
  [ -f "$out/bundle.env" ] && [ -f "$out/SHA256SUMS" ] || die "RESPLIT=1: no bundle in $out (bundle.env and SHA256SUMS): build it first"
  old_name=$(sed -n 's/^NAME=//p' "$out/bundle.env")
  [ "$old_name" = "$name" ] || die "RESPLIT=1: $out holds bundle $old_name, not $name"
  archive=$name.tar.xz
  MODELS=${MODELS:-$(sed -n 's/^MODELS=//p' "$out/bundle.env")}
  rm -rf "$work"
  mkdir -p "$work"
  mapfile -t oldparts < <(find "$out"/call* -name "$archive.part*" -type f -printf '%f\t%p\n' | sort | cut -f2)
  [ ${#oldparts[@]} -gt 0 ] || die "RESPLIT=1: no parts of $archive under $out/call*"
  want=$(sed -n 's/^PARTS=//p' "$out/bundle.env")
  [ "${#oldparts[@]}" = "$want" ] || die "RESPLIT=1: $out has ${#oldparts[@]} parts of $archive, bundle.env says $want"
  cat "${oldparts[@]}" > "$work/$archive"
  sum=$(awk -v f="$archive" '$2 == f {print $1}' "$out/SHA256SUMS")
  [ "$(sha256sum < "$work/$archive" | cut -d' ' -f1)" = "$sum" ] || die "RESPLIT=1: the joined $archive does not match $out/SHA256SUMS: rebuild the bundle"
  extras=()
  for f in "$out"/call*/*; do
    b=$(basename "$f")
    case $b in bundle.env|SHA256SUMS|"$archive".part*) continue ;; esac
    sum=$(awk -v f="$b" '$2 == f {print $1}' "$out/SHA256SUMS")
    [ -n "$sum" ] && [ "$(sha256sum < "$f" | cut -d' ' -f1)" = "$sum" ] || die "RESPLIT=1: $f does not match $out/SHA256SUMS: rebuild the bundle"
    cp "$f" "$work/$b"
    extras+=("$work/$b")
  done
  cp "$out/pruned.tsv" "$work/pruned.tsv" 2>/dev/null || : > "$work/pruned.tsv"
  site=
  # The old call folders wait in the work folder until the new ones exist.
  mkdir -p "$work/oldcalls"
  mv "$out"/call* "$work/oldcalls/"
  say "re-split $archive ($(stat -c %s "$work/$archive") bytes, ${#oldparts[@]} parts) and ${#extras[@]} extra files"
else
rm -rf "$work" "$out"/call*
mkdir -p "$work"
site=$work/site

if [ -n "${TREE:-}" ]; then
  [ -d "$TREE" ] || die "TREE=$TREE is not a folder"
  cp -a "$TREE" "$site"
  : > "$work/pruned.tsv"
else
  [ -f "$lock" ] || die "no lock $lock: write offline/vllm-$ver.in and run offline/lock.sh $ver"
  "$py" -m pip --version >/dev/null 2>&1 || die "$py has no pip (set PY=)"
  mkdir -p "$cache/wheels"
  say "download the wheels of $(basename "$lock")"
  # pip says which file it takes for each requirement ("Saved …" or "File was already
  # downloaded …"); exactly those are installed, whatever else the cache holds.
  pipx download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${plat[@]}" -d "$cache/wheels" -r "$lock" > "$work/download.log" 2>&1 \
    || { tail -20 "$work/download.log" >&2; die "pip download failed (network? see above)"; }
  mapfile -t wheels < <(sed -n 's/^ *\(Saved\|File was already downloaded\) \(.*\.whl\)$/\2/p' "$work/download.log" \
    | xargs -r -n1 basename | sort -u)
  nreq=$(grep -cE '^[A-Za-z0-9]' "$lock")
  [ ${#wheels[@]} -eq "$nreq" ] \
    || die "pip download named ${#wheels[@]} wheel files for the $nreq requirements of $(basename "$lock"); see $work/download.log"
  mkdir -p "$work/wheels"
  for f in "${wheels[@]}"; do
    ln -f "$cache/wheels/$f" "$work/wheels/$f" 2>/dev/null || cp "$cache/wheels/$f" "$work/wheels/$f"
  done

  # The exact wheel files of a lock are pinned in offline/vllm-VERSION.wheels.sha256.
  sums=$repo/offline/vllm-$ver.wheels.sha256
  if [ -f "$sums" ]; then
    got=$(cd "$work/wheels" && sha256sum "${wheels[@]}" | sort -k2)
    [ "$got" = "$(sort -k2 "$sums")" ] || {
      diff <(sort -k2 "$sums") <(echo "$got") >&2 || true
      die "the wheels pip took differ from $sums (above; PyPI replaced a file, or the lock changed): rerun offline/lock.sh and delete $sums to re-pin"
    }
  else
    (cd "$work/wheels" && sha256sum "${wheels[@]}" | sort -k2) > "$sums"
    say "pinned ${#wheels[@]} wheel files in offline/vllm-$ver.wheels.sha256: commit it"
  fi

  say "install ${#wheels[@]} wheels into the site tree (no resolver, no .pyc)"
  # Names from the lock with --find-links on a folder of exactly those files (not wheel
  # paths): pip then writes no direct_url.json, which would record this machine's paths.
  pipx install -q --no-index --find-links "$work/wheels" --no-deps --no-compile \
    --only-binary=:all: --python-version 3.12 --implementation cp "${plat[@]}" \
    --target "$site" -r "$lock" || die "pip install --target failed"

  say "prune (offline/prune.txt, MOE=$moe)"
  : > "$work/pruned.tsv"
  while IFS=$'\t' read -r glob keep why; do
    [[ -z $glob || $glob == \#* ]] && continue
    [ "$keep" = MOE ] && [ "$moe" = 1 ] && continue
    found=0
    for f in "$site"/$glob; do
      [ -e "$f" ] || continue
      found=1
      printf '%s\t%s\t%s\n' "${f#"$site"/}" "$(stat -c %s "$f")" "$why" >> "$work/pruned.tsv"
      rm -rf "$f"
    done
    [ $found = 1 ] || say "note: nothing matched prune entry $glob (gone in vllm $ver?)"
  done < "$repo/offline/prune.txt"
fi

# Console scripts carry the build machine's interpreter in their #! line.
if [ -d "$site/bin" ]; then
  for f in "$site"/bin/*; do
    [ -f "$f" ] && head -c 2 "$f" | grep -q '#!' && head -1 "$f" | grep -q python \
      && sed -i '1s|.*|#!/usr/bin/env python3|' "$f"
  done
fi
find "$site" -name __pycache__ -prune -exec rm -rf {} +
find "$site" -name '*.pyc' -delete

archive=$name.tar.xz
say "pack and compress (xz -$level, $threads threads)"
# Deterministic tar: sorted names, one fixed mtime, root-owned, no atime/ctime.
tar --sort=name --mtime='2000-01-01 00:00:00Z' --owner=0 --group=0 --numeric-owner \
    --mode='u+rwX,go+rX,go-w' --format=gnu -C "$site" -cf - . \
  | xz -T"$threads" -"$level" -c > "$work/$archive"
tar -tvf "$work/$archive" | awk '{print $3, $6}' > "$out/listing.txt"
say "archive $(stat -c %s "$work/$archive") bytes, $(wc -l < "$out/listing.txt") entries"

# Models: one deterministic tar.xz each, unpacked by host.sh into its models folder.
extras=()
for m in ${MODELS:-}; do
  [[ $m =~ ^[A-Za-z0-9._-]+$ ]] || die "bad model name '$m'"
  d=$models_dir/$m
  [ -f "$d/config.json" ] || die "no model folder $d (build it with: make dummy-model MODEL=$m)"
  tar --sort=name --mtime='2000-01-01 00:00:00Z' --owner=0 --group=0 --numeric-owner \
      --mode='u+rwX,go+rX,go-w' --format=gnu -C "$models_dir" -cf - "$m" \
    | xz -T"$threads" -9 -c > "$work/model-$m.tar.xz"
  extras+=("$work/model-$m.tar.xz")
done
for w in ${EXTRA_WHEELS:-}; do
  [ -f "$w" ] && [[ $w == *.whl ]] || die "EXTRA_WHEELS: $w is not a .whl file"
  cp "$w" "$work/"
  extras+=("$work/$(basename "$w")")
done

fi

say "split into parts of $part_size"
(cd "$work" && split -b "$part_size" -d -a 2 "$archive" "$archive.part")
parts=$(cd "$work" && ls "$archive".part* | sort)
nparts=$(echo "$parts" | wc -l)
(cd "$work" && sha256sum "$archive" $parts $(for e in "${extras[@]}"; do basename "$e"; done)) > "$work/SHA256SUMS"

# One folder per device call: a part each, the extras with the last part unless they
# would overflow it, in which case they get a call of their own.
i=0
for p in $parts; do
  i=$((i + 1))
  mkdir -p "$out/call$i"
  mv "$work/$p" "$out/call$i/"
done
last=$out/call$i
if [ ${#extras[@]} -gt 0 ]; then
  extra_bytes=$(du -cb "${extras[@]}" | tail -1 | cut -f1)
  if [ $(( $(du -sb "$last" | cut -f1) + extra_bytes )) -gt $(( call_mib * 1048576 - 65536 )) ]; then
    i=$((i + 1)); last=$out/call$i; mkdir -p "$last"
  fi
  mv "${extras[@]}" "$last/"
fi
{
  echo "# vbench offline bundle: read by offline/host.sh"
  echo "NAME=$name"
  echo "VLLM=$ver"
  echo "MOE=$moe"
  echo "ARCHIVE=$archive"
  echo "PARTS=$nparts"
  echo "MODELS=$(echo ${MODELS:-})"
  echo "WHEELS=$(for e in "${extras[@]}"; do b=$(basename "$e"); [[ $b == *.whl ]] && printf '%s ' "$b"; done | sed 's/ $//')"
  for ((k = 1; k <= i; k++)); do echo "FILES_CALL$k=$(ls "$out/call$k" | tr '\n' ' ' | sed 's/ $//')"; done
} > "$work/bundle.env"
for d in "$out"/call*; do
  cp "$work/bundle.env" "$work/SHA256SUMS" "$d/"
  b=$(du -sb "$d" | cut -f1)
  [ "$b" -le $(( call_mib * 1048576 )) ] || die "$d holds $b bytes, more than CALL_MIB=$call_mib MiB"
done
cp "$work/bundle.env" "$work/SHA256SUMS" "$out/"
cp "$work/pruned.tsv" "$out/pruned.tsv"
[ -z "$site" ] || du -sb "$site" | cut -f1 > "$out/tree-bytes.txt"
[ -n "${KEEP_WORK:-}" ] || rm -rf "$work"

say "done: $out"
for d in "$out"/call*; do
  echo "  $(basename "$d"): $(du -sb "$d" | cut -f1) bytes: $(ls "$d" | tr '\n' ' ')" >&2
done
