"""The teardown role, run for real on localhost: bad input, a hard stop in the past or
missing on rented_gpu, and a guard on a host without systemd are refused with the
variable's name before anything is installed."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from role_runner import CaseResult, run_cases, run_role


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


# Stands for a provider token in the destroy hook: never shown.
CANARY = "provider-canary-never-shown-0123456789"
# A run with a destroy hook needs a bundle to fetch the proof into.
HOOK = {"teardown_evidence_dir": "/srv/llmhost-refusal-bundle"}

# Every rule of meta/argument_specs.yml and tasks/preflight.yml, refused with the variable.
CASES = [
    # Shapes and choices (meta/argument_specs.yml).
    (
        {"teardown_route": "free_colab"},
        "value of teardown_route must be one of: local_cpu, rented_gpu",
    ),
    ({"teardown_ports": ["https"]}, "teardown_ports"),
    ({"teardown_drain_timeout_s": "soon"}, "teardown_drain_timeout_s"),
    # Lists given as strings (argument_specs would split them, the role reads the string).
    (
        {"teardown_stop_before_drain": "vllm-liveness.timer"},
        "teardown_stop_before_drain: must be a YAML list, not a string",
    ),
    (
        {"teardown_destroy_command": "provider-cli terminate", **HOOK},
        "teardown_destroy_command: must be a YAML list, not a string",
    ),
    # Units.
    ({"teardown_services": []}, "teardown_services: must name at least one unit"),
    (
        {"teardown_services": ["vllm"]},
        "teardown_stop_before_drain / teardown_services: holds names that are not systemd units,"
        " got ['vllm']",
    ),
    (
        {"teardown_services": ["vllm.service", "vllm.service"]},
        "['vllm.service'] listed twice",
    ),
    (
        {"teardown_stop_before_drain": ["vllm.service"], "teardown_services": ["vllm.service"]},
        "teardown_services: ['vllm.service'] also in teardown_stop_before_drain",
    ),
    # Numbers.
    ({"teardown_drain_timeout_s": -5}, "teardown_drain_timeout_s: must be a whole number >= 0"),
    ({"teardown_drain_timeout_s": True}, "teardown_drain_timeout_s: must be a whole number >= 0"),
    ({"teardown_destroy_timeout_s": 0}, "teardown_destroy_timeout_s: must be a whole number >= 1"),
    (
        {"teardown_gpu_plan": {"hourly_budget": "cheap"}},
        "teardown_gpu_plan.hourly_budget: must be a number >= 0, got cheap",
    ),
    (
        {"teardown_gpu_plan": {"hourly_budget": -1}},
        "teardown_gpu_plan.hourly_budget: must be a number >= 0, got -1",
    ),
    (
        {"teardown_gpu_plan": {}},
        "teardown_gpu_plan.hourly_budget: must be a number >= 0, got nothing",
    ),
    (
        {"teardown_ports": [443, 70000]},
        "teardown_ports: must be TCP ports 1-65535, got [70000]",
    ),
    # Names, URLs, paths.
    ({"teardown_run_id": "../x"}, "teardown_run_id: must be a safe folder name, got '../x'"),
    (
        {"teardown_vllm_metrics_urls": ["127.0.0.1:8000"]},
        "teardown_vllm_metrics_urls: must be http(s) URLs, got ['127.0.0.1:8000']",
    ),
    (
        {"teardown_gateway_status_url": "nginx_status"},
        "teardown_gateway_status_url: must be an http URL or empty",
    ),
    ({"teardown_drain_file": "draining"}, "teardown_drain_file: must be an absolute path"),
    # The destroy hook (its arguments are never shown).
    (
        {"teardown_destroy_command": ["provider-cli", "", CANARY], **HOOK},
        "teardown_destroy_command: arguments [1] (counting from 0) are empty",
    ),
    (
        {"teardown_destroy_command": ["provider", "terminate"]},
        "teardown_destroy_command: is set while teardown_evidence_dir is empty",
    ),
]


@pytest.fixture(scope="module")
def refusals(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, CaseResult]]:
    """Every bad input at once: one ansible-playbook, a host per case; the role's internal
    paths (extra vars, the same for every case) under one folder, which must stay empty."""
    base = tmp_path_factory.mktemp("teardown-refusals")
    cases = {
        f"case{i}": {"teardown_destroy_environment": {"API_TOKEN": CANARY}, **c[0]}
        for i, c in enumerate(CASES)
    }
    results = run_cases(
        base,
        "teardown",
        cases,
        gather_facts=False,
        tags="teardown_preflight",
        extra_vars=_paths(base),
    )
    return base, results


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(CASES)), ids=[c[1][:40] for c in CASES])
def test_bad_input_refused_before_any_change(
    refusals: tuple[Path, dict[str, CaseResult]], index: int
) -> None:
    base, results = refusals
    result = results[f"case{index}"]
    assert result.failed, result.output
    assert CASES[index][1] in result.output, result.output
    assert CANARY not in result.log, "a destroy hook's secret reached the output"
    _nothing_written(base)


@pytest.mark.slow
def test_good_inputs_pass_the_checks(tmp_path: Path) -> None:
    """Full inputs pass, numbers as strings (-e) and an empty status URL included."""
    result = run_role(
        tmp_path,
        "teardown",
        {
            **_paths(tmp_path),
            "teardown_route": "rented_gpu",
            "teardown_run_id": "20261123T100000Z-abc123def456",
            "teardown_gpu_plan": {"hourly_budget": "0", "hard_stop_time": "2030-01-01T18:00:00Z"},
            "teardown_stop_before_drain": ["vllm-liveness.timer"],
            "teardown_services": ["vllm.service", "nginx.service", "prometheus.service"],
            "teardown_drain_timeout_s": "120",
            "teardown_ports": [443, "8000"],
            "teardown_gateway_status_url": "",
            "teardown_destroy_command": ["provider-cli", "terminate", "i-123"],
            "teardown_destroy_environment": {"API_TOKEN": CANARY},
            "teardown_evidence_dir": str(tmp_path / "bundle"),
        },
        gather_facts=False,
        tags="teardown_preflight",
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert CANARY not in out
    _nothing_written(tmp_path)


# The hard-stop guard (tasks/guard.yml): each bad time refused, and what passes it.
GUARD_PARAMS: list[tuple[dict[str, Any], str]] = [
    (
        {"teardown_route": "rented_gpu", "teardown_hard_stop_time": "2020-01-01T00:00:00Z"},
        "teardown_hard_stop_time: lies in the past, got 2020-01-01T00:00:00Z",
    ),
    (
        {"teardown_route": "rented_gpu", "teardown_gpu_plan": {"hourly_budget": 2.49}},
        "teardown_hard_stop_time: is empty on rented_gpu",
    ),
    (
        {"teardown_hard_stop_time": "tomorrow 6pm"},
        "teardown_hard_stop_time: must be a quoted RFC 3339 (ISO 8601) time with seconds and"
        " a zone (Z or +HH:MM); this one is not a time, got 'tomorrow 6pm'. Fix:",
    ),
    (
        {
            "teardown_hard_stop_time": "2099-01-01T00:00:00Z",
            "teardown_hard_stop_poweroff": "yes",
        },
        "teardown_hard_stop_poweroff: must be true or false, got 'yes'",
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
]
GUARD_IDS = [
    "past",
    "empty-on-rented",
    "not-a-time",
    "poweroff-yes",
    "no-zone",
    "yaml-timestamp",
    "no-systemd",
]
GUARD_REFUSALS = [(i, o, e) for i, (o, e) in zip(GUARD_IDS, GUARD_PARAMS, strict=True)]
GUARD_GOOD: dict[str, dict[str, Any]] = {
    "no-guard-empty": {"teardown_route": "local_cpu", "teardown_hard_stop_time": ""},
    "no-guard-null": {"teardown_route": "local_cpu", "teardown_hard_stop_time": None},
    "past-offset": {"teardown_hard_stop_time": "2020-01-01T00:00:00+02:00"},
    "future-offset": {
        "teardown_route": "rented_gpu",
        "teardown_hard_stop_time": "2099-01-01T19:00:00+01:00",
    },
}


@pytest.fixture(scope="module")
def guard(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, CaseResult]]:
    """Every guard case at once (one ansible-playbook of tasks/guard.yml, a host per case);
    the internal paths shared, under one folder that must stay empty."""
    base = tmp_path_factory.mktemp("teardown-guard")
    cases = {name: overrides for name, overrides, _ in GUARD_REFUSALS} | GUARD_GOOD
    results = run_cases(
        base,
        "teardown",
        cases,
        gather_facts=False,
        tasks_from="guard.yml",
        extra_vars=_paths(base),
    )
    return base, results


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(GUARD_REFUSALS)), ids=[c[0] for c in GUARD_REFUSALS])
def test_guard_refused_before_any_change(
    guard: tuple[Path, dict[str, CaseResult]], index: int
) -> None:
    name, _, expected = GUARD_REFUSALS[index]
    if "systemd" in expected and Path("/run/systemd/system").is_dir():
        pytest.skip("this machine runs systemd")
    base, results = guard
    result = results[name]
    assert result.failed, result.output
    assert expected in " ".join(result.output.split()), result.output
    _nothing_written(base)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["no-guard-empty", "no-guard-null"])
def test_no_guard_in_the_lab_is_accepted(
    guard: tuple[Path, dict[str, CaseResult]], name: str
) -> None:
    base, results = guard
    result = results[name]
    assert not result.failed, result.output
    assert f"No hard-stop guard on {name}" in result.output, result.output
    _nothing_written(base)


@pytest.mark.slow
def test_a_past_time_is_refused_with_a_future_one_to_use(
    guard: tuple[Path, dict[str, CaseResult]],
) -> None:
    base, results = guard
    out = " ".join(results["past-offset"].output.split())
    assert results["past-offset"].failed, out
    assert "lies in the past, got 2019-12-31T22:00:00Z" in out, out
    match = re.search(r"e\.g\. (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ), and re-run", out)
    assert match, out
    assert datetime.strptime(match[1], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) > datetime.now(UTC)
    _nothing_written(base)


@pytest.mark.slow
@pytest.mark.skipif(Path("/run/systemd/system").is_dir(), reason="this machine runs systemd")
def test_a_future_time_with_an_offset_passes_the_checks(
    guard: tuple[Path, dict[str, CaseResult]],
) -> None:
    """Accepted by every check: only the missing systemd (this machine) stops the guard."""
    base, results = guard
    result = results["future-offset"]
    assert result.failed, result.output
    assert "does not run systemd, so no timer can enforce it" in result.output, result.output
    assert "teardown_hard_stop_time:" not in result.output, result.output
    _nothing_written(base)
