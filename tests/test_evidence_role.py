"""The evidence role, run for real on localhost: bad inputs are refused all at once, each
naming the variable, before anything is written; evidence_fail_on_missing fails only
after the bundle is written and sealed."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from role_runner import refused_vars, run_role

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "data" / "evidence_fixture"
ADAPTATION = {"choice": "none", "reason": "served as trained"}


def _bundle(tmp_path: Path, run_id: str = "run1") -> Path:
    return Path(shutil.copytree(FIXTURE, tmp_path / "evidence" / "lab" / run_id))


def _run(tmp_path: Path, **overrides: Any) -> Any:
    extra: dict[str, Any] = {
        "evidence_run_id": "run1",
        "evidence_dir": str(tmp_path / "evidence" / "lab" / "run1"),
        "evidence_inventory_name": "lab",
        "evidence_runtime": "vllm-cpu",
        "evidence_adaptation": ADAPTATION,
    }
    extra.update(overrides)
    return run_role(tmp_path, "evidence", extra, gather_facts=False)


def _listing(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


def test_bad_inputs_are_refused_together_before_writing(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path, "another-run")
    before = _listing(bundle)
    out = _run(
        tmp_path,
        evidence_dir=str(bundle),
        evidence_runtime=" ",
        evidence_adaptation={"choice": "rag", "reason": ""},
        evidence_gpu_plan={"evidence_to_copy_back": ["/etc/shadow"]},
        evidence_required_files=["../outside.txt", "gpu_plan.md"],
    )
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert refused_vars(text) == [
        "evidence_dir",
        "evidence_runtime",
        "evidence_adaptation.reason",
        "evidence_gpu_plan.evidence_to_copy_back / evidence_required_files",
    ], text
    flat = " ".join(text.split())
    assert f"evidence_dir: '{bundle}' is not the bundle of run 'run1'" in flat
    assert "evidence_runtime: is empty" in flat
    assert "evidence_adaptation.reason: is empty (choice: rag)" in flat
    assert "required evidence ['/etc/shadow', '../outside.txt'] must be paths relative" in flat
    assert _listing(bundle) == before


@pytest.mark.parametrize(
    ("overrides", "variable", "words"),
    [
        # The bundle's folder is named after the run id: both are refused.
        (
            {"evidence_run_id": "../run1"},
            "evidence_run_id evidence_dir",
            "is not a safe folder name",
        ),
        ({"evidence_inventory_name": "a b"}, "evidence_inventory_name", "is not a safe folder"),
        ({"evidence_dir": ""}, "evidence_dir", "is empty. Fix: set it to the run's bundle"),
        ({"evidence_dir": "evidence/lab/run1"}, "evidence_dir", "is not an absolute path"),
        (
            {"evidence_attestations": {"plp-nope": {"owner": "x", "date": "2026-12-01"}}},
            "evidence_attestations",
            "evidence_attestations: unknown item id 'plp-nope'",
        ),
        (
            {"evidence_readiness_required": ["dec-7-cycles"]},
            "evidence_readiness_required",
            "dec-7-cycles is n.a.",
        ),
        (
            {"evidence_gpu_plan": {"evidence_to_copy_back": "gpu_plan.md"}},
            "evidence_gpu_plan.evidence_to_copy_back",
            "must be a list of file names",
        ),
    ],
)
def test_each_input_rule_names_its_variable(
    tmp_path: Path, overrides: dict[str, Any], variable: str, words: str
) -> None:
    bundle = _bundle(tmp_path)
    before = _listing(bundle)
    out = _run(tmp_path, **overrides)
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert refused_vars(text) == variable.split(), text
    assert words in " ".join(text.split()), text
    assert _listing(bundle) == before


def test_missing_bundle_and_unknown_adaptation_are_refused(tmp_path: Path) -> None:
    out = _run(tmp_path)
    assert out.returncode != 0
    assert "is not a folder on the control node" in out.stdout + out.stderr
    _bundle(tmp_path)
    out = _run(tmp_path, evidence_adaptation={"choice": "finetune", "reason": "x"})
    assert out.returncode != 0
    assert "evidence_adaptation" in out.stdout and "finetune" in out.stdout
    assert not (tmp_path / "evidence" / "lab" / "run1" / "open_llm_runbook.json").exists()


def test_fail_on_missing_fails_after_sealing(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path)
    out = _run(
        tmp_path,
        evidence_fail_on_missing=True,
        evidence_required_files=["gpu_plan.md", "shutdown_proof.json"],
    )
    assert out.returncode != 0
    assert "lacks required evidence: shutdown_proof.json" in out.stdout
    assert "Verify: make verify-evidence RUN=evidence/lab/run1" in out.stdout
    for name in ("open_llm_runbook.json", "index.md", "index.html", "MANIFEST.sha256"):
        assert (bundle / name).is_file(), name
    manifest = (bundle / "MANIFEST.sha256").read_text(encoding="utf-8")
    assert "  open_llm_runbook.json\n" in manifest and "  plots/loss_curve.png\n" in manifest


def test_required_readiness_items_fail_after_sealing(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path)
    attest = {"owner": "ops", "date": "2026-12-01", "reference": "wiki/incident-runbook"}
    out = _run(
        tmp_path,
        evidence_attestations={"plp-comp-incident-runbook": attest},
        evidence_readiness_required=["plp-comp-incident-runbook", "dec-8-owner"],
    )
    assert out.returncode != 0
    flat = " ".join(out.stdout.split())
    assert "Required readiness items do not pass: dec-8-owner (evidence_readiness_required;" in flat
    manifest = (bundle / "MANIFEST.sha256").read_text(encoding="utf-8")
    assert "  readiness.json\n" in manifest and "  readiness.md\n" in manifest
    report = (bundle / "readiness.md").read_text(encoding="utf-8")
    assert "| plp-comp-incident-runbook |" in report and "attested by ops on 2026-12-01" in report
    assert "](readiness.md)" in (bundle / "index.md").read_text(encoding="utf-8")
