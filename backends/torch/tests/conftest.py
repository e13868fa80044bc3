"""Shared fixtures: tiny random models built from configs, and a real server process on loopback."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time

import pytest
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from vbtorch.tokbuild import build_model_dir

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    """Models maps shape name -> directory with config, tokenizer and random safetensors weights."""
    base = tmp_path_factory.mktemp("models")
    out = {}
    llama = str(base / "tiny-llama")
    build_model_dir(llama, "tiny-llama", weights=True, seed=1)
    out["tiny-llama"] = llama
    for name in ("tiny-qwen2", "tiny-qwen3"):
        d = str(base / name)
        build_model_dir(d, name, weights=True, seed=2, tokenizer_from=llama)
        out[name] = d
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """Server is a vbtorch server process on loopback, with small HTTP helpers."""

    def __init__(self, model_dir: str, *flags: str):
        # The port is free when picked, but the server binds it only after
        # loading torch and the model, seconds later; meanwhile another
        # process (make test runs the Go tests beside pytest) may take it.
        # So the server's own "serving ... on http://host:port" line, written
        # once it listens, says it is ours before /health is asked, and a
        # server that lost its port is started again on another.
        for _ in range(5):
            if self._start(model_dir, flags):
                return
        raise RuntimeError("server could not get a free port in 5 tries")

    def _start(self, model_dir: str, flags) -> bool:
        self.port = free_port()
        # Open for the server's lifetime (closed in stop), not a with block.
        self.log = open(os.path.join(os.path.dirname(model_dir), f"server-{self.port}.log"), "w+")  # noqa: SIM115
        cmd = [sys.executable, "-m", "vbtorch.server", "--model", model_dir, "--port", str(self.port),
               "--served-model-name", "tiny", "--device", "cpu", *flags]
        env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        ready = f"on http://127.0.0.1:{self.port}"
        deadline = time.time() + 90
        while time.time() < deadline:
            self.log.seek(0)
            out = self.log.read()
            if self.proc.poll() is not None:
                self.log.close()
                if "cannot listen on" in out:
                    return False
                raise RuntimeError(f"server exited: {out[-2000:]}")
            if ready in out:
                try:
                    if self.get("/health")[0] == 200:
                        return True
                except OSError:
                    pass
            time.sleep(0.2)
        raise RuntimeError("server did not become healthy in 90 s")

    def conn(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)

    def get(self, path):
        c = self.conn()
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        c.close()
        return r.status, body

    def post(self, path, body, raw: bytes | None = None):
        """Post sends JSON and returns (status, parsed JSON or raw bytes)."""
        c = self.conn()
        data = raw if raw is not None else json.dumps(body).encode()
        c.request("POST", path, body=data, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        out = r.read()
        c.close()
        try:
            return r.status, json.loads(out)
        except ValueError:
            return r.status, out

    def stream(self, path, body):
        """Stream returns (status, list of parsed SSE data payloads, saw_done)."""
        c = self.conn()
        c.request("POST", path, body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        r = c.getresponse()
        if r.status != 200:
            out = r.read()
            c.close()
            return r.status, json.loads(out), False
        assert r.getheader("Content-Type").startswith("text/event-stream")
        events, done = [], False
        for line in r:
            line = line.strip()
            if not line:
                continue
            assert line.startswith(b"data: "), line
            payload = line[6:]
            if payload == b"[DONE]":
                done = True
                break
            events.append(json.loads(payload))
        c.close()
        return r.status, events, done

    def metrics(self) -> dict[str, float]:
        _, body = self.get("/metrics")
        out = {}
        for ln in body.decode().splitlines():
            if ln and not ln.startswith("#"):
                k, v = ln.rsplit(" ", 1)
                out[k] = float(v)
        return out

    def metric(self, name: str, **labels) -> float:
        for k, v in self.metrics().items():
            if k.split("{")[0] == name and all(f'{a}="{b}"' in k for a, b in labels.items()):
                return v
        raise KeyError(name)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@pytest.fixture(scope="session")
def inproc_server(models):
    """Inproc_server is one in-process-engine server for the whole session (each start costs seconds)."""
    s = Server(models["tiny-llama"], "--kv-budget-tokens", "2048", "--max-model-len", "256", "--max-num-seqs", "8")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def server(inproc_server):
    """Server is the server a module's API tests talk to (test_api_process overrides it)."""
    return inproc_server
