#!/usr/bin/env python3
"""GPU benchmark of the vbtorch engine against transformers on the same model shape.

Measures (each section independent; results printed and written as JSON):
  decode1   vbtorch decode step at batch 1 (ms, tok/s)
  decode32  vbtorch decode step at batch 32 (ms per token of each request)
  tput64    vbtorch output tok/s, 64 requests x OUT tokens, oracle policy, KV budget BUDGET GiB
  admit     requests admitted at once per policy (max/pow2/oracle) for the same KV budget
  profile   torch profiler of decode steps at batch 32: top ops by CPU and device time
  hf_gen    transformers generate: per-step time at batch 1 and 32
  hf_cb     transformers continuous batching (generate_batch, paged attention, no CUDA graphs), 64 x OUT

Usage: python3 bench/scripts/torch_gpu_bench.py --model DIR [--sections a,b] [--out results.json]
Run from the repo root (it puts backends/torch on sys.path).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "backends", "torch"))

import torch  # noqa: E402

from vbtorch.engine import Engine, EngineConfig, Request  # noqa: E402
from vbtorch.model import Model  # noqa: E402

RESULTS: dict = {}
DEV = "cuda"


def SYNC():
    if DEV == "cuda":
        torch.cuda.synchronize()


def EMPTY():
    if DEV == "cuda":
        torch.cuda.empty_cache()


def log(*a):
    print(*a, flush=True)


def make_engine(model, policy, budget_gib, max_num_seqs=256, max_len=2048):
    bpt = model.shape.kv_bytes_per_token(model.dtype)
    cap = int(budget_gib * 2**30 // bpt)
    cfg = EngineConfig(kv_policy=policy, kv_capacity_tokens=cap, max_num_seqs=max_num_seqs, max_batch_tokens=16384,
                       max_model_len=max_len)
    return Engine(model, cfg, {model.shape.vocab - 1}, post=lambda f: None)


def prompts(n, plen, vocab, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 100000 if vocab > 100000 else vocab, (plen,), generator=g).tolist() for _ in range(n)]


def run_batch(eng, ps, out_tokens):
    reqs = [Request(prompt_ids=p, max_tokens=out_tokens, temperature=0.0, ignore_eos=True) for p in ps]
    for r in reqs:
        eng.check(r)
        eng.submit(r)
    eng.waiting.extend(eng._inbox)
    eng._inbox.clear()
    times = []
    while eng.waiting or eng.running:
        t = time.perf_counter()
        eng.step()
        times.append((time.perf_counter() - t, eng.stats.last_batch_size))
    return reqs, times


def sec_decode(model, args, batch, key):
    eng = make_engine(model, "oracle", args.budget)
    run_batch(eng, prompts(batch, 128, model.shape.vocab), 8)  # warm-up
    reqs, times = run_batch(eng, prompts(batch, 128, model.shape.vocab, 1), args.steps)
    dec = [t for t, b in times[3:] if b == batch]
    ms = 1000 * sum(dec) / len(dec)
    RESULTS[key] = {"batch": batch, "prompt": 128, "decode_step_ms": round(ms, 3),
                    "tok_s_per_request": round(1000 / ms, 1), "tok_s_total": round(batch * 1000 / ms, 1),
                    "steps_measured": len(dec)}
    log(key, RESULTS[key])
    del eng
    EMPTY()


def sec_tput(model, args):
    eng = make_engine(model, "oracle", args.budget)
    run_batch(eng, prompts(8, 64, model.shape.vocab), 4)
    ps = prompts(64, args.prompt, model.shape.vocab, 2)
    SYNC()
    t = time.perf_counter()
    reqs, times = run_batch(eng, ps, args.out_tokens)
    wall = time.perf_counter() - t
    n = sum(len(r.output_ids) for r in reqs)
    RESULTS["tput64"] = {"requests": 64, "prompt": args.prompt, "out_tokens": args.out_tokens, "wall_s": round(wall, 3),
                         "output_tok_s": round(n / wall, 1), "steps": len(times),
                         "mean_step_ms": round(1000 * sum(t for t, _ in times) / len(times), 3),
                         "policy": "oracle", "kv_budget_gib": args.budget}
    log("tput64", RESULTS["tput64"])
    del eng
    EMPTY()


def sec_admit(model, args):
    out = {}
    for pol in ("max", "pow2", "oracle"):
        eng = make_engine(model, pol, args.budget, max_num_seqs=4096, max_len=2048)
        ps = prompts(1000, args.prompt, model.shape.vocab, 3)
        for p in ps:
            r = Request(prompt_ids=p, max_tokens=args.out_tokens, temperature=0.0, ignore_eos=True)
            eng.submit(r)
        eng.waiting.extend(eng._inbox)
        eng._inbox.clear()
        admitted = []
        while True:  # admission only (no model work): as many steps as it takes to stop admitting
            got = eng._admit()
            if not got:
                break
            admitted += got
            eng.running += got
        out[pol] = {"admitted": len(admitted), "kv_capacity_tokens": eng.alloc.capacity,
                    "reserved_each": admitted[0].reserved if admitted else None,
                    "kv_usage": round(eng.alloc.usage(), 4)}
        for r in admitted:
            eng.alloc.free(r.region)
        eng.running = []
        del eng
        EMPTY()
    RESULTS["admit"] = {"kv_budget_gib": args.budget, "prompt": args.prompt, "max_tokens": args.out_tokens,
                        "max_model_len": 2048, **out}
    log("admit", RESULTS["admit"])


def sec_profile(model, args):
    from torch.profiler import ProfilerActivity, profile

    eng = make_engine(model, "oracle", args.budget)
    ps = prompts(32, 128, model.shape.vocab, 4)
    reqs = [Request(prompt_ids=p, max_tokens=64, temperature=0.0, ignore_eos=True) for p in ps]
    for r in reqs:
        eng.submit(r)
    eng.waiting.extend(eng._inbox)
    eng._inbox.clear()
    for _ in range(5):
        eng.step()
    SYNC()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        t = time.perf_counter()
        for _ in range(10):
            eng.step()
        wall = (time.perf_counter() - t) / 10
    ka = prof.key_averages()
    dev_attr = "device_time_total" if hasattr(ka[0], "device_time_total") else "cuda_time_total"
    gpu_total = sum(getattr(e, dev_attr) for e in ka if e.key and not e.key.startswith("ProfilerStep")) / 10
    tab_cpu = ka.table(sort_by="self_cpu_time_total", row_limit=15)
    try:
        tab_gpu = ka.table(sort_by=dev_attr, row_limit=15)
    except Exception:  # noqa: BLE001
        tab_gpu = ka.table(sort_by="cpu_time_total", row_limit=15)
    # kernels are the events that ran on the device without a CPU-side self time
    sd = "self_device_time_total" if hasattr(ka[0], "self_device_time_total") else "self_cuda_time_total"
    kern_us = sum(getattr(e, sd) for e in ka) / 10
    nkern = sum(e.count for e in ka if getattr(e, sd) > 0 and e.self_cpu_time_total == 0) / 10
    RESULTS["profile"] = {"batch": 32, "step_wall_ms_under_profiler": round(1000 * wall, 3),
                          "gpu_kernel_ms_per_step": round(kern_us / 1000, 3), "kernels_per_step": nkern}
    log("profile", RESULTS["profile"])
    with open(os.path.join(args.outdir, "profile_tables.txt"), "w") as f:
        f.write("== by self CPU time (10 steps)\n" + tab_cpu + "\n== by device time (10 steps)\n" + tab_gpu + "\n")
    log(tab_gpu[:6000])
    del gpu_total
    del eng
    EMPTY()


def sec_hf(args, hf_sections):
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

    cfg = AutoConfig.from_pretrained(args.model)
    t = time.perf_counter()
    with torch.device(DEV):
        m = AutoModelForCausalLM.from_config(cfg, dtype=getattr(torch, args.dtype), attn_implementation="sdpa")
    m.eval()
    SYNC()
    log(f"hf model init {time.perf_counter() - t:.1f}s")
    V = cfg.vocab_size
    if "hf_gen" in hf_sections:
        res = {}
        for batch in (1, 32):
            x = torch.tensor(prompts(batch, 128, V, 5), device=DEV)
            am = torch.ones_like(x)

            def gen(n):
                SYNC()
                t0 = time.perf_counter()
                m.generate(input_ids=x, attention_mask=am, max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0)
                SYNC()
                return time.perf_counter() - t0

            gen(4)
            a, b = gen(2), gen(2 + args.hf_steps)
            res[f"batch{batch}"] = {"decode_step_ms": round(1000 * (b - a) / args.hf_steps, 3)}
        RESULTS["hf_gen"] = res
        log("hf_gen", res)
    if "hf_cb" in hf_sections:
        ps = prompts(64, args.prompt, V, 2)
        gc = GenerationConfig(max_new_tokens=args.out_tokens, do_sample=False, eos_token_id=-1, pad_token_id=0)
        m2 = m
        try:
            m2.set_attn_implementation("paged|sdpa")
        except Exception as e:  # noqa: BLE001
            log("set_attn_implementation paged|sdpa failed:", e)
        kw = {}
        try:
            from transformers import ContinuousBatchingConfig

            kw["continuous_batching_config"] = ContinuousBatchingConfig(use_cuda_graph=False)
        except Exception as e:  # noqa: BLE001
            log("no ContinuousBatchingConfig:", e)
            gc.use_cuda_graph = False
        m2.generate_batch(inputs=ps[:4], generation_config=GenerationConfig(max_new_tokens=8, do_sample=False, eos_token_id=-1, pad_token_id=0), **kw)
        SYNC()
        t = time.perf_counter()
        outs = m2.generate_batch(inputs=ps, generation_config=gc, **kw)
        SYNC()
        wall = time.perf_counter() - t
        n = sum(len(o.generated_tokens) for o in outs.values())
        RESULTS["hf_cb"] = {"requests": 64, "prompt": args.prompt, "out_tokens": args.out_tokens, "wall_s": round(wall, 3),
                            "output_tok_s": round(n / wall, 1), "generated": n, "cuda_graphs": False}
        log("hf_cb", RESULTS["hf_cb"])
    del m
    EMPTY()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--sections", default="decode1,decode32,tput64,admit,profile,hf_gen,hf_cb")
    p.add_argument("--budget", type=float, default=16.0, help="KV budget GiB")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--hf-steps", type=int, default=16)
    p.add_argument("--prompt", type=int, default=128)
    p.add_argument("--out-tokens", type=int, default=256)
    p.add_argument("--outdir", default=".")
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="bfloat16")
    args = p.parse_args()
    global DEV
    DEV = args.device
    secs = args.sections.split(",")
    RESULTS["device"] = torch.cuda.get_device_name(0) if DEV == "cuda" else "cpu"
    RESULTS["torch"] = torch.__version__
    ours = [s for s in secs if not s.startswith("hf_")]
    if ours:
        t = time.perf_counter()
        model = Model(args.model, "dummy", DEV, getattr(torch, args.dtype), 8193)
        SYNC()
        RESULTS["vbtorch_init_s"] = round(time.perf_counter() - t, 2)
        for s in ours:
            try:
                {"decode1": lambda: sec_decode(model, args, 1, "decode1"),
                 "decode32": lambda: sec_decode(model, args, 32, "decode32"),
                 "decode64": lambda: sec_decode(model, args, 64, "decode64"),
                 "tput64": lambda: sec_tput(model, args),
                 "admit": lambda: sec_admit(model, args),
                 "profile": lambda: sec_profile(model, args)}[s]()
            except Exception:  # noqa: BLE001
                RESULTS[s] = {"error": traceback.format_exc()[-1500:]}
                log(s, "FAILED", RESULTS[s]["error"])
        del model
        EMPTY()
    hf = [s for s in secs if s.startswith("hf_")]
    if hf:
        try:
            sec_hf(args, hf)
        except Exception:  # noqa: BLE001
            RESULTS["hf_error"] = traceback.format_exc()[-2500:]
            log("hf FAILED", RESULTS["hf_error"])
    with open(os.path.join(args.outdir, "torch_gpu_bench.json"), "w") as f:
        json.dump(RESULTS, f, indent=2)
    log(json.dumps(RESULTS, indent=1)[:4000])


if __name__ == "__main__":
    main()
