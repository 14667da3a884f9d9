#!/usr/bin/env python3
"""The one OpenAI-compatible test double (stdlib only): it stands in for vLLM.

Used in-process by pytest (`from tests.support import openai_double`) and copied into
the Molecule scenarios (gateway, evaluation, teardown) as a systemd service. Not a
model: it lets the roles' clients, checks, load tests, drains and metrics scrapes run
against something real over HTTP(S).

What it does, like vLLM's OpenAI server:
- /v1/models, /v1/completions, /v1/chat/completions behind a bearer key (none = no auth);
  SSE streaming token by token, ending in `data: [DONE]`, with a usage chunk when asked.
- Text: `jargon` (deterministic words from the prompt and seed; an answer stops by itself
  after 8-31 tokens unless min_tokens/ignore_eos) or `counter` ("tok0 tok1 ...", exactly
  max_tokens, finish_reason length).
- Delays: --ttft-ms before the first token, --token-ms between tokens; a request's
  `metadata.delay_s` sets both for that request (the gateway's timing tests).
- /metrics with vLLM's names and labels (requests running and waiting, successes,
  prompt and generation tokens, end-to-end latency); /health, /version, /docs, POST
  /tokenize answer 200, so a test can prove the gateway hides them.
- SIGTERM: like vLLM's --shutdown-timeout, stop accepting, let requests in flight finish
  for up to --shutdown-timeout-s, then exit.
- Faults (JSON file, re-read per request): {"empty": true} answers with no text;
  {"extra_ms": 500} slows every token; {"reject": {"contains": "TEXT", "status": 429}}
  answers requests whose prompt holds TEXT with that status.
- --name sets an X-Upstream header on every answer (which backend served it);
  --log-requests prints one line per request with its X-Request-Id to stdout.
- TLS with --tls-cert/--tls-key.

The key comes from --key-file, else the environment variable named by --key-env
(default OPENAI_DOUBLE_KEY); never from the command line.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any

_JARGON = (
    "hacker kludge frob grok cruft foo bar baz hack wizard bogus crufty tweak phase "
    "daemon winnitude zork nybble bit mung glark gronk hairy lossage win lose fnord "
    "quux twiddle moby tense elegant flame guru cycle bletch feep"
)
WORDS = _JARGON.split()
KEY_ENV = "OPENAI_DOUBLE_KEY"
TEXT_MODES = ("jargon", "counter")


@dataclass
class Settings:
    """What the double answers with; shared by every handler thread."""

    model: str = "tiny"
    key: str = ""
    ttft_ms: float = 20
    token_ms: float = 3
    faults_file: Path | None = None
    text: str = "jargon"
    name: str = ""
    log_requests: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    counters: dict[str, float] = field(
        default_factory=lambda: {
            "success": 0,
            "prompt_tokens": 0,
            "generation_tokens": 0,
            "e2e_sum": 0.0,
        }
    )
    running: int = 0

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


def counted(max_tokens: int) -> tuple[list[str], str]:
    """Exactly max_tokens tokens "tok0 tok1 ...", finish_reason length."""
    return [f"tok{i} " for i in range(max_tokens)], "length"


def prompt_text(body: dict[str, Any]) -> str:
    if "messages" in body:
        return "\n".join(str(m.get("content", "")) for m in body["messages"])
    prompt = body.get("prompt", "")
    return prompt if isinstance(prompt, str) else json.dumps(prompt)


def metrics_page(settings: Settings) -> str:
    """vLLM's metric names, with its engine and model_name labels."""
    labels = f'engine="0",model_name="{settings.model}"'
    with settings.lock:
        c = dict(settings.counters)
        running = settings.running
    return (
        "# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
        "# TYPE vllm:num_requests_running gauge\n"
        f"vllm:num_requests_running{{{labels}}} {float(running)}\n"
        "# TYPE vllm:num_requests_waiting gauge\n"
        f"vllm:num_requests_waiting{{{labels}}} 0.0\n"
        "# TYPE vllm:request_success_total counter\n"
        f'vllm:request_success_total{{{labels},finished_reason="length"}} {float(c["success"])}\n'
        "# TYPE vllm:prompt_tokens_total counter\n"
        f"vllm:prompt_tokens_total{{{labels}}} {float(c['prompt_tokens'])}\n"
        "# TYPE vllm:generation_tokens_total counter\n"
        f"vllm:generation_tokens_total{{{labels}}} {float(c['generation_tokens'])}\n"
        "# TYPE vllm:e2e_request_latency_seconds histogram\n"
        f"vllm:e2e_request_latency_seconds_count{{{labels}}} {float(c['success'])}\n"
        f"vllm:e2e_request_latency_seconds_sum{{{labels}}} {c['e2e_sum']}\n"
    )


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # tokens leave at once (TTFT and ITL stay honest)
    server_version = "llmhost-openai-double/1"

    @property
    def settings(self) -> Settings:
        return self.server.settings  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        if self.settings.log_requests:
            headers = getattr(self, "headers", None)
            rid = headers.get("X-Request-Id", "-") if headers else "-"
            port = self.server.server_address[1]
            print(f"port={port} request_id={rid} " + format % args, flush=True)

    def end_headers(self) -> None:
        if self.settings.name:
            self.send_header("X-Upstream", self.settings.name)
        super().end_headers()

    def send_body(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_json(self, status: int, payload: dict[str, Any]) -> None:
        self.send_body(status, json.dumps(payload).encode(), "application/json")

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
            self.send_body(HTTPStatus.OK, data, "text/plain; version=0.0.4")
        elif self.path in ("/version", "/docs"):
            self.send_json(HTTPStatus.OK, {"exposed": self.path})
        elif self.path == "/v1/models":
            if self.authorised():
                model = {"id": self.settings.model, "object": "model", "owned_by": "llmhost"}
                self.send_json(HTTPStatus.OK, {"object": "list", "data": [model]})
        else:
            self.send_json(HTTPStatus.NOT_FOUND, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length) or b"{}"
        if self.path == "/tokenize":
            self.send_json(HTTPStatus.OK, {"exposed": self.path})
            return
        chat = self.path == "/v1/chat/completions"
        if not chat and self.path != "/v1/completions":
            self.send_json(HTTPStatus.NOT_FOUND, {"error": {"message": "not found"}})
            return
        try:
            body = json.loads(raw)
        except ValueError:
            self.send_json(HTTPStatus.BAD_REQUEST, {"error": {"message": "bad json"}})
            return
        if not self.authorised():
            return
        if body.get("model") != self.settings.model:
            self.send_json(HTTPStatus.NOT_FOUND, {"error": {"message": "model not found"}})
            return
        start = time.monotonic()
        with self.settings.lock:
            self.settings.running += 1
        try:
            self.answer(body, chat, start)
        finally:
            with self.settings.lock:
                self.settings.running -= 1

    def answer(self, body: dict[str, Any], chat: bool, start: float) -> None:
        faults = self.settings.faults()
        prompt = prompt_text(body)
        reject = faults.get("reject") or {}
        if reject.get("contains") and reject["contains"] in prompt:
            status = int(reject.get("status", 429))
            self.send_json(
                status, {"error": {"message": f"rejected by the faults file ({status})"}}
            )
            return
        max_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 16)
        if self.settings.text == "counter":
            tokens, finish = counted(max_tokens)
        else:
            min_tokens = int(body.get("min_tokens") or 0) if not body.get("ignore_eos") else 1 << 30
            tokens, finish = generate(prompt, int(body.get("seed") or 0), max_tokens, min_tokens)
        if faults.get("empty"):
            tokens, finish = [], "stop"
        usage = {
            "prompt_tokens": len(prompt.split()),
            "completion_tokens": len(tokens),
            "total_tokens": len(prompt.split()) + len(tokens),
        }
        ttft = self.settings.ttft_ms / 1000
        delay = (self.settings.token_ms + float(faults.get("extra_ms", 0))) / 1000
        override = (body.get("metadata") or {}).get("delay_s")
        if override is not None:
            ttft = delay = float(override)
        time.sleep(ttft)
        if body.get("stream"):
            self.stream(body, chat, tokens, finish, usage, delay)
        else:
            time.sleep(delay * max(len(tokens) - 1, 0))
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
            self.settings.counters["e2e_sum"] += time.monotonic() - start

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


@contextmanager
def serving(settings: Settings, tls: tuple[Path, Path] | None = None) -> Iterator[str]:
    """Serve in this process on a free 127.0.0.1 port; yields the base URL (without /v1)."""
    httpd = make_server("127.0.0.1", 0, settings, tls)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    scheme = "https" if tls else "http"
    try:
        yield f"{scheme}://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def drain(server: ThreadingHTTPServer, settings: Settings, timeout_s: float) -> int:
    """After serve_forever returned: stop accepting, wait up to timeout_s for the requests
    in flight; returns how many were still running."""
    server.socket.close()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with settings.lock:
            if settings.running == 0:
                return 0
        time.sleep(0.1)
    with settings.lock:
        return settings.running


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--key-file", type=Path)
    parser.add_argument("--key-env", default=KEY_ENV)
    parser.add_argument("--text", choices=TEXT_MODES, default="jargon")
    parser.add_argument("--ttft-ms", type=float, default=20)
    parser.add_argument("--token-ms", type=float, default=3)
    parser.add_argument("--faults-file", type=Path)
    parser.add_argument("--name", default="", help="X-Upstream header value")
    parser.add_argument("--log-requests", action="store_true")
    parser.add_argument("--shutdown-timeout-s", type=float, default=10)
    parser.add_argument("--tls-cert", type=Path)
    parser.add_argument("--tls-key", type=Path)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    key = os.environ.get(args.key_env, "")
    if args.key_file:
        key = args.key_file.read_text(encoding="utf-8").strip()
    settings = Settings(
        model=args.model,
        key=key,
        ttft_ms=args.ttft_ms,
        token_ms=args.token_ms,
        faults_file=args.faults_file,
        text=args.text,
        name=args.name,
        log_requests=args.log_requests,
    )
    tls = (args.tls_cert, args.tls_key) if args.tls_cert and args.tls_key else None
    server = make_server(args.host, args.port, settings, tls)

    def on_sigterm(_signum: int, _frame: FrameType | None) -> None:
        print(f"port={args.port} SIGTERM: draining for up to {args.shutdown_timeout_s} s")
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_sigterm)
    server.serve_forever()
    left = drain(server, settings, args.shutdown_timeout_s)
    print(f"port={args.port} exiting with {left} request(s) still in flight", flush=True)


if __name__ == "__main__":
    main()
