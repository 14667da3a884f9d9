"""Load generator for scripts/bench_vllm.py and scripts/bench_gateway.py, run INSIDE the
host with vLLM's own venv (which ships the official `openai` client): M sequential
GET /v1/models, then N streamed completions at a concurrency C against 127.0.0.1, each
exactly T tokens (ignore_eos), printing one JSON line.

The key never comes on the command line (any user of the host could read it there):
--key-stdin reads it from the first line of stdin, --key-env NAME from the environment.
--cpu-comm nginx adds the CPU ticks (utime + stime, /proc/<pid>/stat) of every process of
that name just before and just after the streams, for the caller to subtract.
A failed request does not end the run with a traceback: the JSON line then has "error"
("rate_limited" when any answer was a 429, else "requests_failed"), the count per HTTP
status or exception type, and the exit status is 3 (429) or 4. It never holds the key.

Why not guidellm here: this measures a ratio between two servers on the same host and
needs only throughput and TTFT; the openai client already in vLLM's venv does that with
nothing to install on the host. The evaluation's load test uses a dedicated tool.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

from openai import APIStatusError, AsyncOpenAI, DefaultAsyncHttpxClient

EXIT_RATE_LIMITED = 3
EXIT_FAILED = 4


def proc_ticks(comm: str, proc: Path = Path("/proc")) -> dict[int, int]:
    """utime + stime (clock ticks) of every process named COMM, by pid."""
    out: dict[int, int] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text(encoding="utf-8").strip() != comm:
                continue
            stat = (entry / "stat").read_text(encoding="utf-8")
        except OSError:
            continue  # gone meanwhile
        # Fields after "(comm)": state is field 3, utime 14 and stime 15 (proc(5)).
        fields = stat[stat.rindex(")") + 2 :].split()
        out[int(entry.name)] = int(fields[11]) + int(fields[12])
    return out


def failure_kind(exc: BaseException) -> str:
    """An HTTP status ("429") or an exception's type name: never its message."""
    if isinstance(exc, APIStatusError):
        return str(exc.status_code)
    return type(exc).__name__


async def one(client: AsyncOpenAI, model: str, tokens: int) -> tuple[float, float, int]:
    """One streamed completion: (TTFT s, end-to-end s, completion tokens from usage).

    Tokens come from the final usage chunk: under load vLLM may put several tokens in
    one SSE event, so counting events would undercount.
    """
    start = time.perf_counter()
    first = 0.0
    count = 0
    stream = await client.completions.create(
        model=model,
        prompt="The quick brown fox",
        max_tokens=tokens,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"ignore_eos": True, "min_tokens": tokens},
    )
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].text and not first:
            first = time.perf_counter() - start
        if chunk.usage is not None:
            count = chunk.usage.completion_tokens
    return first, time.perf_counter() - start, count


async def models_latency(client: AsyncOpenAI, count: int) -> list[float]:
    """Sequential GET /v1/models on one keep-alive connection: the proxy's own cost
    (COUNT + 1 requests: one warm-up)."""
    await client.models.list()  # warm-up: TLS handshake, connection
    times = []
    for _ in range(count):
        start = time.perf_counter()
        await client.models.list()
        times.append(time.perf_counter() - start)
    return times


async def run(
    url: str,
    key: str,
    model: str,
    concurrency: int,
    requests: int,
    tokens: int,
    ca: str = "",
    models_requests: int = 200,
    cpu_comm: str = "",
) -> dict:
    """One round: COUNT + 1 GET /v1/models, one warm-up completion, REQUESTS streams."""
    http_client = DefaultAsyncHttpxClient(verify=ca) if ca else None
    client = AsyncOpenAI(
        base_url=url + "/v1",
        api_key=key or "none",
        max_retries=0,
        timeout=600,
        http_client=http_client,
    )
    try:
        models = sorted(await models_latency(client, models_requests))
        await one(client, model, 4)  # warm-up, not counted
    except Exception as exc:  # reported by kind (status, type), never by message
        return {"error": "", "failures": {failure_kind(exc): 1}, "phase": "warm-up"}
    sem = asyncio.Semaphore(concurrency)

    async def limited() -> tuple[float, float, int]:
        async with sem:
            return await one(client, model, tokens)

    cpu_before = proc_ticks(cpu_comm) if cpu_comm else {}
    start, own_start = time.perf_counter(), time.process_time()
    outcomes = await asyncio.gather(*(limited() for _ in range(requests)), return_exceptions=True)
    wall, own_cpu = time.perf_counter() - start, time.process_time() - own_start
    cpu_after = proc_ticks(cpu_comm) if cpu_comm else {}
    failures = Counter(failure_kind(o) for o in outcomes if isinstance(o, BaseException))
    if failures:
        return {"error": "", "failures": dict(failures), "phase": "streams"}
    results = [o for o in outcomes if not isinstance(o, BaseException)]
    ttfts = sorted(r[0] for r in results)
    generated = sum(r[2] for r in results)
    out = {
        "concurrency": concurrency,
        "requests": requests,
        "models_requests": models_requests,
        "tokens_per_request": tokens,
        "wall_s": round(wall, 3),
        "output_tokens": generated,
        "output_tok_per_s": round(generated / wall, 1),
        "ttft_p50_ms": round(statistics.median(ttfts) * 1000, 1),
        "e2e_p50_ms": round(statistics.median(r[1] for r in results) * 1000, 1),
        "models_p50_ms": round(statistics.median(models) * 1000, 3),
        "client_cpu_s": round(own_cpu, 3),  # this client's own CPU (TLS included) in the streams
    }
    if cpu_comm:
        out["cpu"] = {
            "comm": cpu_comm,
            "clk_tck": os.sysconf("SC_CLK_TCK"),
            "before": cpu_before,
            "after": cpu_after,
        }
    return out


def read_key(args: argparse.Namespace) -> str:
    if args.key_stdin:
        return sys.stdin.readline().strip()
    if args.key_env:
        return os.environ.get(args.key_env, "")
    return ""


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    keys = p.add_mutually_exclusive_group()
    keys.add_argument("--key-stdin", action="store_true", help="the key: stdin's first line")
    keys.add_argument("--key-env", default="", help="the key: this environment variable")
    p.add_argument("--model", required=True)
    p.add_argument("--concurrency", type=int, required=True)
    p.add_argument("--requests", type=int, required=True)
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--models-requests", type=int, default=200, help="GET /v1/models timed")
    p.add_argument("--ca", default="", help="CA file for an https URL (the gateway's certificate)")
    p.add_argument("--cpu-comm", default="", help="CPU ticks of these processes (e.g. nginx)")
    a = p.parse_args()
    result = asyncio.run(
        run(
            a.url,
            read_key(a),
            a.model,
            a.concurrency,
            a.requests,
            a.tokens,
            a.ca,
            a.models_requests,
            a.cpu_comm,
        )
    )
    if "error" in result:
        limited = "429" in result["failures"]
        result["error"] = "rate_limited" if limited else "requests_failed"
        print(json.dumps(result))
        sys.exit(EXIT_RATE_LIMITED if limited else EXIT_FAILED)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
