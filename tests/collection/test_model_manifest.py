"""llmhost.core.model_manifest: manifests in sha256sum format, verified against a recorded
manifest or a list of expected files; corruption, truncation, loss and additions named."""

from __future__ import annotations

import grp
import hashlib
import json
import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ansible_collections.llmhost.core.plugins.modules import model_manifest as mm

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "collections/ansible_collections/llmhost/core/plugins/modules/model_manifest.py"


def _model(root: Path) -> Path:
    """A small HF-style folder with a sub-folder."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text('{"model_type": "gpt2"}\n', encoding="utf-8")
    (root / "tokenizer.json").write_text('{"version": "1.0"}\n', encoding="utf-8")
    (root / "model.safetensors").write_bytes(bytes(range(256)) * 16)
    (root / "original").mkdir(exist_ok=True)
    (root / "original" / "params.json").write_text('{"dim": 64}\n', encoding="utf-8")
    return root


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_scan_lists_files_sorted_with_size_and_sha256(tmp_path: Path) -> None:
    root = _model(tmp_path / "m")
    files, dirs, special = mm.scan(root)
    assert [f["path"] for f in files] == [
        "config.json",
        "model.safetensors",
        "original/params.json",
        "tokenizer.json",
    ]
    assert dirs == ["original"]
    assert special == []
    weights = next(f for f in files if f["path"] == "model.safetensors")
    assert weights["size"] == 4096
    assert weights["sha256"] == _sha(bytes(range(256)) * 16)


def test_manifest_text_is_what_sha256sum_checks(tmp_path: Path) -> None:
    root = _model(tmp_path / "m")
    files, _, _ = mm.scan(root)
    text = mm.manifest_text(files)
    config_sha = _sha((root / "config.json").read_bytes())
    assert text.splitlines()[0] == f"{config_sha}  config.json"
    (root / "check.sha256").write_text(text, encoding="utf-8")
    if shutil.which("sha256sum"):
        out = subprocess.run(
            ["sha256sum", "--strict", "-c", "check.sha256"],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
        )
        assert out.returncode == 0, out.stdout + out.stderr
    assert mm.parse_manifest(text) == {f["path"]: f["sha256"] for f in files}


def test_manifest_sha256_is_independent_of_order_and_location(tmp_path: Path) -> None:
    a = mm.inspect(str(_model(tmp_path / "a")))
    b = mm.inspect(str(_model(tmp_path / "elsewhere" / "b")))
    assert a["manifest_sha256"] == b["manifest_sha256"]
    assert a["manifest_sha256"] == mm.text_sha256(mm.manifest_text(reversed(a["files"])))
    (tmp_path / "elsewhere" / "b" / "config.json").write_text("{}\n", encoding="utf-8")
    assert mm.inspect(str(tmp_path / "elsewhere" / "b"))["manifest_sha256"] != a["manifest_sha256"]


def test_recorded_manifest_files_are_left_out(tmp_path: Path) -> None:
    root = _model(tmp_path / "m")
    before = mm.inspect(str(root))
    (root / ".llmhost-manifest.sha256").write_text(before["manifest_text"], encoding="utf-8")
    (root / ".llmhost-manifest.json").write_text("{}", encoding="utf-8")
    after = mm.inspect(str(root), manifest=str(root / ".llmhost-manifest.sha256"))
    assert after["manifest_text"] == before["manifest_text"]
    assert after["verified"] is True
    assert after["manifest_current"] is True
    assert after["reference"] == "manifest"


def test_intact_folder_verifies_against_manifest_and_expected(tmp_path: Path) -> None:
    source = mm.inspect(str(_model(tmp_path / "src")), follow=True)
    copy = _model(tmp_path / "dst")
    (copy / ".llmhost-manifest.sha256").write_text(source["manifest_text"], encoding="utf-8")
    result = mm.inspect(
        str(copy), manifest=str(copy / ".llmhost-manifest.sha256"), expected=source["files"]
    )
    assert result["reference"] == "both"
    assert result["verified"] is True
    assert (result["mismatched"], result["missing"], result["extra"]) == ([], [], [])
    assert result["file_count"] == 4
    assert result["total_bytes"] == sum(f["size"] for f in source["files"])


def test_corrupt_truncated_missing_and_extra_files_are_named(tmp_path: Path) -> None:
    source = mm.inspect(str(_model(tmp_path / "src")))
    copy = _model(tmp_path / "dst")
    manifest = copy / ".llmhost-manifest.sha256"
    manifest.write_text(source["manifest_text"], encoding="utf-8")
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[100] ^= 0xFF  # same size, one flipped byte
    weights.write_bytes(bytes(data))
    (copy / "tokenizer.json").write_bytes(b'{"ver')  # truncated
    (copy / "original" / "params.json").unlink()
    (copy / "pytorch_model.bin").write_bytes(b"stray weights")
    for kwargs in (
        {"manifest": str(manifest)},
        {"expected": source["files"]},
        {"manifest": str(manifest), "expected": source["files"]},
    ):
        result = mm.inspect(str(copy), **kwargs)
        assert result["verified"] is False
        assert result["mismatched"] == ["model.safetensors", "tokenizer.json"]
        assert result["missing"] == ["original/params.json"]
        assert result["extra"] == ["pytorch_model.bin"]
    assert mm.inspect(str(copy), manifest=str(manifest))["manifest_current"] is False


def test_size_only_and_git_blob_expectations(tmp_path: Path) -> None:
    root = _model(tmp_path / "m")
    content = (root / "config.json").read_bytes()
    blob = hashlib.sha1(b"blob %d\0" % len(content) + content, usedforsecurity=False)
    expected = [
        {"path": "config.json", "size": len(content), "git_sha1": blob.hexdigest()},
        {"path": "model.safetensors", "size": 4096},
        {"path": "tokenizer.json", "size": (root / "tokenizer.json").stat().st_size},
        {"path": "original/params.json", "size": 12, "sha256": None},
    ]
    assert mm.inspect(str(root), expected=expected)["verified"] is True
    # Same size, other content: only the git blob id can tell.
    (root / "config.json").write_bytes(content.replace(b"gpt2", b"gptX"))
    result = mm.inspect(str(root), expected=expected)
    assert result["mismatched"] == ["config.json"]
    # A size check catches truncation even without any hash.
    (root / "model.safetensors").write_bytes(b"\0" * 10)
    assert mm.inspect(str(root), expected=expected)["mismatched"] == [
        "config.json",
        "model.safetensors",
    ]


def test_git_blob_sha1_matches_git(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    path.write_bytes(b"hello\n")
    # `git hash-object` of "hello\n"
    assert mm.git_blob_sha1(path) == "ce013625030ba8dba906f756967f9e9ca394464a"


def test_missing_folder_is_reported_not_raised(tmp_path: Path) -> None:
    result = mm.inspect(
        str(tmp_path / "nope"), expected=[{"path": "config.json", "size": 3, "sha256": "a" * 64}]
    )
    assert result["exists"] is False
    assert result["verified"] is False
    assert result["missing"] == ["config.json"]
    assert result["files"] == []


def test_no_reference_means_not_verified(tmp_path: Path) -> None:
    root = _model(tmp_path / "m")
    result = mm.inspect(str(root), manifest=str(root / ".llmhost-manifest.sha256"))
    assert result["recorded"] is False
    assert result["reference"] == "none"
    assert result["verified"] is False


def test_exclude_patterns_skip_bookkeeping(tmp_path: Path) -> None:
    root = _model(tmp_path / "m")
    cache = root / ".cache" / "huggingface" / "download"
    cache.mkdir(parents=True)
    (cache / "model.safetensors.incomplete").write_bytes(b"partial")
    paths = [f["path"] for f in mm.inspect(str(root), exclude=[".cache/huggingface/*"])["files"]]
    assert not any(p.startswith(".cache/") for p in paths)
    paths = [f["path"] for f in mm.inspect(str(root))["files"]]
    assert ".cache/huggingface/download/model.safetensors.incomplete" in paths


def test_symlinks_followed_on_request_else_flagged(tmp_path: Path) -> None:
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    (blobs / "abc").write_bytes(b"weights")
    snap = tmp_path / "snapshot"
    snap.mkdir()
    (snap / "model.safetensors").symlink_to(blobs / "abc")
    followed = mm.inspect(str(snap), follow=True)
    assert followed["files"] == [
        {"path": "model.safetensors", "size": 7, "sha256": _sha(b"weights")}
    ]
    strict = mm.inspect(str(snap), expected=followed["files"])
    assert strict["special"] == ["model.safetensors"]
    assert strict["mismatched"] == ["model.safetensors"]
    assert strict["verified"] is False


def test_symlink_loop_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "m"
    root.mkdir()
    (root / "loop").symlink_to(root)
    with pytest.raises(mm.ManifestError, match="loop"):
        mm.scan(root, follow=True)


@pytest.mark.parametrize(
    "text",
    [
        "not a manifest line\n",
        f"{'a' * 64}  ../../etc/passwd\n",
        f"{'a' * 64}  /etc/passwd\n",
        f"{'A' * 64}  config.json\n",
    ],
)
def test_bad_manifest_lines_are_refused(text: str) -> None:
    with pytest.raises(mm.ManifestError):
        mm.parse_manifest(text)


def test_unsafe_expected_paths_are_refused(tmp_path: Path) -> None:
    with pytest.raises(mm.ManifestError, match="unsafe"):
        mm.inspect(str(tmp_path), expected=[{"path": "../x", "size": 1}])
    with pytest.raises(mm.ManifestError, match="no size"):
        mm.inspect(str(tmp_path), expected=[{"path": "x"}])


def test_drift_names_entries_with_wrong_owner_or_mode(tmp_path: Path) -> None:
    root = _model(tmp_path / "m")
    owner = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    for path in [root, root / "original"]:
        path.chmod(0o750)
    for f in root.rglob("*"):
        if f.is_file():
            f.chmod(0o640)
    result = mm.inspect(str(root), owner=owner, group=group, file_mode="0640", dir_mode="0750")
    assert result["drift"] == []
    (root / "config.json").chmod(0o644)
    root.chmod(0o755)
    result = mm.inspect(str(root), owner=owner, group=group, file_mode="0640", dir_mode="0750")
    assert result["drift"] == [".", "config.json"]
    missing_group = mm.inspect(str(root), group="llmhost-no-such-group-x")
    assert len(missing_group["drift"]) == 1 + 1 + 4  # the root, one sub-folder, 4 files
    with pytest.raises(mm.ManifestError, match="octal"):
        mm.inspect(str(root), file_mode="rw-r-----")


def test_module_runs_as_ansible_would(tmp_path: Path) -> None:
    """The module file run standalone with its arguments, as AnsiballZ does."""
    root = _model(tmp_path / "m")
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"path": str(root)}}), encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "collections"))
    out = subprocess.run(
        [sys.executable, str(MODULE), str(args)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    result = json.loads(out.stdout)
    assert result["changed"] is False
    assert result["file_count"] == 4
    assert result["reference"] == "none"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"path": "relative"}}), encoding="utf-8")
    out = subprocess.run(
        [sys.executable, str(MODULE), str(args)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert json.loads(out.stdout)["failed"] is True


def test_hub_siblings_are_accepted_as_expected(tmp_path: Path) -> None:
    """The hub's ?blobs=true siblings: LFS files by sha256, others by git blob id."""
    root = _model(tmp_path / "m")
    weights = (root / "model.safetensors").read_bytes()
    config = (root / "config.json").read_bytes()
    siblings = [
        {
            "rfilename": "model.safetensors",
            "size": len(weights),
            "blobId": "0" * 40,  # the id of the LFS pointer, not of the content
            "lfs": {"size": len(weights), "sha256": _sha(weights), "pointerSize": 134},
        },
        {
            "rfilename": "config.json",
            "size": len(config),
            "blobId": hashlib.sha1(
                b"blob %d\0" % len(config) + config, usedforsecurity=False
            ).hexdigest(),
        },
        {"rfilename": "README.md", "size": 10, "blobId": "1" * 40},
    ]
    result = mm.inspect(str(root), expected=siblings, include=["*.safetensors", "*.json"])
    assert result["expected_count"] == 2  # README.md is outside the patterns
    assert result["expected_bytes"] == len(weights) + len(config)
    assert result["missing"] == []
    # tokenizer.json and original/params.json are on disk but not in the reference
    assert result["extra"] == ["original/params.json", "tokenizer.json"]
    assert result["mismatched"] == []
    everything = mm.inspect(str(root), expected=siblings)
    assert everything["missing"] == ["README.md"]
    assert everything["fetch"] == ["README.md"]
    assert everything["fetch_bytes"] == 10


def test_fetch_lists_what_must_come_again_with_its_size(tmp_path: Path) -> None:
    source = mm.inspect(str(_model(tmp_path / "src")))
    copy = _model(tmp_path / "dst")
    (copy / "model.safetensors").write_bytes(b"\0" * 4096)
    (copy / "config.json").unlink()
    result = mm.inspect(str(copy), expected=source["files"])
    assert result["fetch"] == ["config.json", "model.safetensors"]
    sizes = {f["path"]: f["size"] for f in source["files"]}
    assert result["fetch_bytes"] == sizes["config.json"] + sizes["model.safetensors"]
    fresh = mm.inspect(str(tmp_path / "new"), expected=source["files"])
    assert fresh["fetch_bytes"] == fresh["expected_bytes"] == source["total_bytes"]
