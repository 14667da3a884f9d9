"""File digests and sha256sum-format manifests: one definition for the model store, the
wheelhouses, the evaluation's inputs and the evidence bundle.

Standard library only: host-side modules ship it with them, and scripts/verify_evidence.py
(run by an auditor without Ansible) imports it too. A manifest is C(sha256sum) text, one
C(<sha256>  <relative path>) line per file, sorted by path, so C(sha256sum -c) checks it
by hand.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path

CHUNK = 1 << 20
# sha256sum's text (two spaces) and binary (" *") forms.
MANIFEST_LINE = re.compile(r"^([0-9a-f]{64}) [ *](.+)$")


def sha256_file(path: Path) -> str:
    """sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_text(text: str) -> str:
    """sha256 of a text's UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def git_blob_sha1(path: Path) -> str:
    """The git object id of a file's content (what the hub calls blobId)."""
    digest = hashlib.sha1(usedforsecurity=False)
    digest.update(b"blob %d\0" % path.stat().st_size)
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def unsafe_name(rel: str) -> str | None:
    """Why a relative path cannot stand in a manifest (None when it can)."""
    if "\n" in rel or "\\" in rel:
        return "holds a newline or a backslash, which sha256sum would escape"
    if rel.startswith(("/", "./")) or ".." in rel.split("/"):
        return "is not a plain relative path"
    return None


def manifest_text(entries: Iterable[tuple[str, str]]) -> str:
    """sha256sum text of (relative path, sha256) pairs, sorted by path; a path that cannot
    stand in a manifest is refused (ValueError)."""
    lines = []
    for rel, digest in sorted(entries):
        problem = unsafe_name(rel)
        if problem:
            raise ValueError(f"file name {rel!r} {problem}: rename it")
        lines.append(f"{digest}  {rel}\n")
    return "".join(lines)


def parse_manifest(text: str) -> tuple[dict[str, str], list[str]]:
    """({relative path: sha256}, problems): a problem is a line that is not
    '<64 lower-case hex>  <path>', names an unsafe path or repeats a path. Blank lines are
    skipped."""
    entries: dict[str, str] = {}
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = MANIFEST_LINE.match(line)
        if not match:
            problems.append(f"line {number} is not '<sha256>  <path>': {line[:120]!r}")
            continue
        digest, rel = match.groups()
        if unsafe_name(rel):
            problems.append(f"line {number} names an unsafe path: {rel[:120]!r}")
        elif rel in entries:
            problems.append(f"line {number} repeats {rel[:120]!r}")
        else:
            entries[rel] = digest
    return entries, problems
