"""scripts/eval_calibrate.py's pure parts: the stream as vLLM would deliver it, the answer
the role's checks see, the one-line reasons and the expected-failures file it writes
(read back by the role's parser, within yamllint's style). The model run itself needs
torch and a model folder and is not run here."""

from __future__ import annotations

from pathlib import Path

import yaml
from loading import load_module

ROOT = Path(__file__).resolve().parents[1]
calibrate = load_module("eval_calibrate", ROOT / "scripts" / "eval_calibrate.py")

from ansible_collections.llmhost.core.plugins.module_utils import eval_cases as ec  # noqa: E402
from ansible_collections.llmhost.core.plugins.module_utils import eval_report as er  # noqa: E402


def test_importing_the_script_loads_no_torch() -> None:
    assert "torch" not in vars(calibrate)


def test_stream_pieces_hold_back_incomplete_characters() -> None:
    assert calibrate.stream_pieces(["The", "The cap", "The capital"]) == ["The", " cap", "ital"]
    assert calibrate.stream_pieces(["caf", "caf\ufffd", "café"]) == ["caf", "", "é"]
    assert calibrate.stream_pieces([""]) == [""]
    assert calibrate.stream_pieces([]) == []


def test_answer_counts_tokens_like_vllm() -> None:
    eos = {2}
    ended = calibrate.Generation([5, 6, 2], "Paris.", ["Par", "is.", ""], 12.5, 80.0)
    answer = calibrate.to_answer(ended, eos)
    assert (answer.text, answer.output_tokens, answer.chunks) == ("Paris.", 3, 2)
    assert answer.finish_reason == "stop" and answer.ttft_ms == 12.5
    cut = calibrate.to_answer(calibrate.Generation([5, 6], "Pa", ["P", "a"], 1.0, 2.0), eos)
    assert cut.finish_reason == "length"
    assert calibrate.to_answer(calibrate.Generation([], "", [], None, 1.0), eos).chunks == 0
    case = ec.Case("c", "", ec.parse_checks("streamed; finish_reason:stop; contains:Paris"), "")
    assert ec.evaluate(case, answer) == []


def test_reasons_stay_on_one_short_line() -> None:
    reason = calibrate.one_line_reason(
        ["regex: no match for /" + "x" * 200 + "/", "max_output_tokens: 9 output tokens > 6"],
        "The answer\nspans  lines " + "y" * 200,
    )
    assert "\n" not in reason and len(reason) <= calibrate.REASON_CHARS
    assert reason.startswith("regex: no match for /xxx")
    assert "; max_output_tokens: 9 output tokens > 6 (answer: 'The answer spans l" in reason


def test_expected_failures_file_reads_back_and_passes_yamllint(tmp_path: Path) -> None:
    failures = {
        "a": calibrate.one_line_reason(["contains: the output does not contain 'x'"], "it's"),
        "b.2": "refusal: the model did not refuse (answer: 'Step 1: ...')",
    }
    text = calibrate.expected_failures_yaml(
        failures, ["Calibrated by a test.", "Re-check on the lab."], {"model": "tiny"}
    )
    assert text.startswith("# Calibrated by a test.\n# Re-check on the lab.\n---\n")
    assert ec.parse_expected_failures(text) == failures
    assert yaml.safe_load(text)["model"] == "tiny"
    assert "\n  - id: a\n    reason: " in text  # list items indented under their key
    assert max(len(line) for line in text.splitlines()) <= 160


def test_category_table_lists_each_category_and_the_total() -> None:
    rows = [
        {"case_id": "a", "category": "factual", "passed": "true"},
        {"case_id": "b", "category": "refusal", "passed": "false"},
    ]
    table = calibrate.category_table(er.outcome(rows)).splitlines()
    assert table[0].split() == ["category", "cases", "passed", "rate"]
    assert table[1].split() == ["factual", "1", "1", "1.00"]
    assert table[2].split() == ["refusal", "1", "0", "0.00"]
    assert table[3].split() == ["all", "2", "1", "0.50"]
