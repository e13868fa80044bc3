"""The offline model-folder builder (vbtorch.tokbuild): every id decodes, specials sit at the config's ids."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from vbtorch import tokbuild


def _all_ids_decode(d: str) -> AutoTokenizer:
    cfg = json.loads(Path(os.path.join(d, "config.json")).read_text())
    tok = AutoTokenizer.from_pretrained(d)
    assert len(tok) == cfg["vocab_size"]
    texts = tok.batch_decode([[i] for i in range(cfg["vocab_size"])])
    empty = [i for i, t in enumerate(texts) if not t]
    assert not empty, f"ids that decode to nothing: {empty[:10]}"
    return tok


def _small(base: str, **over) -> dict:
    cfg = dict(tokbuild.SHAPES[base])
    cfg.update(over)
    return cfg


@pytest.mark.parametrize("name,cfg,bos,eos,markers", [
    # Llama 3 layout: a special block at the top (bos, eos, chat markers, reserved)
    ("llama", _small("tiny-llama", vocab_size=700, bos_token_id=600, eos_token_id=601),
     "<|begin_of_text|>", "<|end_of_text|>", ["<|start_header_id|>", "<|eot_id|>"]),
    # Qwen (ChatML): no BOS added, eos <|im_end|>, a second eos id
    ("qwen", _small("tiny-qwen3", vocab_size=700, bos_token_id=600, eos_token_id=[602, 601]),
     None, "<|im_end|>", ["<|im_start|>"]),
    # low bos/eos ids (Llama 2 style): trained tokens are renumbered around them
    ("low", _small("tiny-llama", vocab_size=600, bos_token_id=1, eos_token_id=2),
     "<|begin_of_text|>", "<|end_of_text|>", ["<|start_header_id|>"]),
])
def test_every_id_decodes_and_specials_sit_at_config_ids(tmp_path, name, cfg, bos, eos, markers):
    d = tokbuild.build_model_dir(str(tmp_path / name), cfg)
    tok = _all_ids_decode(d)
    eos_ids = cfg["eos_token_id"] if isinstance(cfg["eos_token_id"], list) else [cfg["eos_token_id"]]
    assert tok.convert_ids_to_tokens(eos_ids[0]) == eos
    assert tok.eos_token_id == eos_ids[0]
    if bos is None:
        assert tok.bos_token is None
        assert tok("hi")["input_ids"][0] != cfg["bos_token_id"]
    else:
        assert tok.bos_token_id == cfg["bos_token_id"] == tok.convert_tokens_to_ids(bos)
        assert tok("hi")["input_ids"][0] == cfg["bos_token_id"]
    for m in markers:
        assert tok.convert_tokens_to_ids(m) != tok.unk_token_id
    chat = tok.apply_chat_template([{"role": "user", "content": "hello"}], tokenize=False, add_generation_prompt=True)
    assert "hello" in chat and all(m in chat for m in markers)
    text = "def f(x):\n    return x + 1  # ünïcode\n"
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    gen = json.loads(Path(os.path.join(d, "generation_config.json")).read_text())
    assert gen["eos_token_id"] == eos_ids


def test_qwen3_moe_fp8_preset_has_the_published_values(tmp_path):
    cfg = tokbuild.SHAPES["qwen3-30b-a3b-instruct-2507-fp8"]
    want = {
        "architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe", "num_experts": 128,
        "num_experts_per_tok": 8, "num_hidden_layers": 48, "num_attention_heads": 32, "num_key_value_heads": 4,
        "head_dim": 128, "hidden_size": 2048, "moe_intermediate_size": 768, "vocab_size": 151936,
        "rope_theta": 10000000, "max_position_embeddings": 262144, "bos_token_id": 151643, "eos_token_id": 151645,
    }
    assert {k: cfg[k] for k in want} == want
    q = cfg["quantization_config"]
    assert (q["quant_method"], q["fmt"], q["activation_scheme"], q["weight_block_size"]) == ("fp8", "e4m3", "dynamic", [128, 128])
    skip = q["modules_to_not_convert"]
    assert skip[0] == "lm_head" and len(skip) == 1 + 3 * 48 and "model.layers.47.mlp.gate" in skip
    # the builder writes it with a README that cites the sources, and a ChatML tokenizer
    d = tokbuild.build_model_dir(str(tmp_path / "q"), "qwen3-30b-a3b-instruct-2507-fp8")
    assert json.loads(Path(os.path.join(d, "config.json")).read_text()) == cfg
    readme = Path(d, "README.md").read_text()
    assert "xorbitsai/inference/issues/4032" in readme and "llm-compressor/issues/1758" in readme
    tok = _all_ids_decode(d)
    assert tok.convert_ids_to_tokens([151643, 151644, 151645]) == ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def test_main_takes_any_config_json(tmp_path, capsys):
    cfg = _small("tiny-qwen2", vocab_size=640, bos_token_id=600, eos_token_id=601)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    assert tokbuild.main(["--out", str(tmp_path / "m"), "--config", str(path)]) == 0
    assert json.loads(Path(tmp_path / "m" / "config.json").read_text()) == cfg
    _all_ids_decode(str(tmp_path / "m"))
    path.write_text("[1, 2]")
    assert tokbuild.main(["--out", str(tmp_path / "n"), "--config", str(path)]) == 2
    assert "is not a JSON object" in capsys.readouterr().err
    path.write_text(json.dumps({"vocab_size": 640}))
    assert tokbuild.main(["--out", str(tmp_path / "n"), "--config", str(path)]) == 2
    assert "the config has no bos_token_id" in capsys.readouterr().err


def test_corpus_arguments(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "b.bin").write_bytes(b"\0")
    assert tokbuild.corpus_files([str(tmp_path)]) == [str(tmp_path / "a.py")]
    assert any(f.endswith(os.sep + "os.py") for f in tokbuild.corpus_files(["stdlib"]))
    with pytest.raises(ValueError, match="neither a file, a folder nor 'stdlib'"):
        tokbuild.corpus_files([str(tmp_path / "missing")])
    with pytest.raises(ValueError, match="fewer than its 256-byte alphabet"):
        tokbuild.build_model_dir(str(tmp_path / "tiny"), _small("tiny-llama", vocab_size=260, bos_token_id=1, eos_token_id=2))


def test_make_dummy_model(tmp_path):
    """`make dummy-model` (docs/offline.md) runs the builder; a small shape and the built-in text keep it fast."""
    import subprocess
    import sys

    repo = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
    r = subprocess.run(["make", "-s", "dummy-model", "MODEL=tiny-qwen3", "CORPUS=", f"MODELS_DIR={tmp_path}",
                        f"PY={sys.executable}"], cwd=repo, capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stderr
    d = str(tmp_path / "tiny-qwen3")
    assert json.loads(Path(os.path.join(d, "config.json")).read_text()) == tokbuild.SHAPES["tiny-qwen3"]
    _all_ids_decode(d)


def test_missing_tokenizers_is_a_clear_error(tmp_path, monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "tokenizers", None)  # import tokenizers now raises ImportError
    assert tokbuild.main(["--out", str(tmp_path / "m"), "--shape", "tiny-llama"]) == 2
    assert "needs tokenizers and transformers (pip install -r backends/torch/requirements-test.txt)" in capsys.readouterr().err
