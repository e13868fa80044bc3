#!/usr/bin/env bash
# Codec study for the offline vLLM bundle (docs/benchmarks/offline.md): packs a site
# tree into the same deterministic tar as offline/bundle.sh, then compresses it with
# each codec, timing compression and decompression, and prints a Markdown table.
#
#   KEEP_WORK=1 make offline-bundle VLLM=0.26.0        # leaves .bundle/vllm-0.26.0/.work/site
#   nice bash bench/scripts/offline_codecs.sh .bundle/vllm-0.26.0/.work/site "xz -6" "zstd -19"
#
# Each codec is one string: the compressor and its flags ("xz -6", "zstd -19 --long=27");
# threads are added here (-T$THREADS, default 2). Parts = ceil(size / 58 MiB). Besides
# wall time it reports CPU time (user+sys), which other jobs on a shared machine disturb
# less, and the load average around each run.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 SITE_DIR CODEC..." >&2; exit 2; }
site=$1; shift
threads=${THREADS:-2}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
tar --sort=name --mtime='2000-01-01 00:00:00Z' --owner=0 --group=0 --numeric-owner \
    --mode='u+rwX,go+rX,go-w' --format=gnu -C "$site" -cf "$tmp/site.tar" .
raw=$(stat -c %s "$tmp/site.tar")
echo "tar: $raw bytes, $(nproc) cores, load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo "| codec | compress wall s | compress CPU s | size bytes | % of tar | parts of 58 MiB | decompress wall s | load 1 min |"
echo "|---|---|---|---|---|---|---|---|"
TIMEFORMAT='%R %U %S' 
for c in "$@"; do
  prog=${c%% *}
  command -v "$prog" >/dev/null || { echo "| $c | $prog not installed | | | | |"; continue; }
  load=$(cut -d' ' -f1 /proc/loadavg)
  read -r wall user sys < <( { time $c -T"$threads" -c "$tmp/site.tar" > "$tmp/out"; } 2>&1 )
  size=$(stat -c %s "$tmp/out")
  case $prog in
    zstd) read -r dwall _ < <( { time zstd -d -c --long=31 "$tmp/out" > /dev/null; } 2>&1 ) ;;
    *) read -r dwall _ < <( { time $prog -d -T1 -c "$tmp/out" > /dev/null; } 2>&1 ) ;;
  esac
  load="$load–$(cut -d' ' -f1 /proc/loadavg)"
  printf '| `%s -T%s` | %.0f | %.0f | %s | %.1f | %d | %.1f | %s |\n' "$c" "$threads" "$wall" \
    "$(echo "$user + $sys" | bc)" "$size" "$(echo "100 * $size / $raw" | bc -l)" \
    $(( (size + 60817407) / 60817408 )) "$dwall" "$load"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
