"""The monitoring role's readiness wait, run for real on localhost against a port where no
Prometheus listens: the run stops within the timeout and says why, naming the variable."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from role_runner import run_role


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, read, released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_prometheus_that_never_answers_stops_the_run_with_its_state(tmp_path: Path) -> None:
    port = _closed_port()
    started = time.monotonic()
    done = run_role(
        tmp_path,
        "monitoring",
        {"monitoring_prometheus_port": port, "monitoring_prometheus_ready_timeout_s": 4},
        gather_facts=False,
        tasks_from="verify.yml",
    )
    elapsed = time.monotonic() - started
    out = done.stdout + done.stderr
    assert done.returncode != 0, out[-3000:]
    url = f"http://127.0.0.1:{port}/-/ready"
    assert f"Prometheus did not answer {url} within 4 s" in out, out[-3000:]
    assert "Connection refused" in out
    assert "raise monitoring_prometheus_ready_timeout_s" in out
    # The rescue ran its probe (whatever this machine's systemctl says) and stopped there:
    # nothing after the wait ran.
    assert "Read the Prometheus unit's state and the end of its journal" in out
    assert "Read whether the last config reload succeeded" not in out
    assert elapsed < 60, f"the wait took {elapsed:.0f} s for a 4 s timeout"
