"""vbtorch HTTP server: the OpenAI-compatible API of ``vllm serve`` over the vbtorch engine.

Run: ``python3 -m vbtorch.server --model DIR [flags]`` (see backends/torch/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time

log = logging.getLogger("vbtorch.server")

JSON_ERRORS = (ValueError, TypeError)


def is_public(host: str) -> bool:
    """Is_public says whether a --host value listens beyond this machine (all interfaces, or any non-loopback address or name)."""
    import ipaddress

    if host in ("localhost", "ip6-localhost"):
        return False
    try:
        return not ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return True  # "" (all interfaces) or a host name that may resolve anywhere


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse_args reads the command line (exit status 2 with a message on bad flags)."""
    p = argparse.ArgumentParser(prog="python3 -m vbtorch.server", description="vbtorch: pure-PyTorch baseline LLM server")
    p.add_argument("--model", required=True, help="model directory (config.json, tokenizer, *.safetensors) or a cached HF repo id")
    p.add_argument("--load-format", choices=["auto", "dummy"], default="auto")
    p.add_argument("--dtype", choices=["auto", "bfloat16", "bf16", "float16", "fp16", "half", "float32", "float"], default="auto",
                   help="weights/KV dtype (vLLM's names accepted)")
    p.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--served-model-name", default=None)
    p.add_argument("--kv-policy", choices=["max", "pow2", "oracle"], default="oracle")
    b = p.add_mutually_exclusive_group()
    b.add_argument("--kv-budget-gib", type=float, default=None)
    b.add_argument("--kv-budget-frac", type=float, default=None)
    b.add_argument("--kv-budget-tokens", type=int, default=None)
    p.add_argument("--max-num-seqs", type=int, default=256)
    p.add_argument("--max-batch-tokens", type=int, default=8192)
    p.add_argument("--max-model-len", type=int, default=None)
    p.add_argument("--batching", choices=["continuous", "static"], default="continuous")
    p.add_argument("--attn", choices=["sdpa", "flash"], default="sdpa")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--engine-process", action="store_true",
                   help="run the engine in its own process (HTTP and engine then do not share the GIL)")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="info")
    a = p.parse_args(argv)
    for name in ("max_num_seqs", "max_batch_tokens"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if a.max_model_len is not None and a.max_model_len < 2:
        p.error("--max-model-len must be at least 2")
    if a.kv_budget_frac is not None and not 0 < a.kv_budget_frac <= 1:
        p.error("--kv-budget-frac must be in (0, 1]")
    if a.kv_budget_gib is not None and a.kv_budget_gib <= 0:
        p.error("--kv-budget-gib must be positive")
    if a.kv_budget_tokens is not None and a.kv_budget_tokens < 1:
        p.error("--kv-budget-tokens must be positive")
    if not 0 < a.port < 65536:
        p.error("--port must be in 1..65535")
    return a


class StartupError(Exception):
    """StartupError is a configuration problem reported as one line before exit status 2."""


def resolve_model_dir(model: str) -> str:
    """Resolve_model_dir returns a local directory for a path or a repo id in the HF cache (no download)."""
    if os.path.isdir(model):
        return model
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(model, local_files_only=True)
    except Exception as e:
        raise StartupError(f"--model {model}: not a directory and not in the local Hugging Face cache ({e.__class__.__name__})") from e


def eos_ids_of(model_dir: str, tokenizer) -> set[int]:
    """Eos_ids_of collects end-of-sequence ids from generation_config.json, config.json and the tokenizer."""
    ids: set[int] = set()
    for fn in ("generation_config.json", "config.json"):
        try:
            with open(os.path.join(model_dir, fn)) as f:
                v = json.load(f).get("eos_token_id")
        except (OSError, ValueError):
            continue
        if isinstance(v, int):
            ids.add(v)
        elif isinstance(v, list):
            ids.update(int(x) for x in v)
    if getattr(tokenizer, "eos_token_id", None) is not None:
        ids.add(int(tokenizer.eos_token_id))
    return ids


def build(args: argparse.Namespace, post):
    """Build loads the tokenizer and model and creates the engine (not started)."""
    from .config import ModelError, read_config

    # What needs no torch first: a bad directory or flag fails in a fraction of a second.
    model_dir = resolve_model_dir(args.model)
    try:
        _, shape = read_config(model_dir)
    except ModelError as e:
        raise StartupError(str(e)) from e
    if args.attn == "flash" and args.device == "cpu":
        raise StartupError("--attn flash needs a CUDA device")

    import torch
    from transformers import AutoTokenizer

    from .engine import Engine, EngineConfig
    from .model import Model
    dev = args.device
    if dev == "auto":
        dev = "cuda" if torch.cuda.is_available() else "cpu"
    if dev == "cuda" and not torch.cuda.is_available():
        raise StartupError("--device cuda: no CUDA device is visible to PyTorch")
    dtype = {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16,
             "half": torch.float16, "float32": torch.float32, "float": torch.float32}.get(args.dtype)
    if dtype is None:
        dtype = torch.bfloat16 if dev == "cuda" else torch.float32
    max_len = args.max_model_len or shape.max_pos
    try:
        tok = AutoTokenizer.from_pretrained(model_dir)
    except Exception as e:
        raise StartupError(f"--model {model_dir}: cannot load the tokenizer: {e}") from e
    if args.attn == "flash":
        try:
            import flash_attn  # noqa: F401
        except ImportError as e:
            raise StartupError("--attn flash: the flash-attn package is not installed (pip install flash-attn)") from e
        if dev != "cuda":
            raise StartupError("--attn flash needs a CUDA device")
    t0 = time.perf_counter()
    try:
        model = Model(model_dir, args.load_format, dev, dtype, max_len + 1, seed=args.seed)
    except ModelError as e:
        raise StartupError(str(e)) from e
    if dev == "cuda":
        torch.cuda.synchronize()
    load_s = time.perf_counter() - t0
    bpt = shape.kv_bytes_per_token(dtype)
    if args.kv_budget_tokens:
        cap = args.kv_budget_tokens
    elif args.kv_budget_gib:
        cap = int(args.kv_budget_gib * 2**30 // bpt)
    else:
        frac = args.kv_budget_frac or 0.9
        cap = int(frac * free_memory(dev) // bpt)
    cap = min(cap, args.max_num_seqs * max_len)  # more could never be used
    if cap < 1:
        raise StartupError("KV budget is smaller than one token")
    ecfg = EngineConfig(
        kv_policy=args.kv_policy,
        kv_capacity_tokens=cap,
        max_num_seqs=args.max_num_seqs,
        max_batch_tokens=args.max_batch_tokens,
        max_model_len=max_len,
        batching=args.batching,
        attn=args.attn,
        seed=args.seed,
    )
    try:
        engine = Engine(model, ecfg, eos_ids_of(model_dir, tok), post)
    except torch.OutOfMemoryError as e:
        raise StartupError(f"KV cache of {cap} tokens ({cap * bpt / 2**30:.2f} GiB) does not fit in device memory; lower the KV budget") from e
    except ValueError as e:
        raise StartupError(str(e)) from e
    log.info(
        "model %s (%s, %d layers) loaded in %.1fs on %s/%s; KV capacity %d tokens (%.2f GiB), policy %s, batching %s, attn %s",
        model_dir, shape.model_type, shape.layers, load_s, dev, str(dtype).removeprefix("torch."),
        engine.alloc.capacity, engine.alloc.capacity * bpt / 2**30, args.kv_policy, args.batching, args.attn,
    )
    return model_dir, tok, engine


def build_remote(args: argparse.Namespace, post):
    """Build_remote loads the tokenizer here and starts the engine in its own process."""
    from .config import ModelError, read_config

    model_dir = resolve_model_dir(args.model)
    try:
        read_config(model_dir)
    except ModelError as e:
        raise StartupError(str(e)) from e

    from transformers import AutoTokenizer

    from .remote import RemoteEngine

    try:
        tok = AutoTokenizer.from_pretrained(model_dir)
    except Exception as e:
        raise StartupError(f"--model {model_dir}: cannot load the tokenizer: {e}") from e
    child_args = argparse.Namespace(**vars(args))
    child_args.model = model_dir
    return model_dir, tok, RemoteEngine(child_args, post)


def free_memory(dev: str) -> int:
    """Free_memory is the free bytes of the device (GPU) or the available host memory (CPU)."""
    if dev == "cuda":
        import torch

        return torch.cuda.mem_get_info()[0]
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 30


def main(argv: list[str] | None = None) -> int:
    """Main runs the server until SIGINT/SIGTERM; returns the exit status."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    # the engine thread releases the GIL around every torch op; a short switch interval
    # lets it take the GIL back quickly from the HTTP thread
    sys.setswitchinterval(0.0005)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return asyncio.run(_serve(args))
    except StartupError as e:
        print(f"vbtorch: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


async def _serve(args) -> int:
    loop = asyncio.get_running_loop()

    def post(fn):
        loop.call_soon_threadsafe(fn)

    if args.engine_process:
        model_dir, tok, engine = await loop.run_in_executor(None, build_remote, args, post)
    else:
        model_dir, tok, engine = await loop.run_in_executor(None, build, args, post)
    from aiohttp import web  # imported after the build, which checks the model directory first

    from .api import create_app

    name = args.served_model_name or os.path.basename(os.path.normpath(args.model))
    app = create_app(engine, tok, name, model_dir)
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port)
    try:
        await site.start()
    except OSError as e:
        engine.stop()
        raise StartupError(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}") from e
    engine.start()
    if is_public(args.host):
        log.warning("listening on %s:%d, which is reachable from other hosts (anyone who reaches it can use the server); "
                    "use --host 127.0.0.1 to keep it local", args.host, args.port)
    log.info("serving %s as %r on http://%s:%d", model_dir, name, args.host, args.port)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    await runner.cleanup()
    engine.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
