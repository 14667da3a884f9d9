#!/usr/bin/env python3
"""Liveness probe for vLLM, run by a systemd timer.

A hung engine can keep its port open and even answer /health 200, so the probe sends a
real 1-token completion. After FAILURES failed or timed-out probes in a row it restarts
the service and logs why. State (the count) lives in a small JSON file.

Environment: VLLM_API_KEY (from the service's env file), LIVENESS_URL, LIVENESS_MODEL,
LIVENESS_SERVICE, LIVENESS_TIMEOUT, LIVENESS_FAILURES, LIVENESS_STATE, LIVENESS_GRACE
(seconds after a (re)start during which the model may still be loading: nothing counts).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    url: str
    model: str
    service: str
    timeout: float
    failures: int
    state: Path
    api_key: str
    grace: float


def settings_from_env(env: dict[str, str]) -> Settings:
    return Settings(
        url=env.get("LIVENESS_URL", "http://127.0.0.1:8000"),
        model=env["LIVENESS_MODEL"],
        service=env.get("LIVENESS_SERVICE", "vllm"),
        timeout=float(env.get("LIVENESS_TIMEOUT", "20")),
        failures=int(env.get("LIVENESS_FAILURES", "3")),
        state=Path(env.get("LIVENESS_STATE", "/run/llmhost-vllm-liveness/state.json")),
        api_key=env.get("VLLM_API_KEY", ""),
        grace=float(env.get("LIVENESS_GRACE", "600")),
    )


def seconds_active(service: str) -> float | None:
    """Seconds since the service last became active, from systemd's monotonic stamp."""
    out = subprocess.run(  # noqa: S603 - fixed argv
        ["systemctl", "show", "--property=ActiveEnterTimestampMonotonic", "--value", service],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        stamp_us = int(out.stdout.strip())
    except ValueError:
        return None
    if stamp_us <= 0:
        return None
    return time.monotonic() - stamp_us / 1e6


def in_grace(active_for: float | None, grace: float) -> bool:
    """A (re)started server is loading its model: do not count failures yet."""
    return active_for is not None and active_for < grace


def probe(s: Settings) -> str | None:
    """None when a 1-token completion came back, else the reason it did not."""
    body = json.dumps({"model": s.model, "prompt": "ping", "max_tokens": 1}).encode()
    request = urllib.request.Request(  # noqa: S310 - a fixed http URL from the unit
        s.url.rstrip("/") + "/v1/completions",
        data=body,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {s.api_key}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=s.timeout) as response:  # noqa: S310
            payload = json.load(response)
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        return f"no answer ({exc})"
    except ValueError:
        return "answer is not JSON"
    if not payload.get("choices"):
        return "answer has no choices"
    return None


def next_count(previous: int, failure: str | None) -> int:
    return 0 if failure is None else previous + 1


def read_count(path: Path) -> int:
    try:
        return int(json.loads(path.read_text(encoding="utf-8")).get("consecutive_failures", 0))
    except (OSError, ValueError):
        return 0


def write_count(path: Path, count: int, failure: str | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"consecutive_failures": count, "last": failure}), "utf-8")
    tmp.replace(path)


def main() -> int:
    s = settings_from_env(dict(os.environ))
    active_for = seconds_active(s.service)
    if in_grace(active_for, s.grace):
        print(f"liveness: {s.service} started {active_for:.0f} s ago; grace {s.grace:.0f} s")
        return 0
    failure = probe(s)
    count = next_count(read_count(s.state), failure)
    if failure is None:
        write_count(s.state, 0, None)
        return 0
    print(f"liveness: probe {count}/{s.failures} failed: {failure}", flush=True)
    if count < s.failures:
        write_count(s.state, count, failure)
        return 0
    print(
        f"liveness: restarting {s.service} after {count} failed probes in a row (last: {failure})",
        flush=True,
    )
    write_count(s.state, 0, failure)
    subprocess.run(["systemctl", "restart", s.service], check=False)  # noqa: S603, S607
    return 1


if __name__ == "__main__":
    sys.exit(main())
