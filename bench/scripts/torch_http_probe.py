#!/usr/bin/env python3
"""Probe an OpenAI-compatible server over HTTP: wait for it, check the stream shape, measure throughput.

    python3 bench/scripts/torch_http_probe.py --url http://127.0.0.1:8000 --model NAME \
        [--concurrency 64] [--max-tokens 256] [--prompt-words 100] [--wait 600] [--out FILE.json]

Sends one streaming chat request (prints its first chunks), then CONCURRENCY
streaming completions at once with ignore_eos and exact max_tokens, and reports
output tokens/s, mean TTFT and mean inter-chunk gap. Needs aiohttp.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import aiohttp


async def wait_ready(s, url, timeout, path):
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        try:
            async with s.get(url + path) as r:
                if r.status == 200:
                    return time.perf_counter() - t0
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.5)
    raise SystemExit(f"probe: {url} not ready after {timeout}s")


async def stream(s, url, path, body):
    t0 = time.perf_counter()
    chunks, times, usage = [], [], None
    async with s.post(url + path, json=body) as r:
        if r.status != 200:
            raise RuntimeError(f"{path}: HTTP {r.status}: {(await r.text())[:500]}")
        async for line in r.content:
            line = line.strip()
            if not line.startswith(b"data: "):
                continue
            data = line[6:]
            if data == b"[DONE]":
                break
            d = json.loads(data)
            if d.get("usage"):
                usage = d["usage"]
            if d.get("choices"):
                chunks.append(d)
                times.append(time.perf_counter() - t0)
    return chunks, times, usage


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", default="http://127.0.0.1:8000")
    p.add_argument("--model", required=True)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--max-tokens", type=int, default=256)
    p.add_argument("--prompt-words", type=int, default=100)
    p.add_argument("--wait", type=float, default=600)
    p.add_argument("--chat-only", action="store_true", help="use chat completions for the load too")
    p.add_argument("--ready-path", default="/v1/models")
    p.add_argument("--no-ignore-eos", action="store_true", help="do not send ignore_eos (transformers serve rejects it)")
    p.add_argument("--out", default=None)
    a = p.parse_args()
    res = {"url": a.url}
    timeout = aiohttp.ClientTimeout(total=1800)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as s:
        res["ready_after_s"] = round(await wait_ready(s, a.url, a.wait, a.ready_path), 1)
        print("ready after", res["ready_after_s"], "s", flush=True)
        body = {"model": a.model, "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8,
                "stream": True, "stream_options": {"include_usage": True, "continuous_usage_stats": True},
                "temperature": 0}
        chunks, _, usage = await stream(s, a.url, "/v1/chat/completions", body)
        print("chat chunks:", len(chunks), "usage:", usage, flush=True)
        for c in chunks[:3]:
            print("  ", json.dumps(c)[:300])
        res["chat_chunks"], res["chat_usage"] = len(chunks), usage
        words = " ".join(["benchmark"] * a.prompt_words)
        path = "/v1/chat/completions" if a.chat_only else "/v1/completions"

        def body_for(i):
            b = {"model": a.model, "max_tokens": a.max_tokens, "temperature": 0, "stream": True,
                 "stream_options": {"include_usage": True, "continuous_usage_stats": True}}
            if not a.no_ignore_eos:
                b["ignore_eos"] = True
            if a.chat_only:
                b["messages"] = [{"role": "user", "content": f"{i} {words}"}]
            else:
                b["prompt"] = f"{i} {words}"
            return b

        t0 = time.perf_counter()
        outs = await asyncio.gather(*[stream(s, a.url, path, body_for(i)) for i in range(a.concurrency)],
                                    return_exceptions=True)
        wall = time.perf_counter() - t0
        ok = [o for o in outs if not isinstance(o, BaseException)]
        errs = [repr(o)[:300] for o in outs if isinstance(o, BaseException)]
        toks = sum((o[2] or {}).get("completion_tokens", len(o[0])) for o in ok)
        ttft = [o[1][0] for o in ok if o[1]]
        gaps = [(o[1][-1] - o[1][0]) / max(1, len(o[1]) - 1) for o in ok if len(o[1]) > 1]
        res.update({"concurrency": a.concurrency, "max_tokens": a.max_tokens, "ok": len(ok), "errors": errs[:3],
                    "wall_s": round(wall, 2), "output_tok_s": round(toks / wall, 1), "completion_tokens": toks,
                    "mean_ttft_s": round(sum(ttft) / max(1, len(ttft)), 3),
                    "mean_chunk_gap_ms": round(1000 * sum(gaps) / max(1, len(gaps)), 2)})
        try:
            async with s.get(a.url + "/metrics") as r:
                m = await r.text()
            res["metrics_sample"] = [ln for ln in m.splitlines() if ln.startswith(("vllm:", "vbtorch:"))][:20]
        except aiohttp.ClientError:
            pass
    print(json.dumps(res, indent=1), flush=True)
    if a.out:
        with open(a.out, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    asyncio.run(main())
