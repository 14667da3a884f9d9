"""roles/backup/files/llmhost_backup_compare.py: a restore compared with its sources."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "roles/backup/files/llmhost_backup_compare.py"
OLD = 1_700_000_000  # 2023-11-14T22:13:20Z
SNAPSHOT = "2024-01-01T00:00:00.123456789+00:00"


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("llmhost_backup_compare", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


compare_mod = _module()


def _tree(tmp_path: Path) -> tuple[Path, Path]:
    """A source folder (files older than the snapshot) and its faithful restore."""
    src = tmp_path / "src" / "tls"
    src.mkdir(parents=True)
    (src / "gateway.key").write_text("KEY\n")
    (src / "sub").mkdir()
    (src / "sub" / "evidence.json").write_text("{}\n")
    for p in src.rglob("*"):
        os.utime(p, (OLD, OLD))
    restored = tmp_path / "restore"
    shutil.copytree(src, restored / str(src).lstrip("/"))
    return src, restored


def test_parse_time_reads_restic_times() -> None:
    assert compare_mod.parse_time("2024-01-01T00:00:00Z") == 1704067200.0
    assert compare_mod.parse_time(SNAPSHOT) == pytest.approx(1704067200.123456789)
    assert compare_mod.parse_time("2024-01-01T01:00:00.5+01:00") == pytest.approx(1704067200.5)
    with pytest.raises(ValueError, match="not an RFC 3339 time"):
        compare_mod.parse_time("yesterday")


def test_a_faithful_restore_matches(tmp_path: Path) -> None:
    src, restored = _tree(tmp_path)
    out = compare_mod.compare(restored, compare_mod.parse_time(SNAPSHOT), [str(src)])
    assert out == {
        "files_compared": 2,
        "bytes": 7,
        "skipped_changed": 0,
        "skipped_gone": 0,
        "mismatches": [],
    }


def test_a_tampered_or_missing_file_is_a_mismatch(tmp_path: Path) -> None:
    src, restored = _tree(tmp_path)
    copy = restored / str(src).lstrip("/")
    (copy / "gateway.key").write_text("NOT THE KEY\n")
    (copy / "sub" / "evidence.json").unlink()
    out = compare_mod.compare(restored, compare_mod.parse_time(SNAPSHOT), [str(src)])
    assert out["mismatches"] == [
        {"path": str(src / "gateway.key"), "reason": "sha256 differs from the source"},
        {"path": str(src / "sub" / "evidence.json"), "reason": "missing from the restore"},
    ]
    assert "KEY" not in json.dumps(out["mismatches"]).replace("gateway.key", "")


def test_files_changed_since_the_snapshot_or_gone_are_skipped(tmp_path: Path) -> None:
    src, restored = _tree(tmp_path)
    (src / "gateway.key").write_text("ROTATED\n")  # mtime now: after the snapshot
    (src / "sub" / "evidence.json").unlink()
    (src / "new.txt").write_text("new\n")  # not in the snapshot yet
    out = compare_mod.compare(restored, compare_mod.parse_time(SNAPSHOT), [str(src)])
    assert out["files_compared"] == 0
    assert out["skipped_changed"] == 2
    assert out["skipped_gone"] == 1
    assert out["mismatches"] == []


def test_the_command_prints_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, restored = _tree(tmp_path)
    argv = [
        "--restored",
        str(restored),
        "--snapshot-time",
        SNAPSHOT,
        str(src),
        str(tmp_path / "no"),
    ]
    assert compare_mod.main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["files_compared"] == 2 and out["mismatches"] == []
