#!/usr/bin/env bash
# Proxy benchmark, one non-interactive command (run from anywhere):
#
#   bench/scripts/proxy_bench.sh [OUTDIR]
#
# Side by side in one run, against one SSE upstream (bench/scripts/proxytool
# upstream: every event carries its send time; events ITL apart):
#   1. per-event latency (client receive − upstream send) p50/p90/p99 at
#      1, 100 and 1,000 concurrent streams: direct, vbproxy (recording into a
#      real capture), vbproxy-norec (forwarding only), nginx (proxy_buffering
#      off) and Go's httputil.ReverseProxy; "added" = proxied − direct in the
#      same repetition. The 1,000-stream point runs REPS times, targets
#      interleaved, and the summary gives medians (the tail of one run
#      varies by ±50 %); each row also says the CPU the proxy used and, for
#      vbproxy, its GC cycles during the run;
#   2. maximum recorded chunks/s: 32 streams sending as fast as they can
#      through vbproxy, with the proxy's and the capture writer's drop counts;
#   3. memory per open stream: RSS growth of each proxy holding IDLE idle
#      streams.
#
# Results in OUTDIR (default /tmp/proxy-bench-<time>): summary.md (the
# tables for docs/benchmarks/proxy.md), latency.jsonl (one line per run),
# memory.jsonl, throughput.json, stats-*.json (vbproxy's /vb/stats),
# env.txt, *.log. Work files (the capture, copies of the binaries, nginx's
# temp dirs) go to a temporary directory that is removed at the end, so
# OUTDIR stays small.
#
# Env: BIN (directory with prebuilt vbproxy and proxytool, e.g. .dist for
# a host without Go; default: go build), CPUS (pin everything to these CPUs
# with taskset, e.g. 0,1; default: no pinning), DUR (seconds measured per
# latency run, default 8, after a 2-s warm-up), REPS (repetitions of the
# 1,000-stream point, default 3), ITL (default 50ms), LOADS (default
# "1 100 1000"; REPS applies to the largest), IDLE (default 1000),
# NGINX_BIN (default: nginx on PATH or /usr/sbin/nginx; none: the nginx
# rows are skipped and the summary says so), NOREC=0 (leave out
# vbproxy-norec). Needs bash, taskset for CPUS, python3 for summary.md
# (without it the raw JSON lines stay). Defaults take about 6 minutes.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:-/tmp/proxy-bench-$(date -u +%Y%m%dT%H%M%SZ)}
if [ -n "${CPUS:-}" ] && [ -z "${PROXY_BENCH_PINNED:-}" ]; then
  command -v taskset >/dev/null || { echo "proxy_bench: CPUS=$CPUS needs taskset (util-linux)" >&2; exit 1; }
  PROXY_BENCH_PINNED=1 exec taskset -c "$CPUS" "$0" "$OUT"
fi
DUR=${DUR:-8}
REPS=${REPS:-3}
ITL=${ITL:-50ms}
LOADS=${LOADS:-"1 100 1000"}
IDLE=${IDLE:-1000}
NOREC=${NOREC:-1}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/proxy-bench-work.XXXXXX")
T0=$(date +%s)
B="$WORK/bin"
mkdir -p "$B"
if [ -n "${BIN:-}" ]; then # prebuilt vbproxy and proxytool (a machine without Go)
  case $BIN in /*) ;; *) BIN="$ROOT/$BIN" ;; esac
  for f in vbproxy proxytool; do
    [ -x "$BIN/$f" ] || { echo "proxy_bench: $BIN/$f missing or not executable (build: GOOS=linux GOARCH=amd64 go build -o $BIN/ ./cmd/vbproxy ./bench/scripts/proxytool)" >&2; exit 1; }
    cp "$BIN/$f" "$B/"
  done
else
  command -v go >/dev/null || { echo "proxy_bench: no go on PATH; set BIN to a directory with prebuilt vbproxy and proxytool" >&2; exit 1; }
  (cd "$ROOT" && go build -o "$B/" ./cmd/vbproxy ./bench/scripts/proxytool)
fi
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
  sleep 0.5
  rm -rf "$WORK"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)" || true
[ "$(ulimit -n)" -ge 8192 ] || echo "proxy_bench: warning: only $(ulimit -n) file descriptors; 1,000 streams through a proxy need about 4,000" >&2

waitfile() { for _ in $(seq 100); do [ -s "$1" ] && return 0; sleep 0.1; done; echo "proxy_bench: timeout waiting for $1" >&2; exit 1; }
# cpu PID[,PID...]: user+system CPU ticks of the processes.
cpu() { local t=0 p; for p in ${1//,/ }; do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo "$t"; }
gcs() { grep -c '^gc ' "$OUT/vbproxy.log" 2>/dev/null || true; }

"$B/proxytool" upstream >"$WORK/upstream.url" 2>"$OUT/upstream.log" & PIDS+=($!)
waitfile "$WORK/upstream.url"; UP=$(cat "$WORK/upstream.url")

# GODEBUG=gctrace=1: one stderr line per GC cycle, counted per run.
GODEBUG=gctrace=1 "$B/vbproxy" --upstream "$UP" --listen 127.0.0.1:0 --capture "$WORK/capture" --log-level warn >"$WORK/vbproxy.out" 2>"$OUT/vbproxy.log" & VBPID=$!; PIDS+=($VBPID)
waitfile "$WORK/vbproxy.out"; VB=$(grep -o 'http://[0-9.:]*' "$WORK/vbproxy.out" | head -1)

VBN="" VBNPID=""
if [ "$NOREC" = 1 ]; then # a second vbproxy that forwards without recording
  "$B/vbproxy" --upstream "$UP" --listen 127.0.0.1:0 --capture '' --log-level warn >"$WORK/vbproxy-norec.out" 2>"$OUT/vbproxy-norec.log" & VBNPID=$!; PIDS+=($VBNPID)
  waitfile "$WORK/vbproxy-norec.out"; VBN=$(grep -o 'http://[0-9.:]*' "$WORK/vbproxy-norec.out" | head -1)
fi

"$B/proxytool" revproxy --upstream "$UP" >"$WORK/revproxy.url" 2>"$OUT/revproxy.log" & RPPID=$!; PIDS+=($RPPID)
waitfile "$WORK/revproxy.url"; RP=$(cat "$WORK/revproxy.url")

NG="" NGW="" NGINX_VERSION="none"
NGINX=${NGINX_BIN:-$(command -v nginx || echo /usr/sbin/nginx)}
unset NGINX_BIN # nginx reads an exported NGINX variable as inherited sockets
if [ -x "$NGINX" ]; then
  NGPORT=$("$B/proxytool" freeport)
  mkdir -p "$WORK/nginx"
  cat >"$WORK/nginx/nginx.conf" <<CONF
worker_processes auto;
worker_rlimit_nofile 20000;
pid $WORK/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 10000; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/body; proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fcgi; uwsgi_temp_path $WORK/nginx/uwsgi; scgi_temp_path $WORK/nginx/scgi;
  upstream up { server ${UP#http://}; keepalive 2048; }
  server {
    listen 127.0.0.1:$NGPORT;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_read_timeout 600s;
    }
  }
}
CONF
  if "$NGINX" -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" 2>"$OUT/nginx-start.log"; then
    waitfile "$WORK/nginx.pid"
    NG="http://127.0.0.1:$NGPORT"
    NGINX_VERSION=$("$NGINX" -v 2>&1 | sed 's/.*nginx\///')
    sleep 0.3
    NGW=$(pgrep -P "$(cat "$WORK/nginx.pid")" | paste -sd, || true) # worker processes
  else
    echo "proxy_bench: nginx at $NGINX failed to start (see nginx-start.log); nginx rows skipped" >&2
    NGINX_VERSION="failed to start"
  fi
else
  echo "proxy_bench: no nginx (looked for ${NGINX}); nginx rows skipped — set NGINX_BIN to include it" >&2
fi

{
  echo "date: $(date -u +%FT%TZ)"
  echo "host: $(uname -n) $(uname -r); cpus online $(nproc --all 2>/dev/null || echo ?), allowed $(nproc)"
  echo "pinned: ${CPUS:-no}"
  echo "load average before: $(cat /proc/loadavg)"
  echo "upstream $UP  vbproxy $VB  vbproxy-norec ${VBN:-none}  httputil $RP  nginx ${NG:-none} ($NGINX_VERSION)"
  echo "DUR=$DUR REPS=$REPS ITL=$ITL LOADS=$LOADS IDLE=$IDLE"
} | tee "$OUT/env.txt"

echo "memory: $IDLE idle streams (fresh processes, before any load)" >&2
: >"$OUT/memory.jsonl"
"$B/proxytool" idle --target "$VB" --streams "$IDLE" --pid "$VBPID" | sed 's/^{/{"via":"vbproxy",/' >>"$OUT/memory.jsonl"
"$B/proxytool" idle --target "$RP" --streams "$IDLE" --pid "$RPPID" | sed 's/^{/{"via":"httputil",/' >>"$OUT/memory.jsonl"
if [ -n "$NG" ]; then # nginx: RSS summed over its worker processes
  "$B/proxytool" idle --target "$NG" --streams "$IDLE" --pid "$NGW" | sed 's/^{/{"via":"nginx",/' >>"$OUT/memory.jsonl"
fi
# Idle streams end when their second event (10 s after their start) finds
# the client gone.
sleep 10

: >"$OUT/latency.jsonl"
TOP=$(for c in $LOADS; do echo "$c"; done | sort -n | tail -1)
for c in $LOADS; do
  reps=1
  [ "$c" = "$TOP" ] && reps=$REPS
  for r in $(seq "$reps"); do
    for t in direct vbproxy vbproxy-norec nginx httputil; do
      case $t in
        direct) U=$UP P="" ;;
        vbproxy) U=$VB P=$VBPID ;;
        vbproxy-norec) U=$VBN P=$VBNPID ;;
        nginx) U=$NG P=$NGW ;;
        httputil) U=$RP P=$RPPID ;;
      esac
      [ -z "$U" ] && continue
      echo "latency: $c streams via $t (rep $r/$reps, $(( $(date +%s) - T0 )) s elapsed)" >&2
      la=$(cut -d' ' -f1 /proc/loadavg)
      c0=$(cpu "$P") g0=$(gcs)
      "$B/proxytool" load --target "$U" --streams "$c" --itl "$ITL" --events 40 --duration "${DUR}s" --warmup 2s >"$WORK/run.json"
      c1=$(cpu "$P") g1=$(gcs)
      gc=""
      [ "$t" = vbproxy ] && gc=$((g1 - g0))
      sed "s/^{/{\"via\":\"$t\",\"rep\":$r,\"load_avg\":$la,\"proxy_cpu_ticks\":$((c1 - c0)),\"ticks_per_s\":$(getconf CLK_TCK),\"gc_cycles\":\"$gc\",/" "$WORK/run.json" >>"$OUT/latency.jsonl"
    done
  done
done

echo "throughput: 32 streams as fast as possible through vbproxy" >&2
"$B/proxytool" get "$VB/vb/stats" >"$OUT/stats-before.json"
"$B/proxytool" load --target "$VB" --streams 32 --itl 0 --events 5000 --duration "${DUR}s" --warmup 0s >"$OUT/throughput.json"
"$B/proxytool" get "$VB/vb/stats" >"$OUT/stats-after.json"
sleep 2 # let the capture writer commit the last records
"$B/proxytool" get "$VB/vb/stats" >"$OUT/stats-final.json"
echo "wall: $(( $(date +%s) - T0 )) s" | tee -a "$OUT/env.txt"

if ! command -v python3 >/dev/null; then
  echo "proxy_bench: no python3: summary.md not written; raw results in $OUT" >&2
  exit 0
fi
python3 - "$OUT" "$DUR" "$ITL" "$NGINX_VERSION" "${CPUS:-}" <<'PY'
import json, sys, datetime, platform, os, statistics as st
out, dur, itl, ngv, cpus = sys.argv[1:6]
lat = [json.loads(l) for l in open(out + "/latency.jsonl")]
order = ["direct", "vbproxy", "vbproxy-norec", "nginx", "httputil"]
runs = {}
for r in lat:
    runs.setdefault((r["streams"], r["via"]), []).append(r)
direct = {(r["streams"], r["rep"]): r for r in lat if r["via"] == "direct"}
med = lambda xs: st.median(xs) if xs else float("nan")
env = open(out + "/env.txt").read()
load0 = env.split("load average before: ")[1].split()[0]
L = []
L.append(f"Measured {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} on {len(os.sched_getaffinity(0))} CPUs "
         f"({'pinned to ' + cpus if cpus else 'not pinned'}, of {os.cpu_count()} on {platform.node()}; load average before the run {load0}); "
         f"upstream, load generator and proxies all on the same CPUs; {dur} s per run after a 2 s warm-up; events {itl} apart per stream; "
         f"nginx {ngv}.")
if ngv in ("none", "failed to start"):
    L.append("")
    L.append(f"**nginx: {ngv} on this host — its rows are missing.**")
L.append("")
L.append("### Per-event latency (client receive − upstream send), µs — medians over repetitions")
L.append("")
L.append("Added = proxied − direct of the same repetition (median over repetitions). CPU = cores the proxy used during the run (nginx: its workers). GC = vbproxy's GC cycles per run.")
L.append("")
L.append("| streams | via | reps | events/s | p50 | p90 | p99 | added p50 | added p99 | CPU (cores) | GC | errors |")
L.append("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for (c, via), rs in sorted(runs.items(), key=lambda kv: (kv[0][0], order.index(kv[0][1]))):
    a50 = [r["p50_us"] - direct[(c, r["rep"])]["p50_us"] for r in rs if via != "direct" and (c, r["rep"]) in direct]
    a99 = [r["p99_us"] - direct[(c, r["rep"])]["p99_us"] for r in rs if via != "direct" and (c, r["rep"]) in direct]
    add = (f"{med(a50):+.0f}", f"{med(a99):+.0f}") if a50 else ("", "")
    cores = med([r["proxy_cpu_ticks"] / r["ticks_per_s"] / r["seconds"] for r in rs]) if via != "direct" else None
    gc = med([int(r["gc_cycles"]) for r in rs]) if via == "vbproxy" and all(r["gc_cycles"] != "" for r in rs) else None
    ev = med([r["events_per_s"] for r in rs])
    p50, p90, p99 = (med([r[k] for r in rs]) for k in ("p50_us", "p90_us", "p99_us"))
    cores_s = "" if cores is None else "%.2f" % cores
    gc_s = "" if gc is None else "%g" % gc
    errs = sum(r["errors"] for r in rs)
    L.append(f"| {c} | {via} | {len(rs)} | {ev:.0f} | {p50:.0f} | {p90:.0f} | {p99:.0f} | {add[0]} | {add[1]} | {cores_s} | {gc_s} | {errs} |")
multi = [(k, rs) for k, rs in sorted(runs.items(), key=lambda kv: (kv[0][0], order.index(kv[0][1]))) if len(rs) > 1]
if multi:
    L.append("")
    L.append("#### Each repetition (p99, µs, in run order; load average at the start of each run)")
    L.append("")
    L.append("| streams | via | p99 per repetition | load average |")
    L.append("|---:|---|---|---|")
    for (c, via), rs in multi:
        p99s = " / ".join("%.0f" % r["p99_us"] for r in rs)
        loads = " / ".join(str(r["load_avg"]) for r in rs)
        L.append(f"| {c} | {via} | {p99s} | {loads} |")
t = json.load(open(out + "/throughput.json"))
s0 = json.load(open(out + "/stats-before.json")); s1 = json.load(open(out + "/stats-after.json"))
chunks = s1["chunks"] - s0["chunks"]
secs = s1["uptime_s"] - s0["uptime_s"]
cap = json.load(open(out + "/stats-final.json")).get("capture") or {}
L.append("")
L.append("### Maximum recorded chunks/s (32 streams, upstream writing as fast as it can, through vbproxy into a real capture)")
L.append("")
L.append(f"- events received by the clients: {t['events_per_s']:.0f}/s over {t['seconds']:.1f} s")
L.append(f"- chunks forwarded and recorded by vbproxy: {chunks} in {secs:.1f} s between two /vb/stats reads around the run = {chunks/secs:.0f} chunks/s (several events can share one read at this rate)")
L.append(f"- records dropped by the proxy: {s1['dropped'] - s0['dropped']}; capture writer: written {cap.get('written')}, dropped {cap.get('dropped')}, lost {cap.get('lost')}, flush p99 {cap.get('flush_p99_ns', 0)/1e6:.1f} ms")
L.append("")
L.append("### Memory per open stream (RSS growth holding idle streams)")
L.append("")
L.append("| via | streams | RSS before (KiB) | RSS after (KiB) | KiB per stream | failed opens (retried) |")
L.append("|---|---:|---:|---:|---:|---:|")
for l in open(out + "/memory.jsonl"):
    m = json.loads(l)
    L.append(f"| {m['via']} | {m['streams']} | {m['rss_before_kib']} | {m['rss_after_kib']} | {m['kib_per_stream']} | {m.get('open_failures', 0)} |")
open(out + "/summary.md", "w").write("\n".join(L) + "\n")
print("\n".join(L))
PY
echo "results in $OUT" >&2
