"""llmhost.core evidence_index and evidence_runbook modules (and evidence_report /
evidence_plots): the index page and plots of a bundle, "not in this run" for what is
absent, deterministic output, and open_llm_runbook.json with required evidence."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from ansible_collections.llmhost.core.plugins.module_utils import evidence_report as er
from ansible_collections.llmhost.core.plugins.module_utils.evidence_bundle import scan
from ansible_collections.llmhost.core.plugins.modules import evidence_index as ei
from ansible_collections.llmhost.core.plugins.modules import evidence_runbook as rb

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "data" / "evidence_fixture"
MODULES = ROOT / "collections/ansible_collections/llmhost/core/plugins/modules"
EVAL_FILES = ["eval_cases.csv", "eval_results.csv", "load_test.json", "eval_comparison.json"]
ADAPTATION = {"choice": "none", "reason": "served as trained"}


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """A copy of the trimmed lab bundle."""
    return Path(shutil.copytree(FIXTURE, tmp_path / "run1"))


def _module(tmp_path: Path, name: str, **args: Any) -> dict[str, Any]:
    file = tmp_path / f"{name}-args.json"
    file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}), encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "collections"))
    out = subprocess.run(
        [sys.executable, str(MODULES / f"{name}.py"), str(file)],
        capture_output=True,
        text=True,
        env=env,
    )
    return json.loads(out.stdout)


def _index(tmp_path: Path, root: Path, **extra: Any) -> dict[str, Any]:
    return _module(
        tmp_path, "evidence_index", path=str(root), run_id="run1", inventory="lab", **extra
    )


def _runbook(tmp_path: Path, root: Path, **extra: Any) -> dict[str, Any]:
    args = {
        "path": str(root),
        "run_id": "run1",
        "inventory": "lab",
        "runtime": "vllm-cpu",
        "adaptation": ADAPTATION,
        **extra,
    }
    return _module(tmp_path, "evidence_runbook", **args)


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def _section(page: str, title: str) -> str:
    return page.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


# --- readers -------------------------------------------------------------------------


def test_loss_is_read_from_the_training_log(bundle: Path) -> None:
    files, _ = scan(bundle)
    (series,) = er.read_loss(bundle, files)
    assert series.steps[0] == 1 and series.steps[-1] == 200
    assert series.losses[0] == pytest.approx(7.637436)


def test_per_host_training_logs_each_make_a_series(bundle: Path) -> None:
    host = bundle / "gpu-a" / "openllm_gpu_training_run"
    host.mkdir(parents=True)
    (host / "training_log.csv").write_text(
        "step,loss\n1,3.0\n2,nan\nx,1\n3,2.5\n", encoding="utf-8"
    )
    series = er.read_loss(bundle, scan(bundle)[0])
    assert [s.label for s in series] == ["gpu-a", "training"]
    assert series[0].steps == [1, 3] and series[0].losses == [3.0, 2.5]


def test_eval_results_are_parsed_with_blanks_as_none(tmp_path: Path) -> None:
    path = tmp_path / "eval_results.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["case_id", "passed", "reason", "latency_ms", "ttft_ms", "output_tokens", "output"]
        )
        writer.writerow(["a", "True", "ok", "12.5", "", "3", "hi"])
        writer.writerow(["b", "false", "timeout", "", "", "0", ""])
    rows = er.read_evals(path)
    assert rows is not None
    assert [(r.case_id, r.passed, r.latency_ms, r.ttft_ms) for r in rows] == [
        ("a", True, 12.5, None),
        ("b", False, None, None),
    ]
    assert er.read_evals(tmp_path / "absent.csv") is None


@pytest.mark.parametrize(
    ("doc", "latencies", "percentiles"),
    [
        (
            {"requests": [{"latency_ms": 10}, {"latency_s": 0.02}, {"status": 500}]},
            [10.0, 20.0],
            {},
        ),
        ({"requests": [5, "7.5", None]}, [5.0, 7.5], {}),
        ({"latency_ms": {"p99": 90, "p50": 40, "mean": 45}}, [], {"p50": 40.0, "p99": 90.0}),
        ({"p95_ms": 70, "percentiles": {"p50": 30}}, [], {"p50": 30.0, "p95": 70.0}),
        (
            {
                "summary": {"latency_ms": {"count": 2, "mean": 15, "p50": 12.5, "p99": None}},
                "requests": [
                    {"status": 200, "error": None, "latency_ms": 10},
                    {"status": 503, "error": "HTTP 503", "latency_ms": 1},
                    {"status": 200, "error": "stream cut", "latency_ms": 2},
                    {"status": 200, "latency_ms": 15},
                ],
            },
            [10.0, 15.0],
            {"p50": 12.5},
        ),
    ],
)
def test_load_test_shapes(
    tmp_path: Path, doc: dict[str, Any], latencies: list[float], percentiles: dict[str, float]
) -> None:
    path = tmp_path / "load_test.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    load = er.read_load_test(path)
    assert load is not None
    assert load.latencies_ms == latencies
    assert load.percentiles == percentiles


@pytest.mark.parametrize("text", ["", "not json", "[1, 2]", '{"requests": "none"}'])
def test_unusable_load_test_is_absent(tmp_path: Path, text: str) -> None:
    path = tmp_path / "load_test.json"
    path.write_text(text, encoding="utf-8")
    assert er.read_load_test(path) is None


def test_every_known_file_has_a_description() -> None:
    for rel in ["index.html", "ledger/lab.jsonl", "gpu-a/first_run.md", "plots/latency.png"]:
        assert er.describe(rel), rel
    assert er.describe("something-else.bin") == ""


# --- the page ------------------------------------------------------------------------


def test_index_module_writes_pages_and_plots_then_changes_nothing(
    tmp_path: Path, bundle: Path
) -> None:
    first = _index(tmp_path, bundle)
    assert first["changed"] is True, first
    assert first["written"] == ["index.html", "index.md", er.LATENCY_PNG, er.LOSS_PNG]
    assert first["plots"] == {
        "loss_curve": er.LOSS_PNG,
        "latency": er.LATENCY_PNG,
        "eval_categories": None,  # the fixture's cases have no categories
    }
    assert first["eval"] == {"total": 5, "passed": 4, "failed": 1}
    assert _png_size(bundle / er.LOSS_PNG) == (800, 400)
    assert _png_size(bundle / er.LATENCY_PNG) == (800, 400)
    second = _index(tmp_path, bundle)  # a new process renders the same bytes
    assert second["changed"] is False and second["written"] == []


def test_check_mode_writes_nothing(tmp_path: Path, bundle: Path) -> None:
    result = _index(tmp_path, bundle, _ansible_check_mode=True)
    assert result["changed"] is True
    assert not (bundle / "index.md").exists() and not (bundle / "plots").exists()


def test_page_shows_summary_evaluation_and_comparison(tmp_path: Path, bundle: Path) -> None:
    _index(tmp_path, bundle)
    page = (bundle / "index.md").read_text(encoding="utf-8")
    assert "| Training run kind | cpu_smoke |" in page
    assert "| Final loss (training) | 5.9475 at step 200 |" in page
    assert "| Evaluation | 4 of 5 cases passed |" in page
    # The reason holds a '|': escaped, so the table keeps its columns.
    assert (
        "| long-prompt | FAIL | HTTP 400: prompt longer than max_model_len \\| see reason |" in page
    )
    assert "| pass -> FAIL | long-prompt |" in page
    assert "make verify-evidence RUN=evidence/lab/run1" in page
    assert "| p99 | 114.9 |" in _section(page, "Latency")
    assert "| new cases | stream-done |" in _section(page, "Comparison with the previous run")


def test_page_shows_each_hosts_drift_verdict(tmp_path: Path, bundle: Path) -> None:
    report = {"host": "lab", "identical": True, "summary": "identical to run run0"}
    (bundle / "drift_report.json").write_text(json.dumps(report), encoding="utf-8")
    (bundle / "drift_report.md").write_text("# Drift report: lab\n", encoding="utf-8")
    (bundle / "gpu-a").mkdir(exist_ok=True)
    other = {"host": "gpu-a", "identical": None, "summary": "no previous run of this inventory"}
    (bundle / "gpu-a" / "drift_report.json").write_text(json.dumps(other), encoding="utf-8")
    _index(tmp_path, bundle)
    page = (bundle / "index.md").read_text(encoding="utf-8")
    assert "| Drift (lab) | [identical: identical to run run0](drift_report.md) |" in page
    assert "| Drift (gpu-a) | no previous run of this inventory |" in page


def test_absent_data_says_not_in_this_run_and_stale_plots_go(tmp_path: Path, bundle: Path) -> None:
    _index(tmp_path, bundle)
    for name in [*EVAL_FILES, "openllm_gpu_training_run/training_log.csv"]:
        (bundle / name).unlink()
    result = _index(tmp_path, bundle)
    assert result["removed"] == [er.LATENCY_PNG, er.LOSS_PNG]
    assert result["plots"] == {"loss_curve": None, "latency": None, "eval_categories": None}
    assert result["eval"] is None
    page = (bundle / "index.md").read_text(encoding="utf-8")
    for title in ("Training loss", "Latency", "Evaluation", "Comparison with the previous run"):
        assert "Not in this run" in _section(page, title), title
    assert "plots/" not in page


def test_eval_latency_alone_makes_a_latency_plot(tmp_path: Path, bundle: Path) -> None:
    (bundle / "load_test.json").unlink()
    result = _index(tmp_path, bundle)
    assert result["plots"]["latency"] == er.LATENCY_PNG


def _category(cases: int, passed: int, expected: int = 0, unexpected: int = 0) -> dict:
    return {
        "cases": cases,
        "passed": passed,
        "failed": cases - passed,
        "expected_failures": expected,
        "unexpected_passes": unexpected,
        "pass_rate": round(passed / cases, 4),
    }


SUMMARY = {
    "total": 20,
    "passed": 13,
    "pass_rate": 0.65,
    "gated_total": 14,
    "gated_pass_rate": 0.9286,
    "expected_failures": ["r1", "r2", "r3", "r4", "r5", "m1"],
    "unexpected_passes": [],
    "categories": {
        "factual": _category(6, 6),
        "refusal": _category(8, 2, expected=5),
        "multi_turn": _category(6, 5, expected=1),
    },
}


def test_categories_make_a_pass_rate_plot_and_a_table(tmp_path: Path, bundle: Path) -> None:
    (bundle / "eval_summary.json").write_text(json.dumps(SUMMARY), encoding="utf-8")
    first = _index(tmp_path, bundle)
    assert first["plots"]["eval_categories"] == er.CATEGORIES_PNG
    assert er.CATEGORIES_PNG in first["written"]
    assert _png_size(bundle / er.CATEGORIES_PNG) == (800, 400)
    page = (bundle / "index.md").read_text(encoding="utf-8")
    section = _section(page, "Evaluation")
    assert "![Pass rate per category](plots/eval_categories.png)" in section
    assert "| refusal | 8 | 2 | 0.25 | 5 | 0 |" in section
    assert "| multi_turn | 6 | 5 | 0.83 | 1 | 0 |" in section
    assert (
        "| Evaluation gate | pass rate 0.9286 over the 14 cases not expected to fail (raw 0.65); "
        "6 expected failures, unexpected passes: none |"
    ) in _section(page, "Summary")
    assert _index(tmp_path, bundle)["changed"] is False  # the same bytes again
    (bundle / "eval_summary.json").unlink()
    gone = _index(tmp_path, bundle)
    assert gone["removed"] == [er.CATEGORIES_PNG]
    assert "plots/eval_categories.png" not in (bundle / "index.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "summary",
    [
        None,
        {},
        {"categories": "x"},
        {"categories": {"uncategorised": _category(3, 3)}},  # a set without categories
    ],
)
def test_no_category_plot_without_categories(summary: dict[str, Any] | None) -> None:
    assert er.read_categories(summary) is None


def test_categories_are_read_in_order_with_bad_counts_as_zero() -> None:
    stats = er.read_categories(
        {"categories": {"b": {"cases": 2, "passed": "x"}, "a": _category(1, 1, unexpected=1)}}
    )
    assert stats == [er.CategoryStat("b", 2, 0, 0, 0), er.CategoryStat("a", 1, 1, 0, 1)]


def test_html_is_escaped_static_and_links_every_file(tmp_path: Path, bundle: Path) -> None:
    rows = (bundle / "eval_results.csv").read_text(encoding="utf-8")
    planted = 'xss,false,"<script>alert(1)</script>",1,,0,"<img src=x onerror=alert(1)>"\n'
    (bundle / "eval_results.csv").write_text(rows + planted, encoding="utf-8")
    (bundle / "odd name #1.txt").write_text("x\n", encoding="utf-8")
    _index(tmp_path, bundle)
    page = (bundle / "index.html").read_text(encoding="utf-8")
    assert "<script" not in page
    assert re.findall(r"<img [^>]*>", page) == [
        '<img src="plots/loss_curve.png" alt="Training loss per step">',
        '<img src="plots/latency.png" alt="Latency distribution">',
    ]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'href="odd%20name%20%231.txt"' in page
    for rel in scan(bundle)[0]:
        assert f'href="{quote(rel)}"' in page, rel
    assert 'href="MANIFEST.sha256"' in page
    assert "http://" not in page and "https://" not in page


def test_markdown_cells_stay_on_one_line() -> None:
    table = er.Table(["a", "b"], [["two\nlines", er.Link("x|y", "x|y")]])
    text = er.render_markdown([table])
    assert text.splitlines()[2] == "| two lines | [x\\|y](x%7Cy) |"


# --- the runbook ---------------------------------------------------------------------


def test_runbook_lists_required_evidence_with_presence(tmp_path: Path, bundle: Path) -> None:
    host = bundle / "gpu-a"
    host.mkdir()
    (host / "shutdown_proof.json").write_text("{}\n", encoding="utf-8")
    result = _runbook(
        tmp_path,
        bundle,
        plan_files=["environment_report.json", "shutdown_proof.json"],
        standard_files=["environment_report.json", "gpu_plan.md", "run_ledger.json"],
        hosts=["gpu-a", "gpu-b"],
    )
    assert result["changed"] is True
    book = json.loads((bundle / "open_llm_runbook.json").read_text(encoding="utf-8"))
    assert book == result["runbook"]
    assert book["required_evidence"] == [
        {
            "file": "environment_report.json",
            "required_by": ["gpu_plan", "standard"],
            "present": True,
            "found_at": ["environment_report.json"],
        },
        {
            "file": "shutdown_proof.json",
            "required_by": ["gpu_plan"],
            "present": True,
            "found_at": ["gpu-a/shutdown_proof.json"],
        },
        {
            "file": "gpu_plan.md",
            "required_by": ["standard"],
            "present": True,
            "found_at": ["gpu_plan.md"],
        },
        {"file": "run_ledger.json", "required_by": ["standard"], "present": False, "found_at": []},
    ]
    assert book["missing"] == ["run_ledger.json"] and book["complete"] is False
    assert book["runtime"]["decision"] == "cpu_only"
    assert book["runtime"]["model"] == "mini-gpt2-lab"
    assert book["adaptation"] == ADAPTATION
    again = _runbook(
        tmp_path,
        bundle,
        plan_files=["environment_report.json", "shutdown_proof.json"],
        standard_files=["environment_report.json", "gpu_plan.md", "run_ledger.json"],
        hosts=["gpu-a", "gpu-b"],
    )
    assert again["changed"] is False


def test_runbook_without_a_fit_decision(tmp_path: Path, bundle: Path) -> None:
    (bundle / "model_runtime_decision.json").unlink()
    book = _runbook(tmp_path, bundle)["runbook"]
    assert book["runtime"] == {"choice": "vllm-cpu", "decision": None, "decision_source": None}
    assert book["complete"] is True  # nothing was required


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"adaptation": {"choice": "lora", "reason": "  "}}, "adaptation.reason is empty"),
        ({"adaptation": {"choice": "finetune", "reason": "x"}}, "value of choice must be one of"),
        ({"standard_files": ["../outside.txt"]}, "relative path inside the bundle"),
        ({"plan_files": ["/etc/passwd"]}, "relative path inside the bundle"),
        ({"hosts": ["../up"]}, "cannot name a sub-folder"),
    ],
)
def test_runbook_refuses_bad_input(
    tmp_path: Path, bundle: Path, extra: dict[str, Any], message: str
) -> None:
    result = _runbook(tmp_path, bundle, **extra)
    assert result["failed"] is True and message in result["msg"]
    assert not (bundle / "open_llm_runbook.json").exists()


def test_page_shows_the_runbook(tmp_path: Path, bundle: Path) -> None:
    _runbook(tmp_path, bundle, standard_files=["gpu_plan.md", "shutdown_proof.json"])
    _index(tmp_path, bundle)
    section = _section((bundle / "index.md").read_text(encoding="utf-8"), "Required evidence")
    assert "Runtime: vllm-cpu: mini-gpt2-lab runs on the CPU route" in section
    assert "Adaptation: none: served as trained" in section
    assert "| [gpu_plan.md](gpu_plan.md) | standard | gpu_plan.md |" in section
    assert "| shutdown_proof.json | standard | MISSING |" in section


def test_index_module_without_matplotlib_says_what_to_install(tmp_path: Path, bundle: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "matplotlib").mkdir()
    (blocker / "matplotlib" / "__init__.py").write_text(
        "raise ImportError('blocked')\n", encoding="utf-8"
    )
    file = tmp_path / "args.json"
    args = {"path": str(bundle), "run_id": "run1", "inventory": "lab"}
    file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}), encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=f"{blocker}{os.pathsep}{ROOT / 'collections'}")
    out = subprocess.run(
        [sys.executable, str(MODULES / "evidence_index.py"), str(file)],
        capture_output=True,
        text=True,
        env=env,
    )
    result = json.loads(out.stdout)
    assert result["failed"] is True and "matplotlib" in result["msg"]
    assert ei.PLOTS_ERROR is None  # this venv has it
    assert rb.RUNBOOK == "open_llm_runbook.json"


def test_page_summarises_the_run_ledger(tmp_path: Path, bundle: Path) -> None:
    ledger = {
        "invocations": [
            {
                "playbook": "playbooks/lab.yml",
                "user": "alice",
                "control_host": "ctl",
                "git": {"sha": "a" * 40, "dirty": True},
            },
            {
                "playbook": "playbooks/teardown.yml",
                "user": "alice",
                "control_host": "ctl",
                "git": {"sha": "a" * 40, "dirty": True},
            },
        ]
    }
    (bundle / "run_ledger.json").write_text(json.dumps(ledger), encoding="utf-8")
    _index(tmp_path, bundle)
    summary = _section((bundle / "index.md").read_text(encoding="utf-8"), "Summary")
    assert f"| Commit | {'a' * 40} (uncommitted changes) |" in summary
    assert "| Run by | alice on ctl |" in summary
    assert "| Playbooks | playbooks/lab.yml, playbooks/teardown.yml |" in summary
    assert "Run ledger" not in summary


def test_page_without_a_ledger_says_the_callback_was_off(tmp_path: Path, bundle: Path) -> None:
    _index(tmp_path, bundle)
    summary = _section((bundle / "index.md").read_text(encoding="utf-8"), "Summary")
    assert (
        "| Run ledger | Not in this run (the evidence_ledger callback was not enabled) |" in summary
    )
