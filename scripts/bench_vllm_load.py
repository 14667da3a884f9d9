"""Load generator for scripts/bench_vllm.py, run INSIDE the host with vLLM's own venv
(which ships the official `openai` client): N streamed completions at a concurrency C
against 127.0.0.1, each exactly T tokens (ignore_eos), printing one JSON line.

Why not guidellm here: this measures a ratio between two servers on the same host and
needs only throughput and TTFT; the openai client already in vLLM's venv does that with
nothing to install on the host. The evaluation's load test uses a dedicated tool.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

from openai import AsyncOpenAI, DefaultAsyncHttpxClient


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
    """Sequential GET /v1/models on one keep-alive connection: the proxy's own cost."""
    await client.models.list()  # warm-up: TLS handshake, connection
    times = []
    for _ in range(count):
        start = time.perf_counter()
        await client.models.list()
        times.append(time.perf_counter() - start)
    return times


async def run(
    url: str, key: str, model: str, concurrency: int, requests: int, tokens: int, ca: str = ""
) -> dict:
    http_client = DefaultAsyncHttpxClient(verify=ca) if ca else None
    client = AsyncOpenAI(
        base_url=url + "/v1",
        api_key=key or "none",
        max_retries=0,
        timeout=600,
        http_client=http_client,
    )
    models = sorted(await models_latency(client, 200))
    await one(client, model, 4)  # warm-up, not counted
    sem = asyncio.Semaphore(concurrency)

    async def limited() -> tuple[float, float, int]:
        async with sem:
            return await one(client, model, tokens)

    start = time.perf_counter()
    results = await asyncio.gather(*(limited() for _ in range(requests)))
    wall = time.perf_counter() - start
    ttfts = sorted(r[0] for r in results)
    generated = sum(r[2] for r in results)
    return {
        "concurrency": concurrency,
        "requests": requests,
        "tokens_per_request": tokens,
        "wall_s": round(wall, 3),
        "output_tokens": generated,
        "output_tok_per_s": round(generated / wall, 1),
        "ttft_p50_ms": round(statistics.median(ttfts) * 1000, 1),
        "e2e_p50_ms": round(statistics.median(r[1] for r in results) * 1000, 1),
        "models_p50_ms": round(statistics.median(models) * 1000, 3),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--key", default="")
    p.add_argument("--model", required=True)
    p.add_argument("--concurrency", type=int, required=True)
    p.add_argument("--requests", type=int, required=True)
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--ca", default="", help="CA file for an https URL (the gateway's certificate)")
    a = p.parse_args()
    result = run(a.url, a.key, a.model, a.concurrency, a.requests, a.tokens, a.ca)
    print(json.dumps(asyncio.run(result)))


if __name__ == "__main__":
    main()
