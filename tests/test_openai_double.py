"""The shared OpenAI-compatible test double (tests/support/openai_double.py): the parts the
gateway and teardown scenarios rely on (counter text, per-request delays, X-Upstream,
request-id log lines, the paths the gateway must hide, SIGTERM drain); the evaluation's
parts are tested in test_evaluation_modules.py."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.support import openai_double as double
from tests.support.openai_double import serving

KEY = "double-test-key-0123456789"
DOUBLE = Path(double.__file__)


def _request(
    base: str, method: str, path: str, body: dict | None = None, key: str = KEY
) -> tuple[int, dict[str, str], bytes]:
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    headers = {"Authorization": f"Bearer {key}", "X-Request-Id": "rid-1"}
    conn.request(method, path, body=json.dumps(body) if body else None, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data


def _events(data: bytes) -> list[str]:
    return [line[6:] for line in data.decode().splitlines() if line.startswith("data: ")]


def test_counter_text_names_the_backend_and_takes_the_request_delay() -> None:
    settings = double.Settings(
        "test-model", KEY, ttft_ms=0, token_ms=0, text="counter", name="8001"
    )
    body = {
        "model": "test-model",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 4,
        "stream": True,
        "metadata": {"delay_s": "0.1"},
    }
    with serving(settings) as base:
        t0 = time.monotonic()
        status, headers, data = _request(base, "POST", "/v1/chat/completions", body)
        took = time.monotonic() - t0
    events = _events(data)
    assert status == 200 and headers["x-upstream"] == "8001"
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert "".join(c["choices"][0]["delta"]["content"] for c in chunks) == "tok0 tok1 tok2 tok3 "
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert 0.35 <= took < 2.0, took  # first token after 0.1 s, then 0.1 s apart


def test_key_model_and_hidden_paths() -> None:
    settings = double.Settings("test-model", KEY, ttft_ms=0, token_ms=0)
    with serving(settings) as base:
        assert _request(base, "GET", "/v1/models", key="wrong")[0] == 401
        ok = {"model": "test-model", "prompt": "x", "max_tokens": 2}
        assert _request(base, "POST", "/v1/completions", {**ok, "model": "other"})[0] == 404
        assert _request(base, "POST", "/v1/completions", ok)[0] == 200
        for path in ("/version", "/docs"):
            assert _request(base, "GET", path)[0] == 200
        assert _request(base, "POST", "/tokenize", {"prompt": "x"})[0] == 200
        status, _, metrics = _request(base, "GET", "/metrics")
    text = metrics.decode()
    assert status == 200
    assert 'vllm:request_success_total{engine="0",model_name="test-model"' in text
    assert 'vllm:generation_tokens_total{engine="0",model_name="test-model"} 2.0' in text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_sigterm_drains_the_stream_in_flight_then_exits(tmp_path: Path) -> None:
    """As a process (the way the scenarios run it): a stream in flight when SIGTERM comes
    finishes; new connections are refused; the log names each request id."""
    port = _free_port()
    env = {**os.environ, "UPSTREAM_KEY": KEY}
    args = [sys.executable, str(DOUBLE), "--port", str(port), "--model", "test-model"]
    args += ["--key-env", "UPSTREAM_KEY", "--text", "counter", "--ttft-ms", "100"]
    args += ["--token-ms", "100", "--shutdown-timeout-s", "5", "--log-requests"]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while True:
        try:
            _request(base, "GET", "/health")
            break
        except OSError:
            assert time.monotonic() < deadline, "the double did not start"
            time.sleep(0.05)
    result: dict[str, object] = {}

    def stream() -> None:
        body = {"model": "test-model", "prompt": "x", "max_tokens": 10, "stream": True}
        result["answer"] = _request(base, "POST", "/v1/completions", body)

    worker = threading.Thread(target=stream)
    worker.start()
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    worker.join(timeout=10)
    out, _ = proc.communicate(timeout=10)
    status, _, data = result["answer"]  # type: ignore[misc]
    assert status == 200 and _events(data)[-1] == "[DONE]"
    assert len(_events(data)) == 11
    assert proc.returncode == 0
    assert "exiting with 0 request(s) still in flight" in out
    assert "request_id=rid-1 " in out
