"""Load test of an OpenAI-compatible endpoint with locust's Python API.

Runs in the evaluation role's load venv (locust and openai, pinned in
requirements-load.lock.txt); llmhost.core.load_test starts it and turns its output into
load_test.json. CONCURRENCY locust users each send streamed chat completions with the
official openai client, back to back, until REQUESTS have been sent; every request's TTFT,
chunk gaps, latency, output tokens and HTTP status are recorded (locust's own statistics
are kept beside them as a cross-check). One warm-up request goes first and is not counted.

Usage: llmhost_load_locust.py --base-url URL --model NAME --concurrency C --requests N
       --max-tokens T --prompt TEXT [--extra-body JSON] [--ca-file F] [--timeout S]
       [--deadline S] --out FILE          (API key in LLMHOST_EVAL_API_KEY)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WARMUP_TOKENS = 4
# Users started per second: all at once for usual concurrencies (locust warns above 100).
SPAWN_RATE = 100


@dataclass
class Config:
    base_url: str
    api_key: str
    model: str
    concurrency: int
    requests: int
    max_tokens: int
    prompt: str
    extra_body: dict[str, Any]
    ca_file: str = ""
    timeout: float = 300.0
    deadline: float = 1800.0
    out: str = ""


@dataclass
class Plan:
    """Hands out request slots and gathers the records (greenlets: no lock needed)."""

    total: int
    issued: int = 0
    records: list[dict[str, Any]] = field(default_factory=list)
    gaps_ms: list[float] = field(default_factory=list)

    def take(self) -> bool:
        if self.issued >= self.total:
            return False
        self.issued += 1
        return True

    def add(self, record: dict[str, Any], gaps: list[float]) -> None:
        self.records.append(record)
        self.gaps_ms.extend(gaps)

    @property
    def done(self) -> bool:
        return len(self.records) >= self.total


def make_client(cfg: Config) -> Any:
    import ssl

    import openai

    http_client = None
    if cfg.ca_file:
        context = ssl.create_default_context(cafile=cfg.ca_file)
        http_client = openai.DefaultHttpxClient(verify=context, timeout=cfg.timeout)
    return openai.OpenAI(
        base_url=cfg.base_url,
        api_key=cfg.api_key,
        max_retries=0,
        timeout=cfg.timeout,
        http_client=http_client,
    )


def read_stream(stream: Any, start: float) -> dict[str, Any]:
    """TTFT, chunk gaps, chunks and usage tokens of a chat completion stream."""
    first = last = None
    gaps: list[float] = []
    chunks = 0
    usage = None
    for chunk in stream:
        if getattr(chunk, "usage", None) is not None:
            usage = chunk.usage.completion_tokens
        for choice in chunk.choices or []:
            if choice.delta and choice.delta.content:
                now = time.perf_counter()
                if first is None:
                    first = now
                else:
                    gaps.append((now - last) * 1000)
                last = now
                chunks += 1
    return {
        "ttft_ms": round((first - start) * 1000, 2) if first is not None else None,
        "gaps": gaps,
        "chunks": chunks,
        "output_tokens": usage if usage is not None else chunks,
    }


def one_request(client: Any, cfg: Config, max_tokens: int) -> tuple[dict[str, Any], list[float]]:
    """One streamed request: (record, chunk gaps). Failures are recorded, not raised."""
    import openai

    start = time.perf_counter()
    seen: dict[str, Any] = {"ttft_ms": None, "gaps": [], "chunks": 0, "output_tokens": 0}
    status, error = 200, ""
    try:
        stream = client.chat.completions.create(
            model=cfg.model,
            messages=[{"role": "user", "content": cfg.prompt}],
            max_tokens=max_tokens,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
            extra_body=cfg.extra_body or None,
        )
        seen = read_stream(stream, start)
    except openai.APIStatusError as exc:
        status, error = exc.status_code, str(exc.message)[:200]
    except Exception as exc:  # a broken stream (the peer hung up) is this request's error
        status, error = 0, f"{type(exc).__name__}: {exc}"[:200]
    end = time.perf_counter()
    gaps = seen["gaps"]
    record = {
        "start_s": start,
        "status": status,
        "ttft_ms": seen["ttft_ms"],
        "latency_ms": round((end - start) * 1000, 2),
        "itl_ms": round(sum(gaps) / len(gaps), 2) if gaps else None,
        "output_tokens": seen["output_tokens"],
        "chunks": seen["chunks"],
        "error": error,
    }
    return record, gaps


def user_class(cfg: Config, plan: Plan) -> type:
    """A locust user that streams chat completions until the plan is used up."""
    from locust import User, constant, task
    from locust.exception import StopUser

    class OpenAIStreamUser(User):
        wait_time = constant(0)

        def on_start(self) -> None:
            self.openai = make_client(cfg)

        @task
        def chat(self) -> None:
            if not plan.take():
                raise StopUser
            record, gaps = one_request(self.openai, cfg, cfg.max_tokens)
            plan.add(record, gaps)
            failed = record["status"] != 200 or record["error"]
            self.environment.events.request.fire(
                request_type="POST",
                name="/chat/completions (stream)",
                response_time=record["latency_ms"],
                response_length=record["output_tokens"],
                exception=RuntimeError(f"HTTP {record['status']} {record['error']}")
                if failed
                else None,
                context={},
            )

    return OpenAIStreamUser


def locust_stats(env: Any) -> dict[str, Any]:
    total = env.stats.total
    return {
        "num_requests": total.num_requests,
        "num_failures": total.num_failures,
        "median_response_time_ms": total.median_response_time,
        "p95_response_time_ms": total.get_response_time_percentile(0.95),
        "p99_response_time_ms": total.get_response_time_percentile(0.99),
        "errors": {str(e.error): e.occurrences for e in env.stats.errors.values()},
    }


def run(cfg: Config) -> dict[str, Any]:
    """Warm up, run the users until every request is back (or the deadline), report."""
    import gevent
    import locust
    import openai
    from locust.env import Environment

    warmup, _ = one_request(make_client(cfg), cfg, WARMUP_TOKENS)
    plan = Plan(cfg.requests)
    env = Environment(user_classes=[user_class(cfg, plan)])
    runner = env.create_local_runner()
    started = time.time()
    runner.start(cfg.concurrency, spawn_rate=SPAWN_RATE)
    limit = time.perf_counter() + cfg.deadline
    while not plan.done and time.perf_counter() < limit:
        gevent.sleep(0.05)
    runner.quit()
    return {
        "tool": {"name": "locust", "version": locust.__version__},
        "client": {"name": "openai", "version": openai.__version__},
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "deadline_reached": not plan.done,
        "warmup": {"status": warmup["status"], "error": warmup["error"]},
        "records": plan.records,
        "gaps_ms": plan.gaps_ms,
        "locust": locust_stats(env),
    }


def relative_times(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], float]:
    """Records with start_ms from the first request, and the wall time first start -> last end."""
    if not records:
        return [], 0.0
    origin = min(r["start_s"] for r in records)
    end = max(r["start_s"] + r["latency_ms"] / 1000 for r in records)
    out = []
    for r in sorted(records, key=lambda r: r["start_s"]):
        item = {k: v for k, v in r.items() if k != "start_s"}
        out.append({"start_ms": round((r["start_s"] - origin) * 1000, 2), **item})
    return out, end - origin


def parse_args(argv: list[str]) -> Config:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base-url", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--concurrency", type=int, required=True)
    p.add_argument("--requests", type=int, required=True)
    p.add_argument("--max-tokens", type=int, required=True)
    p.add_argument("--prompt", required=True)
    p.add_argument("--extra-body", default="{}")
    p.add_argument("--ca-file", default="")
    p.add_argument("--timeout", type=float, default=300.0)
    p.add_argument("--deadline", type=float, default=1800.0)
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    return Config(
        base_url=a.base_url,
        api_key=os.environ.get("LLMHOST_EVAL_API_KEY", ""),
        model=a.model,
        concurrency=a.concurrency,
        requests=a.requests,
        max_tokens=a.max_tokens,
        prompt=a.prompt,
        extra_body=json.loads(a.extra_body),
        ca_file=a.ca_file,
        timeout=a.timeout,
        deadline=a.deadline,
        out=a.out,
    )


def main(argv: list[str]) -> int:
    # First: importing locust monkey-patches the standard library (ssl, socket) for gevent.
    import locust  # noqa: F401

    cfg = parse_args(argv)
    result = run(cfg)
    result["records"], result["wall_s"] = relative_times(result["records"])
    Path(cfg.out).write_text(json.dumps(result) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
