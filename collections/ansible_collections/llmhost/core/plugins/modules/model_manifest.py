#!/usr/bin/python
"""llmhost.core.model_manifest: sha256 manifest of a model folder, verified against a reference."""
# Ansible layout: the documentation blocks come before the imports.
# ruff: noqa: E402

from __future__ import annotations

DOCUMENTATION = r"""
---
module: model_manifest
short_description: Compute a model folder's sha256 manifest and verify it against a reference
version_added: 0.1.0
description:
  - Walks O(path) and computes the sha256 and size of every regular file. The manifest
    is the list of C(<sha256>  <relative path>) lines sorted by path, the format of
    C(sha256sum), so C(sha256sum -c) can check the folder by hand.
  - Verifies the folder against a recorded manifest file (O(manifest)), against a list
    of expected files (O(expected), for example the hub's metadata of a pinned commit or
    the manifest of the source folder on the control node), or both. It reports the
    files that differ (RV(mismatched)), are missing (RV(missing)) or are not in the
    reference (RV(extra)).
  - "Symbolic links and other non-regular files are never hashed when O(follow=false):
    one at an expected path counts as mismatched, any other one as extra."
  - Files whose names start with C(.llmhost-manifest) (the recorded manifest and its
    JSON record) are never part of the manifest.
  - With O(owner), O(group), O(file_mode) or O(dir_mode) it also lists the entries whose
    ownership or mode differ (RV(drift)). It changes nothing; supports check mode.
author:
  - llmhost project
options:
  path:
    description: Absolute path of the folder. A missing folder is reported, not an error.
    type: path
    required: true
  manifest:
    description:
      - A recorded manifest in C(sha256sum) format to verify against. A missing file is
        reported in RV(recorded) and makes RV(verified) false when it is the only reference.
    type: path
  expected:
    description:
      - "Files the folder must hold, each a dict with C(path) (relative), C(size) (bytes) and
        optionally C(sha256) and C(git_sha1) (the git blob id, which the hub reports for
        files not stored with LFS)."
      - An entry with neither hash is checked by size only.
      - "Entries of the hub's C(siblings) list (C(/api/models/<repo>/revision/<sha>?blobs=true))
        are accepted as they are: C(rfilename) is the path, C(lfs.sha256) the sha256 of an
        LFS file and C(blobId) the git blob id of any other."
    type: list
    elements: dict
  include:
    description:
      - Glob patterns (C(fnmatch), on the relative path); when given, only the entries of
        O(expected) that match one are expected (a download restricted to some files).
        Files on disk are not filtered, so a file outside the patterns is reported as extra.
    type: list
    elements: str
    default: []
  exclude:
    description:
      - Glob patterns (C(fnmatch), on the relative path) of files to leave out, for example
        a downloader's bookkeeping folder C(.cache/huggingface/*).
    type: list
    elements: str
    default: []
  follow:
    description: Follow symbolic links (for a source folder such as a hub cache snapshot).
    type: bool
    default: false
  owner:
    description: Expected owner (name) of every entry, for RV(drift).
    type: str
  group:
    description: Expected group (name) of every entry, for RV(drift).
    type: str
  file_mode:
    description: Expected mode of files as an octal string (C(0640)), for RV(drift).
    type: str
  dir_mode:
    description: Expected mode of folders, O(path) included, as an octal string (C(0750)).
    type: str
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Manifest of the model folder on the control node
  llmhost.core.model_manifest:
    path: "{{ playbook_dir }}/../evidence/lab/run1/openllm_gpu_training_run/hf_export"
    follow: true
  delegate_to: localhost
  register: source

- name: Verify the host's copy against it and its own recorded manifest
  llmhost.core.model_manifest:
    path: /srv/llmhost/models/mini-gpt2/local-0123456789ab
    manifest: /srv/llmhost/models/mini-gpt2/local-0123456789ab/.llmhost-manifest.sha256
    expected: "{{ source.files }}"
    owner: root
    group: llmhost
    file_mode: "0640"
    dir_mode: "0750"
  register: stored

- name: Refuse a damaged copy
  ansible.builtin.assert:
    that: stored.verified
    fail_msg: "damaged: {{ stored.mismatched + stored.missing }}"
"""

RETURN = r"""
path:
  description: The folder.
  returned: always
  type: str
exists:
  description: Whether the folder exists.
  returned: always
  type: bool
files:
  description: Every file, sorted by path, with C(path), C(size) and C(sha256).
  returned: always
  type: list
  elements: dict
  sample:
    - path: config.json
      size: 612
      sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
dirs:
  description: Every sub-folder, relative and sorted (parents first).
  returned: always
  type: list
  elements: str
file_count:
  description: Number of files.
  returned: always
  type: int
total_bytes:
  description: Size of all files.
  returned: always
  type: int
manifest_text:
  description: The manifest in C(sha256sum) format, one line per file, sorted by path.
  returned: always
  type: str
manifest_sha256:
  description: sha256 of RV(manifest_text); names the content as a whole.
  returned: always
  type: str
recorded:
  description: Whether O(manifest) exists and could be read.
  returned: always
  type: bool
manifest_current:
  description: Whether O(manifest) holds exactly RV(manifest_text).
  returned: always
  type: bool
reference:
  description: What the folder was verified against, C(manifest), C(expected), C(both) or C(none).
  returned: always
  type: str
verified:
  description:
    - True when a reference exists and nothing is mismatched, missing or extra. With both
      references, both must agree with the folder.
  returned: always
  type: bool
mismatched:
  description: Files whose content differs from the reference (or that are not regular files).
  returned: always
  type: list
  elements: str
missing:
  description: Files of the reference that are not in the folder.
  returned: always
  type: list
  elements: str
extra:
  description: Files in the folder that are not in the reference.
  returned: always
  type: list
  elements: str
fetch:
  description: RV(missing) and RV(mismatched) together, sorted; what must be fetched again.
  returned: always
  type: list
  elements: str
fetch_bytes:
  description: Size, by O(expected), of the files in RV(fetch) (0 without O(expected)).
  returned: always
  type: int
expected_bytes:
  description: Size of all expected files (0 without O(expected)).
  returned: always
  type: int
expected_count:
  description: Number of expected files (0 without O(expected)).
  returned: always
  type: int
special:
  description:
    - Entries that are neither regular files nor folders (with O(follow=false), symbolic links).
  returned: always
  type: list
  elements: str
drift:
  description: Entries (relative paths, C(.) for O(path) itself) whose owner, group or mode differ.
  returned: always
  type: list
  elements: str
"""

import fnmatch
import grp
import os
import pwd
import re
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ansible_collections.llmhost.core.plugins.module_utils import digests
from ansible_collections.llmhost.core.plugins.module_utils.digests import git_blob_sha1, sha256_file
from ansible_collections.llmhost.core.plugins.module_utils.module import (
    ModuleFailure,
    Request,
    run_module,
)

RESERVED_PREFIX = ".llmhost-manifest"


class ManifestError(ValueError):
    """A folder or manifest this module cannot describe faithfully."""


def _excluded(rel: str, patterns: Iterable[str]) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return name.startswith(RESERVED_PREFIX) or any(fnmatch.fnmatchcase(rel, p) for p in patterns)


def _check_name(rel: str) -> None:
    if "\n" in rel or "\\" in rel:
        raise ManifestError(
            f"file name {rel!r} holds a newline or a backslash, which a sha256sum manifest "
            "cannot record plainly: rename it"
        )


def scan(
    root: Path, exclude: Iterable[str] = (), follow: bool = False
) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """(files, dirs, special) of ``root``: files as {path, size, sha256}, sorted by path."""
    patterns = list(exclude)
    files: list[dict[str, Any]] = []
    dirs: list[str] = []
    special: list[str] = []
    seen: set[tuple[int, int]] = set()

    def walk(folder: Path, prefix: str) -> None:
        st = folder.stat()
        if (st.st_dev, st.st_ino) in seen:
            raise ManifestError(f"symbolic link loop at {folder}")
        seen.add((st.st_dev, st.st_ino))
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            rel = prefix + entry.name
            _check_name(rel)
            if entry.is_dir(follow_symlinks=follow):
                if any(fnmatch.fnmatchcase(rel + "/", p) for p in patterns):
                    continue
                dirs.append(rel)
                walk(Path(entry.path), rel + "/")
            elif _excluded(rel, patterns):
                continue
            elif entry.is_file(follow_symlinks=follow):
                path = Path(entry.path)
                files.append(
                    {"path": rel, "size": path.stat().st_size, "sha256": sha256_file(path)}
                )
            else:
                special.append(rel)
        seen.discard((st.st_dev, st.st_ino))

    walk(root, "")
    files.sort(key=lambda f: f["path"])
    return files, sorted(dirs), sorted(special)


def manifest_text(files: Iterable[Mapping[str, Any]]) -> str:
    """sha256sum format, sorted by path."""
    return digests.manifest_text((f["path"], f["sha256"]) for f in files)


text_sha256 = digests.sha256_text


def parse_manifest(text: str) -> dict[str, str]:
    """{relative path: sha256} of a sha256sum-format manifest; the first problem refused."""
    entries, problems = digests.parse_manifest(text)
    if problems:
        raise ManifestError(problems[0])
    return entries


def compare_recorded(
    files: list[dict[str, Any]], special: list[str], recorded: Mapping[str, str]
) -> tuple[set[str], set[str], set[str]]:
    """(mismatched, missing, extra) of the folder against a recorded manifest."""
    have = {f["path"]: f["sha256"] for f in files}
    mismatched = {p for p, d in recorded.items() if p in have and have[p] != d}
    mismatched |= {p for p in special if p in recorded}
    missing = {p for p in recorded if p not in have and p not in special}
    extra = {p for p in have if p not in recorded} | {p for p in special if p not in recorded}
    return mismatched, missing, extra


def _normalise_expected(
    expected: Iterable[Mapping[str, Any]], include: Iterable[str] = ()
) -> dict[str, dict[str, Any]]:
    """{path: {size, sha256, git_sha1}} from plain entries or hub siblings."""
    patterns = list(include)
    out: dict[str, dict[str, Any]] = {}
    for item in expected:
        rel = str(item.get("path") or item.get("rfilename") or "").strip()
        if not rel or rel.startswith("/") or ".." in rel.split("/"):
            raise ManifestError(f"expected entry has an unsafe or empty path: {rel!r}")
        if patterns and not any(fnmatch.fnmatchcase(rel, p) for p in patterns):
            continue
        lfs = item.get("lfs") or {}
        size = lfs.get("size", item.get("size"))
        if size is None:
            raise ManifestError(f"expected entry {rel!r} has no size")
        sha256 = lfs.get("sha256") or item.get("sha256")
        git_sha1 = None if lfs else (item.get("git_sha1") or item.get("blobId"))
        out[rel] = {
            "size": int(size),
            "sha256": str(sha256).lower() if sha256 else None,
            "git_sha1": str(git_sha1).lower() if git_sha1 else None,
        }
    return out


def compare_expected(
    root: Path,
    files: list[dict[str, Any]],
    special: list[str],
    want: Mapping[str, Mapping[str, Any]],
) -> tuple[set[str], set[str], set[str]]:
    """(mismatched, missing, extra) of the folder against the expected files."""
    have = {f["path"]: f for f in files}
    mismatched: set[str] = {p for p in special if p in want}
    for rel, spec in want.items():
        got = have.get(rel)
        if got is None:
            continue
        by_git = bool(spec["git_sha1"]) and not spec["sha256"]
        if (
            got["size"] != spec["size"]
            or (spec["sha256"] and got["sha256"] != spec["sha256"])
            or (by_git and git_blob_sha1(root / rel) != spec["git_sha1"])
        ):
            mismatched.add(rel)
    missing = {p for p in want if p not in have and p not in special}
    extra = {p for p in have if p not in want} | {p for p in special if p not in want}
    return mismatched, missing, extra


def _mode(text: str | None, option: str) -> int | None:
    if text is None:
        return None
    if not re.fullmatch(r"0?[0-7]{3,4}", text):
        raise ManifestError(f"{option} must be an octal string such as 0640, got {text!r}")
    return int(text, 8)


def drift(
    root: Path,
    files: Iterable[Mapping[str, Any]],
    dirs: Iterable[str],
    owner: str | None = None,
    group: str | None = None,
    file_mode: str | None = None,
    dir_mode: str | None = None,
) -> list[str]:
    """Entries whose owner, group or mode differ from the wanted ones."""
    fmode, dmode = _mode(file_mode, "file_mode"), _mode(dir_mode, "dir_mode")
    if owner is None and group is None and fmode is None and dmode is None:
        return []
    uid = pwd.getpwnam(owner).pw_uid if owner is not None else None
    try:
        gid = grp.getgrnam(group).gr_gid if group is not None else None
    except KeyError:
        gid = -1  # the group does not exist yet: everything drifts
    entries = [(".", root, dmode)] + [(d, root / d, dmode) for d in dirs]
    entries += [(f["path"], root / f["path"], fmode) for f in files]
    out = []
    for rel, path, want_mode in entries:
        st = path.lstat()
        if (
            (uid is not None and st.st_uid != uid)
            or (gid is not None and st.st_gid != gid)
            or (want_mode is not None and stat.S_IMODE(st.st_mode) != want_mode)
        ):
            out.append(rel)
    return out


def inspect(
    path: str,
    manifest: str | None = None,
    expected: list[Mapping[str, Any]] | None = None,
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    follow: bool = False,
    owner: str | None = None,
    group: str | None = None,
    file_mode: str | None = None,
    dir_mode: str | None = None,
) -> dict[str, Any]:
    """Everything the module returns."""
    root = Path(path)
    want = _normalise_expected(expected, include) if expected is not None else {}
    exists = root.is_dir()
    if root.exists() and not exists:
        raise ManifestError(f"{path} exists but is not a folder")
    files, dirs, special = scan(root, exclude, follow) if exists else ([], [], [])
    text = manifest_text(files)
    recorded_text: str | None = None
    if manifest:
        try:
            recorded_text = Path(manifest).read_text(encoding="utf-8")
        except FileNotFoundError:
            recorded_text = None
    mismatched: set[str] = set()
    missing: set[str] = set()
    extra: set[str] = set()
    references = []
    comparisons = []
    if recorded_text is not None:
        references.append("manifest")
        comparisons.append(compare_recorded(files, special, parse_manifest(recorded_text)))
    if expected is not None:
        references.append("expected")
        comparisons.append(compare_expected(root, files, special, want))
    for bad, absent, unknown in comparisons:
        mismatched |= bad
        missing |= absent
        extra |= unknown
    reference = "both" if len(references) == 2 else (references[0] if references else "none")
    return {
        "path": path,
        "exists": exists,
        "files": files,
        "dirs": dirs,
        "special": special,
        "file_count": len(files),
        "total_bytes": sum(f["size"] for f in files),
        "manifest_text": text,
        "manifest_sha256": text_sha256(text),
        "recorded": recorded_text is not None,
        "manifest_current": recorded_text == text,
        "reference": reference,
        "verified": bool(references) and exists and not (mismatched or missing or extra),
        "mismatched": sorted(mismatched),
        "missing": sorted(missing),
        "extra": sorted(extra),
        "fetch": sorted(mismatched | missing),
        "fetch_bytes": sum(want[p]["size"] for p in mismatched | missing if p in want),
        "expected_bytes": sum(w["size"] for w in want.values()),
        "expected_count": len(want),
        "drift": drift(root, files, dirs, owner, group, file_mode, dir_mode) if exists else [],
    }


def handle(request: Request) -> dict[str, Any]:
    p = request.params
    if not Path(p["path"]).is_absolute():
        raise ModuleFailure(f"path must be absolute, got '{p['path']}'")
    try:
        result = inspect(
            p["path"],
            manifest=p["manifest"],
            expected=p["expected"],
            include=p["include"],
            exclude=p["exclude"],
            follow=p["follow"],
            owner=p["owner"],
            group=p["group"],
            file_mode=p["file_mode"],
            dir_mode=p["dir_mode"],
        )
    except (ManifestError, KeyError, OSError) as exc:
        raise ModuleFailure(f"model_manifest: {exc}") from exc
    return {"changed": False, **result}


def main() -> None:
    run_module(
        {
            "path": {"type": "path", "required": True},
            "manifest": {"type": "path"},
            "expected": {"type": "list", "elements": "dict"},
            "include": {"type": "list", "elements": "str", "default": []},
            "exclude": {"type": "list", "elements": "str", "default": []},
            "follow": {"type": "bool", "default": False},
            "owner": {"type": "str"},
            "group": {"type": "str"},
            "file_mode": {"type": "str"},
            "dir_mode": {"type": "str"},
        },
        handle,
    )


if __name__ == "__main__":
    main()
