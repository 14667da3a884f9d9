"""llmhost.core.teardown_oncalendar and teardown_clock_errors: the hard-stop timer's
OnCalendar, and the host's clock and the armed timer against the plan. (The role's inputs
are checked by its argument_specs and assert lists: tests/test_teardown_refusals.py.)"""

from __future__ import annotations

from typing import Any

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.llmhost.core.plugins.filter.teardown import (
    FilterModule,
    teardown_clock_errors,
    teardown_oncalendar,
)


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


def test_filters_are_registered_and_refuse_a_non_dict() -> None:
    filters = FilterModule().filters()
    assert set(filters) == {"teardown_oncalendar", "teardown_clock_errors"}
    with pytest.raises(AnsibleFilterError, match="must be a dict"):
        filters["teardown_clock_errors"](["not", "a", "dict"])


# --- teardown_clock_errors ------------------------------------------------------------

CLOCK_NOW = "2030-01-01T12:00:00Z"
CLOCK_EPOCH = 1893499200  # 2030-01-01T12:00:00Z


def test_clock_in_step_and_timer_on_time_pass() -> None:
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
    errors = teardown_clock_errors(
        {"next_elapse": next_elapse, "hard_stop_time": "2030-01-01T16:00:00Z"}, CLOCK_NOW
    )
    assert len(errors) == 1 and words in errors[0]


def test_an_unreadable_host_clock_is_refused() -> None:
    assert (
        "cannot read the host's clock" in teardown_clock_errors({"host_epoch": "x"}, CLOCK_NOW)[0]
    )
