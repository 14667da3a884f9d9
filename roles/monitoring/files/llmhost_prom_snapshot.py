#!/usr/bin/python3
"""Snapshot of a run from Prometheus' HTTP API, written as one JSON document.

Runs on the monitored host against Prometheus on loopback (standard library only):
a range query per named PromQL expression over the last --range-s seconds, plus the
alerts, the targets' health and Prometheus' build. A failing query is recorded with its
error and does not stop the others; an unreachable Prometheus exits 2.

usage: llmhost_prom_snapshot.py --url http://127.0.0.1:9090 --queries '{"name": "expr"}'
       --out FILE [--range-s 7200] [--min-step 15s] [--run-id ID] [--host NAME] [--end UNIX]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

MAX_POINTS = 300  # per series: enough for a chart, small enough for an evidence file


class PrometheusError(RuntimeError):
    """Prometheus could not be reached or answered with an error."""


DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def seconds(duration: str) -> float:
    """A Prometheus duration such as 15s, 1m or 500ms, in seconds."""
    for unit in sorted(DURATION_UNITS, key=len, reverse=True):
        number = duration.strip().removesuffix(unit)
        if number != duration.strip() and number.isdigit():
            return int(number) * DURATION_UNITS[unit]
    raise ValueError(f"not a Prometheus duration: {duration!r} (e.g. 15s, 1m)")


def step_for(range_s: float, min_step_s: float) -> int:
    """Seconds between points: at most MAX_POINTS per series, never below the scrape interval."""
    return max(int(min_step_s), math.ceil(range_s / MAX_POINTS), 1)


def finite(value: str) -> float | None:
    """A sample value; NaN and +-Inf (e.g. a quantile without traffic) become null (valid JSON)."""
    number = float(value)
    return number if math.isfinite(number) else None


def api(base: str, path: str, params: dict[str, str] | None = None, timeout: float = 30) -> Any:
    """GET base/path?params and return the `data` of a successful API answer."""
    url = base.rstrip("/") + path + ("?" + urllib.parse.urlencode(params) if params else "")
    if not url.startswith(("http://", "https://")):
        raise PrometheusError(f"not an http(s) URL: {url}")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (checked above)
            body = json.load(response)
    except urllib.error.HTTPError as exc:
        try:
            body = json.load(exc)
        except (json.JSONDecodeError, ValueError):
            raise PrometheusError(f"{url}: HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError, json.JSONDecodeError) as exc:
        raise PrometheusError(f"{url}: {exc}") from exc
    if body.get("status") != "success":
        raise PrometheusError(f"{body.get('errorType', 'error')}: {body.get('error', body)}")
    return body["data"]


def query_range(base: str, expr: str, start: float, end: float, step: int) -> dict[str, Any]:
    """One named series set: the expression, its result or its error."""
    params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": str(step)}
    try:
        data = api(base, "/api/v1/query_range", params)
    except PrometheusError as exc:
        return {"query": expr, "status": "error", "error": str(exc), "result": []}
    result = [
        {
            "metric": item.get("metric", {}),
            "values": [[float(t), finite(v)] for t, v in item["values"]],
        }
        for item in data.get("result", [])
    ]
    return {"query": expr, "status": "success", "result": result}


def targets_summary(base: str) -> list[dict[str, Any]]:
    data = api(base, "/api/v1/targets", {"state": "active"})
    rows = [
        {
            "job": t["labels"].get("job"),
            "instance": t["labels"].get("instance"),
            "health": t.get("health"),
            "last_error": t.get("lastError", ""),
        }
        for t in data.get("activeTargets", [])
    ]
    return sorted(rows, key=lambda row: (str(row["job"]), str(row["instance"])))


def snapshot(
    base: str,
    queries: dict[str, str],
    range_s: float,
    min_step_s: float,
    end: float,
    run_id: str,
    host: str,
) -> dict[str, Any]:
    """The whole document; raises PrometheusError when Prometheus does not answer."""
    build = api(base, "/api/v1/status/buildinfo")
    start = end - range_s
    step = step_for(range_s, min_step_s)
    series = {name: query_range(base, expr, start, end, step) for name, expr in queries.items()}
    alerts = api(base, "/api/v1/alerts").get("alerts", [])
    return {
        "run_id": run_id,
        "host": host,
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(end)),
        "prometheus": {"url": base, "version": build.get("version")},
        "range": {"start": start, "end": end, "step_s": step},
        "series": series,
        "alerts": [
            {
                "name": a.get("labels", {}).get("alertname"),
                "state": a.get("state"),
                "active_at": a.get("activeAt"),
                "labels": a.get("labels", {}),
                "summary": a.get("annotations", {}).get("summary", ""),
            }
            for a in alerts
        ],
        "targets": targets_summary(base),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="Prometheus base URL")
    parser.add_argument("--queries", required=True, help="JSON object: name -> PromQL")
    parser.add_argument("--out", required=True, type=Path, help="JSON file to write")
    parser.add_argument("--range-s", type=float, default=7200)
    parser.add_argument("--min-step", default="15s", help="the scrape interval, e.g. 15s")
    parser.add_argument("--end", type=float, default=None, help="Unix time; default now")
    parser.add_argument("--run-id", default="adhoc")
    parser.add_argument("--host", default="")
    args = parser.parse_args(argv)
    try:
        queries = json.loads(args.queries)
    except json.JSONDecodeError as exc:
        print(f"error: --queries is not JSON: {exc}", file=sys.stderr)
        return 2
    if not isinstance(queries, dict) or not all(isinstance(v, str) for v in queries.values()):
        print("error: --queries must be a JSON object of name -> PromQL string", file=sys.stderr)
        return 2
    try:
        min_step_s = seconds(args.min_step)
    except ValueError as exc:
        print(f"error: --min-step: {exc}", file=sys.stderr)
        return 2
    end = args.end if args.end is not None else time.time()
    try:
        doc = snapshot(args.url, queries, args.range_s, min_step_s, end, args.run_id, args.host)
    except PrometheusError as exc:
        print(f"error: Prometheus at {args.url} did not answer: {exc}", file=sys.stderr)
        print("fix: check `systemctl status prometheus` on the host", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(args.out)
    failed = sorted(name for name, s in doc["series"].items() if s["status"] != "success")
    points = sum(len(r["values"]) for s in doc["series"].values() for r in s["result"])
    print(
        json.dumps(
            {
                "out": str(args.out),
                "series": len(doc["series"]),
                "points": points,
                "failed_queries": failed,
                "alerts": len(doc["alerts"]),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
