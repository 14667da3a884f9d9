"""llmhost.core eval_report: percentiles, result files, the previous run's discovery,
the comparison and the load test summary."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from ansible_collections.llmhost.core.plugins.module_utils import eval_cases as ec
from ansible_collections.llmhost.core.plugins.module_utils import eval_report as er


def test_percentile_interpolates_like_numpy() -> None:
    values = [10.0, 20.0, 30.0, 40.0]
    assert er.percentile(values, 50) == 25.0
    assert er.percentile(values, 0) == 10.0
    assert er.percentile(values, 100) == 40.0
    assert er.percentile(values, 95) == pytest.approx(38.5)
    assert er.percentile([7.0], 99) == 7.0
    assert er.percentile([], 50) is None


def test_distribution_skips_missing_values() -> None:
    dist = er.distribution([1.0, None, 3.0])
    assert dist["count"] == 2
    assert dist["mean"] == 2.0
    assert dist["p50"] == 2.0
    assert (dist["min"], dist["max"]) == (1.0, 3.0)
    assert er.distribution([])["p99"] is None


def test_result_rows_round_trip_through_the_csv(tmp_path: Path) -> None:
    case = ec.Case(id="a", expected="", checks=[], check_text="non_empty")
    good = er.result_row(case, ec.Answer(text='say "hi",\nthen go', ttft_ms=1.234), [])
    bad = er.result_row(
        ec.Case(id="b", expected="", checks=[], check_text=""), ec.Answer(), ["x: y", "z"]
    )
    assert good["passed"] == "true" and good["reason"] == "all checks passed"
    assert good["ttft_ms"] == 1.2
    assert bad["reason"] == "x: y; z" and bad["ttft_ms"] == ""
    path = tmp_path / "eval_results.csv"
    er.write_csv(path, er.RESULT_COLUMNS, [good, bad])
    assert er.read_results(path) == {"a": True, "b": False}
    assert oct(path.stat().st_mode & 0o777) == "0o640"
    assert 'say ""hi"",\nthen go' in path.read_text(encoding="utf-8")


def test_rows_carry_the_category() -> None:
    case = ec.Case(id="a", expected="", checks=[], check_text="x", category="factual")
    assert er.result_row(case, ec.Answer(), [])["category"] == "factual"
    assert er.case_row(case, [], 8)["category"] == "factual"
    assert er.RESULT_COLUMNS[:3] == ("case_id", "category", "passed")
    assert er.CASE_COLUMNS[:2] == ("id", "category")


def _rows(*spec: tuple[str, str, bool]) -> list[dict[str, str]]:
    return [{"case_id": c, "category": cat, "passed": str(ok).lower()} for c, cat, ok in spec]


def test_outcome_without_a_list_gates_on_every_case() -> None:
    rows = _rows(("a", "factual", True), ("b", "factual", False), ("c", "format", True))
    out = er.outcome(rows)
    assert (out["total"], out["passed"], out["failed"], out["pass_rate"]) == (3, 2, 1, 0.6667)
    assert out["gated_pass_rate"] == out["pass_rate"] and out["gated_total"] == 3
    assert out["failed_cases"] == out["gated_failed_cases"] == ["b"]
    assert out["expected_failures"] == out["unexpected_passes"] == []
    assert list(out["categories"]) == ["factual", "format"]  # the order of the cases


def test_outcome_leaves_listed_cases_out_of_the_gate_and_reports_unexpected_passes() -> None:
    rows = _rows(
        ("f1", "factual", True),
        ("f2", "factual", False),  # listed: expected
        ("r1", "refusal", False),  # listed: expected
        ("r2", "refusal", True),  # listed, passed: unexpected pass
        ("r3", "refusal", True),
        ("x", "", True),  # an old row without a category
    )
    out = er.outcome(rows, {"f2": "why", "r1": "why", "r2": "why"})
    assert out["pass_rate"] == 0.6667  # raw: 4 of 6
    assert (out["gated_total"], out["gated_passed"], out["gated_pass_rate"]) == (3, 3, 1.0)
    assert out["gated_failed_cases"] == []
    assert out["failed_cases"] == ["f2", "r1"]
    assert out["expected_failures"] == ["f2", "r1"]
    assert out["unexpected_passes"] == ["r2"]
    assert out["categories"] == {
        "factual": {
            "cases": 2,
            "passed": 1,
            "failed": 1,
            "expected_failures": 1,
            "unexpected_passes": 0,
            "pass_rate": 0.5,
        },
        "refusal": {
            "cases": 3,
            "passed": 2,
            "failed": 1,
            "expected_failures": 1,
            "unexpected_passes": 1,
            "pass_rate": 0.6667,
        },
        "uncategorised": {
            "cases": 1,
            "passed": 1,
            "failed": 0,
            "expected_failures": 0,
            "unexpected_passes": 0,
            "pass_rate": 1.0,
        },
    }


def test_outcome_is_strict_on_the_cases_not_listed() -> None:
    rows = _rows(("a", "x", False), ("b", "x", True), ("c", "x", False))
    out = er.outcome(rows, {"a": "known"})
    assert out["gated_pass_rate"] == 0.5 and out["gated_failed_cases"] == ["c"]
    assert out["expected_failures"] == ["a"]


def _run(parent: Path, name: str, results: dict[str, bool], finished: str | None) -> Path:
    folder = parent / name
    folder.mkdir(parents=True)
    rows = [{"case_id": k, "passed": str(v).lower()} for k, v in results.items()]
    er.write_csv(folder / er.RESULTS_FILE, ("case_id", "passed"), rows)
    if finished:
        er.write_json(folder / er.SUMMARY_FILE, {"finished_at": finished})
    return folder


def test_find_previous_takes_the_newest_other_run(tmp_path: Path) -> None:
    _run(tmp_path, "20260101T000000Z-aaa", {"a": True}, "2026-01-01T00:00:00Z")
    newest = _run(tmp_path, "20260301T000000Z-ccc", {"a": True}, "2026-03-01T00:00:00Z")
    _run(tmp_path, "20260201T000000Z-bbb", {"a": True}, "2026-02-01T00:00:00Z")
    (tmp_path / "no-results").mkdir()
    own = tmp_path / "20260401T000000Z-ddd"
    own.mkdir()
    assert er.find_previous(own, tmp_path) == newest
    # This run's own results never count as the previous run.
    assert er.find_previous(newest, tmp_path).name == "20260201T000000Z-bbb"
    assert er.find_previous(own, tmp_path / "missing") is None


def test_find_previous_falls_back_to_the_file_time(tmp_path: Path) -> None:
    old = _run(tmp_path, "zzz-old", {"a": True}, None)
    new = _run(tmp_path, "aaa-new", {"a": True}, None)
    os.utime(old / er.RESULTS_FILE, (1_000_000, 1_000_000))
    os.utime(new / er.RESULTS_FILE, (2_000_000, 2_000_000))
    assert er.find_previous(tmp_path / "this", tmp_path) == new


def test_resolve_previous_prefers_the_explicit_file_or_folder(tmp_path: Path) -> None:
    folder = _run(tmp_path, "given", {"a": True}, None)
    own = tmp_path / "own"
    assert er.resolve_previous(str(folder), own, None) == folder / er.RESULTS_FILE
    assert er.resolve_previous(str(folder / er.RESULTS_FILE), own, None) == (
        folder / er.RESULTS_FILE
    )
    assert er.resolve_previous("", own, tmp_path) == folder / er.RESULTS_FILE
    assert er.resolve_previous("", own, None) is None


def test_compare_names_the_flips() -> None:
    previous = {"a": True, "b": False, "c": True, "d": False, "gone": True}
    current = {"a": False, "b": True, "c": True, "d": False, "new": True}
    assert er.compare(previous, current, "run-1") == {
        "previous_run": "run-1",
        "flipped_to_fail": ["a"],
        "flipped_to_pass": ["b"],
        "still_failing": ["d"],
        "new_cases": ["new"],
        "removed_cases": ["gone"],
    }
    first = er.compare(None, current, None)
    assert first["previous_run"] is None
    assert first["flipped_to_fail"] == first["flipped_to_pass"] == first["new_cases"] == []


def test_load_summary_counts_errors_by_status_and_throughput() -> None:
    ok = {"status": 200, "error": "", "ttft_ms": 10.0, "latency_ms": 40.0, "output_tokens": 4}
    records = [
        ok,
        {**ok, "ttft_ms": 20.0, "latency_ms": 50.0},
        {"status": 429, "error": "rate", "ttft_ms": None, "latency_ms": 5.0, "output_tokens": 0},
        {"status": 0, "error": "refused", "ttft_ms": None, "latency_ms": 1.0, "output_tokens": 0},
    ]
    summary = er.load_summary(records, [10.0, 10.0, 10.0, 10.0, 10.0, 10.0], wall_s=2.0)
    assert summary["requests"] == 4
    assert summary["completed"] == 2 and summary["failed"] == 2
    assert summary["error_rate"] == 0.5
    assert summary["errors_by_status"] == {"0": 1, "429": 1}
    assert summary["status_counts"] == {"0": 1, "200": 2, "429": 1}
    assert summary["requests_per_s"] == 1.0
    assert summary["output_tokens_total"] == 8
    assert summary["output_tokens_per_s"] == 4.0
    assert summary["ttft_ms"]["p50"] == 15.0
    assert summary["latency_ms"]["count"] == 2  # failed requests do not skew latency
    assert summary["tpot_ms"]["p50"] == 10.0  # (40 - 10) / 3 and (50 - 20) / 3
    assert summary["itl_ms"]["count"] == 6


def test_tpot_needs_two_tokens_and_a_ttft() -> None:
    assert er.tpot_ms({"output_tokens": 1, "ttft_ms": 5.0, "latency_ms": 9.0}) is None
    assert er.tpot_ms({"output_tokens": 3, "ttft_ms": None, "latency_ms": 9.0}) is None
    assert er.tpot_ms({"output_tokens": 3, "ttft_ms": 5.0, "latency_ms": 9.0}) == 2.0


def test_write_json_is_atomic_and_readable(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "x.json"
    er.write_json(target, {"a": [1, 2]})
    assert json.loads(target.read_text(encoding="utf-8")) == {"a": [1, 2]}
    assert [p.name for p in target.parent.iterdir()] == ["x.json"]
