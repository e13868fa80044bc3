"""KV budget resolution at startup (flags → capacity in tokens), without a server process."""

import pytest

from vbtorch.server import StartupError, build, free_memory, parse_args

BPT = 2 * 2 * 2 * 16 * 4  # tiny-llama: layers × (k, v) × kv_heads × head_dim × fp32 bytes = 512


@pytest.mark.parametrize(
    "flags,want",
    [
        (["--kv-budget-tokens", "1000"], 1000),
        (["--kv-budget-gib", str(600 * BPT / 2**30)], 600),
        (["--kv-budget-tokens", "10000000"], 4 * 256),  # capped at max_num_seqs × max_model_len
        (["--kv-budget-gib", "1000"], 4 * 256),
    ],
)
def test_budget_to_capacity(models, flags, want):
    args = parse_args(["--model", models["tiny-llama"], "--device", "cpu", "--max-model-len", "256",
                       "--max-num-seqs", "4", *flags])
    _, tok, eng = build(args, post=lambda f: f())
    assert eng.alloc.capacity == want
    assert eng.kv.shape == (2, want, 2 * 2 * 16)
    assert tok.eos_token_id == 501 and 501 in eng.eos_ids


def test_budget_fraction_of_free_memory(models):
    args = parse_args(["--model", models["tiny-llama"], "--device", "cpu", "--max-model-len", "256",
                       "--max-num-seqs", "100000", "--kv-budget-frac", "0.0001"])
    _, _, eng = build(args, post=lambda f: f())
    want = int(0.0001 * free_memory("cpu") // BPT)
    assert abs(eng.alloc.capacity - want) <= want * 0.2 + 16  # free memory moves a little between the two reads


def test_budget_below_one_token(models):
    args = parse_args(["--model", models["tiny-llama"], "--device", "cpu", "--kv-budget-gib", "1e-9"])
    with pytest.raises(StartupError, match="smaller than one token"):
        build(args, post=lambda f: f())
