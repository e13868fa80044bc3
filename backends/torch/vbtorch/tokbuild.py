"""Build an offline byte-level BPE tokenizer and model directories with random weights.

Used by the tests (tiny model) and by bench/scripts/torch_make_model.py (a
Llama-3-8B-shaped directory for the GPU study). No network is needed.

    python3 -m vbtorch.tokbuild --out DIR --shape llama3-8b [--corpus FILE ...] [--weights]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

LLAMA3_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{{ m['content'] | trim }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)

SHAPES = {
    # Meta-Llama-3-8B's config.json (dimensions, rope scaling absent in 3.0)
    "llama3-8b": {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 128256, "hidden_size": 4096,
        "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
        "max_position_embeddings": 8192, "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "tie_word_embeddings": False,
        "hidden_act": "silu", "attention_bias": False, "bos_token_id": 128000, "eos_token_id": 128001,
        "torch_dtype": "bfloat16",
    },
    # a tiny Llama for CPU tests
    "tiny-llama": {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 512, "hidden_size": 64,
        "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "max_position_embeddings": 256, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": False,
        "hidden_act": "silu", "attention_bias": False, "bos_token_id": 500, "eos_token_id": 501, "torch_dtype": "float32",
    },
    # a tiny Qwen2 (q/k/v bias, tied embeddings)
    "tiny-qwen2": {
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 512, "hidden_size": 64,
        "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "max_position_embeddings": 256, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "tie_word_embeddings": True,
        "hidden_act": "silu", "bos_token_id": 500, "eos_token_id": 501, "torch_dtype": "float32",
    },
    # a tiny Qwen3 (q/k norm, explicit head_dim)
    "tiny-qwen3": {
        "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "vocab_size": 512, "hidden_size": 64,
        "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "head_dim": 32, "max_position_embeddings": 256, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
        "tie_word_embeddings": False, "hidden_act": "silu", "attention_bias": False, "bos_token_id": 500,
        "eos_token_id": 501, "torch_dtype": "float32",
    },
}

_BUILTIN_TEXT = (
    "The quick brown fox jumps over the lazy dog. A journey of a thousand miles begins with a single step. "
    "Large language models generate text one token at a time; serving them well means batching many requests "
    "and managing the key-value cache. PagedAttention stores the cache in blocks; a contiguous cache reserves "
    "one region per request. Throughput, latency, time to first token and inter-token latency are measured. "
    "def main():\n    print('hello, world')\n    return 0\n# Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 1000 3.14159\n"
    "Questions and answers: What is the capital of France? Paris. Explain quantum computing in simple terms. "
)


def build_tokenizer(out_dir: str, vocab: int, bos_id: int, eos_id: int, corpus: list[str] | None = None) -> None:
    """Build_tokenizer trains a byte-level BPE on ``corpus`` and saves exactly ``vocab`` tokens to ``out_dir``.

    Special tokens sit at ``bos_id``/``eos_id`` (Llama 3 ids for the 8B shape); the
    vocabulary is padded with reserved special tokens so that every id the model
    can emit decodes.
    """
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    n_train = vocab - 16 if vocab < 4096 else vocab - 256
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=n_train, min_frequency=1, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[],
    )

    def texts():
        if corpus:
            for fn in corpus:
                with open(fn, encoding="utf-8", errors="replace") as f:
                    while True:
                        block = f.read(1 << 20)
                        if not block:
                            break
                        yield block
        for _ in range(50):
            yield _BUILTIN_TEXT

    tok.train_from_iterator(texts(), trainer=trainer)
    have = tok.get_vocab_size()
    if have > vocab - 2:
        raise ValueError(f"tokbuild: trained {have} tokens, more than the {vocab} the model allows")
    # fill every id up to vocab: bos/eos/chat markers as special tokens, the rest as
    # plain added tokens that decode to visible text (random weights emit any id)
    if not (have <= bos_id < vocab and have <= eos_id < vocab):
        raise ValueError(f"tokbuild: bos {bos_id}/eos {eos_id} must lie in [{have}, {vocab}) after training")
    from tokenizers import AddedToken

    extra = iter(["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"])
    pending: list = []  # consecutive plain tokens, added in one call (adding one by one is quadratic)
    for i in range(have, vocab):
        name = "<|begin_of_text|>" if i == bos_id else "<|end_of_text|>" if i == eos_id else next(extra, None)
        if name is None:
            pending.append(AddedToken(f"\u27e6{i}\u27e7", normalized=False))
            continue
        if pending:
            tok.add_tokens(pending)
            pending = []
        tok.add_special_tokens([name])
    if pending:
        tok.add_tokens(pending)
    tok.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
        special_tokens=[("<|begin_of_text|>", bos_id)],
    )
    assert tok.get_vocab_size() == vocab, (tok.get_vocab_size(), vocab)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|end_of_text|>",
        pad_token="<|end_of_text|>", clean_up_tokenization_spaces=False,
    )
    fast.chat_template = LLAMA3_TEMPLATE
    fast.save_pretrained(out_dir)


def build_model_dir(out_dir: str, shape: str | dict, corpus: list[str] | None = None, weights: bool = False,
                    seed: int = 0, tokenizer_from: str | None = None) -> str:
    """Build_model_dir writes config.json, generation_config.json and a tokenizer (and random safetensors weights)."""
    cfg = dict(SHAPES[shape]) if isinstance(shape, str) else dict(shape)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    eos = cfg["eos_token_id"]
    eos_list = eos if isinstance(eos, list) else [eos]
    with open(os.path.join(out_dir, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": cfg["bos_token_id"], "eos_token_id": eos_list, "do_sample": False}, f, indent=2)
    if tokenizer_from:
        import shutil

        for fn in os.listdir(tokenizer_from):
            if fn.startswith("tokenizer") or fn == "special_tokens_map.json" or fn == "chat_template.jinja":
                shutil.copy(os.path.join(tokenizer_from, fn), out_dir)
    else:
        build_tokenizer(out_dir, cfg["vocab_size"], cfg["bos_token_id"], eos_list[0], corpus)
    if weights:
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM

        torch.manual_seed(seed)
        hf_cfg = AutoConfig.from_pretrained(out_dir)
        dtype = getattr(torch, cfg.get("torch_dtype", "float32"))
        dev = "cuda" if torch.cuda.is_available() else "cpu"
        with torch.device(dev):
            m = AutoModelForCausalLM.from_config(hf_cfg, dtype=dtype)
        m.save_pretrained(out_dir, safe_serialization=True)
    return out_dir


def main(argv: list[str] | None = None) -> int:
    """Main is the command line of the builder."""
    p = argparse.ArgumentParser(prog="python3 -m vbtorch.tokbuild")
    p.add_argument("--out", required=True)
    p.add_argument("--shape", choices=sorted(SHAPES), default="llama3-8b")
    p.add_argument("--corpus", nargs="*", default=None, help="text files to train the BPE on")
    p.add_argument("--tokenizer-from", default=None, help="copy the tokenizer files from this directory instead of training")
    p.add_argument("--weights", action="store_true", help="also write random weights as safetensors (transformers init)")
    a = p.parse_args(argv)
    try:
        build_model_dir(a.out, a.shape, a.corpus, a.weights, tokenizer_from=a.tokenizer_from)
    except (OSError, ValueError) as e:
        print(f"tokbuild: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
