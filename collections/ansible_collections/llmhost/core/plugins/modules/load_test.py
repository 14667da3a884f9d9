#!/usr/bin/python
"""llmhost.core.load_test: a load test of an OpenAI-compatible endpoint -> load_test.json."""
# Ansible layout: the documentation blocks come before the imports.
# ruff: noqa: E402

from __future__ import annotations

DOCUMENTATION = r"""
---
module: load_test
short_description: Load-test an OpenAI-compatible endpoint at a fixed concurrency
version_added: 0.1.0
description:
  - Runs a load generator (the evaluation role's locust runner, C(llmhost_load_locust.py),
    with the interpreter of its own pinned venv) that sends O(requests) streamed chat
    completions at O(concurrency) and records every request's TTFT, chunk gaps, latency,
    output tokens and HTTP status.
  - Writes O(out_file) (C(load_test.json)) with those per-request records under
    C(requests) and a C(summary) of them, computed here the same way for every tool,
    TTFT, inter-token latency (every chunk gap), time per output token and end-to-end
    latency (count, mean, min, p50, p90, p95, p99, max), requests/s and output tokens/s
    over the wall time from the first request's start to the last one's end, and errors
    by status. The generator's own statistics are kept under C(generator_stats).
  - One load test per O(out_file). When it exists nothing is sent, its summary is returned
    and C(changed) is false. In check mode nothing is sent or written.
  - "Meant to run on the control node: C(delegate_to=localhost)."
author:
  - llmhost project
options:
  python:
    description: Interpreter of the load venv (locust and openai installed).
    type: path
    required: true
  runner:
    description: The load generator script (C(llmhost_load_locust.py)).
    type: path
    required: true
  base_url:
    description: API base URL including C(/v1).
    type: str
    required: true
  api_key:
    description: Bearer key (a gateway tenant key); reaches the runner through its environment only.
    type: str
    required: true
  ca_file:
    description: CA bundle that signs the endpoint's certificate; empty uses the system trust.
    type: path
    default: ""
  model:
    description: Model name.
    type: str
    required: true
  concurrency:
    description: Requests in flight at once (locust users).
    type: int
    required: true
  requests:
    description: Requests to send (besides one warm-up request that is not counted).
    type: int
    required: true
  max_tokens:
    description: max_tokens of every request.
    type: int
    required: true
  prompt:
    description: The user message of every request.
    type: str
    required: true
  extra_body:
    description:
      - "Further request fields, e.g. C({\"ignore_eos\": true}) so every answer has max_tokens
        tokens (vLLM)."
    type: dict
    default: {}
  request_timeout:
    description: Seconds one request may take.
    type: float
    default: 300
  timeout:
    description:
      - Seconds the whole test may take; requests still out then are missing from the records.
    type: int
    default: 1800
  out_file:
    description: Where to write load_test.json.
    type: path
    required: true
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Load test through the gateway
  llmhost.core.load_test:
    python: "{{ playbook_dir }}/../.cache/venvs/evaluation-load/bin/python"
    runner: "{{ role_path }}/files/llmhost_load_locust.py"
    base_url: https://127.0.0.1:8443/v1
    api_key: "{{ tenant_key }}"
    ca_file: "{{ evidence_dir }}/gateway_certificate.pem"
    model: mini-gpt2-lab
    concurrency: 8
    requests: 64
    max_tokens: 32
    prompt: Tell me about the Jargon File.
    out_file: "{{ llmhost_evidence_dir }}/load_test.json"
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
summary:
  description:
    - The summary of load_test.json (requests, completed, failed, error_rate, errors_by_status,
      requests_per_s, output_tokens_per_s, ttft_ms, itl_ms, tpot_ms, latency_ms, ...).
  returned: always
  type: dict
reason:
  description: What the module did and why.
  returned: always
  type: str
"""

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from ansible_collections.llmhost.core.plugins.module_utils.eval_report import (
    load_summary,
    read_json,
    utc_now,
    write_json,
)
from ansible_collections.llmhost.core.plugins.module_utils.module import (
    ModuleFailure,
    Request,
    run_module,
)


def runner_command(p: dict[str, Any], raw: Path) -> list[str]:
    return [
        p["python"],
        p["runner"],
        "--base-url",
        p["base_url"],
        "--model",
        p["model"],
        "--concurrency",
        str(p["concurrency"]),
        "--requests",
        str(p["requests"]),
        "--max-tokens",
        str(p["max_tokens"]),
        "--prompt",
        p["prompt"],
        "--extra-body",
        json.dumps(p["extra_body"]),
        "--ca-file",
        p["ca_file"],
        "--timeout",
        str(p["request_timeout"]),
        "--deadline",
        str(p["timeout"]),
        "--out",
        str(raw),
    ]


def build_report(p: dict[str, Any], raw: dict[str, Any]) -> dict[str, Any]:
    """load_test.json from the runner's raw output."""
    records = raw["records"]
    return {
        "run_id": Path(p["out_file"]).parent.name,
        "started_at": raw["started_at"],
        "finished_at": utc_now(),
        "tool": raw["tool"],
        "client": raw["client"],
        "base_url": p["base_url"],
        "tls": p["base_url"].startswith("https://"),
        "model": p["model"],
        "concurrency": p["concurrency"],
        "planned_requests": p["requests"],
        "max_tokens": p["max_tokens"],
        "prompt": p["prompt"],
        "extra_body": p["extra_body"],
        "warmup": raw["warmup"],
        "deadline_reached": raw["deadline_reached"],
        "summary": load_summary(records, raw["gaps_ms"], raw["wall_s"]),
        "generator_stats": raw["locust"],
        "requests": records,
    }


def run_generator(p: dict[str, Any], raw: Path) -> dict[str, Any]:
    cmd = runner_command(p, raw)
    env = dict(os.environ, LLMHOST_EVAL_API_KEY=p["api_key"])
    try:
        # An argument list, no shell; the key travels in the environment, not argv.
        proc = subprocess.run(  # noqa: S603
            cmd, capture_output=True, text=True, env=env, timeout=p["timeout"] + 120, check=False
        )
    except subprocess.TimeoutExpired:
        raise ModuleFailure(f"the load generator ran past {p['timeout'] + 120} s") from None
    except OSError as exc:
        raise ModuleFailure(f"cannot start the load generator {p['python']}: {exc}") from exc
    if proc.returncode != 0 or not raw.is_file():
        raise ModuleFailure(
            f"the load generator failed (rc {proc.returncode}): {proc.stderr[-2000:]}",
            rc=proc.returncode,
        )
    try:
        return read_json(raw)
    finally:
        raw.unlink(missing_ok=True)


def handle(request: Request) -> dict[str, Any]:
    p = request.params
    if p["concurrency"] < 1 or p["requests"] < 1 or p["max_tokens"] < 1:
        raise ModuleFailure("concurrency, requests and max_tokens must each be >= 1")
    out = Path(p["out_file"])
    if out.is_file():
        report = read_json(out)
        return {
            "changed": False,
            "summary": report["summary"],
            "reason": f"{out} exists; nothing sent",
        }
    if request.check_mode:
        return {"changed": True, "summary": {}, "reason": "would run the load test"}
    out.parent.mkdir(parents=True, exist_ok=True)
    report = build_report(p, run_generator(p, out.with_name(f".{out.name}.raw")))
    write_json(out, report)
    s = report["summary"]
    return {
        "changed": True,
        "summary": s,
        "reason": f"{s['completed']}/{s['requests']} requests completed at concurrency "
        f"{p['concurrency']}",
    }


def main() -> None:
    run_module(
        {
            "python": {"type": "path", "required": True},
            "runner": {"type": "path", "required": True},
            "base_url": {"type": "str", "required": True},
            "api_key": {"type": "str", "required": True, "no_log": True},
            "ca_file": {"type": "path", "default": ""},
            "model": {"type": "str", "required": True},
            "concurrency": {"type": "int", "required": True},
            "requests": {"type": "int", "required": True},
            "max_tokens": {"type": "int", "required": True},
            "prompt": {"type": "str", "required": True},
            "extra_body": {"type": "dict", "default": {}},
            "request_timeout": {"type": "float", "default": 300},
            "timeout": {"type": "int", "default": 1800},
            "out_file": {"type": "path", "required": True},
        },
        handle,
    )


if __name__ == "__main__":
    main()
