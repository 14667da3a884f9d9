"""Filters llmhost.core.teardown_oncalendar and teardown_clock_errors: the hard-stop
timer's OnCalendar and the clocks against it. The role's inputs are checked by
meta/argument_specs.yml and the assert lists of tasks/preflight.yml and tasks/guard.yml.

Documentation: the .yml files of the same names next to this file.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.llmhost.core.plugins.plugin_utils import hard_stop

_iso = hard_stop.utc_text


def _now(now: object, name: str) -> datetime:
    """The time the checks compare with: now (the hard stop's format) or the current time."""
    try:
        return hard_stop.parse(now, "now") or datetime.now(UTC)
    except hard_stop.HardStopError as error:
        raise AnsibleFilterError(f"llmhost.core.{name}: bad now: {error}") from None


def teardown_oncalendar(value: object) -> str:
    """A hard-stop time (the one format) as systemd's OnCalendar in UTC:
    'YYYY-MM-DD HH:MM:SS UTC'."""
    try:
        moment = hard_stop.parse(value, "teardown_hard_stop_time")
    except hard_stop.HardStopError as error:
        raise AnsibleFilterError(f"llmhost.core.teardown_oncalendar: {error}") from None
    if moment is None:
        raise AnsibleFilterError(
            "llmhost.core.teardown_oncalendar: teardown_hard_stop_time is empty"
        )
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


ELAPSE_TOLERANCE_S = 60


def teardown_clock_errors(inputs: Mapping[str, Any], now: object = None) -> list[str]:
    """The guard against the clocks: the host's clock against the control node's
    (host_epoch, max_skew_s), and the armed timer's next elapse (next_elapse: what
    `TZ=UTC systemctl show -p NextElapseUSecRealtime --value` prints, e.g.
    'Tue 2030-01-01 16:00:00 UTC', or '@<unix seconds>') against the plan's hard_stop_time."""
    current = _now(now, "teardown_clock_errors")
    errors = []
    if "host_epoch" in inputs:
        try:
            host = float(str(inputs["host_epoch"]).strip())
            limit = float(inputs.get("max_skew_s", 120))
        except (TypeError, ValueError):
            return [f"teardown: cannot read the host's clock (got {inputs['host_epoch']!r})"]
        skew = host - current.timestamp()
        if abs(skew) > limit:
            errors.append(
                f"the host's clock is {abs(skew):.0f} s {'ahead of' if skew > 0 else 'behind'} the "
                f"control node's (teardown_max_clock_skew_s {limit:.0f}): the hard stop would fire "
                "at the wrong time. Fix: sync the host's clock (timedatectl set-ntp true, or "
                "chrony), then re-run."
            )
    if "next_elapse" in inputs:
        try:
            planned = hard_stop.parse(inputs.get("hard_stop_time"), "teardown_hard_stop_time")
        except hard_stop.HardStopError as error:
            raise AnsibleFilterError(f"llmhost.core.teardown_clock_errors: {error}") from None
        if planned is None:
            raise AnsibleFilterError("llmhost.core.teardown_clock_errors: hard_stop_time is needed")
        raw = str(inputs["next_elapse"] or "").strip()
        fires = _elapse(raw)
        if fires is None:
            errors.append(
                f"the hard-stop timer has no next elapse (systemd says {raw or 'nothing'!r}), so "
                f"nothing would stop the host at {_iso(planned)}. Fix: systemctl status "
                "llmhost-hard-stop.timer on the host, then re-run."
            )
        elif abs(fires.timestamp() - planned.timestamp()) > ELAPSE_TOLERANCE_S:
            errors.append(
                f"the hard-stop timer fires at {_iso(fires)}, not at the plan's {_iso(planned)}. "
                "Fix: check the host's timezone and clock, then re-run."
            )
    return errors


def _elapse(raw: str) -> datetime | None:
    """systemd's next elapse: '@<unix seconds>' or 'Tue 2030-01-01 16:00:00 UTC'."""
    if re.fullmatch(r"@\d+", raw):
        return datetime.fromtimestamp(int(raw[1:]), UTC)
    match = re.fullmatch(r"[A-Z][a-z]{2} (\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}) UTC", raw)
    if match is None:
        return None
    return datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


def _clock_filter(inputs: Mapping[str, Any], now: object = None) -> list[str]:
    if not isinstance(inputs, Mapping):
        raise AnsibleFilterError("llmhost.core.teardown_clock_errors: the input must be a dict")
    return teardown_clock_errors(inputs, now)


class FilterModule:
    """llmhost.core teardown filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "teardown_oncalendar": teardown_oncalendar,
            "teardown_clock_errors": _clock_filter,
        }
