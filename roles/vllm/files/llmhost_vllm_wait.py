#!/usr/bin/env python3
"""Wait until vLLM answers /health, giving up early when its unit has failed.

Usage: llmhost_vllm_wait.py URL SERVICE TIMEOUT_S
Prints a progress line every 15 s. Exit 0 ready, 3 the unit failed (systemd gave up
restarting it), 4 timed out.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=5) as response:  # noqa: S310
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def unit_failed(service: str) -> bool:
    out = subprocess.run(  # noqa: S603 - fixed argv
        ["systemctl", "is-failed", service],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() == "failed"


def wait(
    url: str,
    service: str,
    timeout: float,
    is_healthy: Callable[[str], bool] = healthy,
    has_failed: Callable[[str], bool] = unit_failed,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    start = clock()
    last_report = start
    while True:
        elapsed = clock() - start
        if is_healthy(url):
            print(f"ready after {elapsed:.0f} s", flush=True)
            return 0
        if has_failed(service):
            print(f"{service} failed after {elapsed:.0f} s", flush=True)
            return 3
        if elapsed >= timeout:
            print(f"not ready after {elapsed:.0f} s", flush=True)
            return 4
        if clock() - last_report >= 15:
            print(f"waiting for {url}/health ({elapsed:.0f}/{timeout:.0f} s)", flush=True)
            last_report = clock()
        sleep(2)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    return wait(argv[0].rstrip("/"), argv[1], float(argv[2]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
