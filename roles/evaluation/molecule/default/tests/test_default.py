"""testinfra checks of the evaluation role: the lab set against the OpenAI-compatible test
double (a systemd unit in the container, its port 8000 published on the control machine's
127.0.0.1:$LLMHOST_MOL_HTTP_PORT, see molecule/base.yml).

The evidence lies on the control node (LLMHOST_EVIDENCE_DIR); the metrics scrape happened
inside the container. The failing gate is exercised by tests/test_evaluation_role.py.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.metadata
import json
import os
from pathlib import Path

KEY = "molecule-eval-key-0123456789"
ROOT = Path(os.environ["LLMHOST_ROOT"])
CASES = ROOT / "roles" / "evaluation" / "files" / "eval" / "cases-lab.csv"
PROMPT = ROOT / "roles" / "evaluation" / "files" / "eval" / "system_prompt-lab.txt"
BUNDLE = Path(os.environ["LLMHOST_EVIDENCE_DIR"])
LOAD_REQUESTS = 24
HTTP_PORT = os.environ["LLMHOST_MOL_HTTP_PORT"]


def _json(name: str) -> dict:
    return json.loads((BUNDLE / name).read_text(encoding="utf-8"))


def _rows(name: str) -> list[dict[str, str]]:
    with (BUNDLE / name).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _success_total(name: str) -> float:
    for line in (BUNDLE / name).read_text(encoding="utf-8").splitlines():
        if line.startswith("vllm:request_success_total"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} has no vllm:request_success_total")


def test_test_double_runs_as_a_dynamic_user(host) -> None:
    props = host.check_output(
        "systemctl show llmhost-openai-test -p ActiveState -p DynamicUser -p NoNewPrivileges"
    )
    for expected in ("ActiveState=active", "DynamicUser=yes", "NoNewPrivileges=yes"):
        assert expected in props, props


def test_every_lab_case_passed() -> None:
    rows = _rows("eval_results.csv")
    assert len(rows) == 10
    assert {"case_id", "passed", "reason", "latency_ms", "ttft_ms", "output_tokens", "output"} <= (
        set(rows[0])
    )
    failed = {r["case_id"]: r["reason"] for r in rows if r["passed"] != "true"}
    assert not failed, failed
    for row in rows:
        assert row["output"].strip()
        assert float(row["ttft_ms"]) <= float(row["latency_ms"])
        assert row["status"] == "200"


def test_cases_as_run_carry_the_system_prompt() -> None:
    rows = _rows("eval_cases.csv")
    assert [r["id"] for r in rows][:2] == ["lab-non-empty", "lab-streamed"]
    messages = json.loads(rows[0]["messages"])
    assert messages[0] == {"role": "system", "content": PROMPT.read_text(encoding="utf-8")}
    assert messages[1]["role"] == "user"


def test_summary_records_inputs_model_and_client() -> None:
    summary = _json("eval_summary.json")
    assert summary["pass_rate"] == 1.0
    assert summary["total"] == 10
    assert summary["model"] == "tiny"
    assert summary["base_url"] == f"http://127.0.0.1:{HTTP_PORT}/v1"
    assert summary["temperature"] == 0.0
    assert summary["seed"] == 1234
    assert summary["client"] == {"name": "openai", "version": importlib.metadata.version("openai")}
    assert summary["cases_file"]["sha256"] == hashlib.sha256(CASES.read_bytes()).hexdigest()
    assert (
        summary["system_prompt_file"]["sha256"] == hashlib.sha256(PROMPT.read_bytes()).hexdigest()
    )


def test_comparison_with_the_previous_run() -> None:
    comparison = _json("eval_comparison.json")
    assert comparison["previous_run"] == "previous-run"
    assert comparison["flipped_to_pass"] == ["lab-ttft"]
    assert comparison["flipped_to_fail"] == []
    assert comparison["removed_cases"] == ["lab-retired"]


def test_load_test_records_every_request() -> None:
    load = _json("load_test.json")
    assert load["tool"]["name"] == "locust"
    assert load["concurrency"] == 4
    requests = load["requests"]
    assert len(requests) == LOAD_REQUESTS
    for request in requests:
        assert request["status"] == 200
        assert request["output_tokens"] == 16  # ignore_eos: exactly max_tokens
        assert 0 < request["ttft_ms"] <= request["latency_ms"]
        assert request["itl_ms"] > 0
    summary = load["summary"]
    assert summary["completed"] == LOAD_REQUESTS
    assert summary["errors_by_status"] == {}
    assert summary["output_tokens_total"] == 16 * LOAD_REQUESTS
    assert summary["requests_per_s"] > 0
    for metric in ("ttft_ms", "itl_ms", "latency_ms"):
        dist = summary[metric]
        assert dist["p50"] <= dist["p95"] <= dist["p99"] <= dist["max"], (metric, dist)
    assert load["generator_stats"]["num_requests"] == LOAD_REQUESTS


def test_metrics_bracket_the_traffic() -> None:
    before = _success_total("vllm_metrics_before.txt")
    after = _success_total("vllm_metrics_after.txt")
    # 10 cases, the load test's requests and its one warm-up request.
    assert after - before == 10 + LOAD_REQUESTS + 1


def test_the_key_is_in_no_evidence_file() -> None:
    for path in BUNDLE.iterdir():
        assert KEY not in path.read_text(encoding="utf-8"), path.name
