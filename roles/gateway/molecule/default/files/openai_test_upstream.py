#!/usr/bin/env python3
"""A test double of a vLLM backend for the gateway scenario (stdlib only).

It speaks just enough of vLLM's OpenAI API to test nginx's behaviour: it checks the
upstream key the gateway must send, streams SSE events with a delay between them,
names itself in an X-Upstream header (load sharing), logs each request id to stdout
(the journal), and serves /metrics and /tokenize so the test can show the gateway
hides them. The real vLLM behind the real gateway is exercised by `make lab`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KEY = os.environ["UPSTREAM_KEY"]
PORT = int(sys.argv[1])


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: object) -> None:
        rid = self.headers.get("X-Request-Id", "-")
        print(f"port={PORT} request_id={rid} " + fmt % args, flush=True)

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Upstream", str(PORT))
        self.end_headers()
        self.wfile.write(data)

    def _authorized(self) -> bool:
        if self.headers.get("Authorization") == f"Bearer {KEY}":
            return True
        self._send(401, {"error": {"message": "upstream: wrong key", "code": 401}})
        return False

    def do_GET(self) -> None:
        if self.path == "/health":
            self._send(200, {})
        elif self.path in ("/metrics", "/version", "/docs"):
            self._send(200, {"exposed": self.path})
        elif self.path == "/v1/models" and self._authorized():
            self._send(200, {"object": "list", "data": [{"id": "test-model", "object": "model"}]})
        elif self.path != "/v1/models":
            self._send(404, {"error": "not found"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        if self.path == "/tokenize":
            self._send(200, {"exposed": self.path})
            return
        if self.path not in ("/v1/chat/completions", "/v1/completions"):
            self._send(404, {"error": "not found"})
            return
        if not self._authorized():
            return
        chunks = int(body.get("max_tokens", 5))
        delay = float(body.get("metadata", {}).get("delay_s", 0.2))
        if not body.get("stream"):
            time.sleep(delay)
            text = " ".join(f"tok{i}" for i in range(chunks))
            self._send(
                200,
                {
                    "id": "cmpl-test",
                    "object": "chat.completion",
                    "model": "test-model",
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "length",
                            "message": {"role": "assistant", "content": text},
                        }
                    ],
                    "usage": {"completion_tokens": chunks},
                },
            )
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("X-Upstream", str(PORT))
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for i in range(chunks):
            time.sleep(delay)
            event = {
                "id": "chatcmpl-test",
                "object": "chat.completion.chunk",
                "model": "test-model",
                "created": int(time.time()),
                "choices": [
                    {
                        "index": 0,
                        "delta": {"content": f"tok{i} "},
                        "finish_reason": "length" if i == chunks - 1 else None,
                    }
                ],
            }
            self._chunk(f"data: {json.dumps(event)}\n\n")
        self._chunk("data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")

    def _chunk(self, text: str) -> None:
        data = text.encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
