"""The evidence role, run for real on localhost: bad inputs are refused all at once, each
naming the variable, before anything is written; evidence_fail_on_missing fails only
after the bundle is written and sealed."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from role_runner import run_role

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
    assert "evidence refused the inputs before writing anything" in text
    assert "is not the bundle of run 'run1'" in text
    assert "evidence_runtime is empty" in text
    assert "evidence_adaptation.reason is empty (choice: rag)" in text
    assert "required evidence '/etc/shadow' must be a path relative to the bundle" in text
    assert "required evidence '../outside.txt' must be a path relative to the bundle" in text
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
