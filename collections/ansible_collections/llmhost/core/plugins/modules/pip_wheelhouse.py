#!/usr/bin/python
"""llmhost.core.pip_wheelhouse: a pinned wheelhouse on the control node for a target host."""
# Ansible layout: the documentation blocks come before the imports.
# ruff: noqa: E402

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pip_wheelhouse
short_description: Download the wheels of pinned requirements for another host's Python
version_added: 0.1.0
description:
  - Runs C(pip download --only-binary=:all:) for a target Python version and platform
    into O(dest), and records a manifest (C(.llmhost-wheelhouse.json)) with the sha256 of
    every wheel. Hosts then install with C(pip install --no-index --find-links), so an
    air-gapped or rebuilt host gets exactly the same files.
  - Idempotent. When the manifest's key (requirements, Python version, platforms, extra
    arguments) matches and every wheel is present with its recorded sha256, nothing is
    downloaded and C(changed) is false. A missing or corrupted wheel is downloaded again.
  - "Meant to run on the control node: C(delegate_to=localhost) and C(run_once=true)."
author:
  - llmhost project
options:
  requirements:
    description: Requirement lines, each an exact pin (C(name==version)).
    type: list
    elements: str
    required: true
  dest:
    description: Folder for the wheels (created when missing).
    type: path
    required: true
  python_version:
    description: Target interpreter version, C(MAJOR.MINOR) (e.g. C(3.11)).
    type: str
    required: true
  platforms:
    description:
      - pip platform tags of the target. pip matches them exactly, so list every tag
        the host accepts; or leave this out and give O(glibc_version) and O(architecture).
    type: list
    elements: str
  glibc_version:
    description:
      - The host's glibc (e.g. C(2.36)); with O(architecture) it yields every manylinux tag
        the host accepts (C(manylinux_2_5) up to this version, plus the legacy aliases).
    type: str
  architecture:
    description: The host's machine architecture (e.g. C(x86_64), C(aarch64)).
    type: str
  extra_args:
    description: Further pip arguments (an extra index, find-links). Not logged in the key.
    type: list
    elements: str
    default: []
  archive:
    description:
      - Also keep the wheels as one uncompressed tar beside O(dest) (C(<dest>.tar)), so a
        host receives one file instead of hundreds (much faster over docker exec or SSH).
    type: bool
    default: false
  python:
    description: Interpreter on the control node whose pip downloads.
    type: path
    default: python3
  timeout:
    description: Seconds the download may take.
    type: int
    default: 1800
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Wheelhouse for the training venv
  llmhost.core.pip_wheelhouse:
    requirements: "{{ lookup('ansible.builtin.file', 'requirements.txt').splitlines() }}"
    dest: "{{ playbook_dir }}/../.cache/wheelhouse/training-cp311"
    python_version: "3.11"
    glibc_version: "2.36"
    architecture: x86_64
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
dest:
  description: The wheelhouse folder.
  returned: always
  type: str
key:
  description: sha256 of the inputs that define this wheelhouse.
  returned: always
  type: str
wheels:
  description: File name and sha256 of every wheel.
  returned: always
  type: list
  elements: dict
total_bytes:
  description: Size of all wheels.
  returned: always
  type: int
archive:
  description: Path of the tar (when O(archive) is true), else empty.
  returned: always
  type: str
reason:
  description: Why the wheels were (re)downloaded, or why nothing was done.
  returned: always
  type: str
"""

import contextlib
import fcntl
import hashlib
import json
import re
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ansible_collections.llmhost.core.plugins.module_utils.digests import sha256_file
from ansible_collections.llmhost.core.plugins.module_utils.module import (
    ModuleFailure,
    Request,
    run_module,
)

MANIFEST = ".llmhost-wheelhouse.json"
_PIN = re.compile(r"^[A-Za-z0-9_.\-]+(\[[A-Za-z0-9_,\-]+\])?==[^\s=<>!~*]+$")


def clean_requirements(lines: list[str]) -> list[str]:
    """Requirement lines without comments and blanks, sorted for a stable key."""
    out = []
    for line in lines:
        text = line.split("#", 1)[0].strip()
        if text:
            out.append(text)
    return sorted(out, key=str.lower)


def unpinned(requirements: list[str]) -> list[str]:
    """Requirements that are not exact pins."""
    return [r for r in requirements if not _PIN.match(r)]


def wheelhouse_key(requirements: list[str], python_version: str, platforms: list[str]) -> str:
    """sha256 over what defines the wheelhouse's contents."""
    blob = json.dumps(
        {"requirements": requirements, "python": python_version, "platforms": platforms},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def verify(dest: Path, key: str) -> tuple[bool, str, dict[str, Any] | None]:
    """(intact, reason, manifest) for an existing wheelhouse."""
    manifest_path = dest / MANIFEST
    if not manifest_path.is_file():
        return False, "no manifest yet", None
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return False, f"manifest unreadable: {exc}", None
    if manifest.get("key") != key:
        return False, "requirements, Python version or platforms changed", None
    for wheel in manifest.get("wheels", []):
        path = dest / wheel["file"]
        if not path.is_file():
            return False, f"{wheel['file']} is missing", None
        if sha256_file(path) != wheel["sha256"]:
            return False, f"{wheel['file']} does not match its sha256", None
    return True, "wheelhouse intact", manifest


def prune(dest: Path, key: str) -> list[str]:
    """Remove what must not be reused: every wheel when the key changed (another Python or
    other pins), else only wheels that no longer match their recorded sha256."""
    removed: list[str] = []
    manifest_path = dest / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        manifest = {}
    recorded = {w["file"]: w["sha256"] for w in manifest.get("wheels", [])}
    for wheel in sorted(dest.glob("*.whl")):
        stale = manifest.get("key") != key or (
            wheel.name in recorded and sha256_file(wheel) != recorded[wheel.name]
        )
        if stale:
            wheel.unlink()
            removed.append(wheel.name)
    manifest_path.unlink(missing_ok=True)
    return removed


def manylinux_platforms(glibc_version: str, architecture: str) -> list[str]:
    """Every platform tag a host with this glibc accepts, newest first (PEP 600 + aliases)."""
    match = re.fullmatch(r"2\.(\d+)", glibc_version.strip())
    if not match:
        raise ValueError(f"glibc_version must look like 2.36, got '{glibc_version}'")
    minor = int(match.group(1))
    tags = [f"manylinux_2_{m}_{architecture}" for m in range(minor, 4, -1)]
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    tags += [f"{name}_{architecture}" for m, name in legacy.items() if minor >= m]
    return [*tags, f"linux_{architecture}"]


def build_archive(dest: Path) -> Path:
    """A reproducible tar of the wheels and the manifest (sorted, owner root, mtime 0)."""
    target = dest.with_name(dest.name + ".tar")
    tmp = target.with_suffix(".tar.tmp")
    members = sorted([*dest.glob("*.whl"), dest / MANIFEST, dest / "requirements.txt"])
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in members:
            info = tar.gettarinfo(str(path), arcname=path.name)
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = 0
            info.mode = 0o644
            with path.open("rb") as handle:
                tar.addfile(info, handle)
    tmp.replace(target)
    return target


def archive_current(dest: Path) -> bool:
    """The tar exists and is newer than the manifest it must contain."""
    target = dest.with_name(dest.name + ".tar")
    manifest = dest / MANIFEST
    return target.is_file() and target.stat().st_mtime >= manifest.stat().st_mtime


def download_command(
    python: str, dest: Path, req_file: Path, version: str, platforms: list[str], extra: list[str]
) -> list[str]:
    cmd = [
        python,
        "-m",
        "pip",
        "download",
        "--disable-pip-version-check",
        "--progress-bar",
        "off",
        "--only-binary=:all:",
        "--implementation",
        "cp",
        "--python-version",
        version,
        "-d",
        str(dest),
        "-r",
        str(req_file),
    ]
    for platform in platforms:
        cmd += ["--platform", platform]
    return cmd + extra


def write_manifest(dest: Path, key: str, requirements: list[str], version: str) -> dict[str, Any]:
    wheels = [
        {"file": p.name, "sha256": sha256_file(p), "bytes": p.stat().st_size}
        for p in sorted(dest.glob("*.whl"))
    ]
    manifest = {
        "key": key,
        "python_version": version,
        "requirements": requirements,
        "wheels": wheels,
    }
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def _platforms(p: dict[str, Any]) -> list[str]:
    if p["platforms"]:
        return p["platforms"]
    if not (p["glibc_version"] and p["architecture"]):
        raise ModuleFailure("give platforms, or glibc_version and architecture")
    try:
        return manylinux_platforms(p["glibc_version"], p["architecture"])
    except ValueError as exc:
        raise ModuleFailure(str(exc)) from exc


@contextlib.contextmanager
def locked(dest: Path) -> Iterator[None]:
    """Hold <dest>.lock exclusively: runs that share a wheelhouse (the hosts of one play,
    or two playbooks on one control node) check, download and archive it one at a time;
    the next finds it intact instead of downloading into the same folder and tar."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with dest.with_name(dest.name + ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def handle(request: Request) -> dict[str, Any]:
    p = request.params
    requirements = clean_requirements(p["requirements"])
    loose = unpinned(requirements)
    if loose:
        raise ModuleFailure(f"requirements must be exact pins (name==version); fix: {loose}")
    if not re.fullmatch(r"3\.\d+", p["python_version"]):
        raise ModuleFailure(f"python_version must look like 3.11, got '{p['python_version']}'")
    platforms = _platforms(p)
    dest = Path(p["dest"])
    if request.check_mode:
        return _fill(request, requirements, platforms, dest)
    with locked(dest):
        return _fill(request, requirements, platforms, dest)


def _fill(
    request: Request, requirements: list[str], platforms: list[str], dest: Path
) -> dict[str, Any]:
    """Check the wheelhouse at dest; download and archive what is missing (not in check mode)."""
    p = request.params
    key = wheelhouse_key(requirements, p["python_version"], platforms)
    intact, reason, manifest = verify(dest, key)
    archive = str(dest.with_name(dest.name + ".tar")) if p["archive"] else ""

    def finish(changed: bool, wheels: list[dict[str, Any]], why: str) -> dict[str, Any]:
        return {
            "changed": changed,
            "dest": str(dest),
            "key": key,
            "wheels": wheels,
            "total_bytes": sum(w["bytes"] for w in wheels),
            "archive": archive,
            "reason": why,
        }

    if intact and manifest is not None:
        rebuild = p["archive"] and not archive_current(dest)
        if rebuild and not request.check_mode:
            build_archive(dest)
        return finish(
            rebuild, manifest["wheels"], "wheels intact; archive rebuilt" if rebuild else reason
        )
    if request.check_mode:
        return finish(True, [], reason)
    dest.mkdir(parents=True, exist_ok=True)
    prune(dest, key)
    req_file = dest / "requirements.txt"
    req_file.write_text("\n".join(requirements) + "\n", encoding="utf-8")
    cmd = download_command(
        p["python"], dest, req_file, p["python_version"], platforms, p["extra_args"]
    )
    try:
        # An argument list, no shell: the only input is the module's own options.
        proc = subprocess.run(  # noqa: S603
            cmd, capture_output=True, text=True, timeout=p["timeout"], check=False
        )
    except subprocess.TimeoutExpired:
        raise ModuleFailure(f"pip download took longer than {p['timeout']} s", cmd=cmd) from None
    if proc.returncode != 0:
        raise ModuleFailure(
            "pip download failed: " + proc.stderr[-2000:], cmd=cmd, rc=proc.returncode
        )
    manifest = write_manifest(dest, key, requirements, p["python_version"])
    if p["archive"]:
        build_archive(dest)
    return finish(True, manifest["wheels"], reason)


def main() -> None:
    run_module(
        {
            "requirements": {"type": "list", "elements": "str", "required": True},
            "dest": {"type": "path", "required": True},
            "python_version": {"type": "str", "required": True},
            "platforms": {"type": "list", "elements": "str"},
            "glibc_version": {"type": "str"},
            "architecture": {"type": "str"},
            "extra_args": {"type": "list", "elements": "str", "default": [], "no_log": False},
            "archive": {"type": "bool", "default": False},
            "python": {"type": "path", "default": "python3"},
            "timeout": {"type": "int", "default": 1800},
        },
        handle,
    )


if __name__ == "__main__":
    main()
