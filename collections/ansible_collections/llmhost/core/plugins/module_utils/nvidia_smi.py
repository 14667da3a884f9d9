"""Pure, typed parsers for nvidia-smi output and /proc/driver/nvidia/version.

Standard library only: modules ship this file to hosts running Python 3.11 or 3.12.
Every parser takes the captured text and returns plain JSON-able values; values that
nvidia-smi reports as "[N/A]" / "[Not Supported]" become None.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from typing import Any

# The --query-gpu field list the parsers expect, in order, and the key each one gets.
QUERY_GPU_FIELDS: tuple[str, ...] = (
    "index",
    "uuid",
    "name",
    "driver_version",
    "memory.total",
    "memory.used",
    "memory.free",
    "temperature.gpu",
    "utilization.gpu",
    "power.draw",
    "power.limit",
    "pstate",
    "compute_mode",
    "persistence_mode",
    "pci.bus_id",
)
QUERY_GPU_ARG = "--query-gpu=" + ",".join(QUERY_GPU_FIELDS)
QUERY_COMPUTE_APPS_ARG = "--query-compute-apps=pid,process_name,used_memory"
# Asked on its own: drivers before the compute_cap field (R510) refuse the whole query.
QUERY_COMPUTE_CAP_ARG = "--query-gpu=compute_cap"
CSV_FORMAT_ARG = "--format=csv,noheader,nounits"

_NOT_AVAILABLE = frozenset(
    {
        "",
        "n/a",
        "[n/a]",
        "[not supported]",
        "[unknown error]",
        "[insufficient permissions]",
        "[gpu is lost]",
        "[requested functionality has been deprecated]",
    }
)
_LEADING_NUMBER = re.compile(r"^[-+]?\d+(?:\.\d+)?")
_CUDA_VERSION = re.compile(r"CUDA Version\s*:?\s*(\d+(?:\.\d+)*)")
_NVRM_VERSION = re.compile(r"NVRM version:.*?\s(\d+\.\d+(?:\.\d+)?)(?:\s|$)")
_VERSION = re.compile(r"^\d+(?:\.\d+)*$")


def _is_na(value: str) -> bool:
    return value.strip().lower() in _NOT_AVAILABLE


def to_str(value: str) -> str | None:
    """Strip a field; None when nvidia-smi says it is not available."""
    return None if _is_na(value) else value.strip()


def to_int(value: str) -> int | None:
    """Leading integer of a field ("81559", "81559 MiB", "35.0"); None when unavailable."""
    number = to_float(value)
    return None if number is None else int(number)


def to_float(value: str) -> float | None:
    """Leading number of a field ("105.50", "105.50 W"); None when unavailable."""
    if _is_na(value):
        return None
    match = _LEADING_NUMBER.match(value.strip())
    return float(match.group(0)) if match else None


def to_bool(value: str) -> bool | None:
    """Enabled/On/Yes -> True, Disabled/Off/No -> False, anything else -> None."""
    word = value.strip().lower()
    if word in ("enabled", "on", "yes", "true", "1"):
        return True
    if word in ("disabled", "off", "no", "false", "0"):
        return False
    return None


_QUERY_GPU_COLUMNS: tuple[tuple[str, Callable[[str], Any]], ...] = (
    ("index", to_int),
    ("uuid", to_str),
    ("name", to_str),
    ("driver_version", to_str),
    ("memory_total_mib", to_int),
    ("memory_used_mib", to_int),
    ("memory_free_mib", to_int),
    ("temperature_c", to_int),
    ("utilization_pct", to_int),
    ("power_draw_w", to_float),
    ("power_limit_w", to_float),
    ("pstate", to_str),
    ("compute_mode", to_str),
    ("persistence_mode", to_bool),
    ("pci_bus_id", to_str),
)

_COMPUTE_APPS_COLUMNS: tuple[tuple[str, Callable[[str], Any]], ...] = (
    ("pid", to_int),
    ("process_name", to_str),
    ("used_memory_mib", to_int),
)


def _csv_rows(text: str) -> list[list[str]]:
    lines = [line for line in text.splitlines() if line.strip()]
    return [row for row in csv.reader(lines, skipinitialspace=True)]


def _typed_rows(
    text: str, columns: tuple[tuple[str, Callable[[str], Any]], ...], what: str
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for row in _csv_rows(text):
        if len(row) != len(columns):
            raise ValueError(
                f"{what}: expected {len(columns)} comma-separated fields, got {len(row)}: "
                f"{', '.join(row)!r}"
            )
        rows.append({key: convert(cell) for (key, convert), cell in zip(columns, row, strict=True)})
    return rows


def parse_query_gpu_csv(text: str) -> list[dict[str, Any]]:
    """Parse ``nvidia-smi --query-gpu=<QUERY_GPU_FIELDS> --format=csv,noheader,nounits``.

    Returns one dict per GPU with keys index, uuid, name, driver_version,
    memory_total_mib, memory_used_mib, memory_free_mib, temperature_c,
    utilization_pct, power_draw_w, power_limit_w, pstate, compute_mode,
    persistence_mode (bool) and pci_bus_id. Raises ValueError on a malformed row.
    """
    return _typed_rows(text, _QUERY_GPU_COLUMNS, "nvidia-smi --query-gpu")


def parse_compute_apps_csv(text: str) -> list[dict[str, Any]]:
    """Parse ``--query-compute-apps=pid,process_name,used_memory`` (csv,noheader,nounits).

    Returns [{pid, process_name, used_memory_mib}, ...]; empty text (idle GPU) gives [].
    """
    return _typed_rows(text, _COMPUTE_APPS_COLUMNS, "nvidia-smi --query-compute-apps")


def parse_compute_caps(text: str) -> list[str | None]:
    """Parse ``--query-gpu=compute_cap`` (csv,noheader,nounits): one "major.minor" per GPU,
    None for a GPU that reports none. Raises ValueError on a value of another shape."""
    caps: list[str | None] = []
    for row in _csv_rows(text):
        value = to_str(row[0]) if row else None
        if value is not None and not re.fullmatch(r"\d+\.\d+", value):
            raise ValueError(f"nvidia-smi --query-gpu=compute_cap: not major.minor: {value!r}")
        caps.append(value)
    return caps


def lowest_compute_cap(caps: list[str | None] | None) -> str | None:
    """The lowest "major.minor" of caps; None when any GPU's is unknown (never guessed)."""
    if not caps or any(c is None for c in caps):
        return None
    return min((c for c in caps if c is not None), key=lambda c: tuple(map(int, c.split("."))))


def parse_cuda_version(nvidia_smi_q_text: str) -> str | None:
    """The CUDA version of ``nvidia-smi -q`` ("CUDA Version : 13.0") or of the plain
    table header ("CUDA Version: 13.0"); None when absent."""
    match = _CUDA_VERSION.search(nvidia_smi_q_text)
    return match.group(1) if match else None


def parse_proc_driver_version(text: str) -> str | None:
    """The kernel module version from /proc/driver/nvidia/version ("580.159.04")."""
    match = _NVRM_VERSION.search(text)
    return match.group(1) if match else None


def _version_parts(version: str) -> list[str]:
    return version.strip().split(".")


def _driver_matches(installed: str, wanted: str) -> bool:
    """True when every component of wanted equals the same component of installed."""
    have = _version_parts(installed)
    want = _version_parts(wanted)
    return len(want) <= len(have) and have[: len(want)] == want


def compare_driver(installed: str | None, wanted: str | None) -> dict[str, Any]:
    """Compare an installed NVIDIA driver version with the wanted one.

    ``wanted`` is a branch ("580"), a branch.minor ("580.159") or an exact version
    ("580.159.04"); empty means any driver will do. ``installed`` is None or "" when no
    driver is loaded. Returns {status: match|mismatch|absent, installed, wanted, message}.
    Raises ValueError when wanted is not a dotted version.
    """
    want = (wanted or "").strip()
    have = (installed or "").strip()
    if want and not _VERSION.match(want):
        raise ValueError(
            f"wanted driver version must be a branch like '580' or a version like "
            f"'580.159.04', got {wanted!r}"
        )
    kind = "exact version" if "." in want else "branch"
    result: dict[str, Any] = {"installed": have or None, "wanted": want or None}
    if not have:
        shown = f"{kind} {want}" if want else "any driver"
        result["status"] = "absent"
        result["message"] = f"No NVIDIA driver is installed; wanted {shown}."
    elif not want:
        result["status"] = "match"
        result["message"] = f"NVIDIA driver {have} is installed and any driver is accepted."
    elif _driver_matches(have, want):
        result["status"] = "match"
        result["message"] = f"Installed NVIDIA driver {have} matches the wanted {kind} {want}."
    else:
        result["status"] = "mismatch"
        result["message"] = (
            f"Installed NVIDIA driver {have} does not match the wanted {kind} {want}."
        )
    return result
