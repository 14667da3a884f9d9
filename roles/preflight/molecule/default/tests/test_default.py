"""testinfra checks of the preflight role: reports in the bundle, nothing written on the host."""

from __future__ import annotations

import json
import os
from pathlib import Path

REPORTS = [
    "environment_report.json",
    "environment_report.txt",
    "compute_route.md",
    "gpu_plan.md",
    "model_runtime_decision.json",
    "model_decision.md",
]


def _report(host, name: str) -> str:
    evidence = Path(os.environ["LLMHOST_EVIDENCE_DIR"])
    local = evidence / host.backend.get_hostname() / name
    if not local.exists():  # single-host runs write flat
        local = evidence / name
    return local.read_text(encoding="utf-8")


def test_nothing_written_on_the_host(host) -> None:
    assert not host.file("/var/lib/llmhost/evidence").exists


def test_environment_report_contents(host) -> None:
    report = json.loads(_report(host, "environment_report.json"))
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
    text = _report(host, "environment_report.txt")
    assert "gpus            none:" in text
    assert "route           local_cpu" in text


def test_decision_is_cpu_only_and_fits(host) -> None:
    decision = json.loads(_report(host, "model_runtime_decision.json"))
    assert decision["decision"] == "cpu_only"
    assert decision["fits"] is True
    assert decision["arithmetic"]


def test_gpu_plan_gate_not_required_on_cpu(host) -> None:
    assert "not required" in _report(host, "gpu_plan.md")


def test_reports_in_the_bundle(host) -> None:
    evidence = Path(os.environ["LLMHOST_EVIDENCE_DIR"])
    hostname = host.backend.get_hostname()
    for name in REPORTS:
        local = evidence / hostname / name
        if not local.exists():  # single-host runs write flat
            local = evidence / name
        assert local.is_file(), f"{name} was not written into {evidence}"
        assert local.stat().st_size > 50


def test_nothing_but_evidence_changed(host) -> None:
    # preflight only reads the host and writes its reports: no packages, no services.
    assert not host.file("/srv/llmhost/models").exists
