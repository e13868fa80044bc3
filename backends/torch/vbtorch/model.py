"""A Llama-family decoder written with plain torch ops over Hugging Face weights.

Supports Llama 2/3, Mistral, Qwen2/2.5 (q/k/v bias) and Qwen3 dense (q/k RMSNorm).
The per-layer weights are fused at load time (q|k|v into one matrix, gate|up
into one), so a decode step is about 15 kernels per layer. Two entry points:

* ``prefill``: several prompts packed into one token axis, block-diagonal causal
  attention, K/V written into each request's KV region;
* ``decode``: one new token for each of B requests; K/V of every request read
  from its own contiguous region through one gather per layer and a length mask.
"""

from __future__ import annotations

import glob
import math
import os

import torch
import torch.nn.functional as F

from .config import SUPPORTED, ModelError, Shape, read_config  # noqa: F401 - re-exported: config parsing needs no torch


def rope_tables(model_dir: str, cfg: dict, shape: Shape, max_len: int, device, dtype):
    """Rope_tables returns cos/sin tables [max_len, head_dim] exactly as transformers computes them.

    transformers' own rotary module is used for the inverse frequencies and the
    attention scaling (llama3, linear, yarn, ... scaling types); plain RoPE with
    ``rope_theta`` when it cannot be built.
    """
    inv_freq, scale = None, 1.0
    try:
        import importlib

        from transformers import AutoConfig

        hf_cfg = AutoConfig.from_pretrained(model_dir)
        mod = importlib.import_module(f"transformers.models.{shape.model_type}.modeling_{shape.model_type}")
        cls = next(getattr(mod, n) for n in dir(mod) if n.endswith("RotaryEmbedding"))
        rot = cls(config=hf_cfg)
        inv_freq = rot.inv_freq.detach().float().cpu()
        scale = float(getattr(rot, "attention_scaling", 1.0))
    except Exception:  # noqa: BLE001 - fall back to plain RoPE
        theta = float(cfg.get("rope_theta", 10000.0))
        d = shape.head_dim
        inv_freq = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.float32) / d))
    t = torch.arange(max_len, dtype=torch.float32)
    freqs = torch.outer(t, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return (emb.cos() * scale).to(device=device, dtype=dtype), (emb.sin() * scale).to(device=device, dtype=dtype)


class Layer:
    """Layer holds one decoder layer's fused weights."""

    __slots__ = ("bqkv", "kn", "ln1", "ln2", "qkn", "qn", "wd", "wgu", "wo", "wqkv")


class Model:
    """Model is the decoder: weights on one device, fused per layer, and the two forward passes."""

    def __init__(self, model_dir: str, load_format: str, device, dtype, max_len: int, seed: int = 0):
        self.cfg, self.shape = read_config(model_dir)
        self.device = torch.device(device)
        self.dtype = dtype
        s = self.shape
        self.group = s.heads // s.kv_heads
        self.q_size = s.heads * s.head_dim
        self.kv_size = s.kv_heads * s.head_dim
        self.scale = 1.0 / math.sqrt(s.head_dim)
        if load_format == "dummy":
            self._init_dummy(seed)
        elif load_format == "auto":
            self._load(model_dir)
        else:
            raise ModelError(f"model: unknown load format {load_format!r} (want auto or dummy)")
        self.cos, sin = rope_tables(model_dir, self.cfg, s, max_len, self.device, dtype)
        half = s.head_dim // 2
        self.sin_signed = torch.cat((-sin[:, :half], sin[:, half:]), dim=-1).contiguous()
        for L in self.layers:  # Qwen3: per-head q/k norm weights side by side, matching the q|k heads
            L.qkn = None if L.qn is None else torch.cat([L.qn.expand(s.heads, -1), L.kn.expand(s.kv_heads, -1)])

    # ---- weights -------------------------------------------------------------------------

    def _init_dummy(self, seed: int) -> None:
        s, dev, dt = self.shape, self.device, self.dtype
        g = torch.Generator(device=dev)
        g.manual_seed(seed + 1234)

        def rand(*shape):
            return torch.empty(*shape, device=dev, dtype=dt).uniform_(-1e-3, 1e-3, generator=g) * 20

        def ones(n):
            return torch.ones(n, device=dev, dtype=dt)

        self.embed = rand(s.vocab, s.hidden)
        self.layers = []
        for _ in range(s.layers):
            L = Layer()
            L.ln1, L.ln2 = ones(s.hidden), ones(s.hidden)
            L.wqkv = rand(self.q_size + 2 * self.kv_size, s.hidden)
            L.bqkv = rand(self.q_size + 2 * self.kv_size) if s.qkv_bias else None
            L.qn = ones(s.head_dim) if s.qk_norm else None
            L.kn = ones(s.head_dim) if s.qk_norm else None
            L.wo = rand(s.hidden, self.q_size)
            L.wgu = rand(2 * s.inter, s.hidden)
            L.wd = rand(s.hidden, s.inter)
            self.layers.append(L)
        self.norm = ones(s.hidden)
        self.lm_head = self.embed if s.tie else rand(s.vocab, s.hidden)

    def _load(self, model_dir: str) -> None:
        from safetensors import safe_open

        files = sorted(glob.glob(os.path.join(model_dir, "*.safetensors")))
        if not files:
            raise ModelError(
                f"model: no *.safetensors in {model_dir} (use --load-format dummy for random weights)"
            )
        raw: dict[str, torch.Tensor] = {}
        for fn in files:
            with safe_open(fn, framework="pt", device="cpu") as f:
                for k in f.keys():  # noqa: SIM118 - safe_open is not a dict: keys() is its API
                    raw[k] = f.get_tensor(k)

        def take(name: str, required: bool = True):
            t = raw.pop(name, None)
            if t is None:
                if required:
                    raise ModelError(f"model: weight {name} missing from {model_dir}")
                return None
            return t.to(device=self.device, dtype=self.dtype)

        s = self.shape
        self.embed = take("model.embed_tokens.weight")
        self.layers = []
        for i in range(s.layers):
            p = f"model.layers.{i}."
            L = Layer()
            L.ln1 = take(p + "input_layernorm.weight")
            L.ln2 = take(p + "post_attention_layernorm.weight")
            L.wqkv = torch.cat([take(p + f"self_attn.{n}_proj.weight") for n in "qkv"])
            if s.qkv_bias:
                L.bqkv = torch.cat([take(p + f"self_attn.{n}_proj.bias") for n in "qkv"])
            else:
                L.bqkv = None
            L.qn = take(p + "self_attn.q_norm.weight") if s.qk_norm else None
            L.kn = take(p + "self_attn.k_norm.weight") if s.qk_norm else None
            L.wo = take(p + "self_attn.o_proj.weight")
            L.wgu = torch.cat([take(p + "mlp.gate_proj.weight"), take(p + "mlp.up_proj.weight")])
            L.wd = take(p + "mlp.down_proj.weight")
            self.layers.append(L)
        self.norm = take("model.norm.weight")
        head = take("lm_head.weight", required=False)
        self.lm_head = head if head is not None else self.embed
        raw.clear()

    # ---- forward pieces -------------------------------------------------------------------
    #
    # Host overhead dominates an eager decode step (each op costs tens of microseconds of
    # Python + dispatch + launch), so the layer is written to launch as few kernels as
    # possible: fused RMSNorm (F.rms_norm with weight), one q|k|v GEMM, RoPE for q and k
    # together in three ops written back into the q|k|v buffer, one KV write (k|v are
    # adjacent in that buffer and in the cache), one gather, SDPA, and the residual adds
    # fused into the GEMMs (addmm). About 15 kernels per layer.

    def _rms(self, x, w):
        return F.rms_norm(x, (x.shape[-1],), w, self.shape.eps)

    def rope_for(self, pos):
        """Rope_for gathers the cos and signed-sin rows of the positions once per step."""
        return self.cos[pos].unsqueeze(1), self.sin_signed[pos].unsqueeze(1)

    def _qkv(self, L, h, cs):
        """_qkv returns the q|k|v buffer [n, (H+2KV)*d] with RoPE (and Qwen3 q/k norm) applied in place."""
        s = self.shape
        n = h.shape[0]
        qkv = F.linear(h, L.wqkv, L.bqkv)
        heads = s.heads + s.kv_heads
        qk = qkv[:, : self.q_size + self.kv_size].view(n, heads, s.head_dim)
        src = qk
        if L.qn is not None:
            src = F.rms_norm(qk, (s.head_dim,), None, s.eps) * L.qkn
        cos, sin_s = cs
        half = s.head_dim // 2
        # rotate_half(x) * sin == flip(x halves) * [-sin | sin]
        flipped = src.view(n, heads, 2, half).flip(2).view(n, heads, s.head_dim)
        torch.addcmul(src * cos, flipped, sin_s, out=qk)
        return qkv

    def _mlp(self, L, x):
        h = self._rms(x, L.ln2)
        gu = F.linear(h, L.wgu)
        i = self.shape.inter
        return torch.addmm(x, F.silu(gu[:, :i]) * gu[:, i:], L.wd.t())

    def _logits(self, x):
        return F.linear(self._rms(x, self.norm), self.lm_head).float()

    @torch.inference_mode()
    def prefill(self, kv, tokens, pos, write_idx, seg, last_idx, attn):
        """Prefill runs packed prompts and returns logits [R, vocab] at each prompt's last token.

        kv: [layers, slots, 2*kv_heads*head_dim]; tokens/pos/write_idx/seg: [T] (token id,
        position, KV slot, request index); last_idx: [R] index into T of each request's last token.
        """
        s, g = self.shape, self.group
        T = tokens.shape[0]
        x = F.embedding(tokens, self.embed)
        cs = self.rope_for(pos)
        mask = None
        if attn.kind == "sdpa":
            same = seg.unsqueeze(1) == seg.unsqueeze(0)
            causal = pos.unsqueeze(1) >= pos.unsqueeze(0)
            mask = (same & causal).repeat(g, 1).view(1, 1, g * T, T)
        qs, ks = self.q_size, self.kv_size
        for li, L in enumerate(self.layers):
            qkv = self._qkv(L, self._rms(x, L.ln1), cs)
            kv[li].index_copy_(0, write_idx, qkv[:, qs:])
            q = qkv[:, :qs].view(T, s.heads, s.head_dim)
            k = qkv[:, qs : qs + ks].view(T, s.kv_heads, s.head_dim)
            v = qkv[:, qs + ks :].view(T, s.kv_heads, s.head_dim)
            if attn.kind == "sdpa":
                # GQA without repeating K/V: the query group becomes extra query rows
                qg = q.view(T, s.kv_heads, g, s.head_dim).permute(1, 2, 0, 3).reshape(1, s.kv_heads, g * T, s.head_dim)
                o = F.scaled_dot_product_attention(
                    qg, k.transpose(0, 1).unsqueeze(0), v.transpose(0, 1).unsqueeze(0), attn_mask=mask, scale=self.scale
                )
                o = o.view(s.kv_heads, g, T, s.head_dim).permute(2, 0, 1, 3).reshape(T, qs)
            else:
                o = attn.prefill(q, k, v).reshape(T, qs)
            x = torch.addmm(x, o, L.wo.t())
            x = self._mlp(L, x)
        return self._logits(x[last_idx])

    @torch.inference_mode()
    def decode(self, kv, tokens, pos, write_idx, gather_idx, len_mask, attn):
        """Decode runs one token for each of B requests and returns logits [B, vocab].

        tokens/pos/write_idx: [B]; gather_idx: [B, L] KV slots of each request's
        context (this token included, padded by repeating it); len_mask: [B, 1, 1, L] True where valid.
        """
        s, g = self.shape, self.group
        B = tokens.shape[0]
        x = F.embedding(tokens, self.embed)
        cs = self.rope_for(pos)
        qs, kvh, d = self.q_size, s.kv_heads, s.head_dim
        flat = gather_idx.reshape(-1) if gather_idx is not None else None
        Lmax = gather_idx.shape[1] if gather_idx is not None else 0
        for li, L in enumerate(self.layers):
            qkv = self._qkv(L, self._rms(x, L.ln1), cs)
            if attn.kind == "sdpa":
                cache = kv[li]
                cache.index_copy_(0, write_idx, qkv[:, qs:])
                ctx = cache.index_select(0, flat).view(B, Lmax, 2, kvh, d)
                o = F.scaled_dot_product_attention(
                    qkv[:, :qs].view(B, kvh, g, d), ctx[:, :, 0].transpose(1, 2), ctx[:, :, 1].transpose(1, 2),
                    attn_mask=len_mask, scale=self.scale,
                )
                o = o.reshape(B, qs)
            else:
                q = qkv[:, :qs].view(B, s.heads, d)
                k = qkv[:, qs : qs + self.kv_size].view(B, kvh, d)
                v = qkv[:, qs + self.kv_size :].view(B, kvh, d)
                o = attn.decode(kv, li, q, k, v).reshape(B, qs)
            x = torch.addmm(x, o, L.wo.t())
            x = self._mlp(L, x)
        return self._logits(x)
