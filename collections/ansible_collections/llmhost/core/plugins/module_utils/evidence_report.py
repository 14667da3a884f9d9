"""The evidence bundle's index page: read what the roles left in the bundle, lay the page
out as blocks, render the blocks as Markdown (index.md) and static HTML (index.html).

Standard library only; the plots come from evidence_plots (matplotlib). Every reader is
tolerant: a file that is absent or unreadable becomes "not in this run" on the page.
"""

from __future__ import annotations

import csv
import fnmatch
import html
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

NOT_IN_RUN = "Not in this run"
LOSS_PNG = "plots/loss_curve.png"
LATENCY_PNG = "plots/latency.png"
CATEGORIES_PNG = "plots/eval_categories.png"
_PERCENTILE = re.compile(r"^p(\d+(?:\.\d+)?)(?:_ms)?$")
_MAX_CELL = 80
_COMPARISON = (
    ("flipped_to_fail", "pass -> FAIL"),
    ("flipped_to_pass", "fail -> pass"),
    ("still_failing", "still failing"),
    ("new_cases", "new cases"),
    ("removed_cases", "removed cases"),
)

# What each known file is, for the file list (first matching pattern wins).
DESCRIPTIONS: tuple[tuple[str, str], ...] = (
    ("index.md", "This page (Markdown)"),
    ("index.html", "This page (HTML)"),
    ("MANIFEST.sha256", "sha256 of every file; `make verify-evidence` checks it"),
    ("open_llm_runbook.json", "Runtime and adaptation choice, required evidence and presence"),
    ("readiness.json", "Readiness: every checklist item as pass / fail / n.a. / attested"),
    ("readiness.md", "Readiness report, one table per reference checklist"),
    ("*vllm_unit.json", "vLLM's systemd unit as it runs (Restart=, hardening, liveness timer)"),
    ("run_ledger.json", "Run ledger: playbooks, user, times, git sha, inventory, redacted vars"),
    ("ledger/*.jsonl", "Per-task results of one playbook (no_log results censored)"),
    ("ansible.log", "Ansible's log of the run"),
    ("*environment_report.json", "Environment report (GPU, driver, CUDA, torch, memory)"),
    ("*environment_report.txt", "Environment report, plain text"),
    ("*compute_route.md", "Compute route: why, what it can and cannot prove, stop step"),
    ("*gpu_plan.md", "GPU plan and its gate"),
    ("*model_decision.md", "Model decision: fit arithmetic, licence, rejected alternatives"),
    ("*model_runtime_decision.json", "Model fit decision, machine-readable"),
    ("*model_store.json", "The stored model: source, revision, path"),
    ("*model_manifest.sha256", "sha256 manifest of the served model's files"),
    ("*first_run.md", "First run of the runtime: exact command, prompt and output"),
    ("*api_smoke_test.json", "API smoke test of the runtime"),
    ("*eval_cases.csv", "Evaluation cases"),
    ("*eval_results.csv", "Evaluation results per case"),
    ("*load_test.json", "Load test through the gateway"),
    ("*eval_comparison.json", "Evaluation compared with the previous run"),
    ("*eval_summary.json", "Evaluation summary"),
    ("*shutdown_proof.json", "Shutdown proof"),
    (
        "*host_state.json",
        "What is on the host: packages, venvs, unit and config digests, model, certificate",
    ),
    ("*drift_report.json", "The host's state compared with the previous run of this inventory"),
    ("*drift_report.md", "Drift report, readable: identical, or each difference"),
    ("*training_log.csv", "Training log: loss per step"),
    ("*mini_gpt2_checkpoint.pt", "Trained checkpoint"),
    ("*sample.txt", "Text sampled from the trained model"),
    ("*RUN_KIND", "Training run kind (cpu_smoke or cuda_acceptance)"),
    ("*gpu_train_log.txt", "Training job's log"),
    ("*hf_export/*", "Hugging Face export of the trained model"),
    ("plots/*.png", "Plot on this page"),
)


@dataclass
class LossSeries:
    """One training run's loss curve."""

    label: str
    steps: list[int]
    losses: list[float]


@dataclass
class EvalRow:
    """One row of eval_results.csv."""

    case_id: str
    passed: bool
    reason: str
    latency_ms: float | None
    ttft_ms: float | None
    output_tokens: str
    output: str


@dataclass
class CategoryStat:
    """One category's line of eval_summary.json."""

    name: str
    cases: int
    passed: int
    expected_failures: int
    unexpected_passes: int


@dataclass
class LoadTest:
    """Latencies of a load test: per request, percentiles, or both."""

    latencies_ms: list[float]
    percentiles: dict[str, float]


@dataclass
class Bundle:
    """Everything the page shows."""

    root: Path
    run_id: str
    inventory: str
    files: list[str]
    loss: list[LossSeries] = field(default_factory=list)
    evals: list[EvalRow] | None = None
    eval_summary: dict[str, Any] | None = None
    categories: list[CategoryStat] | None = None
    load: LoadTest | None = None
    comparison: dict[str, Any] | None = None
    runbook: dict[str, Any] | None = None
    ledger: dict[str, Any] | None = None
    readiness: dict[str, Any] | None = None


# --- blocks --------------------------------------------------------------------------


@dataclass
class Link:
    text: str
    href: str


Cell = str | Link


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Para:
    parts: list[Cell]


@dataclass
class Table:
    headers: list[str]
    rows: list[list[Cell]]


@dataclass
class Image:
    alt: str
    src: str


Block = Heading | Para | Table | Image


# --- readers -------------------------------------------------------------------------


def read_json(path: Path) -> Any:
    """Parsed JSON, or None when the file is absent or not JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number else None  # NaN is not a measurement


def _truthy(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "pass", "passed", "ok"}


def read_loss(root: Path, files: list[str]) -> list[LossSeries]:
    """Every openllm_gpu_training_run/training_log.csv (per-host sub-folders too)."""
    series = []
    for rel in files:
        if not fnmatch.fnmatch(rel, "*openllm_gpu_training_run/training_log.csv"):
            continue
        steps, losses = [], []
        try:
            with (root / rel).open(encoding="utf-8", newline="") as handle:
                for row in csv.DictReader(handle):
                    step, loss = _float(row.get("step")), _float(row.get("loss"))
                    if step is not None and loss is not None:
                        steps.append(int(step))
                        losses.append(loss)
        except (OSError, csv.Error):
            continue
        if steps:
            host = rel.split("openllm_gpu_training_run/")[0].rstrip("/")
            series.append(LossSeries(host or "training", steps, losses))
    return series


def read_evals(path: Path) -> list[EvalRow] | None:
    """eval_results.csv (case_id, passed, reason, latency_ms, ttft_ms, output_tokens, output)."""
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, csv.Error):
        return None
    return [
        EvalRow(
            case_id=str(row.get("case_id") or ""),
            passed=_truthy(str(row.get("passed") or "")),
            reason=str(row.get("reason") or ""),
            latency_ms=_float(row.get("latency_ms")),
            ttft_ms=_float(row.get("ttft_ms")),
            output_tokens=str(row.get("output_tokens") or ""),
            output=str(row.get("output") or ""),
        )
        for row in rows
    ]


def _count(value: Any) -> int:
    number = _float(value)
    return int(number) if number is not None and number >= 0 else 0


def read_categories(summary: dict[str, Any] | None) -> list[CategoryStat] | None:
    """The per-category counts of eval_summary.json, in its order; None when it has none, or
    only the uncategorised cases of a set without categories."""
    data = (summary or {}).get("categories")
    if not isinstance(data, dict):
        return None
    stats = [
        CategoryStat(
            str(name),
            _count(entry.get("cases")),
            _count(entry.get("passed")),
            _count(entry.get("expected_failures")),
            _count(entry.get("unexpected_passes")),
        )
        for name, entry in data.items()
        if isinstance(entry, dict)
    ]
    if not stats or [s.name for s in stats] == ["uncategorised"]:
        return None
    return stats


def _request_latency(item: Any) -> float | None:
    """A request's latency in ms; None for a failed request (status not 200, or an error)."""
    if isinstance(item, dict):
        if item.get("error") or item.get("status", 200) != 200:
            return None
        if "latency_ms" in item:
            return _float(item["latency_ms"])
        seconds = _float(item.get("latency_s"))
        return None if seconds is None else seconds * 1000.0
    return _float(item)


def _percentiles(data: dict[str, Any]) -> dict[str, float]:
    found: dict[str, float] = {}
    summary = data.get("summary") if isinstance(data.get("summary"), dict) else {}
    sources = (
        summary.get("latency_ms"),
        data,
        data.get("latency_ms"),
        data.get("latency"),
        data.get("percentiles"),
    )
    for source in sources:
        if not isinstance(source, dict):
            continue
        for key, value in source.items():
            match = _PERCENTILE.match(str(key))
            number = _float(value)
            if match and number is not None:
                found.setdefault(f"p{match.group(1)}", number)
    return dict(sorted(found.items(), key=lambda kv: float(kv[0][1:])))


def read_load_test(path: Path) -> LoadTest | None:
    """load_test.json: per-request latencies under "requests" (successful ones) and/or pNN
    percentiles (summary.latency_ms, as the evaluation role writes them, or at the top)."""
    data = read_json(path)
    if not isinstance(data, dict):
        return None
    requests = data.get("requests")
    latencies = []
    if isinstance(requests, list):
        latencies = [v for v in map(_request_latency, requests) if v is not None]
    load = LoadTest(latencies, _percentiles(data))
    return load if load.latencies_ms or load.percentiles else None


def load_bundle(root: Path, run_id: str, inventory: str, files: list[str]) -> Bundle:
    """Read every source of the page from the bundle."""
    comparison = read_json(root / "eval_comparison.json")
    eval_summary = read_json(root / "eval_summary.json")
    eval_summary = eval_summary if isinstance(eval_summary, dict) else None
    runbook = read_json(root / "open_llm_runbook.json")
    ledger = read_json(root / "run_ledger.json")
    readiness = read_json(root / "readiness.json")
    return Bundle(
        root=root,
        run_id=run_id,
        inventory=inventory,
        files=files,
        loss=read_loss(root, files),
        evals=read_evals(root / "eval_results.csv"),
        eval_summary=eval_summary,
        categories=read_categories(eval_summary),
        load=read_load_test(root / "load_test.json"),
        comparison=comparison if isinstance(comparison, dict) else None,
        runbook=runbook if isinstance(runbook, dict) else None,
        ledger=ledger if isinstance(ledger, dict) else None,
        readiness=readiness if isinstance(readiness, dict) else None,
    )


# --- layout --------------------------------------------------------------------------


def describe(rel: str) -> str:
    """What a file of the bundle is."""
    return next((text for pattern, text in DESCRIPTIONS if fnmatch.fnmatch(rel, pattern)), "")


def _short(text: str, limit: int = _MAX_CELL) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def _file_cell(bundle: Bundle, rel: str) -> Cell:
    return Link(rel, rel) if rel in bundle.files else rel


def _summary(bundle: Bundle) -> list[list[Cell]]:
    env = read_json(bundle.root / "environment_report.json") or {}
    smoke = read_json(bundle.root / "api_smoke_test.json") or {}
    rows: list[list[Cell]] = [["Run id", bundle.run_id], ["Inventory", bundle.inventory]]
    if isinstance(env, dict) and env.get("route"):
        rows.append(["Route", f"{env['route']} (host {env.get('host', '?')})"])
    kind = bundle.root / "openllm_gpu_training_run" / "RUN_KIND"
    if kind.is_file():
        rows.append(["Training run kind", kind.read_text(encoding="utf-8").strip()])
    for series in bundle.loss:
        rows.append(
            [f"Final loss ({series.label})", f"{series.losses[-1]:.4f} at step {series.steps[-1]}"]
        )
    if isinstance(smoke, dict) and "passed" in smoke:
        rows.append(["API smoke test", "passed" if smoke["passed"] else "FAILED"])
    if bundle.evals is not None:
        passed = sum(row.passed for row in bundle.evals)
        rows.append(["Evaluation", f"{passed} of {len(bundle.evals)} cases passed"])
        rows.extend(_gate_rows(bundle.eval_summary))
    else:
        rows.append(["Evaluation", NOT_IN_RUN])
    rows.extend(_drift_rows(bundle))
    rows.extend(_ledger_rows(bundle.ledger))
    rows.extend(_readiness_rows(bundle))
    return rows


def _drift_rows(bundle: Bundle) -> list[list[Cell]]:
    """Each host's drift report (drift_report.json, or <host>/drift_report.json): the
    host's state compared with the previous run of the inventory."""
    rows: list[list[Cell]] = []
    for rel in sorted(f for f in bundle.files if f.split("/")[-1] == "drift_report.json"):
        report = read_json(bundle.root / rel)
        if not isinstance(report, dict):
            continue
        host = rel.rsplit("/", 1)[0] if "/" in rel else str(report.get("host", ""))
        verdict = {True: "identical", False: "DIFFERENT"}.get(report.get("identical"), "")
        text = f"{verdict}: {report.get('summary', '')}" if verdict else report.get("summary", "")
        page = rel[: -len(".json")] + ".md"
        rows.append(
            [f"Drift ({host})", Link(_short(str(text)), page) if page in bundle.files else text]
        )
    return rows


_STATUSES = ("pass", "fail", "n.a.", "attested")


def _status_counts(counts: Any) -> str:
    counts = counts if isinstance(counts, dict) else {}
    return ", ".join(f"{counts.get(s, 0)} {s}" for s in _STATUSES)


def _readiness_rows(bundle: Bundle) -> list[list[Cell]]:
    """One summary row per checklist: its counts, linked to readiness.md."""
    data = bundle.readiness
    if not data:
        return [["Readiness", f"{NOT_IN_RUN} (no readiness.json)"]]
    rows: list[list[Cell]] = []
    for name, counts in (data.get("counts") or {}).items():
        rows.append([f"Readiness ({name})", Link(_status_counts(counts), "readiness.md")])
    failed = data.get("required_failed") or []
    if data.get("required"):
        rows.append(
            ["Readiness, required items", f"not passing: {', '.join(map(str, failed)) or 'none'}"]
        )
    return rows


def _readiness(bundle: Bundle) -> list[Block]:
    """Counts per checklist section; the items are in readiness.md."""
    data = bundle.readiness
    if not data:
        return [Para([f"{NOT_IN_RUN}: no readiness.json."])]
    sections = data.get("section_counts") or {}
    rows: list[list[Cell]] = [
        [str(name), *(str((c or {}).get(s, 0)) for s in _STATUSES)] for name, c in sections.items()
    ]
    return [
        Para(
            [
                Link(
                    "readiness.md: every checklist item, its evidence and the check that "
                    "decided it",
                    "readiness.md",
                )
            ]
        ),
        Table(["checklist: section", *_STATUSES], rows),
    ]


def _gate_rows(summary: dict[str, Any] | None) -> list[list[Cell]]:
    """The gated pass rate, when the run had an expected-failures list."""
    listed = [
        *((summary or {}).get("expected_failures") or []),
        *((summary or {}).get("unexpected_passes") or []),
    ]
    if not summary or not listed:
        return []
    unexpected = summary.get("unexpected_passes") or []
    return [
        [
            "Evaluation gate",
            f"pass rate {summary.get('gated_pass_rate')} over the {summary.get('gated_total')} "
            f"cases not expected to fail (raw {summary.get('pass_rate')}); "
            f"{len(listed) - len(unexpected)} expected failures, "
            f"unexpected passes: {', '.join(map(str, unexpected)) or 'none'}",
        ]
    ]


def _ledger_rows(ledger: dict[str, Any] | None) -> list[list[Cell]]:
    if not ledger:
        return [["Run ledger", f"{NOT_IN_RUN} (the evidence_ledger callback was not enabled)"]]
    runs = [r for r in ledger.get("invocations", []) if isinstance(r, dict)]
    if not runs:
        return []
    git = runs[0].get("git") or {}
    dirty = " (uncommitted changes)" if git.get("dirty") else ""
    sha = git.get("sha") or f"unknown ({git.get('error', 'not recorded')})"
    return [
        ["Commit", f"{sha}{dirty}"],
        ["Run by", f"{runs[0].get('user', '?')} on {runs[0].get('control_host', '?')}"],
        ["Playbooks", ", ".join(str(r.get("playbook", "?")) for r in runs)],
    ]


def _required(bundle: Bundle) -> list[Block]:
    runbook = bundle.runbook or {}
    required = runbook.get("required_evidence")
    if not isinstance(required, list):
        return [Para([f"{NOT_IN_RUN}: no open_llm_runbook.json."])]
    rows: list[list[Cell]] = [
        [
            _file_cell(bundle, str(item.get("file"))),
            ", ".join(map(str, item.get("required_by") or [])).replace("_", " "),
            ", ".join(map(str, item.get("found_at") or [])) or "MISSING",
        ]
        for item in required
        if isinstance(item, dict)
    ]
    blocks: list[Block] = []
    for key, label in (("runtime", "Runtime"), ("adaptation", "Adaptation")):
        choice = runbook.get(key)
        if isinstance(choice, dict):
            reason = f": {choice['reason']}" if choice.get("reason") else ""
            blocks.append(Para([f"{label}: {choice.get('choice', '?')}{reason}"]))
    return [*blocks, Table(["file", "required by", "found at"], rows)]


def _loss(bundle: Bundle) -> list[Block]:
    if not bundle.loss:
        return [Para([f"{NOT_IN_RUN}: no openllm_gpu_training_run/training_log.csv."])]
    return [Image("Training loss per step", LOSS_PNG)]


def _latency(bundle: Bundle) -> list[Block]:
    blocks: list[Block] = []
    have_eval = bundle.evals is not None and any(r.latency_ms is not None for r in bundle.evals)
    if have_eval or (bundle.load and bundle.load.latencies_ms):
        blocks.append(Image("Latency distribution", LATENCY_PNG))
    if bundle.load and bundle.load.percentiles:
        rows: list[list[Cell]] = [[k, _ms(v)] for k, v in bundle.load.percentiles.items()]
        blocks.append(Table(["load test percentile", "latency (ms)"], rows))
    if not blocks:
        blocks.append(Para([f"{NOT_IN_RUN}: no latencies in eval_results.csv or load_test.json."]))
    return blocks


def _categories(bundle: Bundle) -> list[Block]:
    if not bundle.categories:
        return []
    rows: list[list[Cell]] = [
        [
            c.name,
            str(c.cases),
            str(c.passed),
            f"{c.passed / c.cases:.2f}" if c.cases else "",
            str(c.expected_failures),
            str(c.unexpected_passes),
        ]
        for c in bundle.categories
    ]
    headers = ["category", "cases", "passed", "pass rate", "expected failures", "unexpected passes"]
    return [Image("Pass rate per category", CATEGORIES_PNG), Table(headers, rows)]


def _evaluation(bundle: Bundle) -> list[Block]:
    if bundle.evals is None:
        return [Para([f"{NOT_IN_RUN}: no eval_results.csv."])]
    rows: list[list[Cell]] = [
        [
            r.case_id,
            "pass" if r.passed else "FAIL",
            _short(r.reason),
            _ms(r.latency_ms),
            _ms(r.ttft_ms),
            r.output_tokens,
            _short(r.output),
        ]
        for r in bundle.evals
    ]
    headers = ["case", "result", "reason", "latency (ms)", "ttft (ms)", "tokens", "output"]
    return [*_categories(bundle), Table(headers, rows)]


def _comparison(bundle: Bundle) -> list[Block]:
    data = bundle.comparison
    if data is None:
        return [Para([f"{NOT_IN_RUN}: no eval_comparison.json (no earlier run to compare with)."])]
    previous = str(data.get("previous_run") or "none")
    rows: list[list[Cell]] = []
    for key, label in _COMPARISON:
        if key not in data and key not in ("flipped_to_fail", "flipped_to_pass"):
            continue
        cases = data.get(key) if isinstance(data.get(key), list) else []
        rows.append([label, ", ".join(map(str, cases)) or "none"])
    return [
        Para([f"Previous run of inventory {bundle.inventory}: {previous}"]),
        Table(["change", "cases"], rows),
    ]


def _file_list(bundle: Bundle, extra: list[str]) -> list[Block]:
    names = sorted(set(bundle.files) | set(extra))
    rows: list[list[Cell]] = [[Link(rel, rel), describe(rel)] for rel in names]
    return [Table(["file", "what it is"], rows)]


def layout(bundle: Bundle, outputs: list[str]) -> list[Block]:
    """The page: summary, required evidence, plots, evaluation, comparison, every file."""
    where = f"evidence/{bundle.inventory}/{bundle.run_id}"
    return [
        Heading(f"Evidence bundle {bundle.run_id}", 1),
        Para([f"Check every file against its sha256: make verify-evidence RUN={where}"]),
        Heading("Summary"),
        Table(["field", "value"], _summary(bundle)),
        Heading("Required evidence"),
        *_required(bundle),
        Heading("Readiness"),
        *_readiness(bundle),
        Heading("Training loss"),
        *_loss(bundle),
        Heading("Latency"),
        *_latency(bundle),
        Heading("Evaluation"),
        *_evaluation(bundle),
        Heading("Comparison with the previous run"),
        *_comparison(bundle),
        Heading("Files"),
        *_file_list(bundle, outputs),
    ]


# --- renderers -------------------------------------------------------------------------


_MD_SPECIAL = re.compile(r"([\\`*\[\]|<])|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


def _md_text(text: str) -> str:
    """Text safe in a Markdown paragraph or table cell (one line, specials escaped; an
    underscore inside a word is literal in CommonMark and stays as it is)."""
    return _MD_SPECIAL.sub(lambda m: "\\" + m.group(0), " ".join(text.split()))


def _md_cell(cell: Cell) -> str:
    if isinstance(cell, Link):
        return f"[{_md_text(cell.text)}]({quote(cell.href)})"
    return _md_text(cell)


def render_markdown(blocks: list[Block]) -> str:
    """index.md."""
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"{'#' * block.level} {_md_text(block.text)}")
        elif isinstance(block, Para):
            out.append("".join(_md_cell(p) for p in block.parts))
        elif isinstance(block, Image):
            out.append(f"![{_md_text(block.alt)}]({quote(block.src)})")
        else:
            out.append("| " + " | ".join(map(_md_text, block.headers)) + " |")
            out.append("|" + "---|" * len(block.headers))
            out.extend("| " + " | ".join(map(_md_cell, row)) + " |" for row in block.rows)
        out.append("")
    return "\n".join(out)


def _html_cell(cell: Cell) -> str:
    if isinstance(cell, Link):
        return f'<a href="{html.escape(quote(cell.href))}">{html.escape(cell.text)}</a>'
    return html.escape(cell)


_STYLE = (
    "body{font-family:sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;color:#222}"
    "table{border-collapse:collapse;margin:.5rem 0 1rem}"
    "th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}"
    "th{background:#f0f0f0}img{max-width:100%;border:1px solid #ddd}"
)


def render_html(blocks: list[Block], title: str) -> str:
    """index.html: static, no script, no remote resource."""
    body: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Para):
            body.append("<p>" + "".join(_html_cell(p) for p in block.parts) + "</p>")
        elif isinstance(block, Image):
            src, alt = html.escape(quote(block.src)), html.escape(block.alt)
            body.append(f'<p><img src="{src}" alt="{alt}"></p>')
        else:
            head = "".join(f"<th>{html.escape(h)}</th>" for h in block.headers)
            rows = "".join(
                "<tr>" + "".join(f"<td>{_html_cell(c)}</td>" for c in row) + "</tr>"
                for row in block.rows
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )
