"""The engine: admission by KV reservation policy, iteration-level (or static) batching, sampling.

One engine thread runs steps. A step (1) drops cancelled requests and frees
their KV regions, (2) admits waiting requests first-come-first-served while a
contiguous KV region, ``max_num_seqs`` and ``max_batch_tokens`` allow, (3)
launches one packed prefill for the admitted prompts and one batched decode for
the running requests, (4) samples on the device and reads all new token ids back
with a single host-device synchronisation, (5) hands the step's outputs to the
server's event loop in one call.
"""

from __future__ import annotations

import collections
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from .kv import Allocator, Region, reservation
from .model import Model

log = logging.getLogger("vbtorch.engine")


@dataclass
class EngineConfig:
    """EngineConfig holds the scheduling and KV settings of an engine."""

    kv_policy: str = "oracle"
    kv_capacity_tokens: int = 0  # resolved KV capacity in tokens
    max_num_seqs: int = 256
    max_batch_tokens: int = 8192
    max_model_len: int = 4096
    batching: str = "continuous"  # or "static"
    attn: str = "sdpa"  # or "flash"
    seed: int = 0


@dataclass(eq=False)
class Request:
    """Request is one generation request as the engine sees it."""

    prompt_ids: list[int]
    max_tokens: int
    min_tokens: int = 0
    temperature: float = 1.0
    top_p: float = 1.0
    ignore_eos: bool = False
    # filled by the engine
    id: int = 0
    output_ids: list[int] = field(default_factory=list)
    region: Region | None = None
    reserved: int = 0
    finished: bool = False
    finish_reason: str | None = None
    cancelled: bool = False
    arrival: float = 0.0
    first_token_time: float = 0.0
    sink: Callable | None = None  # called on the event loop with (tokens, finished, reason)


@dataclass
class Stats:
    """Stats are the counters and gauges exported on /metrics."""

    running: int = 0
    waiting: int = 0
    kv_usage: float = 0.0
    kv_filled_tokens: int = 0
    preemptions: int = 0
    prompt_tokens: int = 0
    generation_tokens: int = 0
    success: collections.Counter = field(default_factory=collections.Counter)
    steps: int = 0
    step_seconds_sum: float = 0.0
    batch_size_sum: int = 0
    last_step_seconds: float = 0.0
    last_batch_size: int = 0
    max_running: int = 0


class SDPAAttn:
    """SDPAAttn marks the default attention: torch SDPA over gathered contiguous regions."""

    kind = "sdpa"
    align = 1


class FlashAttn:
    """FlashAttn uses flash-attn's varlen kernel for prefill and its KV-cache kernel for decode.

    Regions are aligned to 256 tokens so that a request's region is a run of
    consecutive 256-token blocks addressed through a block table.
    """

    kind = "flash"
    align = 256

    def __init__(self, model: Model):
        from flash_attn import flash_attn_varlen_func, flash_attn_with_kvcache

        self._varlen = flash_attn_varlen_func
        self._kvcache = flash_attn_with_kvcache
        self.model = model
        self.cu = None
        self.maxlen = 0
        self.block_table = None
        self.cache_seqlens = None

    def prefill(self, q, k, v):
        """Prefill is causal attention within each packed prompt."""
        return self._varlen(q, k, v, self.cu, self.cu, self.maxlen, self.maxlen, softmax_scale=self.model.scale, causal=True)

    def decode(self, kv, li, q, k, v):
        """Decode appends k/v at cache_seqlens and attends over each request's blocks."""
        s = self.model.shape
        kc = kv[li, 0].view(-1, 256, s.kv_heads, s.head_dim)
        vc = kv[li, 1].view(-1, 256, s.kv_heads, s.head_dim)
        return self._kvcache(
            q.unsqueeze(1), kc, vc, k.unsqueeze(1), v.unsqueeze(1),
            cache_seqlens=self.cache_seqlens, block_table=self.block_table,
            softmax_scale=self.model.scale, causal=True,
        )


class EngineError(Exception):
    """EngineError says why a request cannot be served (the server maps it to HTTP 400)."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


class Engine:
    """Engine owns the model, the KV cache and the scheduling loop thread."""

    def __init__(self, model: Model, cfg: EngineConfig, eos_ids: set[int], post: Callable[[Callable], None]):
        self.model = model
        self.cfg = cfg
        self.eos_ids = sorted(eos_ids)
        self.post = post  # runs a callable on the server's event loop
        self.dev = model.device
        s = model.shape
        self.attn = FlashAttn(model) if cfg.attn == "flash" else SDPAAttn()
        self.alloc = Allocator(cfg.kv_capacity_tokens, align=self.attn.align)
        # [layers, slots, k|v]: k and v of a token are adjacent, as in the q|k|v GEMM output,
        # so one index_copy_ writes both and one index_select gathers both
        self.kv = torch.zeros(
            s.layers, self.alloc.capacity, 2 * s.kv_heads * s.head_dim, device=self.dev, dtype=model.dtype
        )
        if self.dev.type == "cuda":
            # cuDNN attention builds a plan per new shape and costs more host time per call
            torch.backends.cuda.enable_cudnn_sdp(False)
        self.stats = Stats()
        self._lock = threading.Condition()
        self._inbox: list[Request] = []
        self._aborts: list[Request] = []
        self.waiting: collections.deque[Request] = collections.deque()
        self.running: list[Request] = []
        self._ids = itertools.count(1)
        self._stop = False
        self._thread: threading.Thread | None = None
        self.gen = torch.Generator(device=self.dev)
        self.gen.manual_seed(cfg.seed)
        pin = self.dev.type == "cuda"
        n = max(cfg.max_num_seqs, 1)
        # staging buffers for per-step metadata; written only after the previous step's sync
        self._meta_cpu = torch.zeros(4, n, dtype=torch.int64, pin_memory=pin)
        self._fmeta_cpu = torch.zeros(2, n, dtype=torch.float32, pin_memory=pin)
        self._arange = torch.arange(cfg.max_model_len + 64, device=self.dev)
        self._eos_t = torch.tensor(self.eos_ids or [0], device=self.dev)
        self.error: BaseException | None = None

    # ---- API used by the server (any thread) -----------------------------------------------

    def check(self, req: Request) -> None:
        """Check raises EngineError when a request can never be served."""
        p, m = len(req.prompt_ids), req.max_tokens
        if p == 0:
            raise EngineError("The prompt is empty.", "prompt")
        if p + m > self.cfg.max_model_len:
            raise EngineError(
                f"This model's maximum context length is {self.cfg.max_model_len} tokens. However, you requested "
                f"{m} output tokens and your prompt contains {p} input tokens, for a total of {p + m} tokens. "
                "Please reduce the length of the input prompt or the number of requested output tokens.",
                "input_tokens",
            )
        need = reservation(self.cfg.kv_policy, p, m, self.cfg.max_model_len)
        if not self.alloc.fits_ever(need):
            raise EngineError(
                f"The request needs a KV reservation of {need} tokens under policy {self.cfg.kv_policy!r}, "
                f"more than the whole KV cache ({self.alloc.capacity} tokens).",
                "max_tokens",
            )
        bad = [t for t in req.prompt_ids if not 0 <= t < self.model.shape.vocab]
        if bad:
            raise EngineError(f"Token id {bad[0]} is out of vocabulary (size {self.model.shape.vocab}).", "prompt")

    def submit(self, req: Request) -> None:
        """Submit queues a checked request; its sink receives the outputs."""
        req.id = next(self._ids)
        req.arrival = time.monotonic()
        with self._lock:
            self._inbox.append(req)
            self._lock.notify()

    def abort(self, req: Request) -> None:
        """Abort cancels a request; its KV region is freed before the next step."""
        with self._lock:
            if req.finished or req.cancelled:
                return
            req.cancelled = True
            self._aborts.append(req)
            self._lock.notify()

    def start(self) -> None:
        """Start runs the engine loop in a daemon thread."""
        self._thread = threading.Thread(target=self._loop, name="vbtorch-engine", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop ends the engine loop and waits for it."""
        with self._lock:
            self._stop = True
            self._lock.notify()
        if self._thread:
            self._thread.join(timeout=30)

    # ---- the loop --------------------------------------------------------------------------

    def _loop(self) -> None:
        try:
            while True:
                with self._lock:
                    while not (self._stop or self._inbox or self._aborts or self.waiting or self.running):
                        self._lock.wait()
                    if self._stop:
                        return
                    self.waiting.extend(self._inbox)
                    self._inbox.clear()
                    aborts, self._aborts = self._aborts, []
                for r in aborts:
                    self._drop(r)
                self.step()
        except BaseException as e:  # reported on /health and to every waiting client
            log.exception("engine: step failed")
            self.error = e
            with self._lock:
                everyone = list(self.running) + list(self.waiting) + self._inbox
            for r in everyone:
                self._finish(r, "error", [])

    def _drop(self, r: Request) -> None:
        if r in self.running:
            self.running.remove(r)
        elif r in self.waiting:
            self.waiting.remove(r)
        else:
            return
        if r.region is not None:
            self.alloc.free(r.region)
            r.region = None
        r.finished = True
        r.finish_reason = "abort"
        self.stats.success["abort"] += 1
        self._update_gauges()

    def _admit(self) -> list[Request]:
        cfg = self.cfg
        if cfg.batching == "static" and self.running:
            return []
        new: list[Request] = []
        tokens = 0
        while self.waiting and len(self.running) + len(new) < cfg.max_num_seqs:
            r = self.waiting[0]
            p = len(r.prompt_ids)
            if new and tokens + p > cfg.max_batch_tokens:
                break
            need = reservation(cfg.kv_policy, p, r.max_tokens, cfg.max_model_len)
            region = self.alloc.alloc(need)
            if region is None:
                break  # FCFS: the head waits for a hole big enough
            r.region, r.reserved = region, need
            self.waiting.popleft()
            new.append(r)
            tokens += p
        return new

    @torch.inference_mode()
    def step(self) -> None:
        """Step runs one iteration: admit, prefill the admitted, decode the running, sample, emit."""
        t0 = time.perf_counter()
        new = self._admit()
        old = self.running
        parts = []
        if new:
            parts.append(self._prefill(new))
        if old:
            parts.append(self._decode(old))
        if not parts:
            self._update_gauges()
            return
        batch = new + old
        logits = parts[0] if len(parts) == 1 else torch.cat(parts)
        ids = self._sample(logits, batch).tolist()  # the one host-device sync of the step
        now = time.monotonic()
        outs = []
        finished = []
        for r, t in zip(batch, ids):
            r.output_ids.append(t)
            n = len(r.output_ids)
            if n == 1:
                r.first_token_time = now
            reason = None
            if n >= r.max_tokens:
                reason = "length"
            elif not r.ignore_eos and n >= r.min_tokens and t in self.eos_ids:
                reason = "stop"
            if reason:
                finished.append((r, reason))
            outs.append((r, t, reason))
        self.running = [r for r in batch if not any(r is f for f, _ in finished)] if finished else batch
        for r, reason in finished:
            self.alloc.free(r.region)
            r.region = None
            r.finished, r.finish_reason = True, reason
            self.stats.success[reason] += 1
        st = self.stats
        st.prompt_tokens += sum(len(r.prompt_ids) for r in new)
        st.generation_tokens += len(batch)
        dt = time.perf_counter() - t0
        st.steps += 1
        st.step_seconds_sum += dt
        st.batch_size_sum += len(batch)
        st.last_step_seconds, st.last_batch_size = dt, len(batch)
        st.max_running = max(st.max_running, len(batch))
        self._update_gauges()
        self.post(lambda: self._deliver(outs))

    @staticmethod
    def _deliver(outs) -> None:
        for r, t, reason in outs:
            if r.sink is not None and not r.cancelled:
                r.sink([t], reason is not None, reason)

    def _finish(self, r: Request, reason: str, toks: list[int]) -> None:
        r.finished, r.finish_reason = True, reason
        sink = r.sink
        if sink is not None:
            self.post(lambda: sink(toks, True, reason))

    def _update_gauges(self) -> None:
        st = self.stats
        st.running = len(self.running)
        st.waiting = len(self.waiting) + len(self._inbox)
        st.kv_usage = self.alloc.usage()
        st.kv_filled_tokens = sum(len(r.prompt_ids) + len(r.output_ids) for r in self.running)

    # ---- device work -----------------------------------------------------------------------

    def _to_dev(self, rows: list[list[int]]) -> torch.Tensor:
        """_to_dev copies small int rows through the pinned staging buffer (no sync)."""
        n = len(rows[0])
        buf = self._meta_cpu if n <= self._meta_cpu.shape[1] else torch.zeros(len(rows), n, dtype=torch.int64)
        for i, row in enumerate(rows):
            buf[i, :n] = torch.tensor(row, dtype=torch.int64)
        return buf[: len(rows), :n].to(self.dev, non_blocking=True)

    def _prefill(self, new: list[Request]) -> torch.Tensor:
        tokens, pos, widx, seg, last = [], [], [], [], []
        for i, r in enumerate(new):
            p = len(r.prompt_ids)
            tokens.extend(r.prompt_ids)
            pos.extend(range(p))
            widx.extend(range(r.region.start, r.region.start + p))
            seg.extend([i] * p)
            last.append(len(tokens) - 1)
        meta = torch.tensor([tokens, pos, widx, seg], dtype=torch.int64)
        if self.dev.type == "cuda":
            meta = meta.pin_memory()
        meta = meta.to(self.dev, non_blocking=True)
        last_t = torch.tensor(last, dtype=torch.int64).to(self.dev, non_blocking=True)
        if self.attn.kind == "flash":
            lens = [len(r.prompt_ids) for r in new]
            cu = [0] + list(itertools.accumulate(lens))
            self.attn.cu = torch.tensor(cu, dtype=torch.int32).to(self.dev, non_blocking=True)
            self.attn.maxlen = max(lens)
        return self.model.prefill(self.kv, meta[0], meta[1], meta[2], meta[3], last_t, self.attn)

    def _decode(self, batch: list[Request]) -> torch.Tensor:
        B = len(batch)
        tokens = [r.output_ids[-1] for r in batch]
        pos = [len(r.prompt_ids) + len(r.output_ids) - 1 for r in batch]
        starts = [r.region.start for r in batch]
        widx = [s + p for s, p in zip(starts, pos)]
        meta = self._to_dev([tokens, pos, widx, starts])
        tok_t, pos_t, widx_t, start_t = meta[0], meta[1], meta[2], meta[3]
        gather = mask = None
        if self.attn.kind == "sdpa":
            # pad the context length to a multiple of 64: fewer distinct shapes for the kernels
            L = min((max(pos) + 64) // 64 * 64, self._arange.shape[0])
            ar = self._arange[:L]
            valid = ar.unsqueeze(0) <= pos_t.unsqueeze(1)  # [B, L]
            gather = start_t.unsqueeze(1) + torch.minimum(ar.unsqueeze(0), pos_t.unsqueeze(1))
            # additive mask in the model dtype, built once per step (a bool mask is converted per layer)
            mask = torch.zeros(B, 1, 1, L, device=self.dev, dtype=self.model.dtype).masked_fill_(
                ~valid.view(B, 1, 1, L), float("-inf"))
        else:
            nb = max(r.region.size for r in batch) // 256
            ar = self._arange[:nb]
            self.attn.block_table = (start_t.unsqueeze(1) // 256 + ar.unsqueeze(0)).to(torch.int32)
            self.attn.cache_seqlens = pos_t.to(torch.int32)
        return self.model.decode(self.kv, tok_t, pos_t, widx_t, gather, mask, self.attn)

    def _sample(self, logits: torch.Tensor, batch: list[Request]) -> torch.Tensor:
        B = len(batch)
        block = [i for i, r in enumerate(batch) if not r.ignore_eos and len(r.output_ids) < r.min_tokens]
        if block and self.eos_ids:
            rows = torch.tensor(block, device=self.dev)
            logits[rows.unsqueeze(1), self._eos_t.unsqueeze(0)] = float("-inf")
        greedy = [r.temperature <= 1e-5 for r in batch]
        if all(greedy):
            return logits.argmax(dim=-1)
        f = self._fmeta_cpu
        f[0, :B] = torch.tensor([max(r.temperature, 1e-5) for r in batch])
        f[1, :B] = torch.tensor([r.top_p for r in batch])
        fm = f[:, :B].to(self.dev, non_blocking=True)
        probs = torch.softmax(logits / fm[0].unsqueeze(1), dim=-1)
        if any(r.top_p < 1.0 for r in batch):
            sp, si = probs.sort(dim=-1, descending=True)
            cum = sp.cumsum(dim=-1)
            sp = sp.masked_fill(cum - sp > fm[1].unsqueeze(1), 0.0)
            probs = torch.zeros_like(probs).scatter_(-1, si, sp)
        q = torch.empty_like(probs).exponential_(generator=self.gen)
        sampled = (probs / q).argmax(dim=-1)
        if any(greedy):
            g = torch.tensor(greedy, dtype=torch.bool).to(self.dev, non_blocking=True)
            sampled = torch.where(g, logits.argmax(dim=-1), sampled)
        return sampled
