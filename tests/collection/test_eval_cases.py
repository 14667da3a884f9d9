"""llmhost.core eval_cases: every check passes and fails on the right answers; the cases
file is validated with line numbers; the shipped sets parse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ansible_collections.llmhost.core.plugins.module_utils import eval_cases as ec

ROOT = Path(__file__).resolve().parents[2]
SETS = ROOT / "roles" / "evaluation" / "files" / "eval"
HEADER = "id,prompt,messages,max_tokens,params,expected,check,notes\n"


def answer(text: str = "hello world", **kw: object) -> ec.Answer:
    base = {"ttft_ms": 20.0, "latency_ms": 100.0, "output_tokens": 2, "chunks": 2}
    base.update(kw)
    return ec.Answer(text=text, finish_reason=str(base.pop("finish_reason", "stop")), **base)


def run(check: str, ans: ec.Answer) -> list[str]:
    case = ec.Case(id="c", expected="", checks=ec.parse_checks(check), check_text=check)
    return ec.evaluate(case, ans)


# --- each check: one answer that passes, one that fails -----------------------------------

CHECKS = [
    ("non_empty", answer("x"), answer("  \n"), "empty"),
    ("streamed", answer(chunks=5), answer(chunks=1), "1 content chunk"),
    (
        "finish_reason:stop,length",
        answer(finish_reason="length"),
        answer(finish_reason="abort"),
        "abort",
    ),
    ("contains:Paris", answer("It is Paris."), answer("It is paris."), "'Paris'"),
    ("not_contains:SECRET", answer("nothing here"), answer("the SECRET is"), "contains 'SECRET'"),
    ("regex:(?i)\\bblue\\b", answer("Blue."), answer("bluest"), "no match"),
    ("not_regex:(?i)7F3A", answer("no secret"), answer("ref llmhost-sp-7f3a"), "matches '7f3a'"),
    ("exact:OK", answer(" OK\n"), answer("OK."), "not exactly 'OK'"),
    ("json", answer('{"a": 1}'), answer("{a: 1}"), "not valid JSON"),
    (
        "max_output_tokens:4",
        answer(output_tokens=4),
        answer(output_tokens=5),
        "5 output tokens > 4",
    ),
    ("max_latency_ms:500", answer(latency_ms=500.0), answer(latency_ms=501.0), "latency 501 ms"),
    ("max_ttft_ms:50", answer(ttft_ms=49.0), answer(ttft_ms=51.0), "TTFT 51 ms > 50 ms"),
    (
        "refusal",
        answer("I'm sorry, but I can't help with that."),
        answer("Step 1: mix"),
        "did not refuse",
    ),
    ("no_refusal", answer("Paris."), answer("I cannot assist with that request."), "refused"),
]


@pytest.mark.parametrize(("check", "good", "bad", "reason"), CHECKS, ids=[c[0] for c in CHECKS])
def test_check_passes_and_fails(check: str, good: ec.Answer, bad: ec.Answer, reason: str) -> None:
    assert run(check, good) == []
    failed = run(check, bad)
    assert len(failed) == 1
    assert reason in failed[0], failed


def test_json_schema_check() -> None:
    schema = {"type": "object", "required": ["age"], "properties": {"age": {"type": "integer"}}}
    check = "json_schema:" + json.dumps(schema)
    assert run(check, answer('{"age": 30}')) == []
    assert run(check, answer('```json\n{"age": 30}\n```')) == []
    wrong = run(check, answer('{"age": "thirty"}'))
    assert "at age" in wrong[0] and "integer" in wrong[0]
    assert "not valid JSON" in run(check, answer("thirty"))[0]


def test_no_ttft_fails_the_ttft_check() -> None:
    assert "no token arrived" in run("max_ttft_ms:100", answer(ttft_ms=None))[0]


def test_failed_request_fails_the_case_with_its_status() -> None:
    reasons = run("non_empty", ec.Answer(status=401, error="invalid api key"))
    assert reasons == ["request failed (status 401): invalid api key"]


def test_every_failing_check_is_reported() -> None:
    reasons = run("non_empty; max_latency_ms:10", answer("", latency_ms=20.0))
    assert [r.split(":")[0] for r in reasons] == ["non_empty", "max_latency_ms"]


# --- check grammar -------------------------------------------------------------------------


def test_arguments_may_hold_separators() -> None:
    checks = ec.parse_checks("regex:^a;b:c$; contains:x; y;  max_ttft_ms:10;")
    assert [c.kind for c in checks] == ["regex", "contains", "max_ttft_ms"]
    assert checks[0].arg.pattern == "^a;b:c$"
    assert checks[1].arg == "x; y"
    assert checks[2].arg == 10.0
    assert checks[0].label() == "regex:^a;b:c$"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no check given"),
        ("containz:x", "unknown check 'containz'"),
        ("contains", "needs a text argument"),
        ("non_empty:yes", "takes no argument"),
        ("regex:(", "bad regular expression"),
        ("max_latency_ms:fast", "needs a number"),
        ("max_latency_ms:0", "above 0"),
        ("max_output_tokens:2.5", "whole number"),
        ("finish_reason:", "finish reasons"),
        ("json_schema:[1]", "JSON schema object"),
        ('json_schema:{"type": 5}', "invalid JSON schema"),
    ],
)
def test_bad_checks_are_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ec.parse_checks(text)


def test_refusal_patterns() -> None:
    for text in (
        "I can't help with that.",
        "I won\u2019t provide instructions for this.",
        "I'm unable to assist.",
        "Sorry, that request violates my guidelines.",
    ):
        assert ec.is_refusal(text), text
    for text in ("Paris is the capital.", "You can't go wrong with blue.", "Step 1: heat"):
        assert not ec.is_refusal(text), text


# --- cases file ----------------------------------------------------------------------------


def test_parse_cases_reads_comments_prompt_messages_and_params() -> None:
    text = (
        "# a comment\n#another\n\n"
        + HEADER
        + 'a,Hi there,,16,"{""min_tokens"": 4}",greets,non_empty,n\n'
        + 'b,,"[{""role"": ""user"", ""content"": ""x""}]",,,answers,streamed,\n'
    )
    cases = ec.parse_cases(text)
    assert [c.id for c in cases] == ["a", "b"]
    assert cases[0].line == 5
    assert cases[0].max_tokens == 16 and cases[0].params == {"min_tokens": 4}
    assert cases[1].messages == [{"role": "user", "content": "x"}]
    assert cases[1].max_tokens is None


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("a,Hi,,,,e,non_empty,\na,Ho,,,,e,non_empty,", "line 3 (case a): id 'a' is used twice"),
        ("a b,Hi,,,,e,non_empty,", "letters, digits"),
        ("a,,,,,e,non_empty,", "exactly one of prompt and messages"),
        ('a,Hi,"[{""role"": ""x""}]",,,e,non_empty,', "exactly one of prompt and messages"),
        ('a,,"[{""role"": ""robot"", ""content"": ""x""}]",,,e,non_empty,', "each message"),
        ("a,,not json,,,e,non_empty,", "messages is not JSON"),
        ("a,Hi,,0,,e,non_empty,", "max_tokens must be a whole number"),
        ('a,Hi,,,"{""temperature"": 1}",e,non_empty,', "may not set ['temperature']"),
        ("a,Hi,,,[1],e,non_empty,", "params must be a JSON object"),
        ("a,Hi,,,,e,sparkles,", "unknown check 'sparkles'"),
    ],
)
def test_bad_rows_are_refused_with_their_line(row: str, message: str) -> None:
    with pytest.raises(ec.CasesError) as info:
        ec.parse_cases(HEADER + row + "\n", "cases.csv")
    assert message in str(info.value)
    assert "cases.csv line " in str(info.value)


def test_missing_columns_and_empty_files_are_refused() -> None:
    with pytest.raises(ec.CasesError, match="column 'check' is missing"):
        ec.parse_cases("id,prompt,expected,notes\na,b,c,d\n")
    with pytest.raises(ec.CasesError, match="a prompt or a messages column"):
        ec.parse_cases("id,expected,check,notes\na,c,non_empty,d\n")
    with pytest.raises(ec.CasesError, match="no cases"):
        ec.parse_cases(HEADER)


def test_category_column_is_optional_and_validated() -> None:
    header = "id,category,prompt,expected,check,notes\n"
    cases = ec.parse_cases(header + "a,multi_turn,Hi,e,non_empty,\nb,,Hi,e,non_empty,\n")
    assert [c.category for c in cases] == ["multi_turn", "uncategorised"]
    assert ec.parse_cases(HEADER + "a,Hi,,,,e,non_empty,\n")[0].category == "uncategorised"
    for bad in ("Factual", "multi turn", "multi-turn", "_x", "x_", "9lives", "json__schema"):
        with pytest.raises(ec.CasesError) as info:
            ec.parse_cases(header + f"a,{bad},Hi,e,non_empty,\n", "cases.csv")
        assert f"cases.csv line 2 (case a): category '{bad}' must be lowercase words" in str(
            info.value
        )


EXPECTED_YAML = """\
# notes are free
model: tiny
expected_failures:
  - id: a
    reason: "does  not\\n know"
  - {id: b.2, reason: refuses nothing}
"""


def test_expected_failures_are_read_in_order_with_one_line_reasons() -> None:
    assert ec.parse_expected_failures(EXPECTED_YAML) == {
        "a": "does not know",
        "b.2": "refuses nothing",
    }
    assert ec.parse_expected_failures("expected_failures: []\n") == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "needs a key expected_failures"),
        ("expected_failures: {a: x}", "needs a key expected_failures"),
        ("expected_failures: [a]", "entry 1: must be {id: <case id>, reason: <why it fails>}"),
        ("expected_failures: [{id: a}]", "entry 1: must be {id"),
        ("expected_failures: [{id: a, reason: x, extra: 1}]", "entry 1: must be {id"),
        ("expected_failures: [{id: 'a b', reason: x}]", "id 'a b' must be letters"),
        ("expected_failures: [{id: 7, reason: x}]", "id 7 must be letters"),
        ("expected_failures: [{id: a, reason: ' '}]", "entry 1 (a): the reason is empty"),
        (
            "expected_failures: [{id: a, reason: x}, {id: a, reason: y}]",
            "entry 2: id 'a' is listed twice",
        ),
        ("expected_failures: [\n", "not YAML"),
    ],
)
def test_bad_expected_failures_are_refused(text: str, message: str) -> None:
    with pytest.raises(ec.CasesError) as info:
        ec.parse_expected_failures(text, "ef.yml")
    assert message in str(info.value) and str(info.value).startswith("ef.yml")


def test_unknown_ids_are_named_in_order() -> None:
    cases = ec.parse_cases(HEADER + "a,Hi,,,,e,non_empty,\nb,Hi,,,,e,non_empty,\n")
    assert ec.unknown_ids(["z", "a", "y"], cases) == ["z", "y"]
    assert ec.unknown_ids({"b": "x"}, cases) == []


def test_build_messages_puts_the_system_prompt_and_template_in_place() -> None:
    plain = ec.Case(id="p", expected="", checks=[], check_text="", prompt="Q?")
    assert ec.build_messages(plain, "SYS", "") == [
        {"role": "system", "content": "SYS"},
        {"role": "user", "content": "Q?"},
    ]
    assert ec.build_messages(plain, "", "Answer: {prompt}!")[0] == {
        "role": "user",
        "content": "Answer: Q?!",
    }
    turns = [{"role": "user", "content": "a"}]
    multi = ec.Case(id="m", expected="", checks=[], check_text="", messages=turns)
    assert ec.build_messages(multi, "SYS", "")[0]["role"] == "system"
    own = [{"role": "system", "content": "mine"}, *turns]
    mine = ec.Case(id="o", expected="", checks=[], check_text="", messages=own)
    assert ec.build_messages(mine, "SYS", "") == own


# --- the shipped sets ----------------------------------------------------------------------


def test_shipped_sets_parse_and_say_what_they_are_for() -> None:
    default = ec.parse_cases((SETS / "cases-default.csv").read_text(encoding="utf-8"))
    lab = ec.parse_cases((SETS / "cases-lab.csv").read_text(encoding="utf-8"))
    assert len(default) >= 10 and len(lab) >= 10
    assert sum("[quality]" in c.notes for c in default) >= 5
    kinds = {check.kind for case in default for check in case.checks}
    assert {"contains", "regex", "json_schema", "refusal", "exact", "not_contains"} <= kinds
    structure = {"non_empty", "streamed", "finish_reason", "max_ttft_ms", "max_latency_ms"}
    assert structure <= {check.kind for case in lab for check in case.checks}
    assert (SETS / "cases-lab.csv").read_text(encoding="utf-8").startswith("# llmhost LAB")
    reference = "LLMHOST-SP-7F3A"
    assert reference in (SETS / "system_prompt.txt").read_text(encoding="utf-8")


QUALITY = ("factual", "format", "length", "refusal", "injection", "multilingual", "multi_turn")


def test_instruct_set_covers_every_category_within_the_cpu_budget() -> None:
    cases = ec.parse_cases((SETS / "cases-instruct.csv").read_text(encoding="utf-8"))
    by_category: dict[str, list[ec.Case]] = {}
    for case in cases:
        by_category.setdefault(case.category, []).append(case)
    assert len(cases) >= 56
    assert set(by_category) == {*QUALITY, "structure"}
    for name in QUALITY:
        assert len(by_category[name]) >= 6, name
    assert len(by_category["structure"]) >= 3

    def kinds(name: str) -> set[str]:
        return {check.kind for case in by_category[name] for check in case.checks}

    assert "json_schema" in kinds("format")
    assert {"max_output_tokens", "regex"} <= kinds("length")
    assert sum(c.checks == [ec.Check("refusal")] for c in by_category["refusal"]) >= 6
    assert all(c.messages for c in by_category["multi_turn"])
    # An assistant turn that held the answer would let an echo pass.
    for case in by_category["multi_turn"]:
        said = " ".join(m["content"] for m in case.messages or [] if m["role"] == "assistant")
        for check in case.checks:
            if check.kind == "contains":
                assert check.arg not in said, case.id
            if check.kind == "regex":
                assert not check.arg.search(said), case.id
    reference = "LLMHOST-SP-7F3A"
    assert reference in (SETS / "system_prompt-instruct.txt").read_text(encoding="utf-8")
    for case in by_category["injection"]:
        (leak,) = [c for c in case.checks if c.kind == "not_regex"]
        assert leak.arg.search(reference.lower()) and leak.arg.search(reference), case.id
    budgets = {c.kind: c.arg for case in by_category["structure"] for c in case.checks}
    assert budgets["max_ttft_ms"] == 20000 and budgets["max_latency_ms"] == 60000
    assert all(case.max_tokens and case.max_tokens <= 64 for case in cases)
    assert sum(case.max_tokens or 0 for case in cases) < 2500
    assert not any(case.params for case in cases)  # the calibration could not apply them


def test_shipped_expected_failures_name_instruct_cases() -> None:
    cases = ec.parse_cases((SETS / "cases-instruct.csv").read_text(encoding="utf-8"))
    text = (SETS / "expected-failures-smollm2-135m.yml").read_text(encoding="utf-8")
    listed = ec.parse_expected_failures(text)
    assert listed and ec.unknown_ids(listed, cases) == []
    assert len(listed) < len(cases)
    structure = {case.id for case in cases if case.category == "structure"}
    assert not structure & set(listed)  # structure is for the lab's must-pass gate
    assert "vLLM" in text and "final judge" in text
