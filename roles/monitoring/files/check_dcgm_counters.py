#!/usr/bin/python3
"""Check a dcgm-exporter counters CSV before it is installed (used as `validate:`).

Each non-comment line is `DCGM_FI_<FIELD>, <type>, <help>`: three comma-separated
parts, a DCGM field name, a Prometheus type dcgm-exporter knows, a help text; no field
twice; and the fields llmhost's alert rules and dashboard need are all present.
Exit 0 when the file is good, 1 with one line per problem otherwise. Standard library only.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

TYPES = ("gauge", "counter", "label")
FIELD = re.compile(r"DCGM_(FI|EXP)_[A-Z0-9_]+")
REQUIRED = (
    "DCGM_FI_DEV_GPU_TEMP",
    "DCGM_FI_DEV_GPU_UTIL",
    "DCGM_FI_DEV_FB_USED",
    "DCGM_FI_DEV_FB_FREE",
    "DCGM_FI_DEV_POWER_USAGE",
    "DCGM_FI_DEV_XID_ERRORS",
    "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
    "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
)


def problems(text: str) -> list[str]:
    """Every problem of a counters CSV, with its line number."""
    found: list[str] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = [part.strip() for part in line.split(",", 2)]
        if len(parts) != 3 or not all(parts):
            found.append(f"line {number}: want 'FIELD, type, help', got {raw!r}")
            continue
        field, kind, _help = parts
        if not FIELD.fullmatch(field):
            found.append(f"line {number}: {field!r} is not a DCGM field name (DCGM_FI_...)")
        if kind not in TYPES:
            found.append(f"line {number}: type {kind!r} of {field} is not one of {TYPES}")
        if field in seen:
            found.append(f"line {number}: {field} is listed twice (first on line {seen[field]})")
        seen.setdefault(field, number)
    missing = [field for field in REQUIRED if field not in seen]
    if missing:
        found.append(f"required fields missing (alerts and dashboard use them): {missing}")
    return found


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: check_dcgm_counters.py COUNTERS.csv", file=sys.stderr)
        return 2
    found = problems(Path(argv[1]).read_text(encoding="utf-8"))
    for problem in found:
        print(f"{argv[1]}: {problem}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
