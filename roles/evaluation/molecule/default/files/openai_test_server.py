#!/usr/bin/env python3
"""A small OpenAI-compatible test double (stdlib only) for the evaluation role's tests.

It stands in for vLLM serving the lab's tiny GPT-2: deterministic gibberish built from
Jargon File words, streamed token by token (SSE, ending in `data: [DONE]`), with a usage
chunk when asked, finish_reason `length` or `stop`, bearer-key auth on /v1, and a
Prometheus /metrics page with vLLM's metric names. Not a model: it only lets the role's
client, checks, load test and metrics scrape run against something real over HTTP.

Usage: openai_test_server.py [--host H] [--port P] [--model NAME] [--key-file F]
                             [--ttft-ms N] [--token-ms N] [--faults-file F]
                             [--tls-cert CERT --tls-key KEY]
The API key comes from --key-file or the environment (OPENAI_TEST_SERVER_KEY); none = no auth.
The faults file (JSON, re-read per request) degrades answers for the gate tests:
{"empty": true} answers with no text; {"extra_ms": 500} slows every token;
{"reject": {"contains": "TEXT", "status": 429}} answers requests whose prompt holds TEXT
with that HTTP status.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import ssl
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

_JARGON = (
    "hacker kludge frob grok cruft foo bar baz hack wizard bogus crufty tweak phase "
    "daemon winnitude zork nybble bit mung glark gronk hairy lossage win lose fnord "
    "quux twiddle moby tense elegant flame guru cycle bletch feep"
)
WORDS = _JARGON.split()
KEY_ENV = "OPENAI_TEST_SERVER_KEY"


class Settings:
    """What the server answers with; shared by every handler thread."""

    def __init__(
        self,
        model: str,
        key: str,
        ttft_ms: float,
        token_ms: float,
        faults_file: Path | None = None,
    ) -> None:
        self.model = model
        self.key = key
        self.ttft_ms = ttft_ms
        self.token_ms = token_ms
        self.faults_file = faults_file
        self.lock = threading.Lock()
        self.counters = {"success": 0, "prompt_tokens": 0, "generation_tokens": 0}
        self.running = 0

    def faults(self) -> dict[str, Any]:
        if self.faults_file is None or not self.faults_file.is_file():
            return {}
        try:
            data = json.loads(self.faults_file.read_text(encoding="utf-8"))
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}


def generate(prompt: str, seed: int, max_tokens: int, min_tokens: int) -> tuple[list[str], str]:
    """Deterministic tokens for (prompt, seed): (tokens, finish_reason). Without
    min_tokens an answer ends by itself after 8-31 tokens, like a model emitting EOS."""
    digest = hashlib.sha256(f"{seed}:{prompt}".encode()).digest()
    natural = 8 + digest[0] % 24
    count = max(min(natural, max_tokens), min(min_tokens, max_tokens))
    tokens = []
    for i in range(count):
        word = WORDS[hashlib.sha256(digest + i.to_bytes(4, "big")).digest()[0] % len(WORDS)]
        tokens.append(word if i == 0 else " " + word)
    return tokens, ("length" if count >= max_tokens else "stop")


def prompt_text(body: dict[str, Any]) -> str:
    if "messages" in body:
        return "\n".join(str(m.get("content", "")) for m in body["messages"])
    prompt = body.get("prompt", "")
    return prompt if isinstance(prompt, str) else json.dumps(prompt)


def metrics_page(settings: Settings) -> str:
    labels = f'{{model_name="{settings.model}"}}'
    with settings.lock:
        c = dict(settings.counters)
        running = settings.running
    return "".join(
        [
            "# TYPE vllm:num_requests_running gauge\n",
            f"vllm:num_requests_running{labels} {running}\n",
            "# TYPE vllm:request_success_total counter\n",
            f"vllm:request_success_total{labels} {c['success']}\n",
            "# TYPE vllm:prompt_tokens_total counter\n",
            f"vllm:prompt_tokens_total{labels} {c['prompt_tokens']}\n",
            "# TYPE vllm:generation_tokens_total counter\n",
            f"vllm:generation_tokens_total{labels} {c['generation_tokens']}\n",
        ]
    )


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # tokens leave at once (TTFT and ITL stay honest)
    server_version = "llmhost-openai-test-server/1"

    @property
    def settings(self) -> Settings:
        return self.server.settings  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the journal gets nothing per request."""

    def send_json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def authorised(self) -> bool:
        if not self.settings.key:
            return True
        if self.headers.get("Authorization", "") == f"Bearer {self.settings.key}":
            return True
        self.send_json(HTTPStatus.UNAUTHORIZED, {"error": {"message": "invalid api key"}})
        return False

    def do_GET(self) -> None:
        if self.path == "/health":
            self.send_json(HTTPStatus.OK, {})
        elif self.path == "/metrics":
            data = metrics_page(self.settings).encode()
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        elif self.path == "/v1/models":
            if self.authorised():
                model = {"id": self.settings.model, "object": "model", "owned_by": "llmhost"}
                self.send_json(HTTPStatus.OK, {"object": "list", "data": [model]})
        else:
            self.send_json(HTTPStatus.NOT_FOUND, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        chat = self.path == "/v1/chat/completions"
        if not chat and self.path != "/v1/completions":
            self.send_json(HTTPStatus.NOT_FOUND, {"error": {"message": "not found"}})
            return
        length = int(self.headers.get("Content-Length", "0"))
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self.send_json(HTTPStatus.BAD_REQUEST, {"error": {"message": "bad json"}})
            return
        if not self.authorised():
            return
        if body.get("model") != self.settings.model:
            self.send_json(HTTPStatus.NOT_FOUND, {"error": {"message": "model not found"}})
            return
        with self.settings.lock:
            self.settings.running += 1
        try:
            self.answer(body, chat)
        finally:
            with self.settings.lock:
                self.settings.running -= 1

    def answer(self, body: dict[str, Any], chat: bool) -> None:
        faults = self.settings.faults()
        prompt = prompt_text(body)
        reject = faults.get("reject") or {}
        if reject.get("contains") and reject["contains"] in prompt:
            status = int(reject.get("status", 429))
            self.send_json(
                status, {"error": {"message": f"rejected by the faults file ({status})"}}
            )
            return
        tokens, finish = generate(
            prompt,
            int(body.get("seed") or 0),
            int(body.get("max_tokens") or body.get("max_completion_tokens") or 16),
            int(body.get("min_tokens") or 0) if not body.get("ignore_eos") else 1 << 30,
        )
        if faults.get("empty"):
            tokens, finish = [], "stop"
        usage = {
            "prompt_tokens": len(prompt.split()),
            "completion_tokens": len(tokens),
            "total_tokens": len(prompt.split()) + len(tokens),
        }
        delay = (self.settings.token_ms + float(faults.get("extra_ms", 0))) / 1000
        time.sleep(self.settings.ttft_ms / 1000)
        if body.get("stream"):
            self.stream(body, chat, tokens, finish, usage, delay)
        else:
            time.sleep(delay * len(tokens))
            text = "".join(tokens)
            choice: dict[str, Any] = {"index": 0, "finish_reason": finish}
            if chat:
                choice["message"] = {"role": "assistant", "content": text}
            else:
                choice["text"] = text
            self.send_json(
                HTTPStatus.OK, {**self.envelope(chat), "choices": [choice], "usage": usage}
            )
        with self.settings.lock:
            self.settings.counters["success"] += 1
            self.settings.counters["prompt_tokens"] += usage["prompt_tokens"]
            self.settings.counters["generation_tokens"] += len(tokens)

    def envelope(self, chat: bool, chunk: bool = False) -> dict[str, Any]:
        kind = "chat.completion" if chat else "text_completion"
        return {
            "id": "cmpl-test",
            "object": kind + (".chunk" if chunk and chat else ""),
            "created": int(time.time()),
            "model": self.settings.model,
        }

    def stream(
        self,
        body: dict[str, Any],
        chat: bool,
        tokens: list[str],
        finish: str,
        usage: dict[str, int],
        delay: float,
    ) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for i, token in enumerate(tokens):
            last = i == len(tokens) - 1
            self.event(self.chunk(chat, token, finish if last else None))
            if not last:
                time.sleep(delay)
        if not tokens:
            self.event(self.chunk(chat, "", finish))
        if (body.get("stream_options") or {}).get("include_usage"):
            self.event({**self.envelope(chat, True), "choices": [], "usage": usage})
        self.write_chunk(b"data: [DONE]\n\n")
        self.write_chunk(b"")

    def chunk(self, chat: bool, token: str, finish: str | None) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": 0, "finish_reason": finish}
        if chat:
            choice["delta"] = {"content": token}
        else:
            choice["text"] = token
        return {**self.envelope(chat, True), "choices": [choice]}

    def event(self, payload: dict[str, Any]) -> None:
        self.write_chunk(f"data: {json.dumps(payload)}\n\n".encode())

    def write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


def make_server(
    host: str, port: int, settings: Settings, tls: tuple[Path, Path] | None = None
) -> ThreadingHTTPServer:
    """The server (not started); tls = (certificate, private key) serves HTTPS."""
    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    server.settings = settings  # type: ignore[attr-defined]
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(tls[0]), str(tls[1]))
        server.socket = context.wrap_socket(server.socket, server_side=True)
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--key-file", type=Path)
    parser.add_argument("--ttft-ms", type=float, default=20)
    parser.add_argument("--token-ms", type=float, default=3)
    parser.add_argument("--faults-file", type=Path)
    parser.add_argument("--tls-cert", type=Path)
    parser.add_argument("--tls-key", type=Path)
    args = parser.parse_args()
    key = os.environ.get(KEY_ENV, "")
    if args.key_file:
        key = args.key_file.read_text(encoding="utf-8").strip()
    settings = Settings(args.model, key, args.ttft_ms, args.token_ms, args.faults_file)
    tls = (args.tls_cert, args.tls_key) if args.tls_cert and args.tls_key else None
    make_server(args.host, args.port, settings, tls).serve_forever()


if __name__ == "__main__":
    main()
