"""testinfra checks of the preflight role: reports on the host and in the bundle."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

HOST_DIR = "/var/lib/llmhost/evidence/molecule"
REPORTS = [
    "environment_report.json",
    "environment_report.txt",
    "compute_route.md",
    "gpu_plan.md",
    "model_runtime_decision.json",
    "model_decision.md",
]


@pytest.mark.parametrize("name", REPORTS)
def test_report_written_on_host(host, name: str) -> None:
    f = host.file(f"{HOST_DIR}/{name}")
    assert f.is_file
    assert f.user == "root"
    assert f.mode == 0o640
    assert f.size > 50


def test_environment_report_contents(host) -> None:
    report = json.loads(host.file(f"{HOST_DIR}/environment_report.json").content_string)
    assert report["schema"] == "llmhost.environment_report/v1"
    assert report["route"] == "local_cpu"
    assert report["run_id"] == "molecule"
    assert report["platform"]["distribution"] == "Debian"
    assert report["platform"]["service_mgr"] == "systemd"
    assert int(report["memory_mib"]["total"]) > 0
    assert float(report["models_disk"]["free_gib"]) > 0
    assert report["gpu"]["present"] is False
    assert report["gpu"]["reason"]
    assert report["python"]["version"].startswith("3.")


def test_text_report_says_no_gpu(host) -> None:
    text = host.file(f"{HOST_DIR}/environment_report.txt").content_string
    assert "gpus            none:" in text
    assert "route           local_cpu" in text


def test_decision_is_cpu_only_and_fits(host) -> None:
    decision = json.loads(host.file(f"{HOST_DIR}/model_runtime_decision.json").content_string)
    assert decision["decision"] == "cpu_only"
    assert decision["fits"] is True
    assert decision["arithmetic"]


def test_gpu_plan_gate_not_required_on_cpu(host) -> None:
    assert "not required" in host.file(f"{HOST_DIR}/gpu_plan.md").content_string


def test_reports_fetched_to_the_control_node(host) -> None:
    evidence = Path(os.environ["LLMHOST_EVIDENCE_DIR"])
    hostname = host.backend.get_hostname()
    for name in REPORTS:
        local = evidence / hostname / name
        if not local.exists():  # single-host runs fetch flat
            local = evidence / name
        assert local.is_file(), f"{name} was not fetched into {evidence}"
        assert local.stat().st_size > 50


def test_nothing_but_evidence_changed(host) -> None:
    # preflight only reads the host and writes its reports: no packages, no services.
    assert not host.file("/srv/llmhost/models").exists
