"""Engine: greedy output equals transformers' generate, batching joins, KV accounting per policy."""

from __future__ import annotations

import threading
import time

import pytest
import torch
from transformers import AutoModelForCausalLM

from vbtorch.engine import Engine, EngineConfig, EngineError, Request
from vbtorch.model import Model, ModelError, read_config

EOS = 501


def make_engine(model_dir, **kw):
    cfg = {"kv_policy": "oracle", "kv_capacity_tokens": 4096, "max_num_seqs": 16, "max_batch_tokens": 4096,
           "max_model_len": 256}
    cfg.update(kw)
    model = Model(model_dir, "auto", "cpu", torch.float32, cfg["max_model_len"] + 1)
    return Engine(model, EngineConfig(**cfg), {EOS}, post=lambda f: f())


class Collector:
    """Collector is a request sink that records outputs and signals completion."""

    def __init__(self, req: Request):
        self.req, self.tokens, self.done, self.reason = req, [], threading.Event(), None
        req.sink = self

    def __call__(self, toks, fin, reason):
        self.tokens += toks
        if fin:
            self.reason = reason
            self.done.set()


def greedy(prompt, n, **kw):
    return Request(prompt_ids=list(prompt), max_tokens=n, temperature=0.0, ignore_eos=True, **kw)


def drive(eng: Engine, reqs: list[Request]):
    """Drive runs steps in this thread until the given requests have finished."""
    for r in reqs:
        eng.check(r)
        eng.submit(r)
    eng.waiting.extend(eng._inbox)
    eng._inbox.clear()
    while any(not r.finished for r in reqs):
        eng.step()


PROMPTS = [[500, 5, 6, 7, 8, 9], [500, 100, 200], [500] + list(range(10, 50)), [500, 42]]


@pytest.mark.parametrize("shape", ["tiny-llama", "tiny-qwen2", "tiny-qwen3"])
def test_greedy_equals_transformers_generate(models, shape):
    d = models[shape]
    eng = make_engine(d)
    reqs = [greedy(p, 24) for p in PROMPTS]
    drive(eng, reqs)  # all four prefilled together (packed) then decoded as one batch
    hf = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
    for p, r in zip(PROMPTS, reqs):
        ref = hf.generate(torch.tensor([p]), max_new_tokens=24, min_new_tokens=24, do_sample=False,
                          pad_token_id=0)[0, len(p):].tolist()
        assert r.output_ids == ref, (shape, p)
        assert r.finish_reason == "length"


def test_joining_mid_batch_gives_same_tokens_as_alone(models):
    d = models["tiny-llama"]
    alone = {}
    for i, p in enumerate(PROMPTS):
        eng = make_engine(d)
        r = greedy(p, 20)
        drive(eng, [r])
        alone[i] = r.output_ids
    eng = make_engine(d)
    first = [greedy(PROMPTS[0], 20), greedy(PROMPTS[1], 20)]
    for r in first:
        eng.submit(r)
    eng.waiting.extend(eng._inbox)
    eng._inbox.clear()
    for _ in range(5):
        eng.step()
    late = [greedy(PROMPTS[2], 20), greedy(PROMPTS[3], 20)]
    drive(eng, late)  # joins a running batch
    while any(not r.finished for r in first):
        eng.step()
    assert eng.stats.max_running == 4
    for i, r in enumerate(first + late):
        assert r.output_ids == alone[i], i


@pytest.mark.parametrize("n", [1, 2, 7, 33])
def test_exact_output_lengths(models, n):
    eng = make_engine(models["tiny-llama"])
    reqs = [greedy(PROMPTS[0], n), greedy(PROMPTS[2], n)]
    drive(eng, reqs)
    assert [len(r.output_ids) for r in reqs] == [n, n]
    assert eng.alloc.reserved == 0 and eng.stats.generation_tokens == 2 * n


def test_eos_stops_and_min_tokens_holds_it_back(models):
    eng = make_engine(models["tiny-llama"])
    r = greedy(PROMPTS[1], 30)
    drive(eng, [r])
    forced = r.output_ids[4]
    # pretend that token is EOS: generation must stop right there...
    eng2 = make_engine(models["tiny-llama"])
    eng2.eos_ids = [forced]
    eng2._eos_t = torch.tensor([forced])
    r2 = Request(prompt_ids=PROMPTS[1], max_tokens=30, temperature=0.0)
    drive(eng2, [r2])
    first = r.output_ids.index(forced)
    assert r2.output_ids == r.output_ids[: first + 1] and r2.finish_reason == "stop"
    # ...unless min_tokens forbids EOS until then
    eng3 = make_engine(models["tiny-llama"])
    eng3.eos_ids = [forced]
    eng3._eos_t = torch.tensor([forced])
    r3 = Request(prompt_ids=PROMPTS[1], max_tokens=30, min_tokens=first + 3, temperature=0.0)
    drive(eng3, [r3])
    assert len(r3.output_ids) >= first + 3
    assert forced not in r3.output_ids[: first + 2]


def test_sampling_temperature_top_p(models):
    eng = make_engine(models["tiny-llama"], seed=7)
    reqs = [Request(prompt_ids=PROMPTS[0], max_tokens=16, temperature=0.8, top_p=0.9, ignore_eos=True),
            greedy(PROMPTS[0], 16)]
    drive(eng, reqs)
    assert all(0 <= t < 512 for t in reqs[0].output_ids)
    ref = make_engine(models["tiny-llama"])
    g = greedy(PROMPTS[0], 16)
    drive(ref, [g])
    assert reqs[1].output_ids == g.output_ids  # greedy rows unaffected by sampled rows
    # top_p tiny keeps only the most likely token: sampling becomes greedy
    eng2 = make_engine(models["tiny-llama"], seed=3)
    r = Request(prompt_ids=PROMPTS[0], max_tokens=16, temperature=1.0, top_p=1e-6, ignore_eos=True)
    drive(eng2, [r])
    assert r.output_ids == g.output_ids


@pytest.mark.parametrize(
    "policy,reserve_each,admitted",
    [("oracle", 40, 25), ("pow2", 64, 15), ("max", 256, 3)],  # capacity 1000 tokens
)
def test_admission_per_policy_within_budget(models, policy, reserve_each, admitted):
    eng = make_engine(models["tiny-llama"], kv_policy=policy, kv_capacity_tokens=1000, max_num_seqs=100)
    reqs = [greedy([500] + [7] * 19, 20) for _ in range(30)]
    for r in reqs:
        eng.check(r)
        eng.submit(r)
    eng.waiting.extend(eng._inbox)
    eng._inbox.clear()
    eng.step()
    assert eng.stats.running == admitted
    assert len(eng.waiting) == 30 - admitted
    assert eng.alloc.reserved == admitted * reserve_each <= 1000
    assert reqs[0].reserved == reserve_each
    while any(not r.finished for r in reqs):
        eng.step()
        assert eng.alloc.reserved <= 1000
    assert eng.alloc.reserved == 0 and eng.alloc.regions == 0 and eng.alloc.largest_hole() == 1000
    assert [len(r.output_ids) for r in reqs] == [20] * 30


def test_max_num_seqs_and_batch_tokens_throttle(models):
    eng = make_engine(models["tiny-llama"], max_num_seqs=3, max_batch_tokens=50)
    reqs = [greedy([500] + [9] * 19, 4) for _ in range(6)]
    for r in reqs:
        eng.submit(r)
    eng.waiting.extend(eng._inbox)
    eng._inbox.clear()
    eng.step()
    assert eng.stats.running == 2  # 2 prompts of 20 tokens fit in 50 batch tokens, a third does not
    eng.step()
    assert eng.stats.running == 3  # max_num_seqs
    while any(not r.finished for r in reqs):
        eng.step()
        assert eng.stats.running <= 3


def test_static_batching_waits_for_the_whole_batch(models):
    eng = make_engine(models["tiny-llama"], batching="static", max_num_seqs=2)
    reqs = [greedy(PROMPTS[0], 3), greedy(PROMPTS[1], 8), greedy(PROMPTS[2], 2)]
    for r in reqs:
        eng.submit(r)
    eng.waiting.extend(eng._inbox)
    eng._inbox.clear()
    eng.step()
    assert eng.stats.running == 2
    for _ in range(5):  # the first request has finished, but static mode admits nothing mid-batch
        eng.step()
    assert reqs[0].finished and not reqs[2].region and eng.stats.running == 1
    while not reqs[1].finished:
        eng.step()
    eng.step()
    assert reqs[2].region is not None or reqs[2].finished


def test_threaded_engine_cancel_frees_slot_at_once(models):
    eng = make_engine(models["tiny-llama"], kv_capacity_tokens=300)
    eng.start()
    try:
        long = greedy(PROMPTS[0], 200)
        c = Collector(long)
        eng.submit(long)
        deadline = time.time() + 30
        while len(c.tokens) < 3 and time.time() < deadline:
            time.sleep(0.005)
        assert eng.alloc.reserved == 206
        waiting = greedy(PROMPTS[1], 100)  # needs 103 tokens: waits, the cache is nearly full
        cw = Collector(waiting)
        eng.submit(waiting)
        time.sleep(0.05)
        assert waiting.region is None
        eng.abort(long)
        assert cw.done.wait(30), "the waiting request should run once the cancelled one freed its region"
        assert long.finish_reason == "abort" and not c.done.is_set()
        assert len(cw.tokens) == 100 and cw.reason == "length"
        assert eng.alloc.reserved == 0
        assert eng.stats.success["abort"] == 1
    finally:
        eng.stop()


def test_check_rejects(models):
    eng = make_engine(models["tiny-llama"], kv_capacity_tokens=100, kv_policy="max")
    with pytest.raises(EngineError, match="maximum context length is 256"):
        eng.check(greedy([1] * 200, 100))
    with pytest.raises(EngineError, match="KV reservation of 256"):
        eng.check(greedy([1] * 5, 5))
    eng2 = make_engine(models["tiny-llama"])
    with pytest.raises(EngineError, match="out of vocabulary"):
        eng2.check(greedy([1, 99999], 5))
    with pytest.raises(EngineError, match="empty"):
        eng2.check(greedy([], 5))


def test_dummy_weights_and_bad_dirs(models, tmp_path):
    m = Model(models["tiny-qwen3"], "dummy", "cpu", torch.float32, 64)
    assert m.shape.qk_norm and m.layers[0].wqkv.shape == (4 * 32 + 2 * 2 * 32, 64)
    eng = Engine(m, EngineConfig(kv_capacity_tokens=512, max_model_len=63), {EOS}, post=lambda f: f())
    r = greedy(PROMPTS[0], 5)
    drive(eng, [r])
    assert len(r.output_ids) == 5
    with pytest.raises(ModelError, match="no config.json"):
        read_config(str(tmp_path))
    (tmp_path / "config.json").write_text('{"model_type": "gpt2"}')
    with pytest.raises(ModelError, match="not supported"):
        read_config(str(tmp_path))
    (tmp_path / "config.json").write_text('{"model_type": "llama", "hidden_size": 8}')
    with pytest.raises(ModelError, match="lacks"):
        read_config(str(tmp_path))
