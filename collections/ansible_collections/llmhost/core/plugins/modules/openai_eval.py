#!/usr/bin/python
"""llmhost.core.openai_eval: fixed evaluation cases through an OpenAI-compatible endpoint."""
# Ansible layout: the documentation blocks come before the imports.
# ruff: noqa: E402

from __future__ import annotations

DOCUMENTATION = r"""
---
module: openai_eval
short_description: Run fixed evaluation cases against an OpenAI-compatible endpoint and record them
version_added: 0.1.0
description:
  - Reads a cases file (CSV; see C(module_utils/eval_cases.py) and the evaluation role's
    README for the columns and checks), sends every case as a streamed chat completion
    with the official C(openai) client (temperature and seed fixed), measures latency and
    time to first token, applies each case's checks and writes C(eval_cases.csv),
    C(eval_results.csv), C(eval_summary.json) and C(eval_comparison.json) into O(out_dir).
  - The system prompt and the optional prompt template come from files, whose sha256 the
    summary records with the cases file's, the model, the endpoint and the client version.
  - The comparison names the cases that flipped against the previous run, the newest other
    folder beside O(out_dir) holding an C(eval_results.csv), or O(previous_results).
  - One evaluation per O(out_dir). When its C(eval_results.csv) already exists, nothing is
    sent, the recorded summary and comparison are returned and C(changed) is false.
  - An optional expected-failures file (YAML, C(expected_failures) a list of C({id, reason}))
    names cases the model is known to fail. The summary gives the raw pass rate over every
    case and the gated one over the cases not on the list, the listed cases that failed
    (expected) and those that passed (unexpected passes, not failures), and per category
    the cases, passes, failures, expected failures and unexpected passes.
  - In check mode the cases file and the expected-failures file are validated, their ids
    returned (RV(case_ids), RV(expected_failure_ids), for the caller to cross-check) and
    nothing is sent or written. A real run refuses listed ids that name no case and a list
    that covers every case.
  - "Meant to run on the control node (C(delegate_to=localhost)) with an interpreter that has
    the C(openai) package (the control venv)."
author:
  - llmhost project
requirements:
  - openai (the official client; its version is recorded)
  - jsonschema (only for the json_schema check)
options:
  base_url:
    description: API base URL including C(/v1), e.g. C(https://127.0.0.1:8443/v1).
    type: str
    required: true
  api_key:
    description: Bearer key (a gateway tenant key). Never logged or written.
    type: str
    required: true
  ca_file:
    description: CA bundle that signs the endpoint's certificate; empty uses the system trust.
    type: path
    default: ""
  model:
    description: Model name; empty takes the first model the endpoint lists.
    type: str
    default: ""
  cases_file:
    description: The cases (CSV).
    type: path
    required: true
  system_prompt_file:
    description: Text file with the system prompt; empty sends none.
    type: path
    default: ""
  prompt_template_file:
    description:
      - Text file with C({prompt}) where a case's prompt goes; empty sends the prompt as is.
    type: path
    default: ""
  expected_failures_file:
    description:
      - YAML file listing the cases the model is known to fail (C(expected_failures), a list
        of C({id, reason})); empty = none. Its sha256 is recorded in the summary.
    type: path
    default: ""
  out_dir:
    description: The run's evidence folder (created when missing).
    type: path
    required: true
  previous_results:
    description:
      - The previous run's C(eval_results.csv) or its folder; empty finds it beside O(out_dir).
    type: path
    default: ""
  max_tokens:
    description: Request limit for cases that do not set their own C(max_tokens).
    type: int
    default: 128
  temperature:
    description: Sampling temperature (0 = greedy).
    type: float
    default: 0.0
  seed:
    description: Sampling seed, sent with every request (vLLM honours it).
    type: int
    default: 0
  timeout:
    description: Seconds one request may take.
    type: float
    default: 120
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Evaluate through the gateway
  llmhost.core.openai_eval:
    base_url: https://127.0.0.1:8443/v1
    api_key: "{{ tenant_key }}"
    ca_file: "{{ evidence_dir }}/gateway_certificate.pem"
    cases_file: "{{ inventory_dir }}/eval/cases.csv"
    system_prompt_file: "{{ inventory_dir }}/eval/system_prompt.txt"
    out_dir: "{{ llmhost_evidence_dir }}"
  delegate_to: localhost
  run_once: true
  no_log: true
"""

RETURN = r"""
case_ids:
  description: The ids of the cases in the file, in order.
  returned: always
  type: list
  elements: str
expected_failure_ids:
  description: The ids of the expected-failures file, in order (empty without one).
  returned: always
  type: list
  elements: str
summary:
  description:
    - The content of eval_summary.json (empty in check mode before a run), with the raw
      C(pass_rate), the C(gated_pass_rate) over the cases not on the expected-failures
      list, C(expected_failures), C(unexpected_passes), C(categories), C(total) (the
      number of cases) and C(duration_s) (the wall time of sending them, one after another).
  returned: always
  type: dict
comparison:
  description:
    - The content of eval_comparison.json (previous_run, flipped_to_fail, flipped_to_pass, ...).
  returned: always
  type: dict
reason:
  description: What the module did and why.
  returned: always
  type: str
"""

import os
import platform
import ssl
import time
import traceback
from pathlib import Path
from typing import Any

from ansible.module_utils.basic import missing_required_lib
from ansible_collections.llmhost.core.plugins.module_utils.digests import sha256_file
from ansible_collections.llmhost.core.plugins.module_utils.eval_cases import (
    PROMPT_PLACEHOLDER,
    Answer,
    Case,
    CasesError,
    build_messages,
    evaluate,
    parse_cases,
    parse_expected_failures,
    unknown_ids,
)
from ansible_collections.llmhost.core.plugins.module_utils.eval_report import (
    CASE_COLUMNS,
    CASES_FILE,
    COMPARISON_FILE,
    RESULT_COLUMNS,
    RESULTS_FILE,
    SUMMARY_FILE,
    case_row,
    compare,
    distribution,
    outcome,
    read_json,
    read_results,
    resolve_previous,
    result_row,
    utc_now,
    write_csv,
    write_json,
)
from ansible_collections.llmhost.core.plugins.module_utils.module import (
    ModuleFailure,
    Request,
    run_module,
)

try:
    import openai

    OPENAI_IMPORT_ERROR = None
except ImportError:
    openai = None
    OPENAI_IMPORT_ERROR = traceback.format_exc()


def make_client(base_url: str, api_key: str, ca_file: str, timeout: float) -> Any:
    """An OpenAI client without retries (a retry would hide a failure and skew latency)."""
    http_client = None
    if ca_file:
        context = ssl.create_default_context(cafile=ca_file)
        http_client = openai.DefaultHttpxClient(verify=context, timeout=timeout)
    return openai.OpenAI(
        base_url=base_url, api_key=api_key, max_retries=0, timeout=timeout, http_client=http_client
    )


def first_model(client: Any) -> str:
    models = client.models.list().data
    if not models:
        raise ValueError("the endpoint lists no model")
    return models[0].id


def _consume(stream: Any, answer: Answer, start: float) -> None:
    """Read a chat completion stream into answer (text, TTFT, chunks, finish, usage)."""
    parts: list[str] = []
    usage_tokens = None
    for chunk in stream:
        if getattr(chunk, "usage", None) is not None:
            usage_tokens = chunk.usage.completion_tokens
        for choice in chunk.choices or []:
            content = choice.delta.content if choice.delta else None
            if content:
                if answer.ttft_ms is None:
                    answer.ttft_ms = (time.perf_counter() - start) * 1000
                parts.append(content)
                answer.chunks += 1
            if choice.finish_reason:
                answer.finish_reason = choice.finish_reason
    answer.text = "".join(parts)
    answer.output_tokens = usage_tokens if usage_tokens is not None else answer.chunks


def ask(
    client: Any,
    model: str,
    messages: list[dict[str, str]],
    max_tokens: int,
    params: dict[str, Any],
    sampling: tuple[float, int],
) -> Answer:
    """One streamed chat completion; failures are recorded in the answer, not raised."""
    answer = Answer()
    start = time.perf_counter()
    try:
        stream = client.chat.completions.create(
            model=model,
            messages=messages,
            max_tokens=max_tokens,
            temperature=sampling[0],
            seed=sampling[1],
            stream=True,
            stream_options={"include_usage": True},
            extra_body=params or None,
        )
        _consume(stream, answer, start)
    except openai.APIStatusError as exc:
        answer.status, answer.error = exc.status_code, str(exc.message)[:300]
    except Exception as exc:  # a broken stream (the peer hung up) fails this case, not the run
        answer.status, answer.error = 0, f"{type(exc).__name__}: {exc}"[:300]
    answer.latency_ms = (time.perf_counter() - start) * 1000
    return answer


def _read(path: str) -> str:
    return Path(path).read_text(encoding="utf-8") if path else ""


def _file_record(path: str, out_dir: str) -> dict[str, str] | None:
    """The file's sha256 and its path relative to the folder of eval_summary.json (a file of
    the bundle stays inside it; the inventory's files are reached with ../): never the
    control node's absolute path."""
    if not path:
        return None
    relative = os.path.relpath(Path(path).resolve(), Path(out_dir).resolve())
    return {"path": Path(relative).as_posix(), "sha256": sha256_file(Path(path))}


def run_cases(
    client: Any, model: str, cases: list[Case], texts: tuple[str, str], p: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(case rows as sent, result rows) for every case, in order."""
    case_rows, result_rows = [], []
    for case in cases:
        messages = build_messages(case, texts[0], texts[1])
        max_tokens = case.max_tokens or p["max_tokens"]
        answer = ask(
            client, model, messages, max_tokens, case.params, (p["temperature"], p["seed"])
        )
        case_rows.append(case_row(case, messages, max_tokens))
        result_rows.append(result_row(case, answer, evaluate(case, answer)))
    return case_rows, result_rows


def build_summary(
    p: dict[str, Any],
    model: str,
    rows: list[dict[str, Any]],
    started: str,
    comparison: dict,
    expected: dict[str, str] | None = None,
    duration_s: float | None = None,
) -> dict[str, Any]:
    rates = outcome(rows, expected or {})
    return {
        "run_id": Path(p["out_dir"]).name,
        "started_at": started,
        "finished_at": utc_now(),
        # Wall time of the cases (sent one after another), for sizing a 200-500 case set.
        "duration_s": round(duration_s, 3) if duration_s is not None else None,
        "model": model,
        "base_url": p["base_url"],
        "tls": p["base_url"].startswith("https://"),
        "ca_file": _file_record(p["ca_file"], p["out_dir"]),
        "client": {"name": "openai", "version": openai.__version__},
        "python": platform.python_version(),
        "cases_file": _file_record(p["cases_file"], p["out_dir"]),
        "system_prompt_file": _file_record(p["system_prompt_file"], p["out_dir"]),
        "prompt_template_file": _file_record(p["prompt_template_file"], p["out_dir"]),
        "expected_failures_file": _file_record(p.get("expected_failures_file") or "", p["out_dir"]),
        "temperature": p["temperature"],
        "seed": p["seed"],
        "max_tokens": p["max_tokens"],
        "streaming": True,
        **rates,
        "expected_failure_reasons": dict(expected or {}),
        "request_errors": [r["case_id"] for r in rows if str(r["status"]) != "200"],
        "latency_ms": distribution(float(r["latency_ms"]) for r in rows),
        "ttft_ms": distribution(float(r["ttft_ms"]) for r in rows if r["ttft_ms"] != ""),
        "previous_run": comparison["previous_run"],
        "flipped_to_fail": comparison["flipped_to_fail"],
    }


def write_evidence(
    out: Path,
    p: dict[str, Any],
    model: str,
    rows: tuple[list, list],
    started: str,
    expected: dict[str, str] | None = None,
    duration_s: float | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Write the four files, eval_results.csv last (its presence marks a finished run)."""
    case_rows, result_rows = rows
    current = {r["case_id"]: r["passed"] == "true" for r in result_rows}
    previous_file = resolve_previous(p["previous_results"], out, out.parent)
    previous = read_results(previous_file) if previous_file and previous_file.is_file() else None
    previous_run = previous_file.parent.name if previous is not None and previous_file else None
    comparison = compare(previous, current, previous_run)
    summary = build_summary(p, model, result_rows, started, comparison, expected, duration_s)
    write_csv(out / CASES_FILE, CASE_COLUMNS, case_rows)
    write_json(out / COMPARISON_FILE, comparison)
    write_json(out / SUMMARY_FILE, summary)
    write_csv(out / RESULTS_FILE, RESULT_COLUMNS, result_rows)
    return summary, comparison


def _load_inputs(p: dict[str, Any]) -> tuple[list[Case], str, str, dict[str, str]]:
    try:
        cases = parse_cases(_read(p["cases_file"]), p["cases_file"])
        system_prompt = _read(p["system_prompt_file"])
        template = _read(p["prompt_template_file"])
        expected = (
            parse_expected_failures(_read(p["expected_failures_file"]), p["expected_failures_file"])
            if p["expected_failures_file"]
            else {}
        )
    except (OSError, UnicodeDecodeError) as exc:
        raise ModuleFailure(f"cannot read an evaluation input: {exc}") from exc
    except CasesError as exc:
        raise ModuleFailure(f"the cases or expected-failures file cannot be used: {exc}") from exc
    if template and PROMPT_PLACEHOLDER not in template:
        raise ModuleFailure(
            f"prompt_template_file {p['prompt_template_file']} has no {PROMPT_PLACEHOLDER}"
        )
    return cases, system_prompt, template, expected


def expected_failures_problem(cases: list[Case], expected: dict[str, str]) -> str:
    """Why the expected-failures list cannot gate these cases; empty when it can."""
    unknown = unknown_ids(expected, cases)
    if unknown:
        return f"the expected-failures file names {', '.join(unknown)}, not in the cases file"
    if expected and len(expected) >= len(cases):
        return "the expected-failures file lists every case, so the gate would measure nothing"
    return ""


def _check_inputs(p: dict[str, Any]) -> None:
    if not p["base_url"].startswith(("http://", "https://")):
        raise ModuleFailure(f"base_url must start with http:// or https://, got {p['base_url']}")
    if p["ca_file"] and not p["base_url"].startswith("https://"):
        raise ModuleFailure("ca_file is set but base_url is not https://")
    if p["max_tokens"] < 1 or p["timeout"] <= 0:
        raise ModuleFailure("max_tokens must be >= 1 and timeout > 0")


def handle(request: Request) -> dict[str, Any]:
    if OPENAI_IMPORT_ERROR:
        raise ModuleFailure(
            missing_required_lib("openai") + " (pip install the pin in requirements.txt)",
            exception=OPENAI_IMPORT_ERROR,
        )
    p = request.params
    _check_inputs(p)
    cases, system_prompt, template, expected = _load_inputs(p)
    ids = [c.id for c in cases]
    listed = list(expected)
    out = Path(p["out_dir"])
    if (out / RESULTS_FILE).is_file():
        return {
            "changed": False,
            "case_ids": ids,
            "expected_failure_ids": listed,
            "summary": read_json(out / SUMMARY_FILE),
            "comparison": read_json(out / COMPARISON_FILE),
            "reason": f"this run's results exist ({out / RESULTS_FILE}); nothing sent",
        }
    if request.check_mode:
        return {
            "changed": True,
            "case_ids": ids,
            "expected_failure_ids": listed,
            "summary": {},
            "comparison": {},
            "reason": "cases valid",
        }
    problem = expected_failures_problem(cases, expected)
    if problem:
        raise ModuleFailure(problem)
    started = utc_now()
    client = make_client(p["base_url"], p["api_key"], p["ca_file"], p["timeout"])
    model = p["model"]
    if not model:
        try:
            model = first_model(client)
        except (openai.APIError, ValueError) as exc:
            raise ModuleFailure(f"GET {p['base_url']}/models failed, so no model: {exc}") from exc
    began = time.monotonic()
    rows = run_cases(client, model, cases, (system_prompt, template), p)
    duration = time.monotonic() - began
    summary, comparison = write_evidence(out, p, model, rows, started, expected, duration)
    return {
        "changed": True,
        "case_ids": ids,
        "expected_failure_ids": listed,
        "summary": summary,
        "comparison": comparison,
        "reason": f"{summary['passed']}/{summary['total']} cases passed"
        f" ({summary['gated_passed']}/{summary['gated_total']} not on the expected-failures list)",
    }


def main() -> None:
    run_module(
        {
            "base_url": {"type": "str", "required": True},
            "api_key": {"type": "str", "required": True, "no_log": True},
            "ca_file": {"type": "path", "default": ""},
            "model": {"type": "str", "default": ""},
            "cases_file": {"type": "path", "required": True},
            "system_prompt_file": {"type": "path", "default": ""},
            "prompt_template_file": {"type": "path", "default": ""},
            "expected_failures_file": {"type": "path", "default": ""},
            "out_dir": {"type": "path", "required": True},
            "previous_results": {"type": "path", "default": ""},
            "max_tokens": {"type": "int", "default": 128},
            "temperature": {"type": "float", "default": 0.0},
            "seed": {"type": "int", "default": 0},
            "timeout": {"type": "float", "default": 120},
        },
        handle,
    )


if __name__ == "__main__":
    main()
