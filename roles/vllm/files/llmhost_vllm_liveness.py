#!/usr/bin/env python3
"""Liveness probe for vLLM, run by a systemd timer: restart a dead or hung server,
never a busy one.

A hung engine can keep its port open and even answer /health 200, so the probe sends a
real 1-token completion. When that times out, the server may be hung, or merely busy:
with every --max-num-seqs slot taken by long generations the probe waits in the queue.
So, on a timeout, the probe reads vLLM's /metrics twice, WINDOW seconds apart:

- requests running and the token counters (prompt + generation) advanced: busy, the
  engine is working; not counted (logged as "busy");
- /metrics does not answer, nothing is running (the probe's own request was not
  served), or no token was produced while requests run: hung, counted.

A refused connection, an HTTP error or a malformed answer is counted at once (dead or
broken). After FAILURES counted probes in a row it restarts the service and logs why. The
count lives in a small JSON file; a completion or a busy verdict resets it. A failure is not
counted when the service is no longer active by the time the probe ends (an operator's or a
teardown's stop is never undone from here).

The unit runs this with the host's /usr/bin/python3 and the standard library only, not
with the vLLM venv's Python (which has prometheus_client): the watchdog must not depend on
the venv it watches (a broken, half-installed or rolled-back venv must not silence it).
/metrics is therefore parsed minimally: three series, summed over their labels (engines).

Environment: VLLM_API_KEY (from the service's env file), LIVENESS_URL, LIVENESS_MODEL,
LIVENESS_SERVICE, LIVENESS_TIMEOUT, LIVENESS_FAILURES, LIVENESS_STATE, LIVENESS_GRACE
(seconds after a (re)start during which the model may still be loading: nothing counts),
LIVENESS_WINDOW (seconds between the two /metrics reads).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

RUNNING = "vllm:num_requests_running"
WAITING = "vllm:num_requests_waiting"
TOKENS = ("vllm:prompt_tokens_total", "vllm:generation_tokens_total")
METRICS_TIMEOUT = 5.0  # a live API server answers /metrics in milliseconds
# One sample line of the Prometheus text format: name, optional {labels} (quoted values
# may hold braces and escaped quotes), value; an optional timestamp follows.
_SAMPLE = re.compile(r'([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(?:[^"}]|"(?:[^"\\]|\\.)*")*\})?\s+(\S+)')


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
    window: float = 5.0


@dataclass(frozen=True)
class Answer:
    """What the 1-token completion got: failure is None when it came back."""

    failure: str | None
    timed_out: bool = False


@dataclass(frozen=True)
class Progress:
    """One read of /metrics: requests running and waiting, tokens processed so far."""

    running: float
    waiting: float
    tokens: float


@dataclass(frozen=True)
class Verdict:
    state: Literal["ok", "busy", "failed"]
    detail: str


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
        window=float(env.get("LIVENESS_WINDOW", "5")),
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


def active_state(service: str) -> str:
    """systemd's ActiveState of the service (active, deactivating, inactive, ...)."""
    out = subprocess.run(  # noqa: S603 - fixed argv
        ["systemctl", "show", "--property=ActiveState", "--value", service],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() or "unknown"


def in_grace(active_for: float | None, grace: float) -> bool:
    """A (re)started server is loading its model: do not count failures yet."""
    return active_for is not None and active_for < grace


def _is_timeout(exc: BaseException) -> bool:
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    return isinstance(reason, TimeoutError)


def probe(s: Settings) -> Answer:
    """Send a 1-token completion; say whether it came back, failed, or timed out."""
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
        return Answer(f"HTTP {exc.code}")
    except (urllib.error.URLError, OSError) as exc:
        if _is_timeout(exc):
            return Answer(f"no answer in {s.timeout:g} s", timed_out=True)
        return Answer(f"no answer ({exc})")
    except ValueError:
        return Answer("answer is not JSON")
    if not payload.get("choices"):
        return Answer("answer has no choices")
    return Answer(None)


def parse_metrics(text: str) -> Progress | None:
    """The figures from Prometheus text, each summed over its series (engines); None
    when the running gauge or a token counter is missing or unreadable (then nothing can
    be told from it). The waiting gauge is only reported: 0 when absent."""
    needed = {RUNNING, *TOKENS}
    sums: dict[str, float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if not match or match[1] not in (needed | {WAITING}):
            continue
        try:
            sums[match[1]] = sums.get(match[1], 0.0) + float(match[2])
        except ValueError:
            return None
    if not needed <= sums.keys():
        return None
    return Progress(sums[RUNNING], sums.get(WAITING, 0.0), sum(sums[name] for name in TOKENS))


def read_progress(s: Settings) -> Progress | None:
    """GET /metrics (open on vLLM, the key is sent anyway); None when it does not answer."""
    request = urllib.request.Request(  # noqa: S310 - a fixed http URL from the unit
        s.url.rstrip("/") + "/metrics", headers={"Authorization": f"Bearer {s.api_key}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=min(s.timeout, METRICS_TIMEOUT)) as r:  # noqa: S310
            return parse_metrics(r.read().decode("utf-8", "replace"))
    except (urllib.error.URLError, OSError, ValueError):
        return None


def busy_or_hung(
    before: Progress | None, after: Progress | None, window: float
) -> tuple[bool, str]:
    """After a timed-out probe: busy (True) when requests run and tokens were produced
    between the two reads, else hung (False); with the figures that decided it."""
    if before is None or after is None:
        return False, "/metrics did not answer (or lacks vLLM's request and token series)"
    tokens = after.tokens - before.tokens
    figures = (
        f"{after.running:g} running, {after.waiting:g} waiting, {tokens:+g} tokens in {window:g} s"
    )
    if after.running > 0 and tokens > 0:
        return True, figures
    if after.running <= 0:
        return False, f"nothing running yet the probe was not served ({figures})"
    return False, f"no progress ({figures})"


def check(
    s: Settings,
    ask: Callable[[Settings], Answer] = probe,
    measure: Callable[[Settings], Progress | None] = read_progress,
    sleep: Callable[[float], None] = time.sleep,
) -> Verdict:
    """One liveness check: ok, busy (alive, not counted) or failed (counted)."""
    started = time.monotonic()
    answer = ask(s)
    if answer.failure is None:
        return Verdict("ok", f"answered in {time.monotonic() - started:.2f} s")
    if not answer.timed_out:
        return Verdict("failed", answer.failure)
    before = measure(s)
    if before is None:
        return Verdict("failed", f"{answer.failure}; /metrics did not answer either")
    sleep(s.window)
    busy, why = busy_or_hung(before, measure(s), s.window)
    if busy:
        return Verdict("busy", f"{answer.failure}, but the engine is working: {why}")
    return Verdict("failed", f"{answer.failure}; hung: {why}")


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
    state = active_state(s.service)
    if state != "active":
        # Stopped, stopping or starting: nothing to probe, and never started from here.
        print(f"liveness: {s.service} is {state}; not probed", flush=True)
        return 0
    active_for = seconds_active(s.service)
    if in_grace(active_for, s.grace):
        print(f"liveness: {s.service} started {active_for:.0f} s ago; grace {s.grace:.0f} s")
        return 0
    verdict = check(s)
    failure = verdict.detail if verdict.state == "failed" else None
    count = next_count(read_count(s.state), failure)
    if failure is None:
        print(f"liveness: {verdict.state}: {verdict.detail}", flush=True)
        write_count(s.state, 0, None)
        return 0
    state = active_state(s.service)
    if state != "active":
        # Stopped or being stopped while the probe ran (an operator, a teardown, systemd's
        # own restart): not a failure of a running server, and never restarted from here.
        print(f"liveness: {s.service} is {state}; not counted, not restarted", flush=True)
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
    # --job-mode=fail: a stop an operator queued meanwhile wins; the restart is refused.
    subprocess.run(["systemctl", "--job-mode=fail", "restart", s.service], check=False)  # noqa: S603, S607
    return 1


if __name__ == "__main__":
    sys.exit(main())
