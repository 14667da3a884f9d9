"""llmhost.core evidence_bundle (module_utils) and the evidence_manifest module: the bundle's
MANIFEST.sha256 is what sha256sum checks, is rewritten only when it changes, and a changed,
missing, added or odd file is named."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.llmhost.core.plugins.module_utils import evidence_bundle as eb

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "collections/ansible_collections/llmhost/core/plugins/modules/evidence_manifest.py"


def _bundle(root: Path) -> Path:
    (root / "openllm_gpu_training_run").mkdir(parents=True)
    (root / "environment_report.json").write_text('{"route": "local_cpu"}\n', encoding="utf-8")
    (root / "compute_route.md").write_text("# Compute route\n", encoding="utf-8")
    (root / "openllm_gpu_training_run" / "training_log.csv").write_text(
        "step,loss\n1,7.6\n2,7.5\n", encoding="utf-8"
    )
    (root / "openllm_gpu_training_run" / "weights.bin").write_bytes(bytes(range(256)) * 64)
    return root


def _module(tmp_path: Path, **args: Any) -> dict[str, Any]:
    """The module file run standalone with its arguments, as AnsiballZ does."""
    file = tmp_path / "args.json"
    file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}), encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "collections"))
    out = subprocess.run(
        [sys.executable, str(MODULE), str(file)], capture_output=True, text=True, env=env
    )
    return json.loads(out.stdout)


def test_scan_lists_regular_files_sorted_without_the_top_manifest(tmp_path: Path) -> None:
    root = _bundle(tmp_path / "b")
    (root / eb.MANIFEST_NAME).write_text("old\n", encoding="utf-8")
    (root / "openllm_gpu_training_run" / eb.MANIFEST_NAME).write_text("x\n", encoding="utf-8")
    (root / "link").symlink_to(root / "compute_route.md")
    (root / "dirlink").symlink_to(root / "openllm_gpu_training_run")
    files, special = eb.scan(root)
    assert files == [
        "compute_route.md",
        "environment_report.json",
        "openllm_gpu_training_run/MANIFEST.sha256",
        "openllm_gpu_training_run/training_log.csv",
        "openllm_gpu_training_run/weights.bin",
    ]
    assert special == ["dirlink", "link"]


def test_sealed_manifest_is_what_sha256sum_checks(tmp_path: Path) -> None:
    root = _bundle(tmp_path / "b")
    changed, text = eb.seal(root)
    assert changed is True
    assert text.splitlines()[0].endswith("  compute_route.md")
    out = subprocess.run(
        ["sha256sum", "--strict", "-c", eb.MANIFEST_NAME], cwd=root, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count(": OK") == 4
    assert (root / eb.MANIFEST_NAME).stat().st_mode & 0o777 == 0o644


def test_seal_again_changes_nothing_until_a_file_changes(tmp_path: Path) -> None:
    root = _bundle(tmp_path / "b")
    eb.seal(root)
    before = (root / eb.MANIFEST_NAME).stat().st_mtime_ns
    assert eb.seal(root)[0] is False
    assert (root / eb.MANIFEST_NAME).stat().st_mtime_ns == before
    (root / "new.txt").write_text("added\n", encoding="utf-8")
    changed, text = eb.seal(root)
    assert changed is True and "  new.txt\n" in text


def test_intact_bundle_verifies(tmp_path: Path) -> None:
    root = _bundle(tmp_path / "b")
    eb.seal(root)
    found = eb.verify(root)
    assert found.ok and found.checked == 4


def test_changed_missing_added_and_odd_entries_are_named(tmp_path: Path) -> None:
    root = _bundle(tmp_path / "b")
    eb.seal(root)
    weights = root / "openllm_gpu_training_run" / "weights.bin"
    data = bytearray(weights.read_bytes())
    data[100] ^= 1  # one flipped bit
    weights.write_bytes(bytes(data))
    (root / "compute_route.md").unlink()
    (root / "planted.txt").write_text("not in the manifest\n", encoding="utf-8")
    (root / "link").symlink_to("/etc/hostname")
    found = eb.verify(root)
    assert not found.ok
    assert found.mismatched == ["openllm_gpu_training_run/weights.bin"]
    assert found.missing == ["compute_route.md"]
    assert found.extra == ["planted.txt"]
    assert found.special == ["link"]
    assert found.checked == 2


def test_missing_manifest_is_not_ok(tmp_path: Path) -> None:
    found = eb.verify(_bundle(tmp_path / "b"))
    assert found.manifest_found is False and not found.ok


@pytest.mark.parametrize(
    "line",
    [
        "nothex  file.txt",
        "0123  file.txt",
        f"{'a' * 64} file.txt",  # one space: not sha256sum's text format
        f"{'A' * 64}  file.txt",
    ],
)
def test_malformed_manifest_lines_are_reported(tmp_path: Path, line: str) -> None:
    root = _bundle(tmp_path / "b")
    _, text = eb.seal(root)
    (root / eb.MANIFEST_NAME).write_text(text + line + "\n", encoding="utf-8")
    found = eb.verify(root)
    assert len(found.malformed) == 1 and not found.ok


def test_repeated_path_in_manifest_is_malformed(tmp_path: Path) -> None:
    root = _bundle(tmp_path / "b")
    _, text = eb.seal(root)
    (root / eb.MANIFEST_NAME).write_text(text + text.splitlines()[0] + "\n", encoding="utf-8")
    assert eb.verify(root).malformed


def test_names_sha256sum_would_escape_are_refused(tmp_path: Path) -> None:
    root = _bundle(tmp_path / "b")
    (root / "bad\\name").write_text("x", encoding="utf-8")
    with pytest.raises(ValueError, match="not allowed"):
        eb.manifest_text(root)


def test_write_if_changed_fixes_the_mode_and_leaves_identical_files(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    assert eb.write_if_changed(target, b"one\n", 0o644) is True
    assert eb.write_if_changed(target, b"one\n", 0o644) is False
    target.chmod(0o600)
    assert eb.differs(target, b"one\n", 0o644) is True
    assert eb.write_if_changed(target, b"one\n", 0o644) is True
    assert target.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]  # no temp file left


def test_module_writes_then_reports_no_change(tmp_path: Path) -> None:
    root = _bundle(tmp_path / "b")
    first = _module(tmp_path, path=str(root))
    assert first["changed"] is True and first["file_count"] == 4
    second = _module(tmp_path, path=str(root))
    assert second["changed"] is False
    assert second["manifest_sha256"] == first["manifest_sha256"]


def test_module_check_mode_writes_nothing(tmp_path: Path) -> None:
    root = _bundle(tmp_path / "b")
    result = _module(tmp_path, path=str(root), _ansible_check_mode=True)
    assert result["changed"] is True
    assert not (root / eb.MANIFEST_NAME).exists()


def test_module_verified_state_fails_on_a_tampered_bundle(tmp_path: Path) -> None:
    root = _bundle(tmp_path / "b")
    _module(tmp_path, path=str(root))
    assert _module(tmp_path, path=str(root), state="verified")["file_count"] == 4
    (root / "environment_report.json").write_text('{"route": "rented_gpu"}\n', encoding="utf-8")
    result = _module(tmp_path, path=str(root), state="verified")
    assert result["failed"] is True
    assert result["mismatched"] == ["environment_report.json"]
    assert "changed: environment_report.json" in result["msg"]


def test_module_refuses_a_missing_folder(tmp_path: Path) -> None:
    result = _module(tmp_path, path=str(tmp_path / "absent"))
    assert result["failed"] is True and "not a folder" in result["msg"]
