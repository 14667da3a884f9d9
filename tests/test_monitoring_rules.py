"""The monitoring role's alert rules: rendered by Ansible from the role's templates, checked
with `promtool check rules` and unit-tested with `promtool test rules` (every alert shown
firing and not firing), for the default thresholds and for another set of thresholds."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_monitoring_render import PROMTOOL_HELP, promtool_path, render

RULES = {
    "llmhost-alerts.rules.yml.j2": "llmhost-alerts.rules.yml",
    "llmhost-alerts.test.yml.j2": "llmhost-alerts.test.yml",
}
# The alerts issue 8 asks for.
ALERTS = (
    "LLMHostGPUTemperatureHigh",
    "LLMHostGPUXidError",
    "LLMHostGPUMemoryHigh",
    "LLMHostTTFTAboveSLO",
    "LLMHostQueueBacklog",
    "LLMHostKVCacheFull",
    "LLMHostGateway5xxRate",
    "LLMHostVLLMDown",
    "LLMHostModelsDiskFull",
    "LLMHostRootDiskFull",
    "LLMHostHardStopSoon",
)
# Issue 17: the cost alert (rendered only with a target > 0) and the always-firing
# pipeline check (it has no quiet case, by design).
COST_ALERT = "LLMHostCostAboveTarget"
PIPELINE_ALERT = "LLMHostAlertPipeline"
OTHER: dict[str, Any] = {
    "monitoring_gpu_temp_max_c": 75.5,
    "monitoring_gpu_memory_max_ratio": 0.9,
    "monitoring_ttft_p99_slo_s": 0.5,
    "monitoring_queue_waiting_max": 7,
    "monitoring_kv_cache_max_ratio": 0.8,
    "monitoring_gateway_5xx_max_ratio": 0.05,
    "monitoring_models_disk_max_pct": 80,
    "monitoring_root_disk_max_pct": 85,
    "monitoring_hard_stop_warn_minutes": 45,
    "monitoring_models_path": "/data/models",
    "_monitoring_models_mountpoint": "/data",
    "monitoring_hourly_budget_usd": 2.49,
    "monitoring_cost_target_usd_per_mtok": 5,
}


@pytest.fixture(scope="module")
def promtool() -> str:
    path = promtool_path()
    if path is None:
        pytest.skip(PROMTOOL_HELP)
    return path


@pytest.fixture(scope="module")
def default_rules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rules-default")
    render(out, RULES)
    return out


@pytest.fixture(scope="module")
def other_rules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rules-other")
    render(out, RULES, OTHER)
    return out


def _promtool(promtool: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *args], capture_output=True, text=True, cwd=cwd, timeout=120, check=False
    )


@pytest.mark.slow
@pytest.mark.parametrize("which", ["default_rules", "other_rules"])
def test_rules_pass_promtool_check(
    promtool: str, which: str, request: pytest.FixtureRequest
) -> None:
    folder: Path = request.getfixturevalue(which)
    result = _promtool(promtool, "check", "rules", "llmhost-alerts.rules.yml", cwd=folder)
    assert result.returncode == 0, result.stdout + result.stderr
    # 11 recording rules + the cost rule, 11 alerts + the pipeline check (+ the cost alert).
    count = 25 if which == "other_rules" else 24
    assert f"SUCCESS: {count} rules found" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("which", ["default_rules", "other_rules"])
def test_every_alert_fires_and_stays_quiet_as_tested(
    promtool: str, which: str, request: pytest.FixtureRequest
) -> None:
    folder: Path = request.getfixturevalue(which)
    result = _promtool(promtool, "test", "rules", "llmhost-alerts.test.yml", cwd=folder)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.slow
def test_tests_fail_against_rules_with_other_thresholds(
    promtool: str, default_rules: Path, other_rules: Path, tmp_path: Path
) -> None:
    shutil.copy(other_rules / "llmhost-alerts.rules.yml", tmp_path / "llmhost-alerts.rules.yml")
    shutil.copy(default_rules / "llmhost-alerts.test.yml", tmp_path / "llmhost-alerts.test.yml")
    result = _promtool(promtool, "test", "rules", "llmhost-alerts.test.yml", cwd=tmp_path)
    assert result.returncode != 0, result.stdout
    for alert in ("LLMHostGPUTemperatureHigh", "LLMHostQueueBacklog", "LLMHostHardStopSoon"):
        assert f"alertname: {alert}" in result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("which", "alerts"),
    [("default_rules", ALERTS), ("other_rules", (*ALERTS, COST_ALERT))],
)
def test_each_alert_has_a_firing_and_a_quiet_case(
    which: str, alerts: tuple[str, ...], request: pytest.FixtureRequest
) -> None:
    folder: Path = request.getfixturevalue(which)
    rules = yaml.safe_load((folder / "llmhost-alerts.rules.yml").read_text("utf-8"))
    defined = [r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r]
    assert sorted(defined) == sorted((*alerts, PIPELINE_ALERT))
    tests = yaml.safe_load((folder / "llmhost-alerts.test.yml").read_text("utf-8"))
    cases = [c for t in tests["tests"] for c in t.get("alert_rule_test", [])]
    for alert in alerts:
        mine = [c for c in cases if c["alertname"] == alert]
        assert any(c["exp_alerts"] == [] for c in mine), f"{alert}: no case where it stays quiet"
        assert any(c["exp_alerts"] for c in mine), f"{alert}: no case where it fires"
    pipeline = [c for c in cases if c["alertname"] == PIPELINE_ALERT]
    assert pipeline and all(c["exp_alerts"] for c in pipeline), "the pipeline check must fire"


@pytest.mark.slow
def test_cost_rule_guards_division_by_zero_and_needs_a_target(
    default_rules: Path, other_rules: Path
) -> None:
    def rule(folder: Path, name: str) -> dict[str, Any]:
        doc = yaml.safe_load((folder / "llmhost-alerts.rules.yml").read_text("utf-8"))
        rules = [r for g in doc["groups"] for r in g["rules"]]
        found = [r for r in rules if name in (r.get("record"), r.get("alert"))]
        assert len(found) <= 1
        return found[0] if found else {}

    record = rule(other_rules, "llmhost:usd_per_million_output_tokens")["expr"]
    assert record.startswith("2.49 * 1e6 / 3600 / (sum by (host, route, model) (rate(")
    assert record.endswith('vllm:generation_tokens_total{job="vllm"}[5m])) > 0)')
    assert rule(other_rules, COST_ALERT)["expr"] == f"{record} > 5"
    assert rule(default_rules, COST_ALERT) == {}  # target 0: no alert
    default_record = rule(default_rules, "llmhost:usd_per_million_output_tokens")["expr"]
    assert default_record.startswith("0 * 1e6")
    tests = yaml.safe_load((default_rules / "llmhost-alerts.test.yml").read_text("utf-8"))
    exprs = [c for t in tests["tests"] for c in t.get("promql_expr_test", [])]
    assert any(
        c["expr"] == "llmhost:usd_per_million_output_tokens" and c["exp_samples"] == []
        for c in exprs
    ), "no test that shows no series without tokens"


@pytest.mark.slow
def test_thresholds_reach_the_rules(default_rules: Path, other_rules: Path) -> None:
    default = (default_rules / "llmhost-alerts.rules.yml").read_text("utf-8")
    other = (other_rules / "llmhost-alerts.rules.yml").read_text("utf-8")
    assert 'DCGM_FI_DEV_GPU_TEMP{job="dcgm"} > 82\n' in default
    assert 'DCGM_FI_DEV_GPU_TEMP{job="dcgm"} > 75.5\n' in other
    assert "[5m]))) > 2.0\n" in default
    assert "[5m]))) > 0.5\n" in other
    assert "time() < 1800\n" in default
    assert "time() < 2700\n" in other
    assert 'mountpoint="/data"' in other
    assert "{{ $labels.host }}" in default  # Prometheus' own templates are left alone


@pytest.mark.slow
@pytest.mark.parametrize(
    ("stop", "epoch"),
    [("2030-01-01T18:00:00Z", 1893520800), ("2030-01-01T19:00:00+01:00", 1893520800)],
)
def test_hard_stop_gauge_is_utc_epoch_seconds(tmp_path: Path, stop: str, epoch: int) -> None:
    render(tmp_path, {"hard_stop.prom.j2": "hard_stop.prom"}, {"monitoring_hard_stop_time": stop})
    lines = (tmp_path / "hard_stop.prom").read_text("utf-8").splitlines()
    assert lines[-1] == f'llmhost_hard_stop_timestamp_seconds{{hard_stop="{stop}"}} {epoch}'
    assert "# TYPE llmhost_hard_stop_timestamp_seconds gauge" in lines
