"""llmhost.core.pip_wheelhouse: pins enforced, manifest verified, corruption detected."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from ansible_collections.llmhost.core.plugins.modules import pip_wheelhouse as wh

REQS = ["torch==2.13.0  # cpu", "", "# comment", "numpy==2.4.6", "molecule-plugins[docker]==1.0"]


def test_clean_requirements_drops_comments_and_sorts() -> None:
    assert wh.clean_requirements(REQS) == [
        "molecule-plugins[docker]==1.0",
        "numpy==2.4.6",
        "torch==2.13.0",
    ]


def test_unpinned_requirements_are_named() -> None:
    assert wh.unpinned(["a==1", "b>=2", "c", "d==1.*", "e[x]==3"]) == ["b>=2", "c", "d==1.*"]


def test_key_depends_on_python_and_platform() -> None:
    reqs = wh.clean_requirements(REQS)
    base = wh.wheelhouse_key(reqs, "3.11", ["manylinux_2_28_x86_64"])
    assert base == wh.wheelhouse_key(list(reqs), "3.11", ["manylinux_2_28_x86_64"])
    assert base != wh.wheelhouse_key(reqs, "3.12", ["manylinux_2_28_x86_64"])
    assert base != wh.wheelhouse_key(reqs, "3.11", ["manylinux_2_28_aarch64"])
    assert base != wh.wheelhouse_key(reqs[:1], "3.11", ["manylinux_2_28_x86_64"])


def test_download_command_targets_the_host(tmp_path: Path) -> None:
    cmd = wh.download_command(
        "python3", tmp_path, tmp_path / "r.txt", "3.12", ["p1", "p2"], ["--extra-index-url", "X"]
    )
    assert cmd[:4] == ["python3", "-m", "pip", "download"]
    assert "--only-binary=:all:" in cmd
    assert cmd[cmd.index("--python-version") + 1] == "3.12"
    assert [cmd[i + 1] for i, a in enumerate(cmd) if a == "--platform"] == ["p1", "p2"]
    assert cmd[-2:] == ["--extra-index-url", "X"]


def test_verify_accepts_intact_and_rejects_missing_or_corrupt(tmp_path: Path) -> None:
    (tmp_path / "a-1-py3-none-any.whl").write_bytes(b"wheel a")
    (tmp_path / "b-2-py3-none-any.whl").write_bytes(b"wheel b")
    manifest = wh.write_manifest(tmp_path, "k1", ["a==1", "b==2"], "3.11")
    assert [w["file"] for w in manifest["wheels"]] == [
        "a-1-py3-none-any.whl",
        "b-2-py3-none-any.whl",
    ]
    assert json.loads((tmp_path / wh.MANIFEST).read_text())["key"] == "k1"
    assert wh.verify(tmp_path, "k1")[0] is True
    assert wh.verify(tmp_path, "k2")[1] == "requirements, Python version or platforms changed"
    (tmp_path / "b-2-py3-none-any.whl").write_bytes(b"tampered")
    ok, reason, _ = wh.verify(tmp_path, "k1")
    assert not ok and "sha256" in reason
    (tmp_path / "a-1-py3-none-any.whl").unlink()
    ok, reason, _ = wh.verify(tmp_path, "k1")
    assert not ok and "missing" in reason


def test_verify_without_manifest(tmp_path: Path) -> None:
    assert wh.verify(tmp_path, "k") == (False, "no manifest yet", None)


def test_prune_drops_everything_when_the_key_changes(tmp_path: Path) -> None:
    (tmp_path / "a-1-py3-none-any.whl").write_bytes(b"a")
    (tmp_path / "b-2-py3-none-any.whl").write_bytes(b"b")
    wh.write_manifest(tmp_path, "old", ["a==1", "b==2"], "3.11")
    assert wh.prune(tmp_path, "new") == ["a-1-py3-none-any.whl", "b-2-py3-none-any.whl"]
    assert not list(tmp_path.iterdir())


def test_prune_keeps_good_wheels_and_drops_corrupt_ones(tmp_path: Path) -> None:
    (tmp_path / "a-1-py3-none-any.whl").write_bytes(b"a")
    (tmp_path / "b-2-py3-none-any.whl").write_bytes(b"b")
    wh.write_manifest(tmp_path, "k", ["a==1", "b==2"], "3.11")
    (tmp_path / "b-2-py3-none-any.whl").write_bytes(b"partial")
    assert wh.prune(tmp_path, "k") == ["b-2-py3-none-any.whl"]
    assert [p.name for p in tmp_path.iterdir()] == ["a-1-py3-none-any.whl"]


def test_manylinux_platforms_cover_every_tag_the_host_accepts() -> None:
    tags = wh.manylinux_platforms("2.36", "x86_64")
    assert tags[0] == "manylinux_2_36_x86_64"
    for needed in (
        "manylinux_2_24_x86_64",
        "manylinux_2_17_x86_64",
        "manylinux_2_5_x86_64",
        "manylinux2014_x86_64",
        "manylinux1_x86_64",
        "linux_x86_64",
    ):
        assert needed in tags
    assert "manylinux_2_37_x86_64" not in tags
    old = wh.manylinux_platforms("2.12", "aarch64")
    assert "manylinux2014_aarch64" not in old
    assert "manylinux2010_aarch64" in old


def test_manylinux_platforms_refuse_nonsense() -> None:
    import pytest

    with pytest.raises(ValueError, match="glibc_version"):
        wh.manylinux_platforms("musl", "x86_64")


def test_archive_is_reproducible_and_complete(tmp_path: Path) -> None:
    import tarfile

    dest = tmp_path / "wh"
    dest.mkdir()
    (dest / "a-1-py3-none-any.whl").write_bytes(b"a")
    (dest / "requirements.txt").write_text("a==1\n")
    wh.write_manifest(dest, "k", ["a==1"], "3.11")
    first = wh.build_archive(dest).read_bytes()
    assert wh.archive_current(dest)
    second = wh.build_archive(dest).read_bytes()
    assert first == second
    with tarfile.open(dest.with_name("wh.tar")) as tar:
        assert sorted(tar.getnames()) == [
            ".llmhost-wheelhouse.json",
            "a-1-py3-none-any.whl",
            "requirements.txt",
        ]
        assert {m.mtime for m in tar.getmembers()} == {0}


def test_a_second_run_waits_for_the_lock_on_the_wheelhouse(tmp_path: Path) -> None:
    """Two runs sharing one wheelhouse (two hosts of a play, two playbooks) fill it one at
    a time: the second enters only after the first has left."""
    dest = tmp_path / "wheels"
    order: list[str] = []
    entered = threading.Event()

    def second() -> None:
        with wh.locked(dest):
            order.append("second in")
        entered.set()

    with wh.locked(dest):
        order.append("first in")
        other = threading.Thread(target=second)
        other.start()
        assert not entered.wait(0.5), "the second run entered while the first held the lock"
        order.append("first out")
    assert entered.wait(10)
    other.join()
    assert order == ["first in", "first out", "second in"]
    assert (tmp_path / "wheels.lock").is_file()
