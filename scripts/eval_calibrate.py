#!/usr/bin/env python3
"""Calibrate an evaluation set against a local copy of a model: which cases does it fail?

    nice -n 19 .venv/bin/python scripts/eval_calibrate.py --model /tmp/smol/out \\
        --cases roles/evaluation/files/eval/cases-instruct.csv \\
        --system-prompt roles/evaluation/files/eval/system_prompt-instruct.txt \\
        --out roles/evaluation/files/eval/expected-failures-smollm2-135m.yml

Runs every case through a Hugging Face model folder with transformers, the way the
evaluation role sends it through vLLM: the system prompt first (build_messages), the
model's own chat template, greedy decoding, the case's max_tokens (else --max-tokens).
The answers are judged by the role's own check code (module_utils/eval_cases.py), and
the cases that fail are written as an expected-failures file (YAML: id and a one-line
reason each) for `evaluation_expected_failures_file`. A per-category table goes to
stdout; --results also writes every answer as CSV, for review.

This is a calibration, not the verdict: the served model (vLLM on the lab, its own
kernels and detokenizer) is the final judge, so the list is re-checked against a lab
run's eval_results.csv. Case params (vLLM request fields) are not applied here; the
script says which cases have them. Latency and TTFT are this machine's.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "collections"))

from ansible_collections.llmhost.core.plugins.module_utils import eval_cases as ec  # noqa: E402
from ansible_collections.llmhost.core.plugins.module_utils import eval_report as er  # noqa: E402

# A reason stays on one line of the YAML file, within yamllint's 160 columns.
REASON_CHARS = 130
CHECK_CHARS = 60
ANSWER_CHARS = 50


class _IndentedDumper(yaml.SafeDumper):
    """Indents list items under their key (the repository's yamllint style)."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> Any:
        return super().increase_indent(flow, False)


@dataclass
class Generation:
    """What one greedy generation produced: the new token ids, the answer's text, the text
    each step added (as a stream would deliver it), and the clock."""

    token_ids: list[int]
    text: str
    pieces: list[str]
    ttft_ms: float | None
    latency_ms: float


# --- pure parts (unit-tested) --------------------------------------------------------------


def stream_pieces(prefixes: Sequence[str]) -> list[str]:
    """The text each step adds, from the decoded text after each step. A step whose text
    ends in an incomplete character (U+FFFD) adds nothing until the character completes,
    as vLLM's incremental detokenizer holds it back."""
    pieces, emitted = [], ""
    for number, text in enumerate(prefixes, 1):
        held = text.endswith("\ufffd") and number < len(prefixes)
        if held or not text.startswith(emitted):
            pieces.append("")
            continue
        pieces.append(text[len(emitted) :])
        emitted = text
    return pieces


def to_answer(gen: Generation, eos_ids: set[int]) -> ec.Answer:
    """The answer as the role's client would see it from vLLM: output tokens counted with the
    end-of-sequence token (vLLM's usage does), one content chunk per step that adds text,
    finish reason stop when the model ended, length when max_tokens cut it."""
    stopped = bool(gen.token_ids) and gen.token_ids[-1] in eos_ids
    return ec.Answer(
        text=gen.text,
        ttft_ms=gen.ttft_ms,
        latency_ms=gen.latency_ms,
        output_tokens=len(gen.token_ids),
        finish_reason="stop" if stopped else "length",
        chunks=sum(1 for piece in gen.pieces if piece),
    )


def _clip(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def one_line_reason(reasons: Sequence[str], output: str) -> str:
    """The failed checks (each clipped) and the start of the answer, on one line."""
    checks = "; ".join(_clip(reason, CHECK_CHARS) for reason in reasons)
    return _clip(f"{checks} (answer: {_clip(output, ANSWER_CHARS)!r})", REASON_CHARS)


def expected_failures_yaml(
    failures: dict[str, str], header: Sequence[str], notes: dict[str, Any]
) -> str:
    """The expected-failures file: comment lines, the notes (free top-level keys), then
    expected_failures as a list of {id, reason}."""
    comments = "".join(f"# {line}".rstrip() + "\n" for line in header)
    entries = [{"id": case_id, "reason": reason} for case_id, reason in failures.items()]
    body = yaml.dump(
        {**notes, "expected_failures": entries},
        Dumper=_IndentedDumper,
        sort_keys=False,
        allow_unicode=True,
        width=1000,
        explicit_start=True,
    )
    return comments + body


def category_table(summary: dict[str, Any]) -> str:
    """Per-category counts of an outcome() summary, as a fixed-width table."""
    lines = [f"{'category':<14}{'cases':>6}{'passed':>8}{'rate':>7}"]
    for name, entry in summary["categories"].items():
        lines.append(f"{name:<14}{entry['cases']:>6}{entry['passed']:>8}{entry['pass_rate']:>7.2f}")
    lines.append(
        f"{'all':<14}{summary['total']:>6}{summary['passed']:>8}{summary['pass_rate']:>7.2f}"
    )
    return "\n".join(lines)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- the model -----------------------------------------------------------------------------


def generate(
    model: Any, tokenizer: Any, messages: list[dict[str, str]], max_tokens: int
) -> Generation:
    """Greedy generation with the tokenizer's chat template; a Generation."""
    import torch
    from transformers.generation.streamers import BaseStreamer

    class Clock(BaseStreamer):
        """Records when the first new token arrives (the first put is the prompt)."""

        def __init__(self) -> None:
            self.calls = 0
            self.first: float | None = None

        def put(self, value: Any) -> None:
            self.calls += 1
            if self.calls == 2 and self.first is None:
                self.first = time.perf_counter()

        def end(self) -> None:
            pass

    inputs = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    clock = Clock()
    start = time.perf_counter()
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=max_tokens, do_sample=False, streamer=clock)
    latency_ms = (time.perf_counter() - start) * 1000
    ids = out[0, inputs["input_ids"].shape[1] :].tolist()
    prefixes = [
        tokenizer.decode(ids[:end], skip_special_tokens=True) for end in range(1, len(ids) + 1)
    ]
    ttft_ms = (clock.first - start) * 1000 if clock.first is not None else None
    text = prefixes[-1] if prefixes else ""
    return Generation(ids, text, stream_pieces(prefixes), ttft_ms, latency_ms)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, type=Path, help="Hugging Face model folder")
    parser.add_argument("--cases", required=True, type=Path, help="the cases CSV")
    parser.add_argument("--system-prompt", type=Path, help="the system prompt file")
    parser.add_argument("--out", required=True, type=Path, help="expected-failures YAML")
    parser.add_argument("--results", type=Path, help="also write every answer here (CSV)")
    parser.add_argument("--max-tokens", type=int, default=128, help="for cases without one")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--name", default="", help="model name for the file's notes")
    args = parser.parse_args(argv)

    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(args.threads)
    cases = ec.parse_cases(args.cases.read_text(encoding="utf-8"), str(args.cases))
    system = args.system_prompt.read_text(encoding="utf-8") if args.system_prompt else ""
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    model.eval()
    eos = model.generation_config.eos_token_id
    eos_ids = set(eos if isinstance(eos, list) else [eos])

    rows, failures = [], {}
    started = time.perf_counter()
    for case in cases:
        if case.params:
            print(f"note: {case.id}: params {case.params} are not applied locally")
        messages = ec.build_messages(case, system, "")
        gen = generate(model, tokenizer, messages, case.max_tokens or args.max_tokens)
        answer = to_answer(gen, eos_ids)
        reasons = ec.evaluate(case, answer)
        rows.append(er.result_row(case, answer, reasons))
        if reasons:
            failures[case.id] = one_line_reason(reasons, answer.text)
        mark = "FAIL" if reasons else "pass"
        print(f"{mark} {case.id}: {' '.join(answer.text.split())[:100]!r}", flush=True)
    summary = er.outcome(rows)
    print(category_table(summary))
    print(f"{len(cases)} cases in {time.perf_counter() - started:.0f} s")

    header = [
        f"Expected failures of {args.name or args.model.name} on {args.cases.name}, calibrated",
        "with scripts/eval_calibrate.py (transformers, float32, greedy, the model's chat",
        f"template, system prompt {args.system_prompt.name if args.system_prompt else 'none'}).",
        "The served model (vLLM on the lab) is the final judge: re-check this list",
        "against a lab run's eval_results.csv and rerun the script when the cases change.",
    ]
    notes = {
        "model": args.name or str(args.model),
        "cases_file": args.cases.name,
        "cases_sha256": sha256(args.cases),
        "system_prompt_file": args.system_prompt.name if args.system_prompt else "",
        "calibrated_with": f"transformers {transformers.__version__}, torch {torch.__version__}",
        "passed": f"{summary['passed']} of {summary['total']}",
        "passed_by_category": {
            name: f"{entry['passed']} of {entry['cases']}"
            for name, entry in summary["categories"].items()
        },
    }
    args.out.write_text(expected_failures_yaml(failures, header, notes), encoding="utf-8")
    if args.results:
        er.write_csv(args.results, er.RESULT_COLUMNS, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
