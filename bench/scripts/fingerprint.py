#!/usr/bin/env python3
"""The machine's speed before a trial, so that drift between GPU holds can be
told apart from a difference between variants (issue #16).

Session 5 found the anchor (torch-oracle at 5.2 req/s) 56 % slower per step
on one lent H200 machine than on another, with the same GPU model, image and
settings. An eager server's decode step is mostly host work (Python and
kernel launches), so the host's speed matters as much as the GPU's. This
script measures both, in a few seconds, and prints one JSON line:

  label         what it was run before (--label)
  cpu           the CPU model and clock (/proc/cpuinfo) and its count
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
    """The CPU's model name and clock (MHz, the first core's, as the kernel
    last saw it) from /proc/cpuinfo, and the count. A virtual machine may
    name only "Intel(R) Xeon(R) Processor"; the clock and py_loop_ns still
    tell hosts apart."""
    model, mhz = "", None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and not model:
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("cpu MHz") and mhz is None:
                    try:
                        mhz = round(float(line.split(":", 1)[1]))
                    except ValueError:
                        pass
                if model and mhz is not None:
                    break
    except OSError:
        pass
    return {"model": model, "count": os.cpu_count(), "mhz": mhz}


def cpu_ticks():
    ticks = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                st = f.read()
        except OSError:
            continue
        name = st[st.index("(") + 1:st.rindex(")")]
        fields = st[st.rindex(")") + 2:].split()
        ticks[pid] = (name, int(fields[11]) + int(fields[12]))  # utime + stime
    return ticks


def busiest(top=3, min_percent=5.0, seconds=0.5):
    """The top processes that used at least min_percent of a core over the
    next half second, as "name pid: N%" of one core (this script itself
    left out)."""
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
        if pct >= min_percent:
            used.append((pct, f"{name} {pid}: {round(pct)}%"))
    return [u for _, u in sorted(used, reverse=True)[:top]]


def gpu_clocks():
    """nvidia-smi's SM clock, its maximum, temperature, power and the active
    clock-event (throttle) reasons of the first GPU; None without nvidia-smi.
    The reasons' field was renamed (clocks_event_reasons in newer drivers,
    clocks_throttle_reasons before), so each name is tried, then none."""
    base = "clocks.sm,clocks.max.sm,temperature.gpu,power.draw"
    keys = ["sm_mhz", "max_sm_mhz", "temp_c", "power_w", "throttle"]
    for extra in (",clocks_event_reasons.active", ",clocks_throttle_reasons.active", ""):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=" + base + extra, "--format=csv,noheader,nounits"],
                                 check=False, capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.SubprocessError):
            return None
        if out.returncode == 0 and out.stdout.strip():
            v = [x.strip() for x in out.stdout.splitlines()[0].split(",")]
            return dict(zip(keys, v))
    return None


def timed(torch, fn, n):
    """Seconds per call of fn over n calls, the GPU's work included."""
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t) / n


def gpu_rates(torch):
    """The 1-GiB copy's GB/s and the 8192³ bf16 matmul's TFLOP/s; the
    tensors are freed on return."""
    a = torch.empty(512 * 1024 * 1024, dtype=torch.bfloat16, device="cuda")
    b = torch.empty_like(a)
    copy_s = best(lambda: timed(torch, lambda: b.copy_(a), 20))
    n = 8192
    m1 = torch.randn(n, n, dtype=torch.bfloat16, device="cuda")
    m2 = torch.randn(n, n, dtype=torch.bfloat16, device="cuda")
    torch.mm(m1, m2)
    mm_s = best(lambda: timed(torch, lambda: torch.mm(m1, m2), 10))
    return round(2 * a.numel() * a.element_size() / copy_s / 1e9, 0), round(2 * n ** 3 / mm_s / 1e12, 0)


def cuda_figures():
    none = {"launch_us": None, "sync_us": None, "hbm_gbs": None, "bf16_tflops": None}
    try:
        import torch
    except (ImportError, OSError):
        return none
    if not torch.cuda.is_available():
        return none
    x = torch.zeros(1, device="cuda")
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

    out = {"launch_us": round(best(launches), 2), "sync_us": round(best(syncs), 2)}
    out["hbm_gbs"], out["bf16_tflops"] = gpu_rates(torch)
    torch.cuda.empty_cache()
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--label", default="", help="what this is run before, e.g. 'trial 3'")
    p.add_argument("--top", type=int, default=3, help="how many of the busiest processes to list")
    p.add_argument("--min-percent", type=float, default=5.0, help="the least share of a core a listed process used")
    args = p.parse_args()
    t = time.time()
    rec = {"label": args.label, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpu": cpu()}
    try:
        rec["load1"] = round(os.getloadavg()[0], 2)
    except OSError:
        rec["load1"] = None
    rec["busiest"] = busiest(args.top, args.min_percent)
    rec["py_loop_ns"] = py_loop_ns()
    rec.update(cuda_figures())
    rec["gpu"] = gpu_clocks()
    rec["seconds"] = round(time.time() - t, 1)
    print(json.dumps(rec, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
