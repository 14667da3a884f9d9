"""The preflight role, run for real on localhost: bad plans are refused with the
variable's name before anything is written; a good CPU plan writes the reports."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from role_runner import run_role

GOOD_MODEL: dict[str, Any] = {
    "name": "mini-gpt2-test",
    "source": "local",
    "params": 1400000,
    "dtype": "float32",
    "num_layers": 4,
    "hidden_size": 128,
    "num_attention_heads": 4,
    "num_kv_heads": 4,
    "max_context": 512,
    "license": "test",
}
GOOD_PLAN: dict[str, Any] = {
    "goal": "test",
    "model": "mini-gpt2-test",
    "runtime": "vllm",
    "instance_vram": 80,
    "hourly_budget": 2.5,
    "hard_stop_time": "2099-01-01T00:00:00Z",
    "fallback_if_oom": "lower max_num_seqs",
    "evidence_to_copy_back": ["environment_report.json"],
    "shutdown_proof": "shutdown_proof.json",
}


def _run(tmp_path: Path, **overrides: Any) -> subprocess.CompletedProcess[str]:
    extra: dict[str, Any] = {
        "preflight_route": "local_cpu",
        "preflight_model": GOOD_MODEL,
        "preflight_serving": {"max_model_len": 256, "max_num_seqs": 4},
        "preflight_gpu_plan": {},
        "preflight_run_id": "pytest",
        "preflight_evidence_dir": str(tmp_path / "bundle"),
        "preflight_models_root": str(tmp_path / "models"),
    }
    extra.update(overrides)
    return run_role(tmp_path, "preflight", extra)


BAD_CASES = [
    ({"preflight_route": "colab"}, "preflight_route"),
    (
        {"preflight_route": "rented_gpu", "preflight_gpu_plan": {**GOOD_PLAN, "hourly_budget": -3}},
        "preflight_gpu_plan.hourly_budget",
    ),
    (
        {"preflight_model": {**GOOD_MODEL, "source": "hub", "repo_id": "a/b", "revision": "main"}},
        "preflight_model.revision",
    ),
    (
        {
            "preflight_route": "rented_gpu",
            "preflight_gpu_plan": {**GOOD_PLAN, "hard_stop_time": "2001-01-01T00:00:00Z"},
        },
        "preflight_gpu_plan.hard_stop_time",
    ),
    # Two services of the host on one port, whichever roles they belong to.
    (
        {"vllm_port": 443, "gateway_listen_port": 443},
        "gateway_listen_port and vllm_port are all 443",
    ),
    (
        {"vllm_port": 9090, "monitoring_prometheus_port": 9090},
        "monitoring_prometheus_port and vllm_port",
    ),
    ({"gateway_status_port": 22}, "ansible_port (SSH) and gateway_status_port are all 22"),
    (
        {"gateway_http": "redirect", "vllm_port": 80},
        "gateway_http (port 80) and vllm_port are all 80",
    ),
    ({"vllm_port": 70000}, "vllm_port must be a port number 1-65535"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("overrides", "variable"), BAD_CASES, ids=[c[1] for c in BAD_CASES])
def test_bad_plan_refused_before_any_change(
    tmp_path: Path, overrides: dict[str, Any], variable: str
) -> None:
    result = _run(tmp_path, **overrides)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert variable in out, out
    assert not (tmp_path / "bundle").exists(), "a report was written before the refusal"


@pytest.mark.slow
def test_an_unquoted_yaml_stop_time_is_refused(tmp_path: Path) -> None:
    """hard_stop_time: 2099-01-01 00:00:00+00:00 unquoted (the vars file): a YAML timestamp,
    refused whatever it holds, as every reader of the hard stop refuses it."""
    plan = {**GOOD_PLAN, "hard_stop_time": datetime(2099, 1, 1, tzinfo=UTC)}
    result = _run(tmp_path, preflight_route="rented_gpu", preflight_gpu_plan=plan)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    flat = " ".join(out.split())
    assert (
        "preflight_gpu_plan.hard_stop_time: must be a quoted RFC 3339 (ISO 8601) time with "
        "seconds and a zone (Z or +HH:MM); this one is a YAML timestamp (unquoted), not a "
        "string, got 2099-01-01 00:00:00+00:00." in flat
    ), out
    assert not (tmp_path / "bundle").exists()


@pytest.mark.slow
def test_model_that_cannot_fit_is_refused_with_numbers(tmp_path: Path) -> None:
    huge = {
        **GOOD_MODEL,
        "name": "huge",
        "params": 10**13,
        "num_layers": 80,
        "hidden_size": 8192,
        "num_attention_heads": 64,
        "num_kv_heads": 8,
        "max_context": 8192,
    }
    result = _run(tmp_path, preflight_model=huge)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "does not fit" in out and "GiB" in out, out
    assert not (tmp_path / "bundle").exists()


@pytest.mark.slow
def test_good_cpu_plan_writes_and_fetches_reports(tmp_path: Path) -> None:
    result = _run(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    bundle = tmp_path / "bundle"
    report = json.loads((bundle / "environment_report.json").read_text(encoding="utf-8"))
    assert report["route"] == "local_cpu"
    assert report["gpu"]["present"] is False
    decision = json.loads((bundle / "model_runtime_decision.json").read_text(encoding="utf-8"))
    assert decision["decision"] == "cpu_only"
    assert decision["fits"] is True
    for name in ("compute_route.md", "gpu_plan.md", "model_decision.md", "environment_report.txt"):
        assert (bundle / name).stat().st_size > 50
    # preflight changes nothing on the host; the reports go straight into the bundle.
    assert "changed=0" in result.stdout, result.stdout
    # A second run for the same run id keeps the reports it finds (never overwritten).
    before = {p.name: p.read_bytes() for p in bundle.iterdir()}
    again = _run(tmp_path)
    assert again.returncode == 0
    assert "changed=0" in again.stdout, again.stdout
    assert {p.name: p.read_bytes() for p in bundle.iterdir()} == before
