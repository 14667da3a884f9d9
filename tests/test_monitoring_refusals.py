"""The monitoring role, run for real on localhost up to its preflight: bad input is refused
with the variable's name and the fix, before anything is installed or written."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from role_runner import CaseResult, run_cases


def _vars(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    return {
        "monitoring_tsdb_dir": str(tmp_path / "tsdb"),
        "monitoring_textfile_dir": str(tmp_path / "textfile"),
        **overrides,
    }


# (overrides, the check that must fail, words of its message)
_TIMEOUTS = (
    "monitoring_targets_timeout_s / monitoring_prometheus_ready_timeout_s"
    " / monitoring_alertmanager_ready_timeout_s"
)
CASES = [
    (
        {"monitoring_listen_address": "0.0.0.0"},  # noqa: S104 (the refused input)
        "monitoring_listen_address",
        "must be 127.0.0.1 or ::1",
    ),
    ({"monitoring_mtail_port": 9090}, "monitoring_*_port", "the monitoring ports must be distinct"),
    ({"monitoring_alert_resend_delay": "15"}, "monitoring_alert_resend_delay", "such as 15s"),
    (
        {"monitoring_alert_sink_port": 9093},
        "monitoring_*_port",
        "the monitoring ports must be distinct",
    ),
    (
        {"monitoring_alertmanager_receivers": [{"name": "a b", "webhook_url": "https://x.test/"}]},
        "monitoring_alertmanager_receivers",
        "needs a unique name per receiver",
    ),
    (
        {
            "monitoring_alertmanager_receivers": [
                {"name": "pager", "webhook_url": "https://x.test/a"},
                {"name": "pager", "webhook_url": "https://x.test/b"},
            ]
        },
        "monitoring_alertmanager_receivers",
        "needs a unique name per receiver",
    ),
    (
        {
            "monitoring_alertmanager_receivers": [
                {"name": "pager", "webhook_url": "hooks.test/T0KEN-SECRET-VALUE"}
            ]
        },
        "monitoring_alertmanager_receivers",
        "webhook_url of ['pager'] must be an http:// or https:// URL",
    ),
    (
        {"monitoring_alertmanager_group_wait": "30 seconds"},
        "monitoring_alertmanager_group_wait / _group_interval / _repeat_interval"
        " / _watchdog_repeat_interval",
        "must be durations",
    ),
    (
        {"monitoring_prometheus_ready_timeout_s": 0},
        _TIMEOUTS,
        "must be at least 10 seconds each, got 90 / 0 / 60",
    ),
    (
        {"monitoring_alertmanager_ready_timeout_s": 9},
        _TIMEOUTS,
        "must be at least 10 seconds each, got 90 / 120 / 9",
    ),
    (
        {"monitoring_alertmanager_memory_max": "lots"},
        "monitoring_alertmanager_memory_max",
        "a systemd size",
    ),
    (
        {"monitoring_hourly_budget_usd": -1},
        "monitoring_hourly_budget_usd / monitoring_cost_target_usd_per_mtok",
        "must be numbers >= 0",
    ),
    (
        {"monitoring_hourly_budget_usd": 0, "monitoring_cost_target_usd_per_mtok": 5},
        "monitoring_cost_target_usd_per_mtok",
        "monitoring_hourly_budget_usd is 0",
    ),
    ({"monitoring_retention_time": "15days"}, "monitoring_retention_time", "a Prometheus duration"),
    ({"monitoring_retention_size": "2 gigabytes"}, "monitoring_retention_size", "must be a size"),
    (
        {"monitoring_vllm_targets": ["http://127.0.0.1:8000/metrics"]},
        "monitoring_vllm_targets",
        "must list host:port",
    ),
    (
        {"monitoring_vllm_enabled": False, "monitoring_required_targets": ["prometheus", "vllm"]},
        "monitoring_required_targets",
        "lists jobs this host does not scrape: ['vllm']",
    ),
    ({"monitoring_gpu_temp_max_c": 200}, "monitoring_gpu_temp_max_c", "between 30 and 120"),
    (
        {"monitoring_kv_cache_max_ratio": 95},
        "monitoring_gpu_memory_max_ratio / monitoring_kv_cache_max_ratio",
        "must be ratios in (0, 1)",
    ),
    ({"monitoring_ttft_p99_slo_s": 0}, "monitoring_ttft_p99_slo_s", "number of seconds > 0"),
    ({"monitoring_gateway_5xx_max_ratio": 1}, "monitoring_gateway_5xx_max_ratio", "(0, 0.5]"),
    ({"monitoring_models_disk_max_pct": 100}, "monitoring_models_disk_max_pct", "a percentage"),
    ({"monitoring_root_disk_max_pct": 0}, "monitoring_root_disk_max_pct", "a percentage"),
    (
        {"monitoring_journal_max_use": "lots"},
        "monitoring_journal_max_use / monitoring_journal_max_retention",
        "must be a size such as 1G",
    ),
    ({"monitoring_hard_stop_time": "2030-01-01 18:00"}, "monitoring_hard_stop_time", "ISO 8601"),
    # Unquoted in YAML (the vars file): a timestamp object, refused like every reader does.
    (
        {"monitoring_hard_stop_time": datetime(2030, 1, 1, 18, tzinfo=UTC)},
        "monitoring_hard_stop_time",
        "this one is a YAML timestamp (unquoted), not a string, got 2030-01-01 18:00:00+00:00."
        " Fix: write it like '2026-12-04T18:00:00Z'",
    ),
    ({"monitoring_run_id": "../x"}, "monitoring_run_id", "a safe folder name"),
    # Log shipping (tasks/logs.yml).
    (
        {"monitoring_log_collector_url": "https://ship:s3cret@logs.example.net:19532"},
        "monitoring_log_collector_url",
        "no credentials and no path, got 'https://***@logs.example.net:19532'",
    ),
    (
        {"monitoring_log_collector_url": "http://logs.example.net:19532"},
        "monitoring_log_collector_url",
        "plain http sends the journal in clear",
    ),
    (
        {"monitoring_log_collector_listen": True},
        "monitoring_log_collector_listen",
        "Fix: set monitoring_log_collector_url to http://127.0.0.1:19532",
    ),
    (
        {"monitoring_log_collector_listen_port": 9090},
        "monitoring_log_collector_listen_port",
        "not one of the exporters' ports",
    ),
    (
        {"monitoring_log_upload_key_file": "client.key"},
        "monitoring_log_upload_key_file / monitoring_log_upload_cert_file"
        " / monitoring_log_upload_trusted_ca_file",
        "must be absolute paths on the host",
    ),
    ({"monitoring_log_ship_timeout_s": 1}, "monitoring_log_ship_timeout_s", "at least 5 seconds"),
    (
        {
            "monitoring_log_collector_url": "https://logs.example.net",
            "monitoring_log_shipper_versions": {"hamm": "1"},
        },
        "monitoring_log_shipper_versions",
        "has no systemd-journal-remote version for",
    ),
    # The folders the role owns (preflight-tagged run: a missing refusal could not touch them).
    *(
        (
            {variable: folder},
            "monitoring_tsdb_dir / monitoring_textfile_dir",
            f"{variable} '{folder}'",
        )
        for variable, folder in [
            ("monitoring_tsdb_dir", "/var/lib"),
            ("monitoring_tsdb_dir", "/etc"),
            ("monitoring_tsdb_dir", "/var/lib/prometheus"),
            ("monitoring_textfile_dir", "/usr/local"),
            ("monitoring_textfile_dir", "/var/lib/../../etc"),
            ("monitoring_textfile_dir", "/sys/fs/node"),
        ]
    ),
]


@pytest.fixture(scope="module")
def refusals(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, CaseResult]]:
    """Every bad input at once: one ansible-playbook, a host per case."""
    base = tmp_path_factory.mktemp("monitoring-refusals")
    cases = {f"case{i}": _vars(base / f"case{i}", **c[0]) for i, c in enumerate(CASES)}
    # A good input rides along: the input checks pass it.
    cases["good"] = _vars(base / "good", monitoring_hard_stop_time="2030-01-01T19:00:00+01:00")
    return base, run_cases(base, "monitoring", cases, tags="monitoring_preflight")


@pytest.mark.slow
@pytest.mark.parametrize(
    "index", range(len(CASES)), ids=[f"{c[1]}={next(iter(c[0].values()))}" for c in CASES]
)
def test_bad_input_refused_before_any_change(
    refusals: tuple[Path, dict[str, CaseResult]], index: int
) -> None:
    base, results = refusals
    _, check, words = CASES[index]
    results[f"case{index}"].assert_refused_by(check, words, hidden=("T0KEN-SECRET-VALUE",))
    for created in ("tsdb", "textfile"):
        assert not (base / f"case{index}" / created).exists(), f"{created} was created"


@pytest.mark.slow
def test_good_input_gets_past_the_input_checks(
    refusals: tuple[Path, dict[str, CaseResult]],
) -> None:
    result = refusals[1]["good"]
    assert result.refused == (), result.output  # the input check passed
    if not Path("/run/systemd/system").is_dir():  # this control machine is no systemd host
        assert result.failed
        assert "monitoring needs systemd and apt" in result.output, result.output
