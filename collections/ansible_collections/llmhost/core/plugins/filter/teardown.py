"""Filters llmhost.core.teardown_errors, teardown_guard_errors and teardown_oncalendar.

Documentation: the .yml files of the same names next to this file.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.llmhost.core.plugins.plugin_utils import hard_stop
from ansible_collections.llmhost.core.plugins.plugin_utils.values import (
    as_int,
    as_number,
    is_text,
    show,
)

ROUTES = ("local_cpu", "rented_gpu")
UNIT = re.compile(r"^[A-Za-z0-9@._:-]+\.(service|timer|socket|target|path|mount)$")
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
URL = re.compile(r"^https?://[^\s/]+(/\S*)?$")
_iso = hard_stop.utc_text


def _msg(var: str, problem: str, value: object, fix: str) -> str:
    return f"{var}: {problem}, got {show(value)}. Fix: {fix}"


def _units(var: str, value: object, required: bool) -> list[str]:
    fix = "list systemd unit names with their suffix, e.g. [vllm.service, nginx.service]."
    if not isinstance(value, (list, tuple)):
        return [_msg(var, "must be a list of unit names", value, fix)]
    if required and not value:
        return [_msg(var, "must name at least one unit", value, fix)]
    errors = [
        _msg(var, "holds a name that is not a systemd unit", item, fix)
        for item in value
        if not (isinstance(item, str) and UNIT.match(item))
    ]
    dupes = sorted({u for u in value if isinstance(u, str) and list(value).count(u) > 1})
    errors += [f"{var}: {u} is listed twice. Fix: list each unit once." for u in dupes]
    return errors


def _whole(var: str, value: object, minimum: int, fix: str) -> list[str]:
    number = as_int(value)
    if number is None or number < minimum:
        return [_msg(var, f"must be a whole number >= {minimum}", value, fix)]
    return []


def teardown_errors(inputs: Mapping[str, Any]) -> list[str]:
    """One message per problem in the teardown role's inputs (keys without the prefix)."""
    errors: list[str] = []
    if inputs.get("route") not in ROUTES:
        errors.append(
            _msg(
                "teardown_route",
                f"must be one of {', '.join(ROUTES)}",
                inputs.get("route"),
                "wire it from llmhost_route.",
            )
        )
    stop_first = inputs.get("stop_before_drain")
    services = inputs.get("services")
    errors += _units("teardown_stop_before_drain", stop_first, required=False)
    errors += _units("teardown_services", services, required=True)
    if isinstance(stop_first, (list, tuple)) and isinstance(services, (list, tuple)):
        for unit in sorted(set(stop_first) & set(services)):
            errors.append(
                f"teardown_services: {unit} is also in teardown_stop_before_drain. "
                "Fix: list it in one of the two."
            )
    errors += _whole(
        "teardown_drain_timeout_s",
        inputs.get("drain_timeout_s"),
        0,
        "seconds to wait for requests in flight, e.g. 120 (above the longest generation).",
    )
    errors += _whole(
        "teardown_destroy_timeout_s",
        inputs.get("destroy_timeout_s"),
        1,
        "seconds the provider's destroy call may take, e.g. 900.",
    )
    run_id = inputs.get("run_id")
    if not (isinstance(run_id, str) and RUN_ID.match(run_id)):
        errors.append(
            _msg(
                "teardown_run_id",
                "must be a safe folder name",
                run_id,
                "letters, digits, '.', '_' and '-' (wire it from llmhost_run_id).",
            )
        )
    plan = inputs.get("gpu_plan")
    budget = plan.get("hourly_budget") if isinstance(plan, Mapping) else None
    number = as_number(budget)
    if not isinstance(plan, Mapping) or number is None or number < 0:
        errors.append(
            _msg(
                "teardown_gpu_plan.hourly_budget",
                "must be a number >= 0",
                budget,
                "wire teardown_gpu_plan from llmhost_gpu_plan (0 in the lab).",
            )
        )
    ports = inputs.get("ports")
    if not isinstance(ports, (list, tuple)) or not all(0 < (as_int(p) or 0) < 65536 for p in ports):
        errors.append(
            _msg(
                "teardown_ports",
                "must be a list of TCP ports 1-65535",
                ports,
                "list the ports the stack listens on, e.g. [443, 8000, 8081, 9090].",
            )
        )
    urls = inputs.get("vllm_metrics_urls")
    if not isinstance(urls, (list, tuple)) or any(not (is_text(u) and URL.match(u)) for u in urls):
        errors.append(
            _msg(
                "teardown_vllm_metrics_urls",
                "must be a list of http(s) URLs",
                urls,
                "e.g. [http://127.0.0.1:8000/metrics], one per vLLM on the host.",
            )
        )
    status = inputs.get("gateway_status_url")
    if not (status == "" or (is_text(status) and URL.match(str(status)))):
        errors.append(
            _msg(
                "teardown_gateway_status_url",
                "must be an http URL or empty",
                status,
                "e.g. http://127.0.0.1:8081/nginx_status (the gateway's stub_status).",
            )
        )
    drain_file = inputs.get("drain_file")
    if not (is_text(drain_file) and str(drain_file).startswith("/")):
        errors.append(
            _msg(
                "teardown_drain_file",
                "must be an absolute path",
                drain_file,
                "use the gateway's gateway_drain_file, e.g. /etc/nginx/llmhost/draining.",
            )
        )
    command = inputs.get("destroy_command")
    if not isinstance(command, (list, tuple)) or any(not is_text(a) for a in command):
        errors.append(
            _msg(
                "teardown_destroy_command",
                "must be an argv list of non-empty strings",
                command,
                "e.g. [provider-cli, instances, terminate, my-instance-id], or [] for none.",
            )
        )
    elif command and not is_text(inputs.get("evidence_dir")):
        errors.append(
            "teardown_destroy_command: is set while teardown_evidence_dir is empty, so the "
            "host would be destroyed with its shutdown proof still on it. Fix: set "
            "teardown_evidence_dir (wired from llmhost_evidence_dir)."
        )
    return errors


def _now(now: object, name: str) -> datetime:
    """The time the checks compare with: now (the hard stop's format) or the current time."""
    try:
        return hard_stop.parse(now, "now") or datetime.now(UTC)
    except hard_stop.HardStopError as error:
        raise AnsibleFilterError(f"llmhost.core.{name}: bad now: {error}") from None


def teardown_guard_errors(inputs: Mapping[str, Any], now: object = None) -> list[str]:
    """Problems with the hard-stop guard's inputs: route, time (the one format, future)."""
    current = _now(now, "teardown_guard_errors")
    route, value = inputs.get("route"), inputs.get("hard_stop_time")
    later = _iso(current + timedelta(hours=4))
    try:
        moment = hard_stop.parse(value, "teardown_hard_stop_time")
    except hard_stop.HardStopError as error:
        return [str(error)]
    if moment is None:
        if route == "rented_gpu":
            return [
                "teardown_hard_stop_time: is empty on rented_gpu, so nothing would stop the "
                f"host if the run is forgotten. Fix: set it to when the rental must end, e.g. "
                f"'{later}' (llmhost_gpu_plan.hard_stop_time)."
            ]
        return []
    if moment <= current:
        return [
            f"teardown_hard_stop_time: lies in the past, got {_iso(moment)} while "
            f"it is now {_iso(current)}, so the guard would never fire (or fire "
            f"at once). Fix: move it to the end of the rental, e.g. {later}, and re-run."
        ]
    if not isinstance(inputs.get("poweroff"), bool):
        return [
            _msg(
                "teardown_hard_stop_poweroff",
                "must be true or false",
                inputs.get("poweroff"),
                "true on rented hosts (the host powers off), false in the lab.",
            )
        ]
    return []


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


def _errors_filter(inputs: Mapping[str, Any]) -> list[str]:
    if not isinstance(inputs, Mapping):
        raise AnsibleFilterError("llmhost.core.teardown_errors: the input must be a dict")
    return teardown_errors(inputs)


def _guard_filter(inputs: Mapping[str, Any], now: object = None) -> list[str]:
    if not isinstance(inputs, Mapping):
        raise AnsibleFilterError("llmhost.core.teardown_guard_errors: the input must be a dict")
    return teardown_guard_errors(inputs, now)


class FilterModule:
    """llmhost.core teardown filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "teardown_errors": _errors_filter,
            "teardown_guard_errors": _guard_filter,
            "teardown_oncalendar": teardown_oncalendar,
            "teardown_clock_errors": _clock_filter,
        }
