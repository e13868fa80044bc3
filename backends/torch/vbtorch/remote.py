"""The engine in its own process (``--engine-process``), as vLLM runs its engine core.

The HTTP layer (parsing, tokenization, detokenization, SSE) and the engine then
no longer share one interpreter lock: the engine process only runs steps, and
sends each step's new tokens (plus a snapshot of its counters) over a pipe in
one message. ``RemoteEngine`` offers the server the same surface as ``Engine``.
"""

from __future__ import annotations

import collections
import itertools
import multiprocessing as mp
import threading

from .engine import EngineConfig, EngineError, Request, Stats
from .kv import reservation


class AllocView:
    """AllocView mirrors the engine process's KV allocator for /metrics."""

    def __init__(self, capacity: int, align: int):
        self.capacity, self.align, self.reserved, self._hole = capacity, align, 0, capacity

    def rounded(self, size: int) -> int:
        """Rounded is ``size`` rounded up to the allocator's alignment."""
        return (size + self.align - 1) // self.align * self.align

    def largest_hole(self) -> int:
        """Largest_hole is the biggest free contiguous region at the last snapshot."""
        return self._hole

    def usage(self) -> float:
        """Usage is the reserved fraction at the last snapshot."""
        return self.reserved / self.capacity


def _snapshot(eng) -> dict:
    st = eng.stats
    return {
        "running": st.running, "waiting": st.waiting, "kv_usage": st.kv_usage, "kv_filled_tokens": st.kv_filled_tokens,
        "preemptions": st.preemptions, "prompt_tokens": st.prompt_tokens, "generation_tokens": st.generation_tokens,
        "success": dict(st.success), "steps": st.steps, "step_seconds_sum": st.step_seconds_sum,
        "batch_size_sum": st.batch_size_sum, "max_running": st.max_running,
        "reserved": eng.alloc.reserved, "hole": eng.alloc.largest_hole(),
    }


def _child_main(args, conn) -> None:
    """_child_main builds the model and engine and serves the pipe until told to stop."""
    import logging

    from .server import StartupError, build

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s[engine]: %(message)s")
    buf: list = []
    lock = threading.Lock()

    def send(msg):
        with lock:
            conn.send(msg)

    def post(fn):
        buf.clear()
        fn()
        send(("out", list(buf), _snapshot(eng)))

    try:
        _, _, eng = build(args, post)
    except StartupError as e:
        conn.send(("fail", str(e)))
        return
    except Exception as e:  # noqa: BLE001 - reported to the parent as a startup failure
        conn.send(("fail", f"{e.__class__.__name__}: {e}"))
        return
    cfg = eng.cfg
    conn.send(("ready", {"cfg": cfg.__dict__, "capacity": eng.alloc.capacity, "align": eng.alloc.align,
                         "vocab": eng.model.shape.vocab}))
    # counters must also reach the parent after steps that produce no tokens (cancels)
    inner_step = eng.step
    last = {"steps": -1, "success": None}

    def step():
        inner_step()
        snap = _snapshot(eng)
        if snap["steps"] == last["steps"] and snap["success"] != last["success"]:
            send(("out", [], snap))
        last["steps"], last["success"] = snap["steps"], snap["success"]

    eng.step = step
    reqs: dict[int, Request] = {}

    def reader():
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                eng.stop()
                return
            if msg[0] == "submit":
                _, pid, prompt, max_tokens, min_tokens, temperature, top_p, ignore_eos = msg
                r = Request(prompt_ids=prompt, max_tokens=max_tokens, min_tokens=min_tokens, temperature=temperature,
                            top_p=top_p, ignore_eos=ignore_eos)
                r.sink = lambda toks, fin, reason, pid=pid: buf.extend((pid, t, reason if fin else None) for t in toks) \
                    if toks else buf.append((pid, None, reason))
                reqs[pid] = r
                eng.submit(r)
            elif msg[0] == "abort":
                r = reqs.pop(msg[1], None)
                if r is not None:
                    eng.abort(r)
            elif msg[0] == "stop":
                eng.stop()
                return

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    eng._loop()
    if eng.error is not None:
        send(("error", f"{eng.error.__class__.__name__}: {eng.error}"))


class RemoteEngine:
    """RemoteEngine runs an Engine in a spawned process; same methods and fields as Engine for the server."""

    def __init__(self, args, post):
        self.post = post
        ctx = mp.get_context("spawn")  # CUDA cannot be used in a forked child
        self._conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_child_main, args=(args, child), daemon=True, name="vbtorch-engine")
        self.proc.start()
        child.close()
        from .server import StartupError

        try:
            msg = self._conn.recv()
        except EOFError as e:
            raise StartupError(f"the engine process exited during startup (exit code {self.proc.exitcode})") from e
        if msg[0] == "fail":
            self.proc.join(10)
            raise StartupError(msg[1])
        info = msg[1]
        self.cfg = EngineConfig(**info["cfg"])
        self.alloc = AllocView(info["capacity"], info["align"])
        self.vocab = info["vocab"]
        self.stats = Stats()
        self.error: str | None = None
        self._reqs: dict[int, Request] = {}
        self._ids = itertools.count(1)
        self._send_lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, name="vbtorch-engine-pipe", daemon=True)

    def check(self, req: Request) -> None:
        """Check raises EngineError when a request can never be served (same rules as Engine.check)."""
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
        if self.alloc.rounded(need) > self.alloc.capacity:
            raise EngineError(
                f"The request needs a KV reservation of {need} tokens under policy {self.cfg.kv_policy!r}, "
                f"more than the whole KV cache ({self.alloc.capacity} tokens).",
                "max_tokens",
            )
        bad = [t for t in req.prompt_ids if not 0 <= t < self.vocab]
        if bad:
            raise EngineError(f"Token id {bad[0]} is out of vocabulary (size {self.vocab}).", "prompt")

    def _send(self, msg) -> None:
        with self._send_lock:
            self._conn.send(msg)

    def submit(self, req: Request) -> None:
        """Submit sends a checked request to the engine process."""
        req.id = next(self._ids)
        self._reqs[req.id] = req
        self._send(("submit", req.id, req.prompt_ids, req.max_tokens, req.min_tokens, req.temperature, req.top_p,
                    req.ignore_eos))

    def abort(self, req: Request) -> None:
        """Abort cancels a request in the engine process."""
        if req.finished or req.cancelled:
            return
        req.cancelled = True
        self._reqs.pop(req.id, None)
        try:
            self._send(("abort", req.id))
        except OSError:
            pass

    def start(self) -> None:
        """Start begins reading the engine's messages."""
        self._reader.start()

    def stop(self) -> None:
        """Stop asks the engine process to end and waits for it."""
        try:
            self._send(("stop",))
        except OSError:
            pass
        self.proc.join(30)
        if self.proc.is_alive():
            self.proc.terminate()

    def _read(self) -> None:
        while True:
            try:
                msg = self._conn.recv()
            except (EOFError, OSError):
                if self.error is None:
                    self.error = f"the engine process ended (exit code {self.proc.exitcode})"
                self.post(self._fail_all)
                return
            if msg[0] == "out":
                self.post(lambda m=msg: self._deliver(m[1], m[2]))
            elif msg[0] == "error":
                self.error = msg[1]

    def _fail_all(self) -> None:
        for r in list(self._reqs.values()):
            r.finished, r.finish_reason = True, "error"
            if r.sink is not None:
                r.sink([], True, "error")
        self._reqs.clear()

    def _deliver(self, outs, snap) -> None:
        st = self.stats
        for k, v in snap.items():
            if k == "success":
                st.success = collections.Counter(v)
            elif k == "reserved":
                self.alloc.reserved = v
            elif k == "hole":
                self.alloc._hole = v
            else:
                setattr(st, k, v)
        for pid, tok, reason in outs:
            r = self._reqs.get(pid)
            if r is None:
                continue
            toks = [] if tok is None else [tok]
            r.output_ids.extend(toks)
            if reason is not None:
                r.finished, r.finish_reason = True, reason
                del self._reqs[pid]
            if r.sink is not None and not r.cancelled:
                r.sink(toks, reason is not None, reason)
