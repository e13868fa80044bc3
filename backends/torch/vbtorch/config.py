"""config.json of a model directory: the supported architectures and the shape the engine needs.

Kept free of torch so that the server checks a model directory before its slow imports.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

SUPPORTED = {
    "llama": "LlamaForCausalLM",
    "mistral": "MistralForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "qwen3": "Qwen3ForCausalLM",
}


class ModelError(Exception):
    """ModelError says why a model directory cannot be served."""


@dataclass
class Shape:
    """Shape holds the dimensions the engine needs from config.json."""

    model_type: str
    vocab: int
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    inter: int
    eps: float
    max_pos: int
    tie: bool
    qkv_bias: bool
    qk_norm: bool

    def kv_bytes_per_token(self, dtype) -> int:
        """Kv_bytes_per_token is the KV-cache size of one token over all layers (dtype: a torch.dtype)."""
        import torch

        return self.layers * 2 * self.kv_heads * self.head_dim * torch.tensor([], dtype=dtype).element_size()


def read_config(model_dir: str) -> tuple[dict, Shape]:
    """Read_config loads config.json from ``model_dir`` and checks the architecture."""
    path = os.path.join(model_dir, "config.json")
    try:
        with open(path) as f:
            cfg = json.load(f)
    except FileNotFoundError as e:
        raise ModelError(f"model: no config.json in {model_dir}") from e
    except json.JSONDecodeError as e:
        raise ModelError(f"model: {path} is not valid JSON: {e}") from e
    mt = cfg.get("model_type", "")
    if mt not in SUPPORTED:
        raise ModelError(
            f"model: model_type {mt!r} in {path} is not supported (supported: {', '.join(sorted(SUPPORTED))})"
        )
    try:
        heads = int(cfg["num_attention_heads"])
        hidden = int(cfg["hidden_size"])
        shape = Shape(
            model_type=mt,
            vocab=int(cfg["vocab_size"]),
            hidden=hidden,
            layers=int(cfg["num_hidden_layers"]),
            heads=heads,
            kv_heads=int(cfg.get("num_key_value_heads") or heads),
            head_dim=int(cfg.get("head_dim") or hidden // heads),
            inter=int(cfg["intermediate_size"]),
            eps=float(cfg.get("rms_norm_eps", 1e-6)),
            max_pos=int(cfg.get("max_position_embeddings", 4096)),
            tie=bool(cfg.get("tie_word_embeddings", False)),
            qkv_bias=(mt == "qwen2") or bool(cfg.get("attention_bias", False)),
            qk_norm=(mt == "qwen3"),
        )
    except KeyError as e:
        raise ModelError(f"model: {path} lacks {e.args[0]!r}") from e
    if shape.heads % shape.kv_heads:
        raise ModelError(f"model: {shape.heads} heads not divisible by {shape.kv_heads} kv heads")
    return cfg, shape
