"""The nvidia_driver role, run for real on localhost (no GPU here): bad input is refused
with the variable's name and the fix before anything is written, and the CPU route
skips with its reason recorded in nvidia_driver_report.json."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from role_runner import run_role

MANAGED = [
    Path("/etc/apt/preferences.d/llmhost-nvidia-driver.pref"),
    Path("/etc/apt/sources.list.d/llmhost-nvidia-cuda.sources"),
    Path("/etc/modprobe.d/llmhost-blacklist-nouveau.conf"),
    Path("/etc/systemd/system/nvidia-persistenced.service.d/llmhost.conf"),
]


def _run(tmp_path: Path, **overrides: Any) -> subprocess.CompletedProcess[str]:
    extra: dict[str, Any] = {
        "nvidia_driver_route": "rented_gpu",
        "nvidia_driver_run_id": "refusal-test",
        "nvidia_driver_evidence_dir": str(tmp_path / "evidence"),
    }
    extra.update(overrides)
    return run_role(tmp_path, "nvidia_driver", extra)


CASES = [
    ({"nvidia_driver_branch": "58x"}, "nvidia_driver_branch: must be a driver branch number"),
    ({"nvidia_driver_version": "575.57.08"}, "nvidia_driver_version: is not in branch 580, got"),
    ({"nvidia_driver_platform": "Rocky-9"}, "Rocky-9 is not a supported distribution"),
    (
        {"nvidia_driver_platform": "Debian-12", "nvidia_driver_source": "distro"},
        "Debian 12 packages driver branch(es) 535 only",
    ),
    ({"nvidia_driver_route": "gpu"}, "nvidia_driver_route"),
    ({}, "nvidia_driver_route is rented_gpu but this host has no NVIDIA GPU"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("overrides", "expected"), CASES, ids=[c[1][:40] for c in CASES])
def test_bad_input_refused_before_any_change(
    tmp_path: Path, overrides: dict[str, Any], expected: str
) -> None:
    before = {path: path.exists() for path in MANAGED}
    result = _run(tmp_path, **overrides)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert expected in out, out
    assert not (tmp_path / "evidence").exists(), "evidence written before the refusal"
    assert {path: path.exists() for path in MANAGED} == before


@pytest.mark.slow
def test_cpu_route_skips_and_records_why(tmp_path: Path) -> None:
    result = _run(tmp_path, nvidia_driver_route="local_cpu")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "evidence" / "nvidia_driver_report.json").read_text())
    assert report["status"] == "skipped"
    assert report["reason"] == "skipped: no NVIDIA GPU / route local_cpu"
    assert report["route"] == "local_cpu"
    assert report["detected"]["nvidia_smi"]["present"] is False
    assert report["verification"] == {"checked": False, "passed": True, "failures": []}
    assert not any(path.exists() for path in MANAGED[2:])
