"""The monitoring role's readiness waits (tasks/wait_ready.yml, as verify.yml includes it
for Prometheus and for Alertmanager), run for real on localhost against a port where
nothing listens: the run stops within the timeout and says why, naming the variable."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from role_runner import ROOT, run_play, run_role

VERIFY = ROOT / "roles" / "monitoring" / "tasks" / "verify.yml"
# Each service verify.yml waits for: its port and timeout inputs.
SERVICES = {
    "Prometheus": ("monitoring_prometheus_port", "monitoring_prometheus_ready_timeout_s"),
    "Alertmanager": ("monitoring_alertmanager_port", "monitoring_alertmanager_ready_timeout_s"),
}


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, read, released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_include(name: str) -> dict[str, Any]:
    """verify.yml's include of wait_ready.yml for the service NAME."""
    tasks = yaml.safe_load(VERIFY.read_text(encoding="utf-8"))
    found = [
        t
        for t in tasks
        if t.get("ansible.builtin.include_tasks") == "wait_ready.yml"
        and t.get("vars", {}).get("_monitoring_wait_name") == name
    ]
    assert len(found) == 1, f"verify.yml waits for {name} {len(found)} times"
    return found[0]


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_a_service_that_never_answers_stops_the_run_with_its_state(
    tmp_path: Path, name: str
) -> None:
    port_var, timeout_var = SERVICES[name]
    include = _wait_include(name)
    assert include["vars"]["_monitoring_wait_timeout_var"] == timeout_var
    port = _closed_port()
    play = {
        "name": "t",
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [
            {
                "name": "The wait, as verify.yml includes it",
                "ansible.builtin.include_role": {
                    "name": "monitoring",
                    "tasks_from": "wait_ready.yml",
                },
                "vars": include["vars"],
            },
            {"name": "After the wait", "ansible.builtin.debug": {"msg": "not reached"}},
        ],
    }
    started = time.monotonic()
    done = run_play(tmp_path, [play], {port_var: port, timeout_var: 4})
    elapsed = time.monotonic() - started
    out = done.stdout + done.stderr
    assert done.returncode != 0, out[-3000:]
    url = f"http://127.0.0.1:{port}/-/ready"
    assert f"{name} did not answer {url} within 4 s" in out, out[-3000:]
    assert "Connection refused" in out
    assert f"listener on port {port}" in out
    assert f"raise {timeout_var}" in out
    # The rescue ran its probe (whatever this machine's systemctl says) and stopped there.
    assert f"Read the unit's state, the end of its journal and the port's listener ({name})" in out
    assert "After the wait" not in out
    assert elapsed < 60, f"the wait took {elapsed:.0f} s for a 4 s timeout"


def test_verify_stops_at_the_prometheus_wait(tmp_path: Path) -> None:
    port = _closed_port()
    done = run_role(
        tmp_path,
        "monitoring",
        {"monitoring_prometheus_port": port, "monitoring_prometheus_ready_timeout_s": 4},
        gather_facts=False,
        tasks_from="verify.yml",
    )
    out = done.stdout + done.stderr
    assert done.returncode != 0, out[-3000:]
    assert f"Prometheus did not answer http://127.0.0.1:{port}/-/ready within 4 s" in out
    assert "Read whether the last config reload succeeded" not in out
