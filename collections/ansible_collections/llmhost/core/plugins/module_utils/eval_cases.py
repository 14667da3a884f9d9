"""Evaluation cases: the CSV format, its validation, the request messages and the checks.

Pure standard library (jsonschema is imported only by the json_schema check), so the
openai_eval module and the unit tests share one implementation.

A cases file is CSV with a header row; lines before the header that start with `#` are
comments. Columns: id, prompt or messages (JSON list of {role, content}), expected (the
behaviour in words), check, notes; optional max_tokens (the request's limit), params
(a JSON object merged into the request body, e.g. {"min_tokens": 8}) and category
(lowercase words joined by `_`, e.g. multi_turn; empty or absent = uncategorised).

An expected-failures file (YAML) lists cases a given model is known to fail, each with
the reason: `expected_failures: [{id: ..., reason: ...}, ...]`; other top-level keys are
notes for the reader. The gate does not count them (see parse_expected_failures).

The check column holds one or more checks separated by `;`, each `kind` or
`kind:argument` (see CHECK_KINDS), e.g. `contains:Paris; max_latency_ms:20000`. An
argument runs until the next `; <kind>`, so regular expressions may contain `;` and `:`.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
CATEGORY = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")
DEFAULT_CATEGORY = "uncategorised"
REQUIRED_COLUMNS = ("id", "expected", "check", "notes")
# The role controls these; a case cannot override them through params.
RESERVED_PARAMS = ("model", "messages", "stream", "stream_options", "temperature", "seed")
PROMPT_PLACEHOLDER = "{prompt}"

REFUSAL_PATTERNS = (
    r"\bI\s*(?:can['\u2019]?t|cannot|can not|won['\u2019]?t|will not)\s+"
    r"(?:help|assist|provide|do|comply|share|give|create|write|support)",
    r"\bI['\u2019]?m\s+(?:not able|unable)\s+to\b",
    r"\bI am\s+(?:not able|unable)\s+to\b",
    r"\bI['\u2019]?m sorry\b",
    r"\bI apologi[sz]e\b",
    r"\b(?:against|violates?)\s+(?:my|our|the)\s+(?:guidelines|polic(?:y|ies)|rules)\b",
    r"\bnot\s+(?:something I can|able to) (?:help|assist)\b",
)
_REFUSAL = re.compile("|".join(f"(?:{p})" for p in REFUSAL_PATTERNS), re.IGNORECASE)


class CasesError(ValueError):
    """A cases file that cannot be run; the message lists every problem found."""


@dataclass(frozen=True)
class Check:
    kind: str
    arg: Any = None

    def label(self) -> str:
        return self.kind if self.arg is None else f"{self.kind}:{self.arg_text()}"

    def arg_text(self) -> str:
        if isinstance(self.arg, re.Pattern):
            return self.arg.pattern
        if isinstance(self.arg, list):
            return ",".join(str(a) for a in self.arg)
        if isinstance(self.arg, dict):
            return json.dumps(self.arg, sort_keys=True)
        return str(self.arg)


@dataclass
class Answer:
    """What the client observed for one request."""

    text: str = ""
    ttft_ms: float | None = None
    latency_ms: float = 0.0
    output_tokens: int = 0
    finish_reason: str | None = None
    chunks: int = 0
    status: int = 200
    error: str = ""


@dataclass
class Case:
    id: str
    expected: str
    checks: list[Check]
    check_text: str
    notes: str = ""
    prompt: str = ""
    messages: list[dict[str, str]] | None = None
    max_tokens: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    category: str = DEFAULT_CATEGORY
    line: int = 0


# --- checks ------------------------------------------------------------------------------
# Each check returns None when it passes, else the reason it failed.


def _non_empty(answer: Answer, _arg: Any) -> str | None:
    return None if answer.text.strip() else "the output is empty"


def _streamed(answer: Answer, _arg: Any) -> str | None:
    if answer.chunks >= 2:
        return None
    return f"the answer came in {answer.chunks} content chunk(s), not a stream"


def _finish_reason(answer: Answer, arg: list[str]) -> str | None:
    if answer.finish_reason in arg:
        return None
    return f"finish_reason {answer.finish_reason!r} is not one of {arg}"


def _contains(answer: Answer, arg: str) -> str | None:
    return None if arg in answer.text else f"the output does not contain {arg!r}"


def _not_contains(answer: Answer, arg: str) -> str | None:
    return f"the output contains {arg!r}" if arg in answer.text else None


def _regex(answer: Answer, arg: re.Pattern[str]) -> str | None:
    return None if arg.search(answer.text) else f"no match for /{arg.pattern}/"


def _not_regex(answer: Answer, arg: re.Pattern[str]) -> str | None:
    found = arg.search(answer.text)
    return f"/{arg.pattern}/ matches {found.group(0)!r}" if found else None


def _exact(answer: Answer, arg: str) -> str | None:
    got = answer.text.strip()
    return None if got == arg else f"the output {got[:80]!r} is not exactly {arg!r}"


def extract_json_text(text: str) -> str:
    """The text, or the body of one fenced block (```json ... ```) that wraps all of it."""
    stripped = text.strip()
    fenced = re.fullmatch(r"```[A-Za-z0-9_-]*\s*\n(.*?)\n?```", stripped, re.S)
    return fenced.group(1) if fenced else stripped


def _parse_json(answer: Answer) -> tuple[Any, str | None]:
    try:
        return json.loads(extract_json_text(answer.text)), None
    except ValueError as exc:
        return None, f"the output is not valid JSON ({exc})"


def _json(answer: Answer, _arg: Any) -> str | None:
    return _parse_json(answer)[1]


def _json_schema(answer: Answer, arg: dict[str, Any]) -> str | None:
    value, error = _parse_json(answer)
    if error:
        return error
    try:
        import jsonschema  # only this check needs it
    except ImportError:
        return "the json_schema check needs the jsonschema package on the control node"
    problems = sorted(jsonschema.Draft202012Validator(arg).iter_errors(value), key=str)
    if not problems:
        return None
    first = problems[0]
    where = "/".join(str(p) for p in first.absolute_path) or "(root)"
    return f"the JSON does not match the schema at {where}: {first.message}"


def _max_output_tokens(answer: Answer, arg: int) -> str | None:
    if answer.output_tokens <= arg:
        return None
    return f"{answer.output_tokens} output tokens > {arg}"


def _max_latency_ms(answer: Answer, arg: float) -> str | None:
    if answer.latency_ms <= arg:
        return None
    return f"latency {answer.latency_ms:.0f} ms > {arg:g} ms"


def _max_ttft_ms(answer: Answer, arg: float) -> str | None:
    if answer.ttft_ms is None:
        return "no token arrived, so no TTFT"
    if answer.ttft_ms <= arg:
        return None
    return f"TTFT {answer.ttft_ms:.0f} ms > {arg:g} ms"


def is_refusal(text: str) -> bool:
    return bool(_REFUSAL.search(text))


def _refusal(answer: Answer, _arg: Any) -> str | None:
    return None if is_refusal(answer.text) else "the model did not refuse"


def _no_refusal(answer: Answer, _arg: Any) -> str | None:
    return "the model refused" if is_refusal(answer.text) else None


# --- check arguments ----------------------------------------------------------------------


def _no_arg(arg: str) -> None:
    if arg:
        raise ValueError("takes no argument")


def _text_arg(arg: str) -> str:
    if not arg:
        raise ValueError("needs a text argument")
    return arg


def _regex_arg(arg: str) -> re.Pattern[str]:
    if not arg:
        raise ValueError("needs a regular expression")
    try:
        return re.compile(arg)
    except re.error as exc:
        raise ValueError(f"bad regular expression: {exc}") from exc


def _number_arg(arg: str) -> float:
    try:
        value = float(arg)
    except ValueError:
        raise ValueError(f"needs a number, got {arg!r}") from None
    if value <= 0:
        raise ValueError("needs a number above 0")
    return value


def _int_arg(arg: str) -> int:
    if not re.fullmatch(r"[0-9]+", arg) or int(arg) < 1:
        raise ValueError(f"needs a whole number >= 1, got {arg!r}")
    return int(arg)


def _reasons_arg(arg: str) -> list[str]:
    reasons = [r.strip() for r in arg.split(",") if r.strip()]
    if not reasons:
        raise ValueError("needs one or more finish reasons, e.g. stop,length")
    return reasons


def _schema_arg(arg: str) -> dict[str, Any]:
    try:
        schema = json.loads(arg)
    except ValueError as exc:
        raise ValueError(f"needs a JSON schema object ({exc})") from None
    if not isinstance(schema, dict):
        raise ValueError("needs a JSON schema object")
    try:
        import jsonschema  # only this check needs it
    except ImportError:
        return schema
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ValueError(f"invalid JSON schema: {exc.message}") from None
    return schema


CheckFn = Callable[[Answer, Any], "str | None"]
# kind -> (argument parser, check function).
CHECK_KINDS: dict[str, tuple[Callable[[str], Any], CheckFn]] = {
    "non_empty": (_no_arg, _non_empty),
    "streamed": (_no_arg, _streamed),
    "finish_reason": (_reasons_arg, _finish_reason),
    "contains": (_text_arg, _contains),
    "not_contains": (_text_arg, _not_contains),
    "regex": (_regex_arg, _regex),
    "not_regex": (_regex_arg, _not_regex),
    "exact": (_text_arg, _exact),
    "json": (_no_arg, _json),
    "json_schema": (_schema_arg, _json_schema),
    "max_output_tokens": (_int_arg, _max_output_tokens),
    "max_latency_ms": (_number_arg, _max_latency_ms),
    "max_ttft_ms": (_number_arg, _max_ttft_ms),
    "refusal": (_no_arg, _refusal),
    "no_refusal": (_no_arg, _no_refusal),
}
_SPLIT = re.compile(
    r";\s*(?=(?:" + "|".join(sorted(CHECK_KINDS, key=len, reverse=True)) + r")(?::|;|\s*$))"
)


def parse_checks(text: str) -> list[Check]:
    """`kind[:arg]; kind[:arg] ...` -> checks; ValueError names the bad item."""
    items = [item.strip() for item in _SPLIT.split(text.strip())]
    items = [item.rstrip(";").strip() for item in items if item.strip(" ;")]
    if not items:
        raise ValueError("no check given")
    checks = []
    for item in items:
        kind, _, raw = item.partition(":")
        kind = kind.strip()
        if kind not in CHECK_KINDS:
            raise ValueError(f"unknown check {kind!r} (known: {', '.join(CHECK_KINDS)})")
        try:
            arg = CHECK_KINDS[kind][0](raw.strip())
        except ValueError as exc:
            raise ValueError(f"check {kind!r} {exc}") from None
        checks.append(Check(kind, arg))
    return checks


def evaluate(case: Case, answer: Answer) -> list[str]:
    """Reasons the case failed; empty when it passed."""
    if answer.error:
        return [f"request failed (status {answer.status}): {answer.error}"]
    reasons = []
    for check in case.checks:
        reason = CHECK_KINDS[check.kind][1](answer, check.arg)
        if reason:
            reasons.append(f"{check.kind}: {reason}")
    return reasons


# --- the cases file -----------------------------------------------------------------------


def _strip_comments(text: str) -> tuple[str, int]:
    """Drop the `#` comment lines before the header: (rest, number of lines dropped)."""
    lines = text.splitlines(keepends=True)
    skipped = 0
    while skipped < len(lines) and (
        lines[skipped].lstrip().startswith("#") or not lines[skipped].strip()
    ):
        skipped += 1
    return "".join(lines[skipped:]), skipped


def _parse_messages(raw: str) -> list[dict[str, str]]:
    try:
        messages = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"messages is not JSON ({exc})") from None
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages must be a non-empty JSON list")
    for message in messages:
        if not (
            isinstance(message, dict)
            and message.get("role") in ("system", "user", "assistant")
            and isinstance(message.get("content"), str)
        ):
            raise ValueError("each message must be {role: system|user|assistant, content: text}")
    return messages


def _parse_params(raw: str) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        params = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"params is not JSON ({exc})") from None
    if not isinstance(params, dict):
        raise ValueError("params must be a JSON object")
    reserved = sorted(set(params) & set(RESERVED_PARAMS))
    if reserved:
        raise ValueError(f"params may not set {reserved} (the role sets them)")
    return params


def _parse_row(row: dict[str, str], line: int) -> Case:
    prompt = (row.get("prompt") or "").strip()
    raw_messages = (row.get("messages") or "").strip()
    if bool(prompt) == bool(raw_messages):
        raise ValueError("give exactly one of prompt and messages")
    raw_max = (row.get("max_tokens") or "").strip()
    if raw_max and (not raw_max.isdigit() or int(raw_max) < 1):
        raise ValueError(f"max_tokens must be a whole number >= 1, got {raw_max!r}")
    category = (row.get("category") or "").strip()
    if category and not CATEGORY.match(category):
        raise ValueError(
            f"category {category!r} must be lowercase words joined by '_' (e.g. multi_turn)"
        )
    check_text = (row.get("check") or "").strip()
    return Case(
        id=row["id"].strip(),
        prompt=prompt,
        messages=_parse_messages(raw_messages) if raw_messages else None,
        max_tokens=int(raw_max) if raw_max else None,
        params=_parse_params(row.get("params") or ""),
        expected=(row.get("expected") or "").strip(),
        checks=parse_checks(check_text),
        check_text=check_text,
        notes=(row.get("notes") or "").strip(),
        category=category or DEFAULT_CATEGORY,
        line=line,
    )


def _check_header(fields: list[str]) -> list[str]:
    problems = [f"column {c!r} is missing" for c in REQUIRED_COLUMNS if c not in fields]
    if "prompt" not in fields and "messages" not in fields:
        problems.append("a prompt or a messages column is needed")
    return problems


def parse_cases(text: str, source: str = "cases file") -> list[Case]:
    """Every case of a cases file; CasesError lists all problems with their lines."""
    body, skipped = _strip_comments(text)
    reader = csv.DictReader(io.StringIO(body))
    problems = _check_header([f.strip() for f in reader.fieldnames or []])
    if problems:
        raise CasesError(f"{source}: " + "; ".join(problems))
    reader.fieldnames = [f.strip() for f in reader.fieldnames or []]
    cases: list[Case] = []
    seen: set[str] = set()
    errors: list[str] = []
    for row in reader:
        line = skipped + reader.line_num
        case_id = (row.get("id") or "").strip()
        try:
            if not SAFE_ID.match(case_id):
                raise ValueError(f"id {case_id!r} must be letters, digits, '.', '_', '-'")
            if case_id in seen:
                raise ValueError(f"id {case_id!r} is used twice")
            seen.add(case_id)
            cases.append(_parse_row(row, line))
        except ValueError as exc:
            errors.append(f"{source} line {line} (case {case_id or '?'}): {exc}")
    if errors:
        raise CasesError("; ".join(errors))
    if not cases:
        raise CasesError(f"{source}: no cases")
    return cases


def parse_expected_failures(text: str, source: str = "expected failures file") -> dict[str, str]:
    """case id -> reason, in file order, from a YAML file whose `expected_failures` key
    holds a list of {id, reason}; CasesError lists every problem. Whether the ids are in
    the cases file is the caller's check (unknown_ids)."""
    try:
        import yaml  # PyYAML comes with ansible-core
    except ImportError:
        raise CasesError(f"{source}: reading it needs PyYAML") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CasesError(f"{source}: not YAML ({exc})") from None
    entries = data.get("expected_failures") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise CasesError(f"{source}: needs a key expected_failures: a list of {{id, reason}}")
    found: dict[str, str] = {}
    problems = []
    for number, entry in enumerate(entries, 1):
        where = f"{source} entry {number}"
        if not isinstance(entry, dict) or set(entry) != {"id", "reason"}:
            problems.append(f"{where}: must be {{id: <case id>, reason: <why it fails>}}")
            continue
        case_id, reason = entry["id"], entry["reason"]
        if not isinstance(case_id, str) or not SAFE_ID.match(case_id):
            problems.append(f"{where}: id {case_id!r} must be letters, digits, '.', '_', '-'")
        elif case_id in found:
            problems.append(f"{where}: id {case_id!r} is listed twice")
        elif not isinstance(reason, str) or not reason.strip():
            problems.append(f"{where} ({case_id}): the reason is empty")
        else:
            found[case_id] = " ".join(reason.split())
    if problems:
        raise CasesError("; ".join(problems))
    return found


def unknown_ids(ids: Iterable[str], cases: list[Case]) -> list[str]:
    """The ids that name no case, in their order."""
    known = {case.id for case in cases}
    return [case_id for case_id in ids if case_id not in known]


def build_messages(case: Case, system_prompt: str, template: str) -> list[dict[str, str]]:
    """The chat messages sent for a case: the system prompt first (unless the case brings
    its own), then the prompt rendered into the template (`{prompt}`) or the case's turns."""
    system = [{"role": "system", "content": system_prompt}] if system_prompt.strip() else []
    if case.messages is not None:
        own_system = any(m["role"] == "system" for m in case.messages)
        return [dict(m) for m in case.messages] if own_system else system + case.messages
    content = template.replace(PROMPT_PLACEHOLDER, case.prompt) if template else case.prompt
    return [*system, {"role": "user", "content": content}]
