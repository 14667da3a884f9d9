"""The teardown role, run for real on localhost: bad input, a hard stop in the past or
missing on rented_gpu, and a guard on a host without systemd are refused with the
variable's name before anything is installed."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from role_runner import run_role


def _paths(tmp_path: Path) -> dict[str, str]:
    """Internal paths moved into tmp_path (extra vars win), to show nothing was written."""
    return {
        "_teardown_script": str(tmp_path / "sbin" / "llmhost-teardown"),
        "_teardown_config": str(tmp_path / "etc" / "teardown.json"),
        "_teardown_host_evidence_root": str(tmp_path / "evidence"),
    }


def _nothing_written(tmp_path: Path) -> None:
    for created in ("sbin", "etc", "evidence"):
        assert not (tmp_path / created).exists(), f"{created} was created before the refusal"


def _run_guard(tmp_path: Path, extra: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return run_role(
        tmp_path,
        "teardown",
        {**_paths(tmp_path), **extra},
        gather_facts=False,
        tasks_from="guard.yml",
    )


CASES = [
    ({"teardown_services": ["vllm"]}, "teardown_services: holds a name that is not a systemd unit"),
    ({"teardown_drain_timeout_s": -5}, "teardown_drain_timeout_s: must be a whole number >= 0"),
    (
        {"teardown_destroy_command": ["provider", "terminate"]},
        "teardown_destroy_command: is set while teardown_evidence_dir is empty",
    ),
    ({"teardown_gpu_plan": {"hourly_budget": "cheap"}}, "teardown_gpu_plan.hourly_budget"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("overrides", "expected"), CASES, ids=[c[1][:40] for c in CASES])
def test_bad_input_refused_before_any_change(
    tmp_path: Path, overrides: dict[str, Any], expected: str
) -> None:
    result = run_role(
        tmp_path,
        "teardown",
        {**_paths(tmp_path), **overrides},
        gather_facts=False,
        tags="teardown_preflight",
    )
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert expected in out, out
    _nothing_written(tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"teardown_route": "rented_gpu", "teardown_hard_stop_time": "2020-01-01T00:00:00Z"},
            "teardown_hard_stop_time: lies in the past, got 2020-01-01T00:00:00Z",
        ),
        (
            {"teardown_route": "rented_gpu", "teardown_gpu_plan": {"hourly_budget": 2.49}},
            "teardown_hard_stop_time: is empty on rented_gpu",
        ),
        (
            {"teardown_hard_stop_time": "2099-01-01T00:00:00"},
            "teardown_hard_stop_time: must be a quoted RFC 3339 (ISO 8601) time with seconds and"
            " a zone (Z or +HH:MM); this one has no zone (a naive time), got '2099-01-01T00:00:00'."
            " Fix: write it like '2026-12-04T18:00:00Z' (UTC)",
        ),
        (
            # Unquoted in YAML (the vars file): a timestamp object, refused whatever it holds.
            {"teardown_hard_stop_time": datetime(2099, 1, 1, tzinfo=UTC)},
            "teardown_hard_stop_time: must be a quoted RFC 3339 (ISO 8601) time with seconds and"
            " a zone (Z or +HH:MM); this one is a YAML timestamp (unquoted), not a string",
        ),
        (
            # This machine runs no systemd: a valid time is refused for that reason.
            {"teardown_hard_stop_time": "2099-01-01T00:00:00Z"},
            "does not run systemd, so no timer can enforce it",
        ),
    ],
    ids=["past", "empty-on-rented", "no-zone", "yaml-timestamp", "no-systemd"],
)
def test_guard_refused_before_any_change(
    tmp_path: Path, overrides: dict[str, Any], expected: str
) -> None:
    if "systemd" in expected and Path("/run/systemd/system").is_dir():
        pytest.skip("this machine runs systemd")
    result = _run_guard(tmp_path, overrides)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert expected in out, out
    _nothing_written(tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("empty", ["", None], ids=["empty", "null"])
def test_no_guard_in_the_lab_is_accepted(tmp_path: Path, empty: str | None) -> None:
    result = _run_guard(tmp_path, {"teardown_route": "local_cpu", "teardown_hard_stop_time": empty})
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "No hard-stop guard on localhost" in out
    _nothing_written(tmp_path)
