"""The evidence bundle's sha256 manifest: compute, write only when it changes, verify.

Standard library only, so the evidence_manifest module, the evidence_ledger callback and
scripts/verify_evidence.py (which an auditor runs without Ansible) share one definition.

The manifest is C(sha256sum) text: one C(<sha256>  <relative path>) line per regular
file of the bundle, sorted by path, MANIFEST.sha256 itself left out. So
C(sha256sum --strict -c MANIFEST.sha256) checks it by hand too; verify() also names
the files that were added since.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ansible_collections.llmhost.core.plugins.module_utils.digests import (
    manifest_text as digests_manifest_text,
)
from ansible_collections.llmhost.core.plugins.module_utils.digests import (
    parse_manifest,
    sha256_file,
    unsafe_name,
)

MANIFEST_NAME = "MANIFEST.sha256"


def host_folder(bundle: str, host: str, play_hosts: list[str]) -> str:
    """A host's folder in the bundle: ``<bundle>/<host>`` when the play has several hosts,
    else ``<bundle>``; empty when there is no bundle. The one rule for every writer
    (evidence_write, the llmhost.core.evidence_folder filter)."""
    if not bundle:
        return ""
    return f"{bundle}/{host}" if len(play_hosts) > 1 else bundle


@dataclass
class Verification:
    """What verify() found; ok when the bundle equals its manifest exactly."""

    manifest_found: bool = True
    mismatched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    special: list[str] = field(default_factory=list)
    malformed: list[str] = field(default_factory=list)
    checked: int = 0

    @property
    def ok(self) -> bool:
        problems = (self.mismatched, self.missing, self.extra, self.special, self.malformed)
        return self.manifest_found and not any(problems)


def scan(root: Path) -> tuple[list[str], list[str]]:
    """Regular files (relative POSIX paths, sorted) and anything else that is not a folder
    (symlinks, fifos, sockets). MANIFEST.sha256 at the top is never listed."""
    files: list[str] = []
    special: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        for name in dirnames:
            if (base / name).is_symlink():
                special.append((base / name).relative_to(root).as_posix())
        for name in filenames:
            path = base / name
            rel = path.relative_to(root).as_posix()
            if rel == MANIFEST_NAME:
                continue
            if path.is_symlink() or not path.is_file():
                special.append(rel)
            else:
                files.append(rel)
    return sorted(files), sorted(special)


def manifest_text(root: Path, files: list[str] | None = None) -> str:
    """The manifest of root in sha256sum format (paths with a newline or a backslash,
    which sha256sum would escape, are refused)."""
    names = scan(root)[0] if files is None else sorted(files)
    for rel in names:
        if unsafe_name(rel):
            raise ValueError(f"file name not allowed in an evidence bundle: {rel!r}")
    return digests_manifest_text((rel, sha256_file(root / rel)) for rel in names)


def differs(path: Path, data: bytes, mode: int = 0o644) -> bool:
    """Whether path is not a regular file holding exactly these bytes with this mode."""
    if not path.is_file() or path.is_symlink():
        return True
    return (path.stat().st_mode & 0o7777) != mode or path.read_bytes() != data


def write_if_changed(path: Path, data: bytes, mode: int = 0o644) -> bool:
    """Write data atomically unless the file already holds exactly these bytes and mode."""
    if not differs(path, data, mode):
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        Path(tmp).chmod(mode)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def seal(root: Path, mode: int = 0o644) -> tuple[bool, str]:
    """Write root/MANIFEST.sha256 when it differs; returns (changed, manifest text)."""
    text = manifest_text(root)
    return write_if_changed(root / MANIFEST_NAME, text.encode("utf-8"), mode), text


def verify(root: Path) -> Verification:
    """Compare root with root/MANIFEST.sha256: changed, missing, added and odd entries."""
    manifest = root / MANIFEST_NAME
    if not manifest.is_file():
        return Verification(manifest_found=False)
    entries, malformed = parse_manifest(manifest.read_text(encoding="utf-8", errors="replace"))
    files, special = scan(root)
    on_disk = set(files)
    result = Verification(malformed=malformed, special=special)
    for rel, digest in sorted(entries.items()):
        if rel not in on_disk:
            result.missing.append(rel)
        elif sha256_file(root / rel) != digest:
            result.mismatched.append(rel)
        else:
            result.checked += 1
    result.extra = sorted(on_disk - set(entries))
    return result
