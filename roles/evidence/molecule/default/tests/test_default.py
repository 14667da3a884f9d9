"""testinfra checks of the evidence role on the control node: the manifest (sha256sum and
scripts/verify_evidence.py accept it), the runbook, the index pages and the plots, for
a complete run and for one without evaluation and training data."""

from __future__ import annotations

import json
import os
import re
import struct
from pathlib import Path

import pytest
import testinfra

ROOT = Path(os.environ["LLMHOST_ROOT"])
LAB = Path(os.environ["LLMHOST_EVIDENCE_DIR"]) / "lab"
FULL = LAB / "molecule"
PARTIAL = LAB / "molecule-partial"
PYTHON = ROOT / ".venv" / "bin" / "python"
LOCAL = testinfra.get_host("local://")


def _manifest_paths(bundle: Path) -> list[str]:
    text = (bundle / "MANIFEST.sha256").read_text(encoding="utf-8")
    return [line.split("  ", 1)[1] for line in text.splitlines()]


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def _runbook(bundle: Path) -> dict:
    return json.loads((bundle / "open_llm_runbook.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("bundle", [FULL, PARTIAL], ids=["full", "partial"])
def test_sha256sum_checks_the_manifest(bundle: Path) -> None:
    out = LOCAL.run(f"cd {bundle} && sha256sum --strict -c MANIFEST.sha256")
    assert out.rc == 0, out.stdout + out.stderr


@pytest.mark.parametrize("bundle", [FULL, PARTIAL], ids=["full", "partial"])
def test_manifest_names_every_file_but_itself_sorted(bundle: Path) -> None:
    listed = LOCAL.check_output(f"cd {bundle} && find . -type f ! -name MANIFEST.sha256")
    on_disk = sorted(line.removeprefix("./") for line in listed.splitlines())
    assert _manifest_paths(bundle) == on_disk


@pytest.mark.parametrize("bundle", [FULL, PARTIAL], ids=["full", "partial"])
def test_verify_command_accepts_the_bundle(bundle: Path) -> None:
    out = LOCAL.run(f"{PYTHON} {ROOT}/scripts/verify_evidence.py {bundle}")
    assert out.rc == 0, out.stdout + out.stderr
    assert f"{len(_manifest_paths(bundle))} files match" in out.stdout


def test_runbook_records_runtime_adaptation_and_required_evidence() -> None:
    book = _runbook(FULL)
    assert book["run_id"] == "molecule"
    assert book["runtime"]["choice"] == "vllm-cpu"
    assert book["runtime"]["decision"] == "cpu_only"
    assert book["adaptation"]["choice"] == "none"
    rows = {row["file"]: row for row in book["required_evidence"]}
    assert rows["environment_report.json"]["required_by"] == ["gpu_plan", "standard"]
    assert rows["eval_results.csv"]["present"] is True
    assert book["missing"] == [
        "openllm_gpu_training_run/mini_gpt2_checkpoint.pt",
        "shutdown_proof.json",
        "run_ledger.json",
    ]
    assert book["complete"] is False


def test_partial_runbook_lists_what_the_run_lacks() -> None:
    book = _runbook(PARTIAL)
    reason = "A fixed system prompt keeps the answers short."
    assert book["adaptation"] == {"choice": "prompt", "reason": reason}
    for name in (
        "eval_cases.csv",
        "eval_results.csv",
        "load_test.json",
        "openllm_gpu_training_run/training_log.csv",
    ):
        assert name in book["missing"]


def test_full_run_has_both_plots() -> None:
    for name in ("loss_curve.png", "latency.png"):
        width, height = _png_size(FULL / "plots" / name)
        assert (width, height) == (800, 400)


def test_partial_run_has_no_plots_and_says_so() -> None:
    assert not (PARTIAL / "plots").exists()
    page = (PARTIAL / "index.md").read_text(encoding="utf-8")
    for section in ("Training loss", "Latency", "Evaluation", "Comparison with the previous run"):
        body = page.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
        assert "Not in this run" in body, section


@pytest.mark.parametrize("bundle", [FULL, PARTIAL], ids=["full", "partial"])
def test_html_links_every_file_and_shows_existing_images(bundle: Path) -> None:
    page = (bundle / "index.html").read_text(encoding="utf-8")
    hrefs = set(re.findall(r'href="([^"]+)"', page))
    assert set(_manifest_paths(bundle)) | {"MANIFEST.sha256"} <= hrefs
    for src in re.findall(r'<img src="([^"]+)"', page):
        assert (bundle / src).is_file(), src
    assert "<script" not in page


def test_full_page_has_the_eval_table_and_the_comparison() -> None:
    page = (FULL / "index.md").read_text(encoding="utf-8")
    assert "| Evaluation | 4 of 5 cases passed |" in page
    assert re.search(r"^\| long-prompt \| FAIL \|", page, re.M)
    assert "Previous run of inventory lab: 20261123T002024Z-09d77645479b" in page
    assert "| pass -> FAIL | long-prompt |" in page
    assert "![Latency distribution](plots/latency.png)" in page
