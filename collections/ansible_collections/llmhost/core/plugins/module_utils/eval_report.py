"""Evaluation evidence: result rows and CSV files, the pass rates (raw, gated by the
expected-failures list, per category), the comparison with the previous run, latency
distributions and the load test summary. Pure standard library."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
import time
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import Any

from ansible_collections.llmhost.core.plugins.module_utils.eval_cases import (
    DEFAULT_CATEGORY,
    Answer,
    Case,
)

RESULTS_FILE = "eval_results.csv"
CASES_FILE = "eval_cases.csv"
SUMMARY_FILE = "eval_summary.json"
COMPARISON_FILE = "eval_comparison.json"
RESULT_COLUMNS = (
    "case_id",
    "category",
    "passed",
    "reason",
    "latency_ms",
    "ttft_ms",
    "output_tokens",
    "finish_reason",
    "chunks",
    "status",
    "output",
)
CASE_COLUMNS = (
    "id",
    "category",
    "messages",
    "max_tokens",
    "params",
    "expected",
    "check",
    "notes",
)
PERCENTILES = (50, 90, 95, 99)


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# --- numbers -------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile with linear interpolation (numpy's default); None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def distribution(values: Iterable[float | None]) -> dict[str, float | int | None]:
    """count, mean, min, p50/p90/p95/p99 and max of the values that are not None."""
    present = [float(v) for v in values if v is not None]
    out: dict[str, float | int | None] = {"count": len(present)}
    out["mean"] = round(sum(present) / len(present), 2) if present else None
    out["min"] = round(min(present), 2) if present else None
    for q in PERCENTILES:
        value = percentile(present, q)
        out[f"p{q}"] = round(value, 2) if value is not None else None
    out["max"] = round(max(present), 2) if present else None
    return out


# --- files ---------------------------------------------------------------------------------


def _atomic_write(path: Path, text: str) -> None:
    """Write beside the target and rename, so a half-written file never looks finished."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
    Path(tmp).chmod(0o640)
    Path(tmp).replace(path)


def write_json(path: Path, data: Any) -> None:
    _atomic_write(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_csv(path: Path, columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    _atomic_write(path, buffer.getvalue())


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


# --- rows ----------------------------------------------------------------------------------


def result_row(case: Case, answer: Answer, reasons: list[str]) -> dict[str, Any]:
    return {
        "case_id": case.id,
        "category": case.category,
        "passed": "false" if reasons else "true",
        "reason": "; ".join(reasons) if reasons else "all checks passed",
        "latency_ms": round(answer.latency_ms, 1),
        "ttft_ms": round(answer.ttft_ms, 1) if answer.ttft_ms is not None else "",
        "output_tokens": answer.output_tokens,
        "finish_reason": answer.finish_reason or "",
        "chunks": answer.chunks,
        "status": answer.status,
        "output": answer.text,
    }


def case_row(case: Case, messages: list[dict[str, str]], max_tokens: int) -> dict[str, Any]:
    return {
        "id": case.id,
        "category": case.category,
        "messages": json.dumps(messages, ensure_ascii=False),
        "max_tokens": max_tokens,
        "params": json.dumps(case.params, sort_keys=True) if case.params else "",
        "expected": case.expected,
        "check": case.check_text,
        "notes": case.notes,
    }


def read_results(path: Path) -> dict[str, bool]:
    """case id -> passed, from an eval_results.csv."""
    with path.open(encoding="utf-8", newline="") as handle:
        return {
            row["case_id"]: row["passed"].strip().lower() == "true"
            for row in csv.DictReader(handle)
        }


# --- pass rates ----------------------------------------------------------------------------


def _rate(passed: int, total: int) -> float:
    return round(passed / total, 4) if total else 0.0


def outcome(rows: list[dict[str, Any]], expected: Collection[str] = ()) -> dict[str, Any]:
    """The pass rates of result rows: raw over every case, gated over the cases that are not
    on the expected-failures list (a listed case that fails is expected; one that passes is
    an unexpected pass, not a failure), and per category in the order the cases came."""
    passed = {r["case_id"]: r["passed"] == "true" for r in rows}
    listed = [r["case_id"] for r in rows if r["case_id"] in expected]
    gated = [case for case in passed if case not in expected]
    categories: dict[str, dict[str, Any]] = {}
    for row in rows:
        case = row["case_id"]
        entry = categories.setdefault(
            row.get("category") or DEFAULT_CATEGORY,
            {"cases": 0, "passed": 0, "failed": 0, "expected_failures": 0, "unexpected_passes": 0},
        )
        entry["cases"] += 1
        entry["passed" if passed[case] else "failed"] += 1
        if case in expected:
            entry["unexpected_passes" if passed[case] else "expected_failures"] += 1
    for entry in categories.values():
        entry["pass_rate"] = _rate(entry["passed"], entry["cases"])
    return {
        "total": len(rows),
        "passed": sum(passed.values()),
        "failed": len(rows) - sum(passed.values()),
        "pass_rate": _rate(sum(passed.values()), len(rows)),
        "failed_cases": [case for case, ok in passed.items() if not ok],
        "expected_failures": [case for case in listed if not passed[case]],
        "unexpected_passes": [case for case in listed if passed[case]],
        "gated_total": len(gated),
        "gated_passed": sum(passed[case] for case in gated),
        "gated_pass_rate": _rate(sum(passed[case] for case in gated), len(gated)),
        "gated_failed_cases": [case for case in gated if not passed[case]],
        "categories": categories,
    }


# --- the previous run ----------------------------------------------------------------------


def _finished_at(folder: Path) -> str:
    """When a run's evaluation finished: its summary's time, else the results' mtime."""
    try:
        stamp = read_json(folder / SUMMARY_FILE).get("finished_at")
        if isinstance(stamp, str) and stamp:
            return stamp
    except (OSError, ValueError, AttributeError):
        pass
    mtime = (folder / RESULTS_FILE).stat().st_mtime
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(mtime))


def find_previous(run_dir: Path, search_dir: Path) -> Path | None:
    """The newest other run folder under search_dir that holds an eval_results.csv."""
    if not search_dir.is_dir():
        return None
    own = run_dir.resolve()
    candidates = [
        folder
        for folder in search_dir.iterdir()
        if folder.is_dir() and folder.resolve() != own and (folder / RESULTS_FILE).is_file()
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda folder: (_finished_at(folder), folder.name))


def resolve_previous(explicit: str, run_dir: Path, search_dir: Path | None) -> Path | None:
    """The previous results file: the explicit one (a file or its folder) or discovered."""
    if explicit:
        path = Path(explicit)
        return path / RESULTS_FILE if path.is_dir() else path
    if search_dir is None:
        return None
    folder = find_previous(run_dir, search_dir)
    return folder / RESULTS_FILE if folder else None


def compare(
    previous: dict[str, bool] | None, current: dict[str, bool], previous_run: str | None
) -> dict[str, Any]:
    """Which cases flipped between the previous run and this one."""
    before = previous or {}
    common = [case for case in current if case in before]
    return {
        "previous_run": previous_run,
        "flipped_to_fail": [c for c in common if before[c] and not current[c]],
        "flipped_to_pass": [c for c in common if not before[c] and current[c]],
        "still_failing": [c for c in common if not before[c] and not current[c]],
        "new_cases": [c for c in current if c not in before] if previous is not None else [],
        "removed_cases": [c for c in before if c not in current],
    }


# --- the load test -------------------------------------------------------------------------


def tpot_ms(record: dict[str, Any]) -> float | None:
    """Time per output token after the first: (latency - TTFT) / (tokens - 1)."""
    tokens = int(record.get("output_tokens") or 0)
    if tokens < 2 or record.get("ttft_ms") is None:
        return None
    return (float(record["latency_ms"]) - float(record["ttft_ms"])) / (tokens - 1)


def load_summary(records: list[dict[str, Any]], gaps_ms: list[float], wall_s: float) -> dict:
    """Throughput, latency distributions and errors by status of a load test's requests.
    itl_ms: every gap between streamed chunks; tpot_ms: per request."""
    ok = [r for r in records if r.get("status") == 200 and not r.get("error")]
    statuses = Counter(str(r.get("status")) for r in records)
    errors = Counter(str(r.get("status")) for r in records if r not in ok)
    tokens = sum(int(r.get("output_tokens") or 0) for r in ok)
    wall = max(wall_s, 1e-9)
    return {
        "requests": len(records),
        "completed": len(ok),
        "failed": len(records) - len(ok),
        "error_rate": round((len(records) - len(ok)) / len(records), 4) if records else 0.0,
        "status_counts": dict(sorted(statuses.items())),
        "errors_by_status": dict(sorted(errors.items())),
        "wall_s": round(wall_s, 3),
        "requests_per_s": round(len(ok) / wall, 3),
        "output_tokens_total": tokens,
        "output_tokens_per_s": round(tokens / wall, 1),
        "ttft_ms": distribution(r.get("ttft_ms") for r in ok),
        "itl_ms": distribution(gaps_ms),
        "tpot_ms": distribution(tpot_ms(r) for r in ok),
        "latency_ms": distribution(r.get("latency_ms") for r in ok),
    }
