"""llmhost.core.evidence_write: evidence straight into the bundle, never overwritten."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ansible_collections.llmhost.core.plugins.action import evidence_write


def test_text_gets_a_final_newline_and_data_stable_json() -> None:
    assert evidence_write.render("a") == "a\n"
    assert evidence_write.render("a\n") == "a\n"
    assert evidence_write.render({"b": 1, "a": [2]}) == evidence_write.render({"a": [2], "b": 1})
    assert json.loads(evidence_write.render({"b": 1})) == {"b": 1}
    with pytest.raises(TypeError, match="content must be"):
        evidence_write.render(3)


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "a/b", "a\\b", "x\0"])
def test_a_name_never_leaves_the_bundle_folder(name: str) -> None:
    with pytest.raises(ValueError, match="plain name"):
        evidence_write.safe_name(name)


def test_one_host_writes_flat_several_write_per_host() -> None:
    assert evidence_write.target_dir("/b", "h1", ["h1"]) == Path("/b")
    assert evidence_write.target_dir("/b", "h1", ["h1", "h2"]) == Path("/b/h1")


def test_written_once_then_kept(tmp_path: Path) -> None:
    folder = tmp_path / "bundle"
    written, kept = evidence_write.write_new(folder, {"r.json": {"v": 1}, "n.md": "# n"}, 0o640)
    assert sorted(Path(p).name for p in written) == ["n.md", "r.json"]
    assert kept == []
    assert oct((folder / "r.json").stat().st_mode & 0o777) == "0o640"
    written, kept = evidence_write.write_new(folder, {"r.json": {"v": 2}}, 0o640)
    assert written == []
    assert kept == [str(folder / "r.json")]
    assert json.loads((folder / "r.json").read_text(encoding="utf-8")) == {"v": 1}
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]


def test_empty_files_only_make_the_folder_0750(tmp_path: Path) -> None:
    folder = tmp_path / "evidence" / "lab" / "run-1"
    assert evidence_write.write_new(folder, {}, 0o644) == ([], [])
    assert folder.is_dir() and not list(folder.iterdir())
    for made in (folder, folder.parent, folder.parent.parent):
        assert oct(made.stat().st_mode & 0o777) == "0o750", made
    tmp_path.chmod(0o755)
    evidence_write.write_new(folder, {}, 0o644)  # an existing folder is left as it is
    assert oct(tmp_path.stat().st_mode & 0o777) == "0o755"
