"""llmhost.core.teardown_errors, teardown_guard_errors, teardown_oncalendar: every bad
teardown input is named with its fix; the hard stop must lie in the future."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.llmhost.core.plugins.filter.teardown import (
    FilterModule,
    teardown_errors,
    teardown_guard_errors,
    teardown_oncalendar,
)

GOOD: dict[str, Any] = {
    "route": "rented_gpu",
    "stop_before_drain": ["vllm-liveness.timer", "vllm-liveness.service"],
    "services": ["vllm.service", "nginx.service", "prometheus.service"],
    "drain_timeout_s": 120,
    "destroy_timeout_s": 900,
    "run_id": "20261123T100000Z-abc123def456",
    "gpu_plan": {"hourly_budget": 2.49, "hard_stop_time": "2026-11-23T18:00:00Z"},
    "ports": [443, 8000],
    "vllm_metrics_urls": ["http://127.0.0.1:8000/metrics"],
    "gateway_status_url": "http://127.0.0.1:8081/nginx_status",
    "drain_file": "/etc/nginx/llmhost/draining",
    "destroy_command": ["provider-cli", "terminate", "i-123"],
    "evidence_dir": "/repo/evidence/rented/20261123T100000Z-abc123def456",
}
NOW = "2026-11-23T12:00:00Z"


def _with(key: str, value: Any) -> dict[str, Any]:
    inputs = copy.deepcopy(GOOD)
    inputs[key] = value
    return inputs


def test_good_inputs_pass() -> None:
    assert teardown_errors(GOOD) == []
    assert teardown_errors(_with("destroy_command", [])) == []
    assert teardown_errors({**_with("destroy_command", []), "evidence_dir": ""}) == []
    assert teardown_errors(_with("gateway_status_url", "")) == []
    assert teardown_errors(_with("gpu_plan", {"hourly_budget": "0"})) == []


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("route", "free_colab", "teardown_route: must be one of local_cpu, rented_gpu"),
        ("services", [], "teardown_services: must name at least one unit"),
        ("services", ["vllm"], "teardown_services: holds a name that is not a systemd unit"),
        ("services", ["vllm.service", "vllm.service"], "vllm.service is listed twice"),
        ("stop_before_drain", "vllm-liveness.timer", "teardown_stop_before_drain: must be a list"),
        (
            "stop_before_drain",
            ["vllm.service"],
            "vllm.service is also in teardown_stop_before_drain",
        ),
        ("drain_timeout_s", -1, "teardown_drain_timeout_s: must be a whole number >= 0"),
        ("drain_timeout_s", True, "teardown_drain_timeout_s"),
        ("destroy_timeout_s", 0, "teardown_destroy_timeout_s: must be a whole number >= 1"),
        ("run_id", "../x", "teardown_run_id: must be a safe folder name"),
        (
            "gpu_plan",
            {"hourly_budget": -1},
            "teardown_gpu_plan.hourly_budget: must be a number >= 0",
        ),
        ("gpu_plan", {}, "teardown_gpu_plan.hourly_budget"),
        ("ports", [443, 70000], "teardown_ports: must be a list of TCP ports 1-65535"),
        ("ports", ["https"], "teardown_ports"),
        ("vllm_metrics_urls", ["127.0.0.1:8000"], "teardown_vllm_metrics_urls: must be a list"),
        ("gateway_status_url", "nginx_status", "teardown_gateway_status_url: must be an http URL"),
        ("drain_file", "draining", "teardown_drain_file: must be an absolute path"),
        ("destroy_command", "provider-cli terminate", "teardown_destroy_command: must be an argv"),
        ("destroy_command", ["provider-cli", ""], "teardown_destroy_command: must be an argv"),
        ("evidence_dir", "", "the host would be destroyed with its shutdown proof still on it"),
    ],
)
def test_each_bad_input_is_named_with_its_fix(key: str, value: Any, expected: str) -> None:
    errors = teardown_errors(_with(key, value))
    assert len(errors) == 1, errors
    assert expected in errors[0]
    assert "Fix:" in errors[0]


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        ({"route": "rented_gpu", "hard_stop_time": "2026-11-23T18:00:00Z", "poweroff": True}, []),
        (
            {
                "route": "rented_gpu",
                "hard_stop_time": "2026-11-23T19:00:00+01:00",
                "poweroff": True,
            },
            [],
        ),
        ({"route": "local_cpu", "hard_stop_time": "", "poweroff": False}, []),
        ({"route": "local_cpu", "hard_stop_time": "2026-11-23T12:01:00Z", "poweroff": False}, []),
    ],
)
def test_guard_accepts(inputs: dict[str, Any], expected: list[str]) -> None:
    assert teardown_guard_errors(inputs, NOW) == expected


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        (
            {"route": "rented_gpu", "hard_stop_time": "2026-11-23T11:59:59Z", "poweroff": True},
            "teardown_hard_stop_time: lies in the past, got 2026-11-23T11:59:59Z while it is "
            "now 2026-11-23T12:00:00Z",
        ),
        (
            {"route": "rented_gpu", "hard_stop_time": "", "poweroff": True},
            "teardown_hard_stop_time: is empty on rented_gpu",
        ),
        (
            {"route": "local_cpu", "hard_stop_time": "2026-11-23T18:00:00", "poweroff": True},
            "teardown_hard_stop_time: must be a quoted RFC 3339 (ISO 8601) time with seconds and "
            "a zone (Z or +HH:MM); this one has no zone (a naive time), got "
            "'2026-11-23T18:00:00'. Fix: write it like '2026-12-04T18:00:00Z' (UTC)",
        ),
        (
            {"route": "local_cpu", "hard_stop_time": "tomorrow 6pm", "poweroff": True},
            "teardown_hard_stop_time: must be a quoted RFC 3339 (ISO 8601) time with seconds and "
            "a zone (Z or +HH:MM); this one is not a time, got 'tomorrow 6pm'. Fix:",
        ),
        (
            {"route": "rented_gpu", "hard_stop_time": "2026-11-23T18:00:00Z", "poweroff": "yes"},
            "teardown_hard_stop_poweroff: must be true or false",
        ),
    ],
)
def test_guard_refuses_with_the_variable_and_the_fix(inputs: dict[str, Any], expected: str) -> None:
    errors = teardown_guard_errors(inputs, NOW)
    assert len(errors) == 1 and errors[0].startswith(expected), errors
    assert "Fix:" in errors[0]


def test_guard_past_time_fix_suggests_a_future_time() -> None:
    [error] = teardown_guard_errors(
        {"route": "rented_gpu", "hard_stop_time": "2020-01-01T00:00:00Z", "poweroff": True}, NOW
    )
    assert "e.g. 2026-11-23T16:00:00Z" in error


def test_guard_now_defaults_to_the_current_time() -> None:
    assert (
        teardown_guard_errors(
            {"route": "rented_gpu", "hard_stop_time": "2099-01-01T00:00:00Z", "poweroff": True}
        )
        == []
    )
    with pytest.raises(AnsibleFilterError, match="bad now"):
        teardown_guard_errors({"route": "local_cpu", "hard_stop_time": ""}, "yesterday")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-23T18:00:00Z", "2026-11-23 18:00:00 UTC"),
        ("2026-11-23T19:30:00+01:30", "2026-11-23 18:00:00 UTC"),
        ("2026-11-23T23:00:00-05:00", "2026-11-24 04:00:00 UTC"),
    ],
)
def test_oncalendar_is_one_moment_in_utc(value: str, expected: str) -> None:
    assert teardown_oncalendar(value) == expected


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("2026-11-23T18:00:00", "has no zone"),
        ("soon", "is not a time"),
        ("", "teardown_hard_stop_time is empty"),
        (None, "teardown_hard_stop_time is empty"),
    ],
)
def test_oncalendar_refuses_times_without_a_zone(value: Any, words: str) -> None:
    with pytest.raises(AnsibleFilterError, match=words):
        teardown_oncalendar(value)


def test_filters_are_registered_and_refuse_non_dicts() -> None:
    filters = FilterModule().filters()
    assert set(filters) == {
        "teardown_errors",
        "teardown_guard_errors",
        "teardown_oncalendar",
        "teardown_clock_errors",
    }
    with pytest.raises(AnsibleFilterError, match="must be a dict"):
        filters["teardown_errors"](["not", "a", "dict"])
    with pytest.raises(AnsibleFilterError, match="must be a dict"):
        filters["teardown_guard_errors"]("x")


# --- teardown_clock_errors ------------------------------------------------------------

CLOCK_NOW = "2030-01-01T12:00:00Z"
CLOCK_EPOCH = 1893499200  # 2030-01-01T12:00:00Z


def test_clock_in_step_and_timer_on_time_pass() -> None:
    from ansible_collections.llmhost.core.plugins.filter.teardown import teardown_clock_errors

    assert (
        teardown_clock_errors({"host_epoch": str(CLOCK_EPOCH + 30), "max_skew_s": 120}, CLOCK_NOW)
        == []
    )
    plan = "2030-01-01T18:00:00+02:00"  # 16:00 UTC
    for next_elapse in (f"@{CLOCK_EPOCH + 4 * 3600}", "Tue 2030-01-01 16:00:30 UTC"):
        errors = teardown_clock_errors(
            {"next_elapse": next_elapse, "hard_stop_time": plan}, CLOCK_NOW
        )
        assert errors == [], next_elapse


@pytest.mark.parametrize(
    ("epoch", "word"), [(CLOCK_EPOCH + 600, "ahead of"), (CLOCK_EPOCH - 3600, "behind")]
)
def test_a_skewed_host_clock_is_refused(epoch: int, word: str) -> None:
    from ansible_collections.llmhost.core.plugins.filter.teardown import teardown_clock_errors

    [message] = teardown_clock_errors({"host_epoch": str(epoch), "max_skew_s": 120}, CLOCK_NOW)
    assert word in message and "teardown_max_clock_skew_s 120" in message and "Fix:" in message


@pytest.mark.parametrize(
    ("next_elapse", "words"),
    [
        ("", "has no next elapse"),
        ("n/a", "has no next elapse"),
        (
            f"@{CLOCK_EPOCH + 3600}",
            "fires at 2030-01-01T13:00:00Z, not at the plan's 2030-01-01T16:00:00Z",
        ),
        ("Tue 2030-01-01 13:00:00 UTC", "fires at 2030-01-01T13:00:00Z, not at the plan's"),
        ("Tue 2030-01-01 17:00:00 CET", "has no next elapse"),  # TZ=UTC was not applied
    ],
)
def test_a_timer_that_does_not_fire_on_plan_is_refused(next_elapse: str, words: str) -> None:
    from ansible_collections.llmhost.core.plugins.filter.teardown import teardown_clock_errors

    errors = teardown_clock_errors(
        {"next_elapse": next_elapse, "hard_stop_time": "2030-01-01T16:00:00Z"}, CLOCK_NOW
    )
    assert len(errors) == 1 and words in errors[0]


def test_an_unreadable_host_clock_is_refused() -> None:
    from ansible_collections.llmhost.core.plugins.filter.teardown import teardown_clock_errors

    assert (
        "cannot read the host's clock" in teardown_clock_errors({"host_epoch": "x"}, CLOCK_NOW)[0]
    )
