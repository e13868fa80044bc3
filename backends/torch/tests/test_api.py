"""The HTTP API of a real server process on loopback: shapes, lengths, usage, errors, cancel, metrics, CLI."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from conftest import ROOT

CHAT = [{"role": "user", "content": "Say hello."}]


def test_health_models_metrics(server):
    assert server.get("/health") == (200, b"")
    st, body = server.get("/v1/models")
    d = json.loads(body)
    assert st == 200 and d["object"] == "list" and d["data"][0]["id"] == "tiny"
    assert d["data"][0]["max_model_len"] == 256
    m = server.metrics()
    for name in ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc",
                 "vllm:num_preemptions_total", "vllm:generation_tokens_total", "vbtorch:kv_capacity_tokens"):
        assert any(k.startswith(name + "{") for k in m), name
    assert server.metric("vbtorch:kv_capacity_tokens") == 2048


@pytest.mark.parametrize("max_tokens", [1, 5, 40])
def test_completion_exact_length_and_usage(server, max_tokens):
    st, d = server.post("/v1/completions", {"model": "tiny", "prompt": "hello world", "max_tokens": max_tokens,
                                            "ignore_eos": True, "temperature": 0})
    assert st == 200, d
    assert d["object"] == "text_completion" and d["id"].startswith("cmpl-") and d["model"] == "tiny"
    assert d["usage"]["completion_tokens"] == max_tokens
    assert d["usage"]["total_tokens"] == d["usage"]["prompt_tokens"] + max_tokens
    assert d["choices"][0]["finish_reason"] == "length" and isinstance(d["choices"][0]["text"], str)


def test_completion_token_ids_prompt_and_default_max_tokens(server):
    st, d = server.post("/v1/completions", {"prompt": [500, 10, 11, 12], "ignore_eos": True, "temperature": 0})
    assert st == 200, d
    assert d["usage"] == {"prompt_tokens": 4, "completion_tokens": 16, "total_tokens": 20}  # vLLM's default 16


def test_streaming_completion_matches_non_streaming(server):
    body = {"model": "tiny", "prompt": "the quick brown fox", "max_tokens": 12, "ignore_eos": True, "temperature": 0}
    _, whole = server.post("/v1/completions", body)
    st, events, done = server.stream("/v1/completions", dict(body, stream=True))
    assert st == 200 and done
    assert all(e["object"] == "text_completion" and e["id"] == events[0]["id"] for e in events)
    assert "usage" not in events[-1]  # not asked for
    assert "".join(e["choices"][0]["text"] for e in events) == whole["choices"][0]["text"]
    assert [e["choices"][0]["finish_reason"] for e in events][-1] == "length"
    assert all(e["choices"][0]["finish_reason"] is None for e in events[:-1])


def test_streaming_chat_shape_and_continuous_usage(server):
    st, events, done = server.stream("/v1/chat/completions", {
        "model": "tiny", "messages": CHAT, "max_tokens": 7, "ignore_eos": True, "stream": True, "temperature": 0,
        "stream_options": {"include_usage": True, "continuous_usage_stats": True}})
    assert st == 200 and done
    assert events[0]["object"] == "chat.completion.chunk" and events[0]["id"].startswith("chatcmpl-")
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert events[0]["usage"]["completion_tokens"] == 0
    content = events[1:-1]
    # one chunk per step, each with cumulative usage; a client that falls behind gets merged chunks, as in vLLM
    # (on a busy machine all 7 tokens once came in one chunk), so only the upper bound is fixed
    counts = [e["usage"]["completion_tokens"] for e in content]
    assert 1 <= len(content) <= 7 and counts == sorted(set(counts)) and counts[-1] == 7
    assert content[-1]["choices"][0]["finish_reason"] == "length"
    final = events[-1]
    assert final["choices"] == [] and final["usage"]["completion_tokens"] == 7
    assert final["usage"]["prompt_tokens"] == content[0]["usage"]["prompt_tokens"] > 0


def test_chat_non_streaming_include_usage_only(server):
    st, d = server.post("/v1/chat/completions", {"messages": CHAT, "max_completion_tokens": 3, "ignore_eos": True})
    assert st == 200 and d["object"] == "chat.completion"
    assert d["choices"][0]["message"]["role"] == "assistant" and d["usage"]["completion_tokens"] == 3
    st, events, _ = server.stream("/v1/chat/completions", {"messages": CHAT, "max_tokens": 3, "ignore_eos": True,
                                                          "stream": True, "stream_options": {"include_usage": True}})
    assert st == 200 and events[-1]["choices"] == [] and events[-1]["usage"]["completion_tokens"] == 3
    assert all("usage" not in e for e in events[:-1])


@pytest.mark.parametrize(
    "path,body,status,param,msg",
    [
        ("/v1/completions", {"prompt": [1] * 250, "max_tokens": 10}, 400, "input_tokens", "maximum context length is 256"),
        ("/v1/completions", {"prompt": "x", "stream_options": {"include_usage": True}}, 400, "stream_options", "Stream options"),
        ("/v1/completions", {"model": "other", "prompt": "x"}, 404, "model", "does not exist"),
        ("/v1/completions", {"prompt": "x", "max_tokens": 0}, 400, "max_tokens", "at least 1"),
        ("/v1/completions", {"prompt": "x", "max_tokens": "5"}, 400, "max_tokens", "integer"),
        ("/v1/completions", {"prompt": "x", "temperature": -1}, 400, "temperature", "temperature"),
        ("/v1/completions", {"prompt": "x", "top_p": 0}, 400, "top_p", "top_p"),
        ("/v1/completions", {"prompt": "x", "n": 2}, 400, "n", "n=1"),
        ("/v1/completions", {"prompt": "x", "max_tokens": 2, "min_tokens": 5}, 400, "min_tokens", "min_tokens"),
        ("/v1/completions", {"prompt": ["a", "b"]}, 400, "prompt", "one prompt"),
        ("/v1/completions", {"prompt": [1, -2]}, 400, "prompt", "non-negative"),
        ("/v1/completions", {"prompt": [1, 70000]}, 400, "prompt", "out of vocabulary"),
        ("/v1/completions", {}, 400, "prompt", "prompt"),
        ("/v1/chat/completions", {"messages": []}, 400, "messages", "non-empty"),
        ("/v1/chat/completions", {"messages": [{"content": "x"}]}, 400, "messages", "role"),
        ("/v1/completions", {"prompt": [1] * 250, "max_tokens": 10, "stream": True}, 400, "input_tokens", "maximum context"),
    ],
)
def test_errors_are_vllm_shaped(server, path, body, status, param, msg):
    st, d = server.post(path, body)
    assert st == status, d
    err = d["error"]
    assert err["code"] == status and err["param"] == param and msg in err["message"]
    assert err["type"] == ("NotFoundError" if status == 404 else "BadRequestError")


def test_invalid_json_body(server):
    st, d = server.post("/v1/completions", None, raw=b"{nope")
    assert st == 400 and "not valid JSON" in d["error"]["message"]
    st, d = server.post("/v1/completions", None, raw=b"[1, 2]")
    assert st == 400 and "JSON object" in d["error"]["message"]


def test_client_disconnect_cancels_and_frees_slot(server):
    before = server.metric("vllm:request_success_total", finished_reason="abort")
    s = socket.create_connection(("127.0.0.1", server.port))
    body = json.dumps({"prompt": "cancel me", "max_tokens": 200, "ignore_eos": True, "stream": True}).encode()
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    got = b""
    while got.count(b"data: ") < 3:
        got += s.recv(65536)
    assert server.metric("vbtorch:kv_reserved_tokens") > 0
    s.close()
    deadline = time.time() + 20
    while time.time() < deadline:
        if server.metric("vbtorch:kv_reserved_tokens") == 0 and \
                server.metric("vllm:request_success_total", finished_reason="abort") == before + 1:
            break
        time.sleep(0.05)
    assert server.metric("vbtorch:kv_reserved_tokens") == 0
    assert server.metric("vllm:request_success_total", finished_reason="abort") == before + 1
    assert server.metric("vllm:num_requests_running") == 0


def test_concurrent_requests_batch_and_match_alone(server):
    import concurrent.futures as cf

    bodies = [{"prompt": f"request number {i}", "max_tokens": 20, "ignore_eos": True, "temperature": 0}
              for i in range(6)]
    alone = [server.post("/v1/completions", b)[1]["choices"][0]["text"] for b in bodies]
    steps0 = server.metric("vbtorch:steps_total")
    with cf.ThreadPoolExecutor(6) as ex:
        together = list(ex.map(lambda b: server.post("/v1/completions", b)[1]["choices"][0]["text"], bodies))
    assert together == alone
    assert server.metric("vbtorch:steps_total") - steps0 < 6 * 20  # they shared steps
    assert server.metric("vbtorch:max_batch_size") >= 2


def run_cli(*args, timeout=120):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "vbtorch.server", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT, check=False)


@pytest.mark.parametrize(
    "args,msg",
    [
        (["--kv-policy", "paged", "--model", "x"], "invalid choice"),
        ([], "--model"),
        (["--model", "x", "--max-num-seqs", "0"], "--max-num-seqs must be at least 1"),
        (["--model", "x", "--kv-budget-frac", "1.5"], "--kv-budget-frac"),
        (["--model", "x", "--kv-budget-gib", "1", "--kv-budget-tokens", "5"], "not allowed with"),
    ],
)
def test_cli_bad_flags_exit_2(args, msg):
    p = run_cli(*args, timeout=60)
    assert p.returncode == 2 and msg in p.stderr and "Traceback" not in p.stderr


def test_cli_unusable_model_dir_exit_2(tmp_path, models):
    p = run_cli("--model", str(tmp_path / "missing"))
    assert p.returncode == 2 and "not a directory" in p.stderr and "Traceback" not in p.stderr, p.stderr
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    p = run_cli("--model", str(tmp_path))
    assert p.returncode == 2 and "not supported" in p.stderr and "Traceback" not in p.stderr, p.stderr
    p = run_cli("--model", models["tiny-llama"], "--attn", "flash", "--device", "cpu")
    assert p.returncode == 2 and "flash" in p.stderr and "Traceback" not in p.stderr, p.stderr


def test_random_bodies_never_500(server):
    """Random JSON values in every field end in 200/400/404, never a server error or a hang."""
    import random

    rng = random.Random(1234)
    values = [None, True, False, 0, 1, -1, 2.5, 1e9, "", "x", [], [1], ["a"], [[1, 2]], {}, {"a": 1}, [-1], "tiny"]
    keys = ["model", "prompt", "messages", "max_tokens", "max_completion_tokens", "min_tokens", "temperature", "top_p",
            "ignore_eos", "stream", "stream_options", "n", "logprobs", "return_token_ids"]
    for i in range(40):
        body = {k: rng.choice(values) for k in rng.sample(keys, rng.randint(0, len(keys)))}
        if rng.random() < 0.5:
            body["prompt"] = "hi"
        if isinstance(body.get("max_tokens"), (int, float)) and not isinstance(body.get("max_tokens"), bool):
            body["max_tokens"] = min(body["max_tokens"], 3)
        body.pop("max_completion_tokens", None) if body.get("max_completion_tokens") == 1e9 else None
        path = rng.choice(["/v1/completions", "/v1/chat/completions"])
        if body.get("stream") is True:
            st, _, _ = server.stream(path, body)
        else:
            st, _ = server.post(path, body)
        assert st in (200, 400, 404), (i, path, body, st)
    assert server.get("/health")[0] == 200
