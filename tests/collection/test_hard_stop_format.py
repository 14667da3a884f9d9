"""The hard stop's one time format, checked against every reader of a hard-stop time.

Readers: the helper itself (plugin_utils/hard_stop.py), teardown_oncalendar and
teardown_clock_errors (the guard's timer), hard_stop_errors and hard_stop_epoch (the
preflight GPU plan gate, the teardown guard's checks, monitoring's check and gauge) and
scripts/llmhost.py's plan_hard_stop (status). The gates themselves, run as roles, are in
tests/test_preflight_refusals.py and tests/test_teardown_refusals.py. Each valid value must
be accepted by every
reader as the same moment; each invalid one refused by every reader with the same message
(after the variable's name). A reader that parses on its own fails here."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType

import pytest
from ansible.errors import AnsibleFilterError
from ansible.parsing.utils.yaml import from_yaml
from ansible_collections.llmhost.core.plugins.filter.hard_stop import FilterModule
from ansible_collections.llmhost.core.plugins.filter.teardown import (
    teardown_clock_errors,
    teardown_oncalendar,
)
from ansible_collections.llmhost.core.plugins.plugin_utils import hard_stop

ROOT = Path(__file__).resolve().parents[2]
NOW = "2000-01-01T00:00:00Z"  # every valid value below lies after it


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


llmhost = _load("llmhost_entry_point_hard_stop", ROOT / "scripts" / "llmhost.py")
FILTERS = FilterModule().filters()

VALID: list[tuple[str, datetime]] = [
    ("2026-12-04T18:00:00Z", datetime(2026, 12, 4, 18, tzinfo=UTC)),
    ("2026-12-04T19:00:00+01:00", datetime(2026, 12, 4, 18, tzinfo=UTC)),
    ("2026-12-04T13:00:00-05:00", datetime(2026, 12, 4, 18, tzinfo=UTC)),
    ("2026-12-05T05:30:00+11:30", datetime(2026, 12, 4, 18, tzinfo=UTC)),
    ("2026-12-04T18:00:00-00:00", datetime(2026, 12, 4, 18, tzinfo=UTC)),  # RFC 3339: UTC
    ("2028-02-29T23:59:59Z", datetime(2028, 2, 29, 23, 59, 59, tzinfo=UTC)),  # a leap day
]

INVALID: list[tuple[object, str]] = [
    ("2026-12-04T18:00:00", "has no zone"),
    ("2026-12-04 18:00:00", "has no zone"),
    ("2026-12-04T18:00", "has no zone"),
    ("2026-12-04 18:00:00Z", "written another way"),
    ("2026-12-04t18:00:00z", "written another way"),
    ("2026-12-04T18:00Z", "written another way"),
    ("2026-12-04T18:00:00.5Z", "written another way"),
    ("2026-12-04T18:00:00+0100", "written another way"),
    ("2026-12-04T18:00:00+01", "written another way"),
    ("2026-12-04T18:00:00 UTC", "written another way"),
    (" 2026-12-04T18:00:00Z", "written another way"),
    ("2026-12-04T18:00:00Z\n", "written another way"),
    ("2026-12-04", "a date without a time"),
    ("20261204T180000Z", "not a time"),
    ("Fri 2026-12-04 18:00:00 UTC", "not a time"),
    ("@1796407200", "not a time"),
    ("tomorrow 6pm", "not a time"),
    ("\uff12\uff10\uff12\uff16-12-04T18:00:00Z", "not a time"),  # full-width digits
    ("   ", "not a time"),
    ("1796407200", "a number"),
    ("2026-13-04T18:00:00Z", "not a real date and time"),
    ("2026-02-30T18:00:00Z", "not a real date and time"),
    ("2026-12-04T24:00:00Z", "not a real date and time"),
    ("2026-12-04T18:00:60Z", "not a real date and time"),
    ("2026-12-04T18:00:00+24:00", "not a real date and time"),
    ("2026-12-04T18:00:00+01:60", "not a real date and time"),
    (1796407200, "a number"),
    (1796407200.0, "a number"),
    (True, "a boolean"),
    (datetime(2026, 12, 4, 18, tzinfo=UTC), "a YAML timestamp"),
    (datetime(2026, 12, 4, 18), "a YAML timestamp"),
    (datetime(2026, 12, 4, 19, tzinfo=timezone(timedelta(hours=1))), "a YAML timestamp"),
    (date(2026, 12, 4), "a YAML date"),
    (["2026-12-04T18:00:00Z"], "a list"),
    ({"at": "2026-12-04T18:00:00Z"}, "a dict"),
]
EMPTY: list[object] = ["", None]


def _clock(value: object) -> list[str]:
    return teardown_clock_errors({"next_elapse": "@1796407200", "hard_stop_time": value}, NOW)


def _raised(call: Callable[[], object]) -> str:
    with pytest.raises(AnsibleFilterError) as caught:
        call()
    return str(caught.value)


def _tail(text: str, var: str) -> str:
    """A message from the variable's name on, without the name: what every reader shares."""
    assert f"{var}: " in text, text
    return text.split(f"{var}: ", 1)[1]


def _refusals(value: object) -> dict[str, str]:
    """Each reader's message for a refused value, without the variable's name."""
    (monitoring,) = FILTERS["hard_stop_errors"](value, "monitoring_hard_stop_time")
    moment, status = llmhost.plan_hard_stop(value)
    assert moment is None and status is not None
    return {
        "teardown_oncalendar": _tail(
            _raised(lambda: teardown_oncalendar(value)), "teardown_hard_stop_time"
        ),
        "teardown_clock_errors": _tail(_raised(lambda: _clock(value)), "teardown_hard_stop_time"),
        "hard_stop_errors": _tail(monitoring, "monitoring_hard_stop_time"),
        "hard_stop_epoch": _tail(
            _raised(lambda: FILTERS["hard_stop_epoch"](value, "monitoring_hard_stop_time")),
            "monitoring_hard_stop_time",
        ),
        "llmhost.py status": _tail(status, llmhost.PLAN_STOP_VAR),
    }


@pytest.mark.parametrize(("text", "moment"), VALID, ids=[v[0] for v in VALID])
def test_every_reader_accepts_the_same_moment(text: str, moment: datetime) -> None:
    assert hard_stop.parse(text, "x") == moment
    assert teardown_oncalendar(text) == moment.strftime("%Y-%m-%d %H:%M:%S UTC")
    epoch = int(moment.timestamp())
    assert teardown_clock_errors({"next_elapse": f"@{epoch}", "hard_stop_time": text}, NOW) == []
    assert FILTERS["hard_stop_errors"](text, "monitoring_hard_stop_time") == []
    assert FILTERS["hard_stop_epoch"](text, "monitoring_hard_stop_time") == epoch
    assert llmhost.plan_hard_stop(text) == (moment, None)


@pytest.mark.parametrize(("value", "why"), INVALID, ids=[repr(v[0]) for v in INVALID])
def test_every_reader_refuses_with_the_same_message(value: object, why: str) -> None:
    expected = _tail(hard_stop.message("x", value) or "", "x")
    assert why in expected
    assert expected.startswith(hard_stop.REQUIREMENT)
    assert expected.endswith(
        "Fix: write it like '2026-12-04T18:00:00Z' (UTC) or '2026-12-04T19:00:00+01:00', in quotes."
    )
    refusals = _refusals(value)
    different = {reader: text for reader, text in refusals.items() if text != expected}
    assert not different, f"expected {expected!r}; {different}"


@pytest.mark.parametrize("value", EMPTY, ids=repr)
def test_empty_means_no_hard_stop_for_every_reader(value: object) -> None:
    assert hard_stop.parse(value, "x") is None
    assert FILTERS["hard_stop_errors"](value, "monitoring_hard_stop_time") == []
    assert llmhost.plan_hard_stop(value) == (None, None)
    # Readers that need a time say it is empty rather than guess one.
    assert "is empty" in _raised(lambda: teardown_oncalendar(value))
    assert "is empty" in _raised(lambda: FILTERS["hard_stop_epoch"](value))
    assert "is needed" in _raised(lambda: _clock(value))


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("hard_stop_time: 2026-12-04T18:00:00Z", "a YAML timestamp"),
        ("hard_stop_time: 2026-12-04T19:00:00+01:00", "a YAML timestamp"),
        ("hard_stop_time: 2026-12-04 18:00:00", "a YAML timestamp"),
        ("hard_stop_time: 2026-12-04", "a YAML date"),
        ("hard_stop_time: 1796407200", "a number"),
    ],
)
def test_unquoted_yaml_values_are_refused_by_every_reader(line: str, why: str) -> None:
    """Ansible's own YAML loader (inventories, vars files, -e @file) makes objects of these;
    every reader refuses them alike, whatever they hold."""
    value = from_yaml(line)["hard_stop_time"]
    assert not isinstance(value, str)
    refusals = _refusals(value)
    assert len(set(refusals.values())) == 1, refusals
    assert why in next(iter(refusals.values()))


def test_quoted_yaml_value_is_accepted() -> None:
    value = from_yaml('hard_stop_time: "2026-12-04T18:00:00Z"')["hard_stop_time"]
    assert llmhost.plan_hard_stop(value) == (datetime(2026, 12, 4, 18, tzinfo=UTC), None)
    assert FILTERS["hard_stop_errors"](value, "preflight_gpu_plan.hard_stop_time") == []


def test_the_message_names_the_variable_and_a_valid_example() -> None:
    text = hard_stop.message("llmhost_gpu_plan.hard_stop_time", "2026-12-04 18:00")
    assert text == (
        "llmhost_gpu_plan.hard_stop_time: must be a quoted RFC 3339 (ISO 8601) time with "
        "seconds and a zone (Z or +HH:MM); this one has no zone (a naive time), got "
        "'2026-12-04 18:00'. Fix: write it like '2026-12-04T18:00:00Z' (UTC) or "
        "'2026-12-04T19:00:00+01:00', in quotes."
    )
    # The examples in the fix are themselves accepted.
    assert hard_stop.parse(hard_stop.EXAMPLE, "x") is not None
    assert hard_stop.parse(hard_stop.EXAMPLE_OFFSET, "x") is not None


def test_status_reports_a_refused_plan_time_and_falls_back_to_the_timer() -> None:
    now = datetime(2026, 12, 4, 10, tzinfo=UTC)
    raw = {"units": {"rc": 0, "stdout": ""}, "hard_stop_time": "2026-12-04 18:00:00+00:00"}
    info = llmhost.host_status(raw, now, None)
    assert info["hard_stop"]["time"] is None
    assert info["hard_stop"]["plan_error"].startswith("llmhost_gpu_plan.hard_stop_time: ")
    report = {
        "inventory": "x",
        "inventory_path": "inventories/x",
        "checked_at": "2026-12-04T10:00:00Z",
        "last_run": None,
        "hosts": {"h": info},
    }
    table = llmhost.render_status(report)
    assert "plan refused   llmhost_gpu_plan.hard_stop_time: must be a quoted RFC 3339" in table
    assert "hard stop      none (the plan's time refused in the GPU plan, no timer)" in table
