#!/usr/bin/env python3
"""Summarize bench/scripts/replay_bench.sh results (OUTDIR) as Markdown on
stdout and as OUTDIR/results.csv (one row per run, every figure)."""
import csv
import glob
import json
import os
import re
import sys

out = sys.argv[1]


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def vb(path):
    d = load(path)
    if not d or not d.get("levels"):
        return None
    lv = d["levels"][0]
    ms = lambda ns: ns / 1e6
    return {
        "sent": lv["sent"], "ok": lv["ok"], "errors": sum((lv.get("errors") or {}).values()),
        "asked": lv["rate"], "achieved": lv["achieved_rate"], "scheduled": lv["scheduled_rate"],
        "lag_p50": ms(lv["lag"]["p50_ns"]), "lag_p99": ms(lv["lag"]["p99_ns"]),
        "ttft_mean": ms(lv["ttft"]["mean_ns"]), "ttft_p50": ms(lv["ttft"]["p50_ns"]), "ttft_p99": ms(lv["ttft"]["p99_ns"]),
    }


def gl(path):
    d = load(path)
    if not d or not d.get("benchmarks"):
        return None
    b = d["benchmarks"][0]
    m = b["metrics"]
    lag = m["request_dispatch_delay"]["total"]
    ttft = m["time_to_first_token_ms"]["successful"]
    succ = m["request_dispatch_delay"]["successful"]["count"]
    n = lag["count"]
    dur = b.get("duration") or (b.get("end_time", 0) - b.get("start_time", 0))
    return {
        "sent": n, "ok": succ, "errors": m["request_dispatch_delay"]["errored"]["count"],
        "asked": None, "achieved": (n / dur) if dur else float("nan"),
        "lag_p50": lag["percentiles"]["p50"] * 1e3, "lag_p99": lag["percentiles"]["p99"] * 1e3,
        "ttft_mean": ttft["mean"], "ttft_p50": ttft["median"], "ttft_p99": ttft["percentiles"]["p99"],
    }


def rates(prefix):
    rs = set()
    for p in glob.glob(os.path.join(out, prefix + "-*.json")):
        m = re.search(r"-(\d+(?:\.\d+)?)\.json$", p)
        if m:
            rs.add(float(m.group(1)))
    return sorted(rs)


rows = []
COLS = ["part", "tool", "asked_rate", "sent", "ok", "errors", "achieved_rate", "lag_p50_ms", "lag_p99_ms",
        "client_ttft_mean_ms", "client_ttft_p50_ms", "client_ttft_p99_ms", "server_ttft_mean_ms",
        "server_ttft_p50_ms", "server_ttft_p99_ms", "deliver_p50_ms", "deliver_mean_ms"]


def row(part, tool, r, v, s=None):
    s = s or {}
    rows.append([part, tool, r, v["sent"], v["ok"], v["errors"], v["achieved"], v["lag_p50"], v["lag_p99"],
                 v["ttft_mean"], v["ttft_p50"], v["ttft_p99"], s.get("ttft_mean_ms"), s.get("ttft_p50_ms"),
                 s.get("ttft_p99_ms"), s.get("deliver_p50_ms"), s.get("deliver_mean_ms")])


def fmt(x, nd=2):
    return "–" if x is None else f"{x:.{nd}f}"


print(f"Results in `{out}`.\n")
with open(os.path.join(out, "load.log")) as f:
    print("```\n" + f.read().strip() + "\n```\n")

print("### Schedule lag against a fast local server (1-token replies)\n")
print("| tool | asked req/s | sent | ok | achieved req/s | lag p50 ms | lag p99 ms |")
print("|---|---:|---:|---:|---:|---:|---:|")
best = None
for r in rates("lag-vbreplay"):
    v = vb(os.path.join(out, f"lag-vbreplay-{r:g}.json"))
    if v:
        print(f"| vbreplay | {r:g} | {v['sent']} | {v['ok']} | {fmt(v['achieved'], 1)} | {fmt(v['lag_p50'], 3)} | {fmt(v['lag_p99'], 3)} |")
        row("lag", "vbreplay", r, v)
        if v["lag_p99"] <= 1 and v["ok"] == v["sent"] and v["achieved"] >= 0.95 * v["scheduled"]:
            best = r
for r in rates("lag-guidellm"):
    g = gl(os.path.join(out, f"lag-guidellm-{r:g}.json"))
    if g:
        print(f"| GuideLLM | {r:g} | {g['sent']} | {g['ok']} | {fmt(g['achieved'], 1)} | {fmt(g['lag_p50'], 3)} | {fmt(g['lag_p99'], 3)} |")
        row("lag", "GuideLLM", r, g)
print(f"\nHighest swept rate with lag p99 <= 1 ms, every request OK and achieved rate >= 95% of the scheduled rate: **{fmt(best, 0) if best else 'none'} req/s**.\n")

print("### TTFT overstatement: server TTFT 50 ms, ITL 10 ms, 100 tokens\n")
print("Overstatement = client TTFT − 50 ms. The server's own share is its measured flush time of the first token minus 50 ms (a loaded machine delays its timers too); the client's share is the difference.\n")
print("`deliver` (vbreplay only: it tags X-VB-Sent) is server-had-the-body − client-sent, p50/mean: the part of the client share spent before the server saw the request.\n")
print("| tool | req/s (≈ streams) | sent | ok | lag p50 ms | lag p99 ms | client TTFT mean / p50 / p99 ms | server TTFT mean / p50 ms | overstatement mean ms | client share mean ms | deliver p50 / mean ms |")
print("|---|---:|---:|---:|---:|---:|---|---|---:|---:|---|")
for tool, fn in (("vbreplay", vb), ("GuideLLM", gl)):
    key = "ttft-" + tool.lower()
    for r in rates(key):
        v = fn(os.path.join(out, f"{key}-{r:g}.json"))
        s = load(os.path.join(out, f"{key}-{r:g}.server.json")) or {}
        if not v:
            continue
        row("ttft", tool, r, v, s)
        smean = s.get("ttft_mean_ms")
        print(f"| {tool} | {r:g} | {v['sent']} | {v['ok']} | {fmt(v['lag_p50'], 3)} | {fmt(v['lag_p99'], 3)} | "
              f"{fmt(v['ttft_mean'])} / {fmt(v['ttft_p50'])} / {fmt(v['ttft_p99'])} | {fmt(smean)} / {fmt(s.get('ttft_p50_ms'))} | "
              f"{fmt(v['ttft_mean'] - 50)} | {fmt(v['ttft_mean'] - smean if smean is not None else None)} | "
              f"{fmt(s.get('deliver_p50_ms'))} / {fmt(s.get('deliver_mean_ms'))} |")

with open(os.path.join(out, "results.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(COLS)
    w.writerows(rows)
