"""Build an offline byte-level BPE tokenizer and model directories with random or dummy weights.

Used by the tests (tiny models), by the GPU study (a Llama-3-8B-shaped directory)
and by the offline vLLM bundle (docs/offline.md): a model folder for
``vllm serve --load-format dummy`` on hosts that cannot download weights. No
network is needed.

    python3 -m vbtorch.tokbuild --out DIR --shape llama3-8b [--corpus stdlib|FILE|DIR ...] [--weights]
    python3 -m vbtorch.tokbuild --out DIR --config path/to/config.json --corpus stdlib

Every id below the model's vocab_size decodes: the trained BPE tokens come first,
plain filler tokens fill the ids the corpus did not reach, and a block of special
tokens (bos, eos, chat markers, reserved) sits where the config's bos/eos ids are.
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

CHATML_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Token families: the names of bos/eos, the chat markers placed in the special block,
# and the chat template. Llama 3's names for llama-like models, ChatML's for Qwen.
FAMILIES = {
    "llama3": {
        "bos": "<|begin_of_text|>", "eos": "<|end_of_text|>", "add_bos": True,
        "extra": ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"], "template": LLAMA3_TEMPLATE,
    },
    "chatml": {
        # Qwen's tokenizer adds no BOS; its config's bos id is <|endoftext|>.
        "bos": "<|endoftext|>", "eos": "<|im_end|>", "add_bos": False,
        "extra": ["<|im_start|>"], "template": CHATML_TEMPLATE,
    },
}

# A block of special ids at the top of the vocabulary (Llama 3: 256, Qwen: 293) is
# reserved whole when bos/eos lie within this many ids of vocab_size (and within its
# top quarter).
SPECIAL_BLOCK_MAX = 1024


def _qwen3_30b_a3b_instruct_2507_fp8() -> dict:
    """The config of Qwen/Qwen3-30B-A3B-Instruct-2507-FP8, value by value from the sources below.

    The model's own config.json (https://huggingface.co/Qwen/Qwen3-30B-A3B-Instruct-2507-FP8)
    could not be read from here; every value comes from a published source about it or
    about its FP8 / 2507 siblings of the same architecture:
      [card]  the model card of Qwen/Qwen3-30B-A3B-Instruct-2507 (copy in GitHub
              peterhan91/mimic_skills, docs/qwen3-a3b.md): 48 layers, 32 query / 4 KV heads,
              128 experts, 8 active, 262,144 context.
      [t2507] config.json of Qwen/Qwen3-30B-A3B-Thinking-2507-FP8 as printed by transformers in
              https://github.com/xorbitsai/inference/issues/4032: architecture, hidden 2048,
              intermediate 6144, moe_intermediate 768, head_dim 128, bos 151643, eos 151645,
              max_position_embeddings 262144, decoder_sparse_step 1, mlp_only_layers [],
              norm_topk_prob, num_experts 128, num_experts_per_tok 8, and its quantization_config:
              activation_scheme "dynamic", fmt "e4m3", modules_to_not_convert = lm_head plus
              input_layernorm, mlp.gate and post_attention_layernorm of each layer.
      [fp8]   the official Qwen/Qwen3-30B-A3B-FP8 config quoted in
              https://github.com/vllm-project/llm-compressor/issues/1758 (same
              quantization_config layout) and Qwen's FP8 model cards ("fine-grained fp8
              quantization with block size of 128"): quant_method "fp8",
              weight_block_size [128, 128]. (The printed [t2507] text is cut after
              modules_to_not_convert, so these two come from [fp8].)
      [2507]  a transformers dump of Qwen3-30B-A3B-Thinking-2507's config (same 2507 base):
              vocab_size 151936, rms_norm_eps 1e-06, rope_theta 10000000,
              router_aux_loss_coef 0.001, tie_word_embeddings false, sliding_window null,
              max_window_layers 48, attention_bias false, hidden_act silu,
              initializer_range 0.02, use_cache true, use_sliding_window false, bfloat16.
    Not found in any source and so left out: transformers_version.
    """
    layers = 48
    not_convert = ["lm_head"]
    for i in range(layers):
        not_convert += [f"model.layers.{i}.input_layernorm", f"model.layers.{i}.mlp.gate",
                        f"model.layers.{i}.post_attention_layernorm"]
    return {
        "architectures": ["Qwen3MoeForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
        "bos_token_id": 151643, "decoder_sparse_step": 1, "eos_token_id": 151645, "head_dim": 128,
        "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 6144,
        "max_position_embeddings": 262144, "max_window_layers": 48, "mlp_only_layers": [],
        "model_type": "qwen3_moe", "moe_intermediate_size": 768, "norm_topk_prob": True,
        "num_attention_heads": 32, "num_experts": 128, "num_experts_per_tok": 8, "num_hidden_layers": layers,
        "num_key_value_heads": 4, "output_router_logits": False,
        "quantization_config": {
            "activation_scheme": "dynamic", "fmt": "e4m3", "modules_to_not_convert": not_convert,
            "quant_method": "fp8", "weight_block_size": [128, 128],
        },
        "rms_norm_eps": 1e-06, "rope_scaling": None, "rope_theta": 10000000, "router_aux_loss_coef": 0.001,
        "sliding_window": None, "tie_word_embeddings": False, "torch_dtype": "bfloat16", "use_cache": True,
        "use_sliding_window": False, "vocab_size": 151936,
    }


SHAPES = {
    # Meta-Llama-3-8B's config.json (dimensions, rope scaling absent in 3.0)
    "llama3-8b": {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 128256, "hidden_size": 4096,
        "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
        "max_position_embeddings": 8192, "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "tie_word_embeddings": False,
        "hidden_act": "silu", "attention_bias": False, "bos_token_id": 128000, "eos_token_id": 128001,
        "torch_dtype": "bfloat16",
    },
    # Qwen3-30B-A3B-Instruct-2507-FP8 (issue #17's MoE model); sources in the function above
    "qwen3-30b-a3b-instruct-2507-fp8": _qwen3_30b_a3b_instruct_2507_fp8(),
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

# Where a shape's values come from, written into the model folder's README.md.
SOURCES = {
    "llama3-8b": "config.json of meta-llama/Meta-Llama-3-8B (dimensions; bos 128000, eos 128001)",
    "qwen3-30b-a3b-instruct-2507-fp8": (_qwen3_30b_a3b_instruct_2507_fp8.__doc__ or "").strip(),
}

_BUILTIN_TEXT = (
    "The quick brown fox jumps over the lazy dog. A journey of a thousand miles begins with a single step. "
    "Large language models generate text one token at a time; serving them well means batching many requests "
    "and managing the key-value cache. PagedAttention stores the cache in blocks; a contiguous cache reserves "
    "one region per request. Throughput, latency, time to first token and inter-token latency are measured. "
    "def main():\n    print('hello, world')\n    return 0\n# Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 1000 3.14159\n"
    "Questions and answers: What is the capital of France? Paris. Explain quantum computing in simple terms. "
)

_TEXT_SUFFIXES = (".py", ".txt", ".md", ".rst")


def family_of(cfg: dict) -> str:
    """Family_of names the token family (FAMILIES) of a config: ChatML for Qwen models, else Llama 3."""
    return "chatml" if str(cfg.get("model_type", "")).startswith("qwen") else "llama3"


def corpus_files(corpus: list[str] | None) -> list[str]:
    """Corpus_files expands the corpus arguments: files as given, folders to their text files, "stdlib" to Python's."""
    out: list[str] = []
    for c in corpus or []:
        if c == "stdlib":
            c = os.path.dirname(os.__file__)
        if os.path.isdir(c):
            for root, dirs, files in os.walk(c):
                dirs[:] = sorted(d for d in dirs if d not in ("__pycache__", "site-packages"))
                out += [os.path.join(root, f) for f in sorted(files) if f.endswith(_TEXT_SUFFIXES)]
        elif os.path.isfile(c):
            out.append(c)
        else:
            raise ValueError(f"tokbuild: corpus {c!r} is neither a file, a folder nor 'stdlib'")
    return out


def special_layout(vocab: int, bos_id: int, eos_ids: list[int], family: str) -> dict[int, str]:
    """Special_layout maps each special id to its token: bos, eos, the family's chat markers, reserved fillers.

    When bos/eos lie near the top of the vocabulary, the whole block from the lowest of
    them to vocab_size is special (as in Llama 3 and Qwen); otherwise only bos, eos and
    the chat markers (taken from the top ids) are.
    """
    fam = FAMILIES[family]
    ids = [bos_id, *eos_ids]
    for i in ids:
        if not 0 <= i < vocab:
            raise ValueError(f"tokbuild: special id {i} outside the vocabulary [0, {vocab})")
    names: dict[int, str] = {}
    names[bos_id] = fam["bos"]
    names[eos_ids[0]] = fam["eos"]
    for k, i in enumerate(eos_ids[1:]):
        names.setdefault(i, f"<|extra_eos_{k}|>")
    whole = vocab - min(ids) <= min(SPECIAL_BLOCK_MAX, vocab // 4)
    block = range(min(ids), vocab) if whole else range(vocab - 1, -1, -1)
    free = (i for i in block if i not in names)
    for name in fam["extra"]:
        names[next(free)] = name
    if whole:
        k = 0
        for i in block:
            if i not in names:
                names[i] = f"<|reserved_special_token_{k}|>"
                k += 1
    return names


def build_tokenizer(out_dir: str, vocab: int, bos_id: int, eos_id: int | list[int], corpus: list[str] | None = None,
                    family: str = "llama3") -> None:
    """Build_tokenizer trains a byte-level BPE on ``corpus`` and saves exactly ``vocab`` tokens to ``out_dir``.

    Special tokens sit at ``bos_id``/``eos_id`` (special_layout); the trained tokens
    take the other ids from 0 upwards and plain filler tokens the rest, so that every
    id the model can emit decodes. Writes tokenizer.json, tokenizer_config.json and the
    chat template (transformers' PreTrainedTokenizerFast format).
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

    eos_ids = eos_id if isinstance(eos_id, list) else [eos_id]
    specials = special_layout(vocab, bos_id, eos_ids, family)
    plain_ids = [i for i in range(vocab) if i not in specials]
    if len(plain_ids) < 256:
        raise ValueError(f"tokbuild: vocab_size {vocab} leaves {len(plain_ids)} ids for the BPE, fewer than its 256-byte alphabet")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=len(plain_ids), min_frequency=1, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[],
    )
    files = corpus_files(corpus)

    def texts():
        for fn in files:
            with open(fn, encoding="utf-8", errors="replace") as f:
                while True:
                    block = f.read(1 << 20)
                    if not block:
                        break
                    yield block
        for _ in range(50):
            yield _BUILTIN_TEXT

    tok.train_from_iterator(texts(), trainer=trainer)
    spec = json.loads(tok.to_str())
    learned = sorted(spec["model"]["vocab"].items(), key=lambda kv: kv[1])
    if len(learned) > len(plain_ids):
        raise ValueError(f"tokbuild: trained {len(learned)} tokens, more than the {len(plain_ids)} plain ids")
    # Renumber the trained tokens into the plain ids, fill the rest with visible filler
    # tokens (merge-unreachable, so encoding never produces them) and put the special
    # tokens into the model vocabulary at their ids too, so that ids are exact.
    new_vocab = {t: plain_ids[k] for k, (t, _) in enumerate(learned)}
    for i in plain_ids[len(learned):]:
        name = f"<filler_{i}>"
        while name in new_vocab:
            name = "_" + name
        new_vocab[name] = i
    for i, name in specials.items():
        if name in new_vocab:
            raise ValueError(f"tokbuild: special token {name} was also learned from the corpus")
        new_vocab[name] = i
    spec["model"]["vocab"] = new_vocab
    spec["added_tokens"] = [
        {"id": i, "content": name, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True}
        for i, name in sorted(specials.items())
    ]
    tok = Tokenizer.from_str(json.dumps(spec))
    fam = FAMILIES[family]
    if fam["add_bos"]:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{fam['bos']} $A", pair=f"{fam['bos']} $A {fam['bos']} $B",
            special_tokens=[(fam["bos"], bos_id)],
        )
    check_all_ids_decode(tok, vocab)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=fam["bos"] if fam["add_bos"] else None, eos_token=fam["eos"],
        pad_token=specials[bos_id] if family == "chatml" else fam["eos"], clean_up_tokenization_spaces=False,
    )
    fast.chat_template = fam["template"]
    fast.save_pretrained(out_dir)
    print(f"tokbuild: {out_dir}: {len(learned)} trained tokens from {len(files)} corpus files, "
          f"{len(plain_ids) - len(learned)} fillers, {len(specials)} specials ({family})", file=sys.stderr)


def check_all_ids_decode(tok, vocab: int) -> None:
    """Check_all_ids_decode raises unless the tokenizer has exactly ``vocab`` ids and each decodes to text."""
    if tok.get_vocab_size() != vocab:
        raise ValueError(f"tokbuild: tokenizer has {tok.get_vocab_size()} ids, the model {vocab}")
    texts = tok.decode_batch([[i] for i in range(vocab)], skip_special_tokens=False)
    bad = [i for i, t in enumerate(texts) if not t]
    if bad:
        raise ValueError(f"tokbuild: {len(bad)} ids decode to nothing, e.g. {bad[:5]}")


def build_model_dir(out_dir: str, shape: str | dict, corpus: list[str] | None = None, weights: bool = False,
                    seed: int = 0, tokenizer_from: str | None = None) -> str:
    """Build_model_dir writes config.json, generation_config.json and a tokenizer (and random safetensors weights)."""
    cfg = dict(SHAPES[shape]) if isinstance(shape, str) else dict(shape)
    for key in ("vocab_size", "bos_token_id", "eos_token_id"):
        if key not in cfg:
            raise ValueError(f"tokbuild: the config has no {key}")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    eos = cfg["eos_token_id"]
    eos_list = eos if isinstance(eos, list) else [eos]
    with open(os.path.join(out_dir, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": cfg["bos_token_id"], "eos_token_id": eos_list, "do_sample": False}, f, indent=2)
    if isinstance(shape, str) and shape in SOURCES:
        with open(os.path.join(out_dir, "README.md"), "w") as f:
            f.write(f"# {shape}: model folder without weights (vbtorch.tokbuild)\n\n"
                    "Serve it with `--load-format dummy`. The tokenizer is a local byte-level BPE, not the\n"
                    "model's own; every id decodes. Where config.json's values come from:\n\n"
                    f"{SOURCES[shape]}\n")
    if tokenizer_from:
        import shutil

        for fn in os.listdir(tokenizer_from):
            if fn.startswith("tokenizer") or fn == "special_tokens_map.json" or fn == "chat_template.jinja":
                shutil.copy(os.path.join(tokenizer_from, fn), out_dir)
    else:
        build_tokenizer(out_dir, cfg["vocab_size"], cfg["bos_token_id"], eos_list, corpus, family_of(cfg))
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
    g = p.add_mutually_exclusive_group()
    g.add_argument("--shape", choices=sorted(SHAPES), default=None, help="a built-in shape (default llama3-8b)")
    g.add_argument("--config", default=None, help="take the shape from this config.json instead")
    p.add_argument("--corpus", nargs="*", default=None,
                   help="text to train the BPE on: files, folders (their .py/.txt/.md/.rst files) or 'stdlib'")
    p.add_argument("--tokenizer-from", default=None, help="copy the tokenizer files from this directory instead of training")
    p.add_argument("--weights", action="store_true", help="also write random weights as safetensors (transformers init)")
    a = p.parse_args(argv)
    try:
        if a.config:
            with open(a.config) as f:
                shape: str | dict = json.load(f)
            if not isinstance(shape, dict):
                raise ValueError(f"tokbuild: {a.config} is not a JSON object")
        else:
            shape = a.shape or "llama3-8b"
        build_model_dir(a.out, shape, a.corpus, a.weights, tokenizer_from=a.tokenizer_from)
    except ImportError as e:
        print(f"tokbuild: {e}: the builder needs tokenizers and transformers "
              "(pip install -r backends/torch/requirements-test.txt)", file=sys.stderr)
        return 2
    except (OSError, ValueError) as e:
        msg = str(e)
        print(msg if msg.startswith("tokbuild:") else f"tokbuild: {msg}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
