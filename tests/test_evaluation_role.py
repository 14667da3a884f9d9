"""The evaluation role, run for real on localhost against the OpenAI-compatible test double
over TLS (a fresh self-signed certificate as evaluation_ca_file), with vLLM-style
/metrics on a second, plain listener: a passing run, its idempotent re-run, a second run
against a degraded server whose gate fails naming the flipped cases (after writing the
evidence), and bad input refused before anything is sent."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from role_runner import run_role

from tests.support import openai_double as server
from tests.support.openai_double import serving
from tests.support.tls import self_signed

# Minutes of role runs in this module: collected first (tests/conftest.py).
pytestmark = pytest.mark.heavy

ROLE = Path(__file__).resolve().parents[1] / "roles" / "evaluation"
KEY = "role-test-key-0123456789"
EVAL = ROLE / "files" / "eval"
LOAD_REQUESTS = 8


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The API over TLS and /metrics in plain HTTP, sharing one server state."""
    faults = tmp_path / "faults.json"
    settings = server.Settings("tiny", KEY, ttft_ms=5, token_ms=1, faults_file=faults)
    cert, key = self_signed(tmp_path)
    with serving(settings, (cert, key)) as api, serving(settings) as metrics:
        yield {
            "api": api + "/v1",
            "metrics": metrics + "/metrics",
            "ca": cert,
            "faults": faults,
            "settings": settings,
        }


def _vars(endpoint: dict[str, Any], evidence: Path, **overrides: Any) -> dict[str, Any]:
    extra = {
        "evaluation_base_url": endpoint["api"],
        "evaluation_api_key": KEY,
        "evaluation_ca_file": str(endpoint["ca"]),
        "evaluation_cases_file": str(EVAL / "cases-lab.csv"),
        "evaluation_system_prompt_file": str(EVAL / "system_prompt-lab.txt"),
        "evaluation_evidence_dir": str(evidence),
        "evaluation_metrics_url": endpoint["metrics"],
        "evaluation_load_concurrency": 2,
        "evaluation_load_requests": LOAD_REQUESTS,
        "evaluation_load_max_tokens": 8,
        "evaluation_gate_min_pass_rate": 0.9,
        "evaluation_gate_must_pass": ["lab-non-empty", "lab-streamed"],
    }
    extra.update(overrides)
    return extra


def _run(
    tmp_path: Path, name: str, extra: dict[str, Any], **kw: Any
) -> subprocess.CompletedProcess:
    work = tmp_path / name
    work.mkdir()
    return run_role(work, "evaluation", extra, gather_facts=False, **kw)


def _recap_changed(out: str) -> int:
    match = re.search(r"localhost\s+:\s+ok=\d+\s+changed=(\d+)", out)
    assert match, out[-3000:]
    return int(match.group(1))


@pytest.mark.slow
def test_pass_rerun_then_gate_fails_on_flips(tmp_path: Path, endpoint: dict[str, Any]) -> None:
    runs = tmp_path / "evidence" / "lab"
    first = runs / "20260101T000000Z-aaaaaaaaaaaa"
    result = _run(tmp_path, "first", _vars(endpoint, first, evaluation_hourly_budget_usd=2.0))
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-5000:]
    assert KEY not in out
    summary = json.loads((first / "eval_summary.json").read_text(encoding="utf-8"))
    assert summary["pass_rate"] == 1.0 and summary["tls"] is True
    ca = os.path.relpath(Path(endpoint["ca"]).resolve(), first.resolve())
    assert summary["ca_file"]["path"] == ca  # relative to the bundle, never absolute
    assert summary["previous_run"] is None
    load = json.loads((first / "load_test.json").read_text(encoding="utf-8"))
    assert load["summary"]["completed"] == LOAD_REQUESTS
    assert {r["output_tokens"] for r in load["requests"]} == {8}
    assert load["tls"] is True
    assert summary["total"] == sum(c["cases"] for c in summary["categories"].values()) > 0
    assert summary["duration_s"] > 0
    cost = json.loads((first / "cost.json").read_text(encoding="utf-8"))
    tps = load["summary"]["output_tokens_per_s"]
    assert cost["output_tokens_per_s"] == tps and cost["hourly_budget_usd"] == 2.0
    assert cost["usd_per_million_output_tokens"] == round(2.0 / (tps * 3600) * 1e6, 4)
    assert cost["source"] == "load_test.json" and cost["within_target"] is None

    again = _run(tmp_path, "again", _vars(endpoint, first))
    assert again.returncode == 0, (again.stdout + again.stderr)[-5000:]
    assert _recap_changed(again.stdout) == 0

    endpoint["faults"].write_text('{"empty": true}', encoding="utf-8")
    second = runs / "20260102T000000Z-bbbbbbbbbbbb"
    failed = _run(tmp_path, "second", _vars(endpoint, second))
    out = " ".join((failed.stdout + failed.stderr).split())
    assert failed.returncode != 0
    assert "Evaluation gate failed for run 20260102T000000Z-bbbbbbbbbbbb" in out
    assert "pass rate 0.0 is below evaluation_gate_min_pass_rate 0.9" in out
    assert (
        "must-pass cases failed: lab-non-empty, lab-streamed (flipped to fail since run "
        "20260101T000000Z-aaaaaaaaaaaa: lab-non-empty, lab-streamed)"
    ) in out
    assert KEY not in out
    comparison = json.loads((second / "eval_comparison.json").read_text(encoding="utf-8"))
    assert comparison["previous_run"] == "20260101T000000Z-aaaaaaaaaaaa"
    assert "lab-non-empty" in comparison["flipped_to_fail"]
    for name in ("eval_cases.csv", "load_test.json", "vllm_metrics_after.txt"):
        assert (second / name).is_file(), f"{name} was not written before the gate"
    with (second / "eval_results.csv").open(encoding="utf-8") as handle:
        rows = {r["case_id"]: r for r in csv.DictReader(handle)}
    assert rows["lab-non-empty"]["passed"] == "false"
    assert "the output is empty" in rows["lab-non-empty"]["reason"]


@pytest.mark.slow
def test_load_errors_fail_the_gate(tmp_path: Path, endpoint: dict[str, Any]) -> None:
    endpoint["faults"].write_text(
        '{"reject": {"contains": "LOADTEST", "status": 429}}', encoding="utf-8"
    )
    extra = _vars(
        endpoint,
        tmp_path / "evidence" / "lab" / "run",
        evaluation_load_prompt="LOADTEST: how fast?",
        evaluation_gate_load_max_error_rate=0.0,
        evaluation_metrics_url="",
    )
    failed = _run(tmp_path, "run", extra)
    out = " ".join((failed.stdout + failed.stderr).split())
    assert failed.returncode != 0
    assert "load test error rate 1.0 is above evaluation_gate_load_max_error_rate 0.0" in out
    assert '(errors by status: {"429": 8})' in out
    assert "is below evaluation_gate_min_pass_rate" not in out  # the cases passed


@pytest.mark.slow
def test_gate_leaves_expected_failures_out(tmp_path: Path, endpoint: dict[str, Any]) -> None:
    """The lab set plus a case no answer passes, with categories: listed, it does not count
    against a strict gate and a listed case that passes is an unexpected pass; unlisted,
    it fails the gate, which names the rate over the cases not on the list."""
    lab = (EVAL / "cases-lab.csv").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lab) if line.startswith("id,"))
    rows = [lab[start].replace("id,", "id,category,", 1)]
    rows += [row.replace(",", ",structure,", 1) for row in lab[start + 1 :]]
    rows.append("lab-impossible,factual,Say the word.,,8,,never,contains:no-such-word,")
    cases = tmp_path / "cases.csv"
    cases.write_text("\n".join(rows) + "\n", encoding="utf-8")
    listing = tmp_path / "expected.yml"
    listing.write_text(
        "expected_failures:\n"
        "  - {id: lab-impossible, reason: the double never says it}\n"
        "  - {id: lab-non-empty, reason: listed to see an unexpected pass}\n",
        encoding="utf-8",
    )
    base = {
        "evaluation_cases_file": str(cases),
        "evaluation_expected_failures_file": str(listing),
        "evaluation_gate_min_pass_rate": 1.0,
        "evaluation_gate_must_pass": ["lab-streamed"],
        "evaluation_load_enabled": False,
        "evaluation_metrics_url": "",
    }
    first = tmp_path / "evidence" / "lab" / "run-1"
    result = _run(tmp_path, "first", _vars(endpoint, first, **base))
    out = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 0, out[-5000:]
    assert "gated pass rate 1.0 over the 9 cases not on the expected-failures list" in out
    assert "unexpected passes: lab-non-empty" in out
    assert "by category: structure 10/10, factual 0/1;" in out
    summary = json.loads((first / "eval_summary.json").read_text(encoding="utf-8"))
    assert (summary["pass_rate"], summary["gated_pass_rate"]) == (0.9091, 1.0)
    assert summary["expected_failures"] == ["lab-impossible"]
    assert summary["unexpected_passes"] == ["lab-non-empty"]
    assert summary["failed_cases"] == ["lab-impossible"] and summary["gated_failed_cases"] == []
    assert summary["categories"]["factual"]["expected_failures"] == 1
    assert summary["categories"]["structure"]["unexpected_passes"] == 1
    # Bundle files name paths relative to their own folder (the bundle can move).
    assert summary["expected_failures_file"]["path"] == os.path.relpath(listing, first)
    with (first / "eval_results.csv").open(encoding="utf-8") as handle:
        assert {r["category"] for r in csv.DictReader(handle)} == {"structure", "factual"}

    listing.write_text("expected_failures: [{id: lab-ttft, reason: x}]\n", encoding="utf-8")
    second = tmp_path / "evidence" / "lab" / "run-2"
    failed = _run(tmp_path, "second", _vars(endpoint, second, **base))
    out = " ".join((failed.stdout + failed.stderr).split())
    assert failed.returncode != 0
    assert (
        "pass rate 0.9 over the 10 cases not on the expected-failures list (raw pass rate "
        "0.9091) is below evaluation_gate_min_pass_rate 1.0 (failed cases: lab-impossible)"
    ) in out
    assert "unexpected passes: lab-ttft" in out


REFUSALS = [
    (
        {"evaluation_base_url": "ftp://x/v1"},
        "evaluation_base_url: must be an http(s) URL ending in /v1, got 'ftp://x/v1'",
    ),
    ({"evaluation_api_key": "short"}, "evaluation_api_key: must be set and at least 16"),
    (
        {"evaluation_base_url": "http://127.0.0.1:9/v1"},
        "evaluation_ca_file / evaluation_ca_host_file: need an https://",
    ),
    ({"evaluation_evidence_dir": "relative/dir"}, "evaluation_evidence_dir: must be an absolute"),
    (
        {"evaluation_gate_min_pass_rate": 1.5},
        "evaluation_gate_min_pass_rate: must lie in 0-1, got 1.5",
    ),
    ({"evaluation_load_concurrency": 0}, "evaluation_load_concurrency: must be >= 1, got 0."),
    ({"evaluation_cases_file": "/nonexistent/cases.csv"}, "evaluation_cases_file = '/nonexistent"),
    (
        {"evaluation_gate_must_pass": ["lab-nope"]},
        "evaluation_gate_must_pass: names lab-nope, which",
    ),
    (
        {"_expected": "expected_failures: [{id: lab-nope, reason: x}, {id: lab-ttft, reason: y}]"},
        "evaluation_expected_failures_file: lists lab-nope, which",
    ),
    (
        {"_expected": "expected_failures: [{id: lab-streamed, reason: slow proxy}]"},
        "evaluation_gate_must_pass: names lab-streamed, which",
    ),
    ({"_expected": "expected_failures: [{id: lab-ttft}]"}, "entry 1: must be {id: <case id>"),
    (
        {"evaluation_expected_failures_file": "/nonexistent/expected.yml"},
        "evaluation_expected_failures_file = '/nonexistent/expected.yml'",
    ),
    ({"_bad_cases": "a,Hi,,,,e,sparkles,\n"}, "line 2 (case a): unknown check 'sparkles'"),
    ({"_bad_template": "no placeholder"}, "has no {prompt}"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("overrides", "expected"), REFUSALS, ids=[r[1][:32] for r in REFUSALS])
def test_bad_input_is_refused_before_anything_is_sent(
    tmp_path: Path, endpoint: dict[str, Any], overrides: dict[str, Any], expected: str
) -> None:
    evidence = tmp_path / "evidence" / "run"
    extra = _vars(endpoint, evidence)
    if "_bad_cases" in overrides:
        cases = tmp_path / "cases.csv"
        header = "id,prompt,messages,max_tokens,params,expected,check,notes\n"
        cases.write_text(header + overrides["_bad_cases"], encoding="utf-8")
        overrides = {"evaluation_cases_file": str(cases), "evaluation_gate_must_pass": []}
    if "_expected" in overrides:
        listing = tmp_path / "expected.yml"
        listing.write_text(overrides["_expected"], encoding="utf-8")
        overrides = {"evaluation_expected_failures_file": str(listing)}
    if "_bad_template" in overrides:
        template = tmp_path / "template.txt"
        template.write_text(overrides["_bad_template"], encoding="utf-8")
        overrides = {"evaluation_prompt_template_file": str(template)}
    extra.update(overrides)
    result = _run(tmp_path, "run", extra)
    out = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0, out[-3000:]
    assert expected in out, out[-3000:]
    assert KEY not in out, "the API key reached the output"
    assert not evidence.exists(), "the evidence folder was created before the refusal"
    assert endpoint["settings"].counters["success"] == 0, "a request was sent"
