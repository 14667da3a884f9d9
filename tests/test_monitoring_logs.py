"""The monitoring role's logs phase (tasks/logs.yml) run for real on localhost with shipping
off: nothing is installed or started, and log_shipping.json still records the retention the
inventory set. Shipping itself (journal-upload to a loopback journal-remote, the marker
found in the received files) needs systemd: the Molecule scenario and the lab prove it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from role_runner import run_role


@pytest.mark.slow
def test_logs_phase_without_a_collector_records_the_retention(tmp_path: Path) -> None:
    evidence = tmp_path / "evidence"
    result = run_role(
        tmp_path,
        "monitoring",
        {
            "monitoring_evidence_dir": str(evidence),
            "monitoring_run_id": "pytest",
            "monitoring_journal_max_use": "2G",
            "monitoring_journal_max_retention": "14day",
        },
        tags="monitoring_logs",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    doc = json.loads((evidence / "log_shipping.json").read_text("utf-8"))
    assert doc["run_id"] == "pytest"
    assert doc["shipper"] == "" and doc["collector_url"] == "" and doc["marker"] == ""
    assert doc["acknowledged"] is False and doc["received"] is False
    assert doc["retention"]["journal_max_use"] == "2G"
    assert doc["retention"]["journal_retention"] == "14day"
    if not Path("/etc/logrotate.d/nginx").is_file():  # no gateway on this machine
        assert doc["retention"]["nginx_rotate"] == {}
    recap = result.stdout.split("PLAY RECAP")[-1]
    assert "changed=0" in recap, result.stdout  # nothing installed, started or written
