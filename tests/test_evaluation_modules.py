"""The evaluation's Python parts against the real test double over HTTP and TLS:
llmhost.core.openai_eval's client code, llmhost.core.load_test's command and report, the
locust runner's measuring code and the test server itself (no locust run here: the role
test runs it)."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from ansible_collections.llmhost.core.plugins.module_utils import eval_cases as ec
from ansible_collections.llmhost.core.plugins.modules import load_test as lt
from ansible_collections.llmhost.core.plugins.modules import openai_eval as oe
from loading import load_module as load_file

from tests.support import openai_double as server
from tests.support.openai_double import serving
from tests.support.tls import self_signed

ROOT_DIR = Path(__file__).resolve().parents[1]
ROLE = ROOT_DIR / "roles" / "evaluation"
MODULES = ROOT_DIR / "collections/ansible_collections/llmhost/core/plugins/modules"
runner = load_file("llmhost_load_locust", ROLE / "files" / "llmhost_load_locust.py")
KEY = "module-test-key-0123456789"


@pytest.fixture
def settings() -> Any:
    return server.Settings("tiny", KEY, ttft_ms=5, token_ms=1)


@pytest.fixture
def tls_url(tmp_path: Path, settings: Any) -> Any:
    cert, key = self_signed(tmp_path)
    with serving(settings, (cert, key)) as base:
        yield base + "/v1", str(cert)


def _chat(client: Any, **kw: Any) -> ec.Answer:
    messages = [{"role": "user", "content": "hello"}]
    return oe.ask(client, "tiny", messages, kw.pop("max_tokens", 12), kw, (0.0, 7))


# --- openai_eval ---------------------------------------------------------------------------


def test_streamed_answer_over_tls_with_the_ca_file(tls_url: tuple[str, str]) -> None:
    client = oe.make_client(tls_url[0], KEY, tls_url[1], timeout=10)
    assert oe.first_model(client) == "tiny"
    answer = _chat(client, max_tokens=6, min_tokens=6)
    assert answer.status == 200 and not answer.error
    assert answer.output_tokens == 6 == answer.chunks
    assert answer.finish_reason == "length"
    assert len(answer.text.split()) == 6
    assert 0 < answer.ttft_ms < answer.latency_ms
    again = _chat(client, max_tokens=6, min_tokens=6)
    assert again.text == answer.text  # same seed, same prompt


def test_tls_without_the_ca_file_fails_the_request(tls_url: tuple[str, str]) -> None:
    answer = _chat(oe.make_client(tls_url[0], KEY, "", timeout=10))
    assert answer.status == 0
    assert "APIConnectionError" in answer.error


def test_wrong_key_and_closed_port_are_recorded(tls_url: tuple[str, str]) -> None:
    wrong = _chat(oe.make_client(tls_url[0], "wrong-key-wrong-key", tls_url[1], timeout=10))
    assert wrong.status == 401 and wrong.error
    closed = _chat(oe.make_client("http://127.0.0.1:9/v1", KEY, "", timeout=5))
    assert closed.status == 0 and closed.error
    assert ec.evaluate(ec.Case("c", "", ec.parse_checks("non_empty"), ""), wrong) == [
        f"request failed (status 401): {wrong.error}"
    ]


def _params(tmp_path: Path, base_url: str, ca: str) -> dict[str, Any]:
    cases = tmp_path / "cases.csv"
    cases.write_text(
        "id,prompt,messages,max_tokens,params,expected,check,notes\n"
        'a,Hi,,8,"{""min_tokens"": 8}",text,non_empty; streamed; finish_reason:length,\n'
        "b,Hi,,8,,text,contains:no-such-word,\n",
        encoding="utf-8",
    )
    prompt = tmp_path / "system.txt"
    prompt.write_text("Be brief.", encoding="utf-8")
    return {
        "base_url": base_url,
        "ca_file": ca,
        "cases_file": str(cases),
        "system_prompt_file": str(prompt),
        "prompt_template_file": "",
        "out_dir": str(tmp_path / "evidence" / "run-2"),
        "previous_results": "",
        "max_tokens": 16,
        "temperature": 0.0,
        "seed": 3,
    }


def test_run_and_write_the_evidence(tmp_path: Path, tls_url: tuple[str, str]) -> None:
    p = _params(tmp_path, *tls_url)
    previous = tmp_path / "evidence" / "run-1"
    previous.mkdir(parents=True)
    (previous / "eval_results.csv").write_text(
        "case_id,passed\na,false\nb,true\n", encoding="utf-8"
    )
    cases = ec.parse_cases(Path(p["cases_file"]).read_text(encoding="utf-8"))
    client = oe.make_client(p["base_url"], KEY, p["ca_file"], timeout=10)
    rows = oe.run_cases(client, "tiny", cases, ("Be brief.", ""), p)
    summary, comparison = oe.write_evidence(Path(p["out_dir"]), p, "tiny", rows, "t0")
    assert summary["pass_rate"] == 0.5
    assert summary["failed_cases"] == ["b"]
    assert summary["tls"] is True and summary["model"] == "tiny"
    assert len(summary["cases_file"]["sha256"]) == 64
    # Paths relative to the folder of eval_summary.json, never the control node's absolute ones.
    for key in ("ca_file", "cases_file", "system_prompt_file"):
        assert not summary[key]["path"].startswith("/"), summary[key]
        assert (Path(p["out_dir"]) / summary[key]["path"]).resolve() == Path(p[key]).resolve()
    assert summary["system_prompt_file"]["sha256"] == hashlib.sha256(b"Be brief.").hexdigest()
    assert comparison["previous_run"] == "run-1"
    assert comparison["flipped_to_pass"] == ["a"]
    assert comparison["flipped_to_fail"] == ["b"]
    out = Path(p["out_dir"])
    with (out / "eval_results.csv").open(encoding="utf-8") as handle:
        results = list(csv.DictReader(handle))
    assert [r["passed"] for r in results] == ["true", "false"]
    assert "contains: the output does not contain 'no-such-word'" in results[1]["reason"]
    with (out / "eval_cases.csv").open(encoding="utf-8") as handle:
        sent = list(csv.DictReader(handle))
    assert json.loads(sent[0]["messages"])[0] == {"role": "system", "content": "Be brief."}
    assert sent[1]["max_tokens"] == "8"
    assert KEY not in "".join(f.read_text(encoding="utf-8") for f in out.iterdir())


def test_the_gate_leaves_expected_failures_out(tmp_path: Path, tls_url: tuple[str, str]) -> None:
    """Case a passes, b fails: with b listed the gated rate is 1.0; with a listed, a is an
    unexpected pass and b, not listed, still counts."""
    p = _params(tmp_path, *tls_url)
    listing = tmp_path / "expected.yml"
    listing.write_text("expected_failures:\n  - {id: b, reason: never says it}\n", "utf-8")
    p["expected_failures_file"] = str(listing)
    cases = ec.parse_cases(Path(p["cases_file"]).read_text(encoding="utf-8"))
    client = oe.make_client(p["base_url"], KEY, p["ca_file"], timeout=10)
    rows = oe.run_cases(client, "tiny", cases, ("Be brief.", ""), p)
    listed = ec.parse_expected_failures(listing.read_text(encoding="utf-8"))
    summary, _ = oe.write_evidence(Path(p["out_dir"]), p, "tiny", rows, "t0", listed)
    assert (summary["pass_rate"], summary["gated_pass_rate"]) == (0.5, 1.0)
    assert (summary["gated_total"], summary["gated_passed"]) == (1, 1)
    assert summary["failed_cases"] == ["b"] and summary["gated_failed_cases"] == []
    assert summary["expected_failures"] == ["b"] and summary["unexpected_passes"] == []
    assert summary["expected_failure_reasons"] == {"b": "never says it"}
    assert summary["expected_failures_file"] == {
        "path": "../../expected.yml",  # relative to the folder of eval_summary.json
        "sha256": hashlib.sha256(listing.read_bytes()).hexdigest(),
    }
    assert summary["categories"]["uncategorised"]["expected_failures"] == 1
    other = oe.build_summary(
        p, "tiny", rows[1], "t0", {"previous_run": None, "flipped_to_fail": []}, {"a": "x"}
    )
    assert other["unexpected_passes"] == ["a"] and other["expected_failures"] == []
    assert (other["gated_pass_rate"], other["gated_failed_cases"]) == (0.0, ["b"])


def _module(tmp_path: Path, **args: Any) -> dict[str, Any]:
    """openai_eval run as Ansible runs it (a file of arguments), its JSON result."""
    file = tmp_path / "args.json"
    file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}), encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(ROOT_DIR / "collections"))
    out = subprocess.run(
        [sys.executable, str(MODULES / "openai_eval.py"), str(file)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    return json.loads(out.stdout)


@pytest.mark.parametrize(
    ("listing", "message"),
    [
        ("expected_failures: [{id: zz, reason: x}]", "names zz, not in the cases file"),
        (
            "expected_failures: [{id: a, reason: x}, {id: b, reason: y}]",
            "lists every case, so the gate would measure nothing",
        ),
    ],
)
def test_module_returns_the_listed_ids_in_check_mode_and_refuses_bad_ones_in_a_run(
    tmp_path: Path, settings: Any, listing: str, message: str
) -> None:
    file = tmp_path / "expected.yml"
    file.write_text(listing, encoding="utf-8")
    with serving(settings) as base:
        p = _params(tmp_path, base + "/v1", "")
        args = {**p, "api_key": KEY, "expected_failures_file": str(file)}
        checked = _module(tmp_path, **args, _ansible_check_mode=True)
        assert checked.get("failed") is not True, checked
        assert checked["case_ids"] == ["a", "b"]
        assert checked["expected_failure_ids"] == [
            e["id"] for e in yaml.safe_load(listing)["expected_failures"]
        ]
        refused = _module(tmp_path, **args)
    assert refused["failed"] is True and message in refused["msg"], refused
    assert settings.counters["success"] == 0, "a request was sent"
    assert not Path(p["out_dir"]).exists()


def test_module_refuses_a_malformed_list(tmp_path: Path) -> None:
    file = tmp_path / "expected.yml"
    file.write_text("expected_failures: [{id: a}]\n", encoding="utf-8")
    p = _params(tmp_path, "http://127.0.0.1:9/v1", "")
    result = _module(
        tmp_path, **p, api_key=KEY, expected_failures_file=str(file), _ansible_check_mode=True
    )
    assert result["failed"] is True
    assert "the cases or expected-failures file cannot be used" in result["msg"]
    assert "entry 1: must be {id: <case id>, reason: <why it fails>}" in result["msg"]


# --- load_test -----------------------------------------------------------------------------


def _load_params(tmp_path: Path) -> dict[str, Any]:
    return {
        "python": "/venv/bin/python",
        "runner": "/role/files/llmhost_load_locust.py",
        "base_url": "https://127.0.0.1:8443/v1",
        "api_key": KEY,
        "ca_file": "/ca.pem",
        "model": "tiny",
        "concurrency": 3,
        "requests": 9,
        "max_tokens": 5,
        "prompt": "hi there",
        "extra_body": {"ignore_eos": True},
        "request_timeout": 30.0,
        "timeout": 60,
        "out_file": str(tmp_path / "run-7" / "load_test.json"),
    }


def test_runner_command_keeps_the_key_out_of_argv(tmp_path: Path) -> None:
    cmd = lt.runner_command(_load_params(tmp_path), tmp_path / "raw.json")
    assert KEY not in " ".join(cmd)
    assert cmd[:2] == ["/venv/bin/python", "/role/files/llmhost_load_locust.py"]
    assert cmd[cmd.index("--concurrency") + 1] == "3"
    assert json.loads(cmd[cmd.index("--extra-body") + 1]) == {"ignore_eos": True}
    cfg = runner.parse_args(cmd[2:])
    assert (cfg.concurrency, cfg.requests, cfg.max_tokens, cfg.ca_file) == (3, 9, 5, "/ca.pem")


def test_build_report_keeps_the_requests_and_summarises_them(tmp_path: Path) -> None:
    record = {"status": 200, "error": "", "ttft_ms": 5.0, "latency_ms": 25.0, "output_tokens": 5}
    raw = {
        "started_at": "t0",
        "tool": {"name": "locust", "version": "x"},
        "client": {"name": "openai", "version": "y"},
        "warmup": {"status": 200, "error": ""},
        "deadline_reached": False,
        "records": [record, {**record, "status": 503, "error": "draining"}],
        "gaps_ms": [5.0] * 4,
        "wall_s": 0.5,
        "locust": {"num_requests": 2},
    }
    report = lt.build_report(_load_params(tmp_path), raw)
    assert report["run_id"] == "run-7"
    assert report["requests"] == raw["records"]
    assert report["summary"]["errors_by_status"] == {"503": 1}
    assert report["summary"]["requests_per_s"] == 2.0
    assert report["generator_stats"] == {"num_requests": 2}
    assert KEY not in json.dumps(report)


# --- the locust runner's measuring code ----------------------------------------------------


def _chunk(content: str | None = None, finish: str | None = None, usage: int | None = None) -> Any:
    choices = [] if content is None else [SimpleNamespace(delta=SimpleNamespace(content=content))]
    return SimpleNamespace(
        choices=choices,
        usage=SimpleNamespace(completion_tokens=usage) if usage is not None else None,
    )


def test_read_stream_measures_ttft_gaps_and_usage() -> None:
    seen = runner.read_stream(iter([_chunk("a"), _chunk(""), _chunk("b"), _chunk(usage=7)]), 0.0)
    assert seen["chunks"] == 2
    assert seen["output_tokens"] == 7
    assert len(seen["gaps"]) == 1 and seen["gaps"][0] >= 0
    assert seen["ttft_ms"] > 0
    without_usage = runner.read_stream(iter([_chunk("a"), _chunk("b"), _chunk("c")]), 0.0)
    assert without_usage["output_tokens"] == 3


def test_one_request_against_the_server(settings: Any) -> None:
    with serving(settings) as base:
        cfg = runner.Config(base + "/v1", KEY, "tiny", 1, 1, 5, "hi", {"ignore_eos": True})
        record, gaps = runner.one_request(runner.make_client(cfg), cfg, 5)
        bad = runner.Config(base + "/v1", "nope-nope-nope-nope", "tiny", 1, 1, 5, "hi", {})
        denied, _ = runner.one_request(runner.make_client(bad), bad, 5)
    assert record["status"] == 200 and record["output_tokens"] == 5
    assert len(gaps) == 4 and record["itl_ms"] == pytest.approx(sum(gaps) / 4, abs=0.01)
    assert record["ttft_ms"] <= record["latency_ms"]
    assert denied["status"] == 401 and denied["error"]


def test_plan_hands_out_exactly_n_requests() -> None:
    plan = runner.Plan(2)
    assert [plan.take(), plan.take(), plan.take()] == [True, True, False]
    plan.add({"x": 1}, [1.0])
    assert not plan.done
    plan.add({"x": 2}, [2.0, 3.0])
    assert plan.done and plan.gaps_ms == [1.0, 2.0, 3.0]


def test_relative_times_and_wall() -> None:
    records = [
        {"start_s": 10.5, "latency_ms": 1000.0, "status": 200},
        {"start_s": 10.0, "latency_ms": 200.0, "status": 200},
    ]
    out, wall = runner.relative_times(records)
    assert [r["start_ms"] for r in out] == [0.0, 500.0]
    assert "start_s" not in out[0]
    assert wall == pytest.approx(1.5)
    assert runner.relative_times([]) == ([], 0.0)


# --- the test double -------------------------------------------------------------------------


def test_server_generation_is_deterministic_and_honours_limits() -> None:
    tokens, finish = server.generate("p", 1, max_tokens=100, min_tokens=0)
    assert 8 <= len(tokens) <= 31 and finish == "stop"
    assert server.generate("p", 1, 100, 0) == (tokens, finish)
    assert server.generate("p", 2, 100, 0) != (tokens, finish)
    assert server.generate("p", 1, 3, 0) == (tokens[:3], "length")
    long, reason = server.generate("p", 1, 60, 60)
    assert len(long) == 60 and reason == "length"


def test_server_faults_degrade_the_answers(tmp_path: Path) -> None:
    faults = tmp_path / "faults.json"
    settings = server.Settings("tiny", KEY, 1, 1, faults)
    with serving(settings) as base:
        client = oe.make_client(base + "/v1", KEY, "", timeout=10)
        assert _chat(client, min_tokens=4).text
        faults.write_text('{"empty": true}', encoding="utf-8")
        empty = _chat(client, min_tokens=4)
    assert empty.text == "" and empty.status == 200 and empty.finish_reason == "stop"
    assert "vllm:request_success_total" in server.metrics_page(settings)
