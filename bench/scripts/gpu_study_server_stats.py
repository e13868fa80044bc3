#!/usr/bin/env python3
"""Per-level server-side figures of a vbbench study from its captures'
/metrics samples (vLLM names, which vbtorch also exports): mean and max
running requests (batch size), max waiting, mean and max KV-cache usage,
preemptions. Backends without /metrics (transformers serve) get '-'.

    bench/scripts/gpu_study_server_stats.py VBANALYZE RESULTS/MODEL > server.csv
"""
import collections, csv, json, pathlib, subprocess, sys

vbanalyze, root = sys.argv[1], pathlib.Path(sys.argv[2])
w = csv.writer(sys.stdout)
w.writerow(["variant", "rate", "samples", "running_mean", "running_max", "waiting_max", "kv_usage_mean", "kv_usage_max", "preemptions"])
for cap in sorted(root.glob("*/*/capture/rate-*")):
    variant, rate = cap.parts[-4], cap.name.removeprefix("rate-")
    out = subprocess.run([vbanalyze, "--dump", "--no-bodies", str(cap)], capture_output=True, text=True, check=True).stdout
    s = collections.defaultdict(list)
    for line in out.splitlines():
        o = json.loads(line)
        if o["kind"] == "sample":
            s[o["name"]].append(o["value"])
    run, wait, kv, pre = (s.get("vllm:" + k, []) for k in ("num_requests_running", "num_requests_waiting", "kv_cache_usage_perc", "num_preemptions"))
    f = lambda v, fn, d=2: round(fn(v), d) if v else "-"
    mean = lambda v: sum(v) / len(v)
    w.writerow([variant, rate, len(run), f(run, mean, 1), f(run, max, 0), f(wait, max, 0), f(kv, mean), f(kv, max), f(pre, max, 0)])
