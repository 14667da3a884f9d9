"""The hard stop's one time format, for every reader of a hard-stop time.

The GPU plan's hard_stop_time is read by preflight (the plan gate), the teardown role
(the guard's checks, the timer's OnCalendar, the timer's next elapse), monitoring (the
gauge and its alert) and scripts/llmhost.py status. Each of them parses it here, so each
accepts exactly the same values and refuses the rest with the same message:

* accepted: a string holding an RFC 3339 date-time with seconds and an explicit zone,
  YYYY-MM-DDTHH:MM:SSZ or YYYY-MM-DDTHH:MM:SS+HH:MM (or -HH:MM), e.g.
  2026-12-04T18:00:00Z or 2026-12-04T19:00:00+01:00;
* empty ("" or null): no hard stop; each reader says whether that is allowed;
* refused: everything else: a time without a zone (naive), a date alone, fractions of
  a second, a space or a lowercase t/z, an offset without its colon, epoch numbers, free
  text, and every value that is not a string. YAML reads an unquoted
  2026-12-04T18:00:00Z, 2026-12-04 18:00:00 or 2026-12-04 as a timestamp or a date
  object: such a value is refused whatever it holds (quote it).

Standard library only: scripts/llmhost.py loads this file by its path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta, timezone

EXAMPLE = "2026-12-04T18:00:00Z"
EXAMPLE_OFFSET = "2026-12-04T19:00:00+01:00"
REQUIREMENT = "must be a quoted RFC 3339 (ISO 8601) time with seconds and a zone (Z or +HH:MM)"
FIX = f"Fix: write it like '{EXAMPLE}' (UTC) or '{EXAMPLE_OFFSET}', in quotes."
MAX_SHOWN_CHARS = 60

_FORMAT = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:Z|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)
_NUMBER = re.compile(r"[+-]?\d+(?:\.\d*)?", re.ASCII)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(.*)", re.ASCII)


class HardStopError(ValueError):
    """A hard-stop time in another format; str() is the message naming the variable."""


def is_empty(value: object) -> bool:
    """'' or null: no hard stop (whitespace is not empty: it is refused)."""
    return value is None or (isinstance(value, str) and value == "")


def _build(match: re.Match[str]) -> datetime:
    year, month, day, hour, minute, second = (int(match[i]) for i in range(1, 7))
    zone = UTC
    if match[7]:
        hours, minutes = int(match[8]), int(match[9])
        if hours > 23 or minutes > 59:
            raise ValueError("offset out of range")
        sign = -1 if match[7] == "-" else 1
        zone = timezone(sign * timedelta(hours=hours, minutes=minutes))
    return datetime(year, month, day, hour, minute, second, tzinfo=zone)


def _read_text(text: str) -> tuple[datetime | None, str | None]:
    match = _FORMAT.fullmatch(text)
    if match:
        try:
            return _build(match), None
        except ValueError:
            return None, "this one is not a real date and time"
    bare = text.strip()
    if _NUMBER.fullmatch(bare):
        return None, "this one is a number (epoch seconds are not accepted)"
    if _DATE.fullmatch(bare):
        return None, "this one is a date without a time"
    rough = _DATE_TIME.fullmatch(bare)
    if rough and not rough[1].strip():
        return None, "this one has no zone (a naive time)"
    if rough:
        return None, "this one is written another way (T, seconds, no fraction, Z or +HH:MM)"
    return None, "this one is not a time"


def _read(value: object) -> tuple[datetime | None, str | None]:
    """(the moment, None) for an accepted value, (None, why) for a refused one, and
    (None, None) for an empty one."""
    if is_empty(value):
        return None, None
    if isinstance(value, str):
        return _read_text(value)
    if isinstance(value, bool):
        return None, "this one is a boolean"
    if isinstance(value, datetime):
        return None, "this one is a YAML timestamp (unquoted), not a string"
    if isinstance(value, date):
        return None, "this one is a YAML date (unquoted), not a string"
    if isinstance(value, (int, float)):
        return None, "this one is a number (epoch seconds are not accepted)"
    return None, f"this one is {_kind(value)}, not a string"


def problem(value: object) -> str | None:
    """Why a value is refused (None when it is accepted or empty)."""
    return _read(value)[1]


def shown(value: object) -> str:
    """How a refused value is quoted in the message."""
    if isinstance(value, str):
        text = value if len(value) <= MAX_SHOWN_CHARS else value[: MAX_SHOWN_CHARS - 3] + "..."
        return repr(text)
    if isinstance(value, (datetime, date)):
        return str(value)
    if isinstance(value, (bool, int, float)):
        return repr(value)
    return _kind(value)


def _kind(value: object) -> str:
    if isinstance(value, Mapping):
        return "a dict"
    if isinstance(value, (list, tuple, set)):
        return "a list"
    return f"a {type(value).__name__}"


def _refusal(var: str, value: object, why: str) -> str:
    return f"{var}: {REQUIREMENT}; {why}, got {shown(value)}. {FIX}"


def message(var: str, value: object) -> str | None:
    """The refusal of value as var, or None when it is accepted or empty."""
    why = problem(value)
    return None if why is None else _refusal(var, value, why)


def errors(value: object, var: str) -> list[str]:
    """[the refusal] or [] (accepted or empty)."""
    text = message(var, value)
    return [] if text is None else [text]


def parse(value: object, var: str) -> datetime | None:
    """The moment (an aware datetime) of an accepted value; None when empty.

    Raises HardStopError, whose text is the refusal naming var, for everything else."""
    moment, why = _read(value)
    if why is not None:
        raise HardStopError(_refusal(var, value, why))
    return moment


def utc_text(moment: datetime) -> str:
    """A moment in the accepted format, in UTC: 2026-12-04T18:00:00Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
