#!/usr/bin/env bash
# Proxy benchmark, one command (run from the repository root):
#
#   bench/scripts/proxy_bench.sh [OUTDIR]
#
# Side by side in one run, against one SSE upstream (bench/scripts/proxytool
# upstream: every event carries its send time; events ITL apart):
#   1. per-event latency (client receive − upstream send) p50/p90/p99 at
#      1, 100 and 1,000 concurrent streams: direct, vbproxy (recording into a
#      real capture), nginx (Debian package, proxy_buffering off) and Go's
#      httputil.ReverseProxy; "added" = proxied − direct at the same load;
#   2. maximum recorded chunks/s: 32 streams sending as fast as they can
#      through vbproxy, with the proxy's and the capture writer's drop counts;
#   3. memory per open stream: RSS growth of each proxy holding 1,000 idle
#      streams.
# Results: OUTDIR/summary.md and the raw JSON lines. Env: DUR (seconds per
# latency run, default 10), ITL (default 50ms), LOADS (default "1 100 1000"),
# IDLE (idle streams, default 1000), NOREC=1 (add a vbproxy that records
# nothing, to show what recording costs), BIN (directory with prebuilt vbproxy and
# proxytool, for a machine without Go), NGINX_BIN (nginx binary). Needs nginx
# (apt-get install nginx-light) for the nginx column; without it the column
# is skipped.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-/tmp/proxy-bench-$(date -u +%Y%m%dT%H%M%SZ)}
DUR=${DUR:-10}
ITL=${ITL:-50ms}
LOADS=${LOADS:-"1 100 1000"}
IDLE=${IDLE:-1000}
mkdir -p "$OUT/bin"
if [ -n "${BIN:-}" ]; then # prebuilt vbproxy and proxytool (a machine without Go)
  cp "$BIN/vbproxy" "$BIN/proxytool" "$OUT/bin/"
else
  go build -o "$OUT/bin/" ./cmd/vbproxy ./bench/scripts/proxytool
fi
B="$OUT/bin"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$OUT/nginx.pid" ] && kill "$(cat "$OUT/nginx.pid")" 2>/dev/null || true
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)" || true

waitfile() { for _ in $(seq 100); do [ -s "$1" ] && return 0; sleep 0.1; done; echo "timeout waiting for $1" >&2; exit 1; }

"$B/proxytool" upstream >"$OUT/upstream.url" 2>"$OUT/upstream.log" & PIDS+=($!)
waitfile "$OUT/upstream.url"; UP=$(cat "$OUT/upstream.url")

"$B/vbproxy" --upstream "$UP" --listen 127.0.0.1:0 --capture "$OUT/capture" --log-level warn >"$OUT/vbproxy.out" 2>"$OUT/vbproxy.log" & VBPID=$!; PIDS+=($VBPID)
waitfile "$OUT/vbproxy.out"; VB=$(grep -o 'http://[0-9.:]*' "$OUT/vbproxy.out" | head -1)

VBN=""
if [ "${NOREC:-0}" = 1 ]; then # a second vbproxy that forwards without recording
  "$B/vbproxy" --upstream "$UP" --listen 127.0.0.1:0 --capture '' --log-level warn >"$OUT/vbproxy-norec.out" 2>"$OUT/vbproxy-norec.log" & PIDS+=($!)
  waitfile "$OUT/vbproxy-norec.out"; VBN=$(grep -o 'http://[0-9.:]*' "$OUT/vbproxy-norec.out" | head -1)
fi

"$B/proxytool" revproxy --upstream "$UP" >"$OUT/revproxy.url" 2>"$OUT/revproxy.log" & RPPID=$!; PIDS+=($RPPID)
waitfile "$OUT/revproxy.url"; RP=$(cat "$OUT/revproxy.url")

NG=""
NGINX=${NGINX_BIN:-$(command -v nginx || echo /usr/sbin/nginx)}
unset NGINX_BIN # nginx reads an exported NGINX variable as inherited sockets
if [ -x "$NGINX" ]; then
  NGPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  mkdir -p "$OUT/nginx"
  cat >"$OUT/nginx/nginx.conf" <<CONF
worker_processes auto;
worker_rlimit_nofile 20000;
pid $OUT/nginx.pid;
error_log $OUT/nginx/error.log warn;
events { worker_connections 10000; }
http {
  access_log off;
  client_body_temp_path $OUT/nginx/body; proxy_temp_path $OUT/nginx/proxy;
  fastcgi_temp_path $OUT/nginx/fcgi; uwsgi_temp_path $OUT/nginx/uwsgi; scgi_temp_path $OUT/nginx/scgi;
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
  "$NGINX" -e "$OUT/nginx/error.log" -c "$OUT/nginx/nginx.conf" -p "$OUT/nginx" 2>"$OUT/nginx/start.log"
  waitfile "$OUT/nginx.pid"
  NG="http://127.0.0.1:$NGPORT"
  NGINX_VERSION=$("$NGINX" -v 2>&1 | sed 's/.*nginx\///')
fi

echo "memory: $IDLE idle streams (fresh processes, before any load)" >&2
: >"$OUT/memory.jsonl"
"$B/proxytool" idle --target "$VB" --streams "$IDLE" --pid "$VBPID" | sed 's/^{/{"via":"vbproxy",/' >>"$OUT/memory.jsonl"
"$B/proxytool" idle --target "$RP" --streams "$IDLE" --pid "$RPPID" | sed 's/^{/{"via":"httputil",/' >>"$OUT/memory.jsonl"
if [ -n "$NG" ]; then
  # nginx: RSS summed over its worker processes.
  W=$(pgrep -P "$(cat "$OUT/nginx.pid")" | paste -sd,)
  "$B/proxytool" idle --target "$NG" --streams "$IDLE" --pid "$W" | sed 's/^{/{"via":"nginx",/' >>"$OUT/memory.jsonl"
fi

# Idle streams end when their second event (10 s after their start) finds the client gone.
sleep 10

echo "upstream $UP  vbproxy $VB  httputil $RP  nginx ${NG:-none}" | tee "$OUT/targets.txt"
: >"$OUT/latency.jsonl"
for c in $LOADS; do
  for t in direct vbproxy vbproxy-norec nginx httputil; do
    case $t in direct) U=$UP;; vbproxy) U=$VB;; vbproxy-norec) U=$VBN;; nginx) U=$NG;; httputil) U=$RP;; esac
    [ -z "$U" ] && continue
    echo "latency: $c streams via $t" >&2
    "$B/proxytool" load --target "$U" --streams "$c" --itl "$ITL" --events 40 --duration "${DUR}s" --warmup 2s |
      python3 -c "import json,sys; r=json.load(sys.stdin); r['via']='$t'; print(json.dumps(r))" >>"$OUT/latency.jsonl"
  done
done

echo "throughput: 32 streams as fast as possible through vbproxy" >&2
curl -s "$VB/vb/stats" >"$OUT/stats-before.json"
"$B/proxytool" load --target "$VB" --streams 32 --itl 0 --events 5000 --duration "${DUR}s" --warmup 0s >"$OUT/throughput.json"
curl -s "$VB/vb/stats" >"$OUT/stats-after.json"
sleep 2 # let the capture writer commit the last records
curl -s "$VB/vb/stats" >"$OUT/stats-final.json"

python3 - "$OUT" "$DUR" "$ITL" "${NGINX_VERSION:-none}" <<'PY'
import json, sys, datetime, platform, os
out, dur, itl, ngv = sys.argv[1:5]
lat = [json.loads(l) for l in open(out + "/latency.jsonl")]
by = {(r["streams"], r["via"]): r for r in lat}
L = []
L.append(f"Measured {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} on {len(os.sched_getaffinity(0))} CPUs (of {os.cpu_count()} on {platform.node()}; load average before the run {open('/proc/loadavg').read().split()[0]}); "
         f"upstream, load generator and proxies all on the same host; {dur} s per run after a 2 s warm-up; events {itl} apart per stream; nginx {ngv}.")
L.append("")
L.append("### Per-event latency (client receive − upstream send), µs")
L.append("")
L.append("| streams | via | events/s | p50 | p90 | p99 | added p50 | added p99 | errors |")
L.append("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
for (c, via), r in sorted(by.items(), key=lambda kv: (kv[0][0], ["direct","vbproxy","vbproxy-norec","nginx","httputil"].index(kv[0][1]))):
    d = by.get((c, "direct"))
    a50 = r["p50_us"] - d["p50_us"] if d and via != "direct" else 0
    a99 = r["p99_us"] - d["p99_us"] if d and via != "direct" else 0
    add = (f"{a50:+.0f}", f"{a99:+.0f}") if via != "direct" else ("", "")
    L.append(f"| {c} | {via} | {r['events_per_s']:.0f} | {r['p50_us']:.0f} | {r['p90_us']:.0f} | {r['p99_us']:.0f} | {add[0]} | {add[1]} | {r['errors']} |")
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
