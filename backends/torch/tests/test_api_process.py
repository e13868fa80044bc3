"""The same API checks against a server whose engine runs in its own process (--engine-process)."""

import pytest

from conftest import Server
from test_api import (  # noqa: F401 - collected again here, against the engine-process server
    test_client_disconnect_cancels_and_frees_slot,
    test_completion_exact_length_and_usage,
    test_health_models_metrics,
    test_streaming_chat_shape_and_continuous_usage,
)


@pytest.fixture(scope="module")
def server(models):
    s = Server(models["tiny-llama"], "--kv-budget-tokens", "2048", "--max-model-len", "256", "--max-num-seqs", "8",
               "--engine-process")
    yield s
    s.stop()


def test_engine_process_matches_in_process_output(server, inproc_server):
    body = {"prompt": [500, 1, 2, 3], "max_tokens": 12, "ignore_eos": True, "temperature": 0}
    st, d = server.post("/v1/completions", body)
    assert st == 200
    st, want = inproc_server.post("/v1/completions", body)
    assert st == 200 and d["choices"][0]["text"] == want["choices"][0]["text"]


def test_engine_process_startup_failure_exits_2(tmp_path):
    from test_api import run_cli

    (tmp_path / "config.json").write_text('{"model_type": "llama", "vocab_size": 512, "hidden_size": 64}')
    p = run_cli("--model", str(tmp_path), "--engine-process")
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
