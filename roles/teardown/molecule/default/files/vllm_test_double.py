#!/usr/bin/env python3
"""A test double of vLLM for the teardown scenario (stdlib only).

Built on the gateway scenario's openai_test_upstream.py, with the two things a teardown
depends on: vLLM's /metrics gauges (vllm:num_requests_running / _waiting and a few
counters, with vLLM's labels) and vLLM's --shutdown-timeout behaviour on SIGTERM: stop
accepting, let requests in flight finish for up to SHUTDOWN_TIMEOUT_S, then exit.
Streams send TOKEN_DELAY_S apart, so requests stay in flight long enough to drain.
The real vLLM behind the real gateway is torn down by `make lab`.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType

KEY = os.environ["UPSTREAM_KEY"]
PORT = int(sys.argv[1])
DELAY = float(os.environ.get("TOKEN_DELAY_S", "0.25"))
SHUTDOWN_TIMEOUT_S = float(os.environ.get("SHUTDOWN_TIMEOUT_S", "10"))
MODEL = "test-model"
LABELS = f'engine="0",model_name="{MODEL}"'

state_lock = threading.Lock()
state = {"running": 0, "success": 0, "prompt_tokens": 0, "generation_tokens": 0, "e2e_sum": 0.0}


def metrics_text() -> str:
    with state_lock:
        s = dict(state)
    return (
        "# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
        "# TYPE vllm:num_requests_running gauge\n"
        f"vllm:num_requests_running{{{LABELS}}} {float(s['running'])}\n"
        "# TYPE vllm:num_requests_waiting gauge\n"
        f"vllm:num_requests_waiting{{{LABELS}}} 0.0\n"
        "# TYPE vllm:request_success_total counter\n"
        f'vllm:request_success_total{{{LABELS},finished_reason="length"}} {float(s["success"])}\n'
        "# TYPE vllm:prompt_tokens_total counter\n"
        f"vllm:prompt_tokens_total{{{LABELS}}} {float(s['prompt_tokens'])}\n"
        "# TYPE vllm:generation_tokens_total counter\n"
        f"vllm:generation_tokens_total{{{LABELS}}} {float(s['generation_tokens'])}\n"
        "# TYPE vllm:e2e_request_latency_seconds histogram\n"
        f"vllm:e2e_request_latency_seconds_count{{{LABELS}}} {float(s['success'])}\n"
        f"vllm:e2e_request_latency_seconds_sum{{{LABELS}}} {s['e2e_sum']}\n"
    )


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: object) -> None:
        print(f"port={PORT} " + fmt % args, flush=True)

    def _send(self, status: int, body: dict | str, content_type: str = "application/json") -> None:
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/health":
            self._send(200, {})
        elif self.path == "/metrics":
            self._send(200, metrics_text(), "text/plain; version=0.0.4")
        elif self.path == "/v1/models" and self._authorized():
            self._send(200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]})
        elif self.path != "/v1/models":
            self._send(404, {"error": "not found"})

    def _authorized(self) -> bool:
        if self.headers.get("Authorization") == f"Bearer {KEY}":
            return True
        self._send(401, {"error": {"message": "upstream: wrong key", "code": 401}})
        return False

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        if self.path not in ("/v1/chat/completions", "/v1/completions"):
            self._send(404, {"error": "not found"})
            return
        if not self._authorized():
            return
        tokens = int(body.get("max_tokens", 5))
        start = time.monotonic()
        with state_lock:
            state["running"] += 1
            state["prompt_tokens"] += 3
        try:
            if body.get("stream"):
                self._stream(tokens)
            else:
                time.sleep(DELAY * tokens)
                text = " ".join(f"tok{i}" for i in range(tokens))
                self._send(200, {"id": "cmpl-test", "model": MODEL, "choices": [{"text": text}]})
        finally:
            with state_lock:
                state["running"] -= 1
                state["success"] += 1
                state["generation_tokens"] += tokens
                state["e2e_sum"] += time.monotonic() - start

    def _stream(self, tokens: int) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for i in range(tokens):
            time.sleep(DELAY)
            event = {
                "id": "chatcmpl-test",
                "object": "chat.completion.chunk",
                "model": MODEL,
                "choices": [
                    {
                        "index": 0,
                        "delta": {"content": f"tok{i} "},
                        "finish_reason": "length" if i == tokens - 1 else None,
                    }
                ],
            }
            self._chunk(f"data: {json.dumps(event)}\n\n")
        self._chunk("data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _chunk(self, text: str) -> None:
        data = text.encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)

    def on_sigterm(_signum: int, _frame: FrameType | None) -> None:
        print(f"port={PORT} SIGTERM: draining for up to {SHUTDOWN_TIMEOUT_S} s", flush=True)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_sigterm)
    server.serve_forever()
    server.socket.close()  # stop accepting, like vLLM with --shutdown-timeout
    deadline = time.monotonic() + SHUTDOWN_TIMEOUT_S
    while time.monotonic() < deadline:
        with state_lock:
            if state["running"] == 0:
                break
        time.sleep(0.1)
    with state_lock:
        left = state["running"]
    print(f"port={PORT} exiting with {left} request(s) still in flight", flush=True)


if __name__ == "__main__":
    main()
