"""Strict coercion of inventory values, shared by the llmhost.core filters.

Numbers may come from YAML (int/float) or from templating (numeric strings); booleans
never count as numbers, and NaN/infinity are refused.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

_INT_TEXT = re.compile(r"^[+-]?\d+$")
_SECRET_TEXT = re.compile(r"^(hf_|sk-|ghp_|github_pat_|glpat-)[A-Za-z0-9_-]{8,}")
MAX_SHOWN_CHARS = 80


def as_number(value: object) -> float | None:
    """A finite float from an int, float or numeric string; None otherwise (bools too)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def as_int(value: object) -> int | None:
    """An int from an int, an integral float or a string of digits; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else None
    if isinstance(value, str) and _INT_TEXT.match(value.strip()):
        return int(value.strip())
    return None


def show(value: object) -> str:
    """How a bad value is quoted in a message: short, typed, and secrets redacted."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"{value} (a boolean)"
    if isinstance(value, str):
        text = str(value)
        if _SECRET_TEXT.match(text.strip()):
            return "a value that looks like a secret token (not shown)"
        if len(text) > MAX_SHOWN_CHARS:
            text = text[: MAX_SHOWN_CHARS - 3] + "..."
        return repr(text)
    if isinstance(value, int):
        return repr(int(value))
    if isinstance(value, float):
        return repr(float(value))
    if isinstance(value, Mapping):
        return f"a dict with keys {sorted(str(key) for key in value)}"[:MAX_SHOWN_CHARS]
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)} item(s)"
    return f"a {type(value).__name__}"
