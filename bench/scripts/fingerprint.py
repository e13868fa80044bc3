#!/usr/bin/env python3
"""The machine's speed before a trial, so that drift between GPU holds can be
told apart from a difference between variants (issue #16).

Session 5 found the anchor (torch-oracle at 5.2 req/s) 56 % slower per step
on one lent H200 machine than on another, with the same GPU model, image and
settings. An eager server's decode step is mostly host work (Python and
kernel launches), so the host's speed matters as much as the GPU's. This
script measures both, in a few seconds, and prints one JSON line:

  label         what it was run before (--label)
  cpu           the CPU model (/proc/cpuinfo) and its count
  load1         the 1-minute load average, and busiest: the processes that
                used at least 5 % of a core over half a second, the top 3
                (a server or compile worker left running would show here)
  py_loop_ns    ns per iteration of a plain Python loop (best of 3)
  launch_us     µs per tiny CUDA kernel launch, 20,000 queued then one
                synchronize (best of 3): the per-kernel host cost of an
                eager step
  sync_us       µs per launch-and-wait round trip (1,000, best of 3)
  hbm_gbs       GB/s of a 1-GiB device copy (read + write)
  bf16_tflops   TFLOP/s of an 8192³ bf16 matmul
  gpu           nvidia-smi's SM clock, its maximum, temperature, power and
                active throttle reasons, when nvidia-smi is there

Without CUDA (or torch) the GPU figures are null: the script never fails a
trial. Usage: python3 bench/scripts/fingerprint.py --label "trial 3"
"""

import argparse
import json
import os
import subprocess
import sys
import time


def best(fn, n=3):
    return min(fn() for _ in range(n))


def py_loop_ns():
    def once():
        t = time.perf_counter_ns()
        s = 0
        for i in range(1_000_000):
            s += i
        return (time.perf_counter_ns() - t) / 1_000_000
    return round(best(once), 2)


def cpu():
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"model": model, "count": os.cpu_count()}


def cpu_ticks():
    ticks = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % pid) as f:
                st = f.read()
        except OSError:
            continue
        name = st[st.index("(") + 1:st.rindex(")")]
        fields = st[st.rindex(")") + 2:].split()
        ticks[pid] = (name, int(fields[11]) + int(fields[12]))  # utime + stime
    return ticks


def busiest(seconds=0.5):
    """The processes that used the most CPU over the next half second, as
    "name pid: N%" of one core (this script itself left out)."""
    try:
        a = cpu_ticks()
        time.sleep(seconds)
        b = cpu_ticks()
        hz = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return []
    me = str(os.getpid())
    used = []
    for pid, (name, t) in b.items():
        if pid == me or pid not in a:
            continue
        pct = (t - a[pid][1]) / hz / seconds * 100
        if pct >= 5:
            used.append((pct, "%s %s: %d%%" % (name, pid, round(pct))))
    return [u for _, u in sorted(used, reverse=True)[:3]]


def gpu_clocks():
    q = "clocks.sm,clocks.max.sm,temperature.gpu,power.draw,clocks_throttle_reasons.active"
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=" + q, "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0 or not out.stdout.strip():
        return None
    v = [x.strip() for x in out.stdout.splitlines()[0].split(",")]
    keys = ["sm_mhz", "max_sm_mhz", "temp_c", "power_w", "throttle"]
    return dict(zip(keys, v))


def cuda_figures():
    none = {"launch_us": None, "sync_us": None, "hbm_gbs": None, "bf16_tflops": None}
    try:
        import torch
    except Exception:
        return none
    if not torch.cuda.is_available():
        return none
    dev = torch.device("cuda")
    x = torch.zeros(1, device=dev)
    for _ in range(100):
        x.add_(1)
    torch.cuda.synchronize()

    def launches():
        t = time.perf_counter()
        for _ in range(20_000):
            x.add_(1)
        torch.cuda.synchronize()
        return (time.perf_counter() - t) / 20_000 * 1e6

    def syncs():
        t = time.perf_counter()
        for _ in range(1_000):
            x.add_(1)
            torch.cuda.synchronize()
        return (time.perf_counter() - t) / 1_000 * 1e6

    a = torch.empty(512 * 1024 * 1024, dtype=torch.bfloat16, device=dev)
    b = torch.empty_like(a)

    def copy():
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(20):
            b.copy_(a)
        torch.cuda.synchronize()
        return (time.perf_counter() - t) / 20

    n = 8192
    m1 = torch.randn(n, n, dtype=torch.bfloat16, device=dev)
    m2 = torch.randn(n, n, dtype=torch.bfloat16, device=dev)
    torch.mm(m1, m2)

    def mm():
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(10):
            torch.mm(m1, m2)
        torch.cuda.synchronize()
        return (time.perf_counter() - t) / 10

    out = {
        "launch_us": round(best(launches), 2),
        "sync_us": round(best(syncs), 2),
        "hbm_gbs": round(2 * a.numel() * a.element_size() / best(copy) / 1e9, 0),
        "bf16_tflops": round(2 * n ** 3 / best(mm) / 1e12, 0),
    }
    del a, b, m1, m2
    torch.cuda.empty_cache()
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--label", default="", help="what this is run before, e.g. 'trial 3'")
    args = p.parse_args()
    t = time.time()
    rec = {"label": args.label, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpu": cpu()}
    try:
        rec["load1"] = round(os.getloadavg()[0], 2)
    except OSError:
        rec["load1"] = None
    rec["busiest"] = busiest()
    rec["py_loop_ns"] = py_loop_ns()
    rec.update(cuda_figures())
    rec["gpu"] = gpu_clocks()
    rec["seconds"] = round(time.time() - t, 1)
    print(json.dumps(rec, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
