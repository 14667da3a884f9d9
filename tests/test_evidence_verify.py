"""scripts/verify_evidence.py, the auditor's check (make verify-evidence RUN=...): an intact
bundle passes; a tampered, missing or added file is named and the exit code is non-zero."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "verify_evidence.py"
FIXTURE = ROOT / "tests" / "data" / "evidence_fixture"

from ansible_collections.llmhost.core.plugins.module_utils.evidence_bundle import (  # noqa: E402
    seal,
)


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """A sealed copy of the trimmed lab bundle."""
    root = Path(shutil.copytree(FIXTURE, tmp_path / "20261123T010656Z-4500af7b9c75"))
    seal(root)
    return root


def _verify(*args: str) -> subprocess.CompletedProcess[str]:
    # The auditor's interpreter: any python3, outside the venv and without Ansible.
    return subprocess.run(
        ["/usr/bin/env", "-i", "PATH=/usr/bin:/bin", "python3", str(SCRIPT), *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_intact_bundle_passes(bundle: Path) -> None:
    out = _verify(str(bundle))
    assert out.returncode == 0, out.stdout + out.stderr
    count = len((bundle / "MANIFEST.sha256").read_text(encoding="utf-8").splitlines())
    assert out.stdout.strip() == f"OK: {count} files match {bundle}/MANIFEST.sha256"


def test_tampered_missing_and_extra_files_are_each_reported(bundle: Path) -> None:
    log = bundle / "openllm_gpu_training_run" / "training_log.csv"
    log.write_text(
        log.read_text(encoding="utf-8").replace("5.947486", "4.947486"), encoding="utf-8"
    )
    (bundle / "gpu_plan.md").unlink()
    (bundle / "notes.txt").write_text("added after sealing\n", encoding="utf-8")
    out = _verify(str(bundle))
    assert out.returncode == 1
    lines = out.stdout.splitlines()
    assert "CHANGED: openllm_gpu_training_run/training_log.csv" in lines
    assert "MISSING: gpu_plan.md" in lines
    assert "EXTRA: notes.txt" in lines
    assert lines[-1] == f"FAILED: {bundle} does not match MANIFEST.sha256 (3 problems)"


@pytest.mark.parametrize("kind", ["changed", "missing", "extra", "symlink", "manifest line"])
def test_any_single_problem_fails(bundle: Path, kind: str) -> None:
    if kind == "changed":
        (bundle / "compute_route.md").write_text("# edited\n", encoding="utf-8")
    elif kind == "missing":
        (bundle / "openllm_gpu_training_run" / "RUN_KIND").unlink()
    elif kind == "extra":
        (bundle / "openllm_gpu_training_run" / "extra.bin").write_bytes(b"\0")
    elif kind == "symlink":
        (bundle / "passwd").symlink_to("/etc/passwd")
    else:
        with (bundle / "MANIFEST.sha256").open("a", encoding="utf-8") as handle:
            handle.write("garbage\n")
    assert _verify(str(bundle)).returncode == 1


def test_unsealed_bundle_and_missing_folder_are_usage_errors(bundle: Path, tmp_path: Path) -> None:
    (bundle / "MANIFEST.sha256").unlink()
    out = _verify(str(bundle))
    assert out.returncode == 2 and "never sealed" in out.stderr
    assert _verify(str(tmp_path / "absent")).returncode == 2


def test_missing_required_evidence_is_a_note_or_with_require_complete_a_failure(
    bundle: Path,
) -> None:
    runbook = {"missing": ["shutdown_proof.json", "load_test.json"], "complete": False}
    (bundle / "open_llm_runbook.json").write_text(json.dumps(runbook), encoding="utf-8")
    seal(bundle)
    out = _verify(str(bundle))
    assert out.returncode == 0
    note = "note: required evidence missing (open_llm_runbook.json): "
    assert note + "shutdown_proof.json, load_test.json" in out.stdout
    assert _verify("--require-complete", str(bundle)).returncode == 1
