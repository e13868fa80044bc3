"""The OpenAI-compatible routes, in vLLM's shapes: completions, chat completions, models, health, metrics."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

from aiohttp import web

from .detok import make_detokenizer
from .engine import Engine, EngineError, Request


class BadRequest(Exception):
    """BadRequest is a client error mapped to a vLLM-shaped error body."""

    def __init__(self, message: str, param: str | None = None, status: int = 400, etype: str = "BadRequestError"):
        super().__init__(message)
        self.param, self.status, self.etype = param, status, etype


def error_response(message: str, status: int = 400, etype: str = "BadRequestError", param: str | None = None):
    """Error_response is vLLM's error body: {"error": {message, type, param, code}}."""
    return web.json_response({"error": {"message": message, "type": etype, "param": param, "code": status}}, status=status)


def _int(body, key, default, lo=None):
    v = body.get(key, default)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, int):
        raise BadRequest(f"`{key}` must be an integer, got {json.dumps(v)}", key)
    if lo is not None and v < lo:
        raise BadRequest(f"`{key}` must be at least {lo}, got {v}", key)
    return v


def _float(body, key, default, lo, hi, lo_open=False):
    v = body.get(key, default)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise BadRequest(f"`{key}` must be a number, got {json.dumps(v)}", key)
    v = float(v)
    if v < lo or v > hi or (lo_open and v == lo):
        raise BadRequest(f"`{key}` must be in {'(' if lo_open else '['}{lo}, {hi}], got {v}", key)
    return v


class API:
    """API holds what the handlers share: engine, tokenizer, names."""

    def __init__(self, engine: Engine, tokenizer, name: str, model_dir: str):
        self.engine, self.tok, self.name, self.model_dir = engine, tokenizer, name, model_dir
        self.created = int(time.time())

    # ---- request parsing ------------------------------------------------------------------

    async def _body(self, request: web.Request) -> dict:
        try:
            body = await request.json(loads=json.loads)
        except (ValueError, UnicodeDecodeError) as e:
            raise BadRequest(f"The request body is not valid JSON: {e}") from e
        if not isinstance(body, dict):
            raise BadRequest("The request body must be a JSON object.")
        model = body.get("model")
        if model not in (None, self.name, self.model_dir):
            raise BadRequest(f"The model `{model}` does not exist.", "model", 404, "NotFoundError")
        return body

    def _sampling(self, body: dict, prompt_ids: list[int], default_max: int, chat: bool) -> tuple[Request, dict]:
        stream = body.get("stream", False)
        if not isinstance(stream, bool):
            raise BadRequest("`stream` must be a boolean", "stream")
        so = body.get("stream_options")
        if so is not None and not stream:
            raise BadRequest("Stream options can only be defined when `stream=True`.", "stream_options")
        if so is not None and not isinstance(so, dict):
            raise BadRequest("`stream_options` must be an object", "stream_options")
        so = so or {}
        if _int(body, "n", 1, 1) != 1:
            raise BadRequest("Only n=1 is supported by vbtorch.", "n")
        if body.get("logprobs") not in (None, False) or body.get("top_logprobs") is not None:
            raise BadRequest("logprobs are not supported by vbtorch.", "logprobs")
        key = "max_completion_tokens" if chat and body.get("max_completion_tokens") is not None else "max_tokens"
        max_tokens = _int(body, key, default_max, 1)
        min_tokens = _int(body, "min_tokens", 0, 0)
        if min_tokens > max_tokens:
            raise BadRequest(f"min_tokens ({min_tokens}) must be less than or equal to max_tokens ({max_tokens})", "min_tokens")
        ignore_eos = body.get("ignore_eos", False)
        if not isinstance(ignore_eos, bool):
            raise BadRequest("`ignore_eos` must be a boolean", "ignore_eos")
        req = Request(
            prompt_ids=prompt_ids,
            max_tokens=max_tokens,
            min_tokens=min_tokens,
            temperature=_float(body, "temperature", 1.0, 0.0, 2.0),
            top_p=_float(body, "top_p", 1.0, 0.0, 1.0, lo_open=True),
            ignore_eos=ignore_eos,
        )
        opts = {
            "stream": stream,
            "include_usage": bool(so.get("include_usage", False)),
            "continuous": bool(so.get("include_usage", False)) and bool(so.get("continuous_usage_stats", False)),
            "token_ids": bool(body.get("return_token_ids", False)),
        }
        return req, opts

    def _completion_prompt(self, body: dict) -> list[int]:
        p = body.get("prompt")
        if isinstance(p, list) and len(p) == 1 and isinstance(p[0], (str, list)):
            p = p[0]  # a batch of one
        if isinstance(p, str):
            return self.tok(p, add_special_tokens=True)["input_ids"]
        if isinstance(p, list) and p and all(isinstance(t, int) and not isinstance(t, bool) for t in p):
            if any(t < 0 for t in p):
                raise BadRequest("Token ids in `prompt` must be non-negative.", "prompt")
            return list(p)
        if isinstance(p, list) and len(p) > 1 and all(isinstance(x, (str, list)) for x in p):
            raise BadRequest("vbtorch serves one prompt per request; send a batch as separate requests.", "prompt")
        raise BadRequest("`prompt` must be a string or a list of token ids.", "prompt")

    def _chat_prompt(self, body: dict) -> list[int]:
        msgs = body.get("messages")
        if not isinstance(msgs, list) or not msgs:
            raise BadRequest("`messages` must be a non-empty list.", "messages")
        norm = []
        for m in msgs:
            if not isinstance(m, dict) or not isinstance(m.get("role"), str):
                raise BadRequest("Each message needs a string `role`.", "messages")
            c = m.get("content", "")
            if isinstance(c, list):  # OpenAI content parts: keep the text parts
                c = "".join(part.get("text", "") for part in c if isinstance(part, dict) and part.get("type") == "text")
            if c is None:
                c = ""
            if not isinstance(c, str):
                raise BadRequest("Message `content` must be a string or a list of text parts.", "messages")
            norm.append({"role": m["role"], "content": c})
        try:
            ids = self.tok.apply_chat_template(norm, add_generation_prompt=True, tokenize=True)
        except Exception as e:
            raise BadRequest(f"Cannot apply the chat template: {e}", "messages") from e
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        return list(ids)

    # ---- handlers ---------------------------------------------------------------------------

    async def completions(self, request: web.Request):
        """Completions serves POST /v1/completions."""
        return await self._generate(request, chat=False)

    async def chat(self, request: web.Request):
        """Chat serves POST /v1/chat/completions."""
        return await self._generate(request, chat=True)

    async def _generate(self, request: web.Request, chat: bool):
        eng = self.engine
        try:
            body = await self._body(request)
            ids = self._chat_prompt(body) if chat else self._completion_prompt(body)
            default_max = max(1, eng.cfg.max_model_len - len(ids)) if chat else 16
            req, opts = self._sampling(body, ids, default_max, chat)
            eng.check(req)
        except BadRequest as e:
            return error_response(str(e), e.status, e.etype, e.param)
        except EngineError as e:
            return error_response(str(e), 400, "BadRequestError", e.param)
        if eng.error is not None:
            return error_response(f"The engine has failed: {eng.error}", 500, "InternalServerError")
        q: asyncio.Queue = asyncio.Queue()
        req.sink = lambda toks, fin, reason: q.put_nowait((toks, fin, reason))
        rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
        created = int(time.time())
        eng.submit(req)
        try:
            if opts["stream"]:
                return await self._stream(request, req, q, rid, created, chat, opts)
            return await self._whole(req, q, rid, created, chat)
        finally:
            if not req.finished:
                eng.abort(req)

    def _usage(self, req: Request, n: int) -> dict:
        p = len(req.prompt_ids)
        return {"prompt_tokens": p, "completion_tokens": n, "total_tokens": p + n}

    async def _whole(self, req, q, rid, created, chat):
        reason = None
        while True:
            _toks, fin, reason = await q.get()
            if fin:
                break
        if reason == "error":
            return error_response(f"The engine has failed: {self.engine.error}", 500, "InternalServerError")
        text = self.tok.decode(req.output_ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        if chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                      "finish_reason": reason, "stop_reason": None}
            obj = "chat.completion"
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": reason, "stop_reason": None}
            obj = "text_completion"
        return web.json_response({"id": rid, "object": obj, "created": created, "model": self.name,
                                  "choices": [choice], "usage": self._usage(req, len(req.output_ids))})

    async def _stream(self, request, req, q, rid, created, chat, opts):
        resp = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        obj = "chat.completion.chunk" if chat else "text_completion"
        detok = make_detokenizer(self.tok, req.prompt_ids)
        n = 0

        def chunk(choice, usage=None):
            d = {"id": rid, "object": obj, "created": created, "model": self.name, "choices": [choice] if choice else []}
            if usage is not None:
                d["usage"] = usage
            return b"data: " + json.dumps(d, separators=(",", ":")).encode() + b"\n\n"

        first = True
        reason = None
        while True:
            toks, fin, reason = await q.get()
            while not fin and not q.empty():  # the client fell behind: merge deltas, as vLLM does
                more, fin, reason = q.get_nowait()
                toks = toks + more
            if reason == "error":
                err = {"error": {"message": f"The engine has failed: {self.engine.error}", "type": "InternalServerError", "param": None, "code": 500}}
                await resp.write(b"data: " + json.dumps(err).encode() + b"\n\n")
                break
            n += len(toks)
            text = detok.push(toks)
            if fin:
                text += detok.flush()
            out = []
            if chat and first:
                role = {"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}
                out.append(chunk(role, self._usage(req, 0) if opts["continuous"] else None))
            first = False
            if text or fin or opts["continuous"]:
                if chat:
                    c = {"index": 0, "delta": {"content": text} if text or not fin else {}, "logprobs": None,
                         "finish_reason": reason}
                else:
                    c = {"index": 0, "text": text, "logprobs": None, "finish_reason": reason}
                if fin:
                    c["stop_reason"] = None
                if opts["token_ids"]:
                    c["token_ids"] = toks
                out.append(chunk(c, self._usage(req, n) if opts["continuous"] else None))
            if out:
                await resp.write(b"".join(out))
            if fin:
                break
        if opts["include_usage"] and reason != "error":
            await resp.write(chunk(None, self._usage(req, n)))
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def models(self, request: web.Request):
        """Models serves GET /v1/models."""
        card = {"id": self.name, "object": "model", "created": self.created, "owned_by": "vbtorch", "root": self.model_dir,
                "parent": None, "max_model_len": self.engine.cfg.max_model_len, "permission": []}
        return web.json_response({"object": "list", "data": [card]})

    async def health(self, request: web.Request):
        """Health serves GET /health: 200 while the engine runs, 503 after it failed."""
        return web.Response(status=503 if self.engine.error is not None else 200)

    async def metrics(self, request: web.Request):
        """Metrics serves GET /metrics in Prometheus text format with vLLM's metric names."""
        st, eng = self.engine.stats, self.engine
        lab = f'engine="0",model_name="{self.name}"'
        lines = []

        def m(name, typ, value, help_, labels=lab):
            lines.append(f"# HELP {name} {help_}")
            lines.append(f"# TYPE {name} {typ}")
            lines.append(f"{name}{{{labels}}} {value}")

        m("vllm:num_requests_running", "gauge", st.running, "Number of requests in model execution batches.")
        m("vllm:num_requests_waiting", "gauge", st.waiting, "Number of requests waiting to be processed.")
        m("vllm:kv_cache_usage_perc", "gauge", f"{st.kv_usage:.6f}", "KV-cache usage. 1 means 100 percent usage (reserved regions).")
        m("vllm:num_preemptions_total", "counter", st.preemptions, "Cumulative number of preemptions (always 0: reservation never preempts).")
        m("vllm:prompt_tokens_total", "counter", st.prompt_tokens, "Number of prefill tokens processed.")
        m("vllm:generation_tokens_total", "counter", st.generation_tokens, "Number of generation tokens processed.")
        lines.append("# HELP vllm:request_success_total Count of finished requests by finish reason.")
        lines.append("# TYPE vllm:request_success_total counter")
        for reason in ("stop", "length", "abort", "error"):
            lines.append(f'vllm:request_success_total{{{lab},finished_reason="{reason}"}} {st.success.get(reason, 0)}')
        m("vbtorch:kv_capacity_tokens", "gauge", eng.alloc.capacity, "KV-cache capacity in tokens.")
        m("vbtorch:kv_reserved_tokens", "gauge", eng.alloc.reserved, "KV tokens reserved by running requests.")
        m("vbtorch:kv_filled_tokens", "gauge", st.kv_filled_tokens, "KV tokens actually holding context.")
        m("vbtorch:kv_largest_hole_tokens", "gauge", eng.alloc.largest_hole(), "Largest contiguous free KV region (fragmentation).")
        m("vbtorch:steps_total", "counter", st.steps, "Engine steps run.")
        m("vbtorch:step_seconds_total", "counter", f"{st.step_seconds_sum:.6f}", "Wall time spent in engine steps.")
        m("vbtorch:batch_size_total", "counter", st.batch_size_sum, "Sum over steps of the requests in the step (mean batch = this / steps).")
        m("vbtorch:max_batch_size", "gauge", st.max_running, "Largest batch seen.")
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain", charset="utf-8",
                            headers={"X-Prometheus-Format": "0.0.4"})


def create_app(engine: Engine, tokenizer, name: str, model_dir: str) -> web.Application:
    """Create_app builds the aiohttp application of the server."""
    api = API(engine, tokenizer, name, model_dir)
    app = web.Application(client_max_size=64 << 20)
    app.router.add_post("/v1/completions", api.completions)
    app.router.add_post("/v1/chat/completions", api.chat)
    app.router.add_get("/v1/models", api.models)
    app.router.add_get("/health", api.health)
    app.router.add_get("/metrics", api.metrics)
    return app
