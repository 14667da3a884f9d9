#!/usr/bin/env python3
"""Smoke test of a vLLM server, run on its host against 127.0.0.1.

Usage: llmhost_vllm_smoke.py URL MODEL PROMPT OUT.json  (API key: the VLLM_API_KEY= line of the
0600 env file named by VLLM_API_KEY_FILE, so the key is never in a command line or a
become'd environment; VLLM_API_KEY itself is still read when no file is named)
Writes health, models, one completion and one streamed chat, each with its request,
response, status code and latency, plus the unauthorised check; OUT.json '-' prints that
JSON on stdout instead (the role writes it into the bundle). The key is never written.
Exit 0 when every check passed, 1 otherwise (the JSON says which failed).
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def call(url: str, key: str | None, body: dict[str, Any] | None, timeout: float = 120) -> dict:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers)  # noqa: S310
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    latency_ms = round((time.perf_counter() - start) * 1000, 1)
    text = raw.decode("utf-8", "replace")
    try:
        payload: Any = json.loads(text)
    except ValueError:
        payload = text
    return {"status": status, "latency_ms": latency_ms, "response": payload}


def stream_chat(url: str, key: str, body: dict[str, Any], timeout: float = 120) -> dict:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    request = urllib.request.Request(  # noqa: S310
        url, data=json.dumps(body).encode(), headers=headers
    )
    start = time.perf_counter()
    first: float | None = None
    chunks, text, done, status = 0, [], False, 0
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310
    except urllib.error.HTTPError as exc:
        return {
            "status": exc.code,
            "chunks": 0,
            "ended_with_done": False,
            "ttft_ms": None,
            "latency_ms": round((time.perf_counter() - start) * 1000, 1),
            "text": "",
            "error": exc.read().decode("utf-8", "replace")[:500],
        }
    with response:
        status = response.status
        for raw_line in response:
            line = raw_line.decode("utf-8").strip()
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                done = True
                break
            chunk = json.loads(data)
            for choice in chunk.get("choices", []):
                delta = choice.get("delta", {}).get("content")
                if delta:
                    if first is None:
                        first = time.perf_counter()
                    text.append(delta)
            chunks += 1
    total = time.perf_counter() - start
    return {
        "status": status,
        "chunks": chunks,
        "ended_with_done": done,
        "ttft_ms": round((first - start) * 1000, 1) if first else None,
        "latency_ms": round(total * 1000, 1),
        "text": "".join(text),
    }


def run(base: str, model: str, prompt: str, key: str) -> dict[str, Any]:
    completion_req = {
        "model": model,
        "prompt": prompt,
        "max_tokens": 16,
        "temperature": 0,
        "min_tokens": 4,
        "seed": 0,
    }
    chat_req = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": 16,
        "min_tokens": 4,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    result: dict[str, Any] = {
        "base_url": base,
        "model": model,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    result["health"] = call(base + "/health", None, None)
    result["models"] = call(base + "/v1/models", key, None)
    result["unauthorised"] = call(base + "/v1/models", None, None)
    result["completion"] = {
        "request": completion_req,
        **call(base + "/v1/completions", key, completion_req),
    }
    result["chat_stream"] = {
        "request": chat_req,
        **stream_chat(base + "/v1/chat/completions", key, chat_req),
    }
    result["checks"] = checks(result, model)
    result["passed"] = all(result["checks"].values())
    return result


def checks(r: dict[str, Any], model: str) -> dict[str, bool]:
    models = r["models"]["response"]
    ids = [m.get("id") for m in models.get("data", [])] if isinstance(models, dict) else []
    completion = r["completion"]["response"]
    choices = completion.get("choices") if isinstance(completion, dict) else None
    text = choices[0].get("text", "") if choices else ""
    return {
        "health_200": r["health"]["status"] == 200,
        "served_name_listed": model in ids,
        "no_key_is_401": r["unauthorised"]["status"] == 401,
        "completion_200_with_text": r["completion"]["status"] == 200 and bool(text),
        "stream_ends_with_done": r["chat_stream"]["ended_with_done"],
        "stream_has_text": bool(r["chat_stream"]["text"]),
    }


def api_key(env: Mapping[str, str]) -> str:
    """The key from the env file named by VLLM_API_KEY_FILE, else VLLM_API_KEY."""
    path = env.get("VLLM_API_KEY_FILE", "")
    if not path:
        return env.get("VLLM_API_KEY", "")
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.startswith("VLLM_API_KEY="):
            return line.split("=", 1)[1].strip()
    return ""


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    base, model, prompt, out = argv
    result = run(base.rstrip("/"), model, prompt, api_key(os.environ))
    if out == "-":
        print(json.dumps(result, indent=2))
    else:
        Path(out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(json.dumps({"passed": result["passed"], "checks": result["checks"]}))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
