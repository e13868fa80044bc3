"""Incremental detokenization gives the same text as decoding everything at once."""

import pytest
from transformers import AutoTokenizer

from vbtorch.detok import Detokenizer, StreamDetokenizer, make_detokenizer

TEXTS = ["hello world, this is a test", "ünïcödé 日本語 emoji 🎉 done", "code:\n    return 0\n"]


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("kind", ["offsets", "stream", "auto"])
def test_incremental_equals_full(models, text, kind):
    tok = AutoTokenizer.from_pretrained(models["tiny-llama"])
    ids = tok(text, add_special_tokens=False)["input_ids"]
    d = {"offsets": lambda: Detokenizer(tok), "stream": lambda: StreamDetokenizer(tok),
         "auto": lambda: make_detokenizer(tok)}[kind]()
    out = "".join(d.push([i]) for i in ids) + d.flush()
    assert out == tok.decode(ids, skip_special_tokens=True)
    for piece in out:
        assert piece != "\ufffd"


def test_detokenizer_in_chunks(models):
    tok = AutoTokenizer.from_pretrained(models["tiny-llama"])
    ids = tok(TEXTS[1], add_special_tokens=False)["input_ids"]
    d = Detokenizer(tok)
    out = d.push(ids[:3]) + d.push(ids[3:7]) + d.push(ids[7:]) + d.flush()
    assert out == tok.decode(ids)
