"""The evaluation harness at the size a serious set has (200-500 cases): a generated
500-case CSV is parsed and validated, each case checked, and the report written
(eval_results.csv, eval_summary.json with total and duration_s) -- first without a
server, then sent for real through the OpenAI test double (cheap: no artificial latency).
No count limit exists in the harness; the figures are printed, never asserted."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.llmhost.core.plugins.module_utils import eval_cases as ec
from ansible_collections.llmhost.core.plugins.module_utils.eval_report import (
    case_row,
    outcome,
    result_row,
)
from ansible_collections.llmhost.core.plugins.modules import openai_eval as oe

from tests.support import openai_double as server
from tests.support.openai_double import serving

KEY = "scale-test-key-0123456789"
CASES = 500
# One check per row, round-robin: the check kinds a real set mixes.
CHECKS = (
    ("non_empty; streamed", ""),
    ("finish_reason:length,stop", ""),
    ("max_output_tokens:8", ""),
    ("contains:no-such-word", ""),
    ("not_contains:zzzz", ""),
    ("max_latency_ms:60000", ""),
)


def write_cases(path: Path, count: int = CASES) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(
            [
                "id",
                "category",
                "prompt",
                "messages",
                "max_tokens",
                "params",
                "expected",
                "check",
                "notes",
            ]
        )
        for n in range(count):
            check, params = CHECKS[n % len(CHECKS)]
            out.writerow(
                [
                    f"case-{n:03d}",
                    f"cat_{n % 7}",
                    f"Question {n}: say something.",
                    "",
                    4,
                    params,
                    "text",
                    check,
                    f"generated case {n}",
                ]
            )
    return path


def _params(tmp_path: Path, cases: Path, base_url: str = "http://127.0.0.1:9/v1") -> dict[str, Any]:
    return {
        "base_url": base_url,
        "ca_file": "",
        "cases_file": str(cases),
        "system_prompt_file": "",
        "prompt_template_file": "",
        "expected_failures_file": "",
        "out_dir": str(tmp_path / "evidence" / "run-500"),
        "previous_results": "",
        "max_tokens": 8,
        "temperature": 0.0,
        "seed": 3,
    }


def test_500_cases_parse_check_and_report_without_a_server(tmp_path: Path) -> None:
    cases_file = write_cases(tmp_path / "cases.csv")
    began = time.perf_counter()
    cases = ec.parse_cases(cases_file.read_text(encoding="utf-8"), str(cases_file))
    parsed = time.perf_counter() - began
    assert len(cases) == CASES and len({c.id for c in cases}) == CASES
    p = _params(tmp_path, cases_file)
    answer = ec.Answer(
        text="ok", ttft_ms=3.0, latency_ms=9.0, output_tokens=4, finish_reason="length", chunks=4
    )
    case_rows, result_rows = [], []
    for case in cases:
        case_rows.append(case_row(case, ec.build_messages(case, "", ""), case.max_tokens or 8))
        result_rows.append(result_row(case, answer, ec.evaluate(case, answer)))
    summary, _ = oe.write_evidence(
        Path(p["out_dir"]), p, "tiny", (case_rows, result_rows), "t0", None, 1.5
    )
    reported = time.perf_counter() - began
    assert summary["total"] == CASES
    assert summary["duration_s"] == 1.5
    assert summary["failed"] == CASES // len(CHECKS) + (1 if CASES % len(CHECKS) > 3 else 0)
    assert len(summary["categories"]) == 7
    assert outcome(result_rows)["total"] == CASES
    on_disk = json.loads((Path(p["out_dir"]) / "eval_summary.json").read_text(encoding="utf-8"))
    assert on_disk["total"] == CASES and on_disk["duration_s"] == 1.5
    with (Path(p["out_dir"]) / "eval_results.csv").open(encoding="utf-8") as handle:
        assert sum(1 for _ in csv.DictReader(handle)) == CASES
    print(
        f"\n500 cases: parsed in {parsed * 1000:.0f} ms, "
        f"checked and reported in {reported * 1000:.0f} ms"
    )


@pytest.mark.parametrize("count", [200, CASES])
def test_the_set_sizes_go_through_the_test_double(tmp_path: Path, count: int) -> None:
    cases_file = write_cases(tmp_path / "cases.csv", count)
    settings = server.Settings("tiny", KEY, ttft_ms=0, token_ms=0)
    with serving(settings) as base:
        p = _params(tmp_path, cases_file, base + "/v1")
        cases = ec.parse_cases(cases_file.read_text(encoding="utf-8"))
        client = oe.make_client(p["base_url"], KEY, "", timeout=30)
        began = time.monotonic()
        rows = oe.run_cases(client, "tiny", cases, ("", ""), p)
        duration = time.monotonic() - began
    summary, _ = oe.write_evidence(Path(p["out_dir"]), p, "tiny", rows, "t0", None, duration)
    assert summary["total"] == count and summary["request_errors"] == []
    assert summary["duration_s"] > 0
    print(
        f"\n{count} cases through the test double (no latency): {duration:.1f} s, "
        f"{count / duration:.0f} cases/s"
    )
