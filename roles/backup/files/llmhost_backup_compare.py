#!/usr/bin/env python3
"""Compare a restic restore with its sources, file by file (sha256), for the backup role.

    llmhost_backup_compare.py --restored DIR --snapshot-time RFC3339 PATH...

DIR is where `restic restore --target DIR` put the snapshot (each PATH below it as
DIR/PATH). Every regular file under each PATH on the host that was last modified before
the snapshot started must be in the restore with the same sha256; a file changed since
(or created since) cannot be compared and is counted as skipped, and a restored file whose
source has gone is skipped too. Prints one JSON object: files_compared, bytes,
skipped_changed, skipped_gone, mismatches ([{path, reason}]). Exit 0 either way; the
role decides. Only paths and reasons are printed, never contents or digests.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
from datetime import datetime
from pathlib import Path


def parse_time(text: str) -> float:
    """restic's snapshot time (RFC 3339, up to nanoseconds) as a POSIX timestamp."""
    m = re.fullmatch(r"(.+T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text.strip())
    if not m:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    base = datetime.fromisoformat(m.group(1) + zone).timestamp()
    return base + (float("0." + m.group(2)) if m.group(2) else 0.0)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def regular_files(root: Path) -> list[Path]:
    """Regular files under root (root itself when it is one), symlinks not followed."""
    if root.is_symlink():
        return []
    if root.is_file():
        return [root]
    out = []
    for folder, _dirs, names in os.walk(root):
        for name in names:
            p = Path(folder) / name
            if p.is_file() and not p.is_symlink():
                out.append(p)
    return sorted(out)


def compare(restored: Path, started: float, paths: list[str]) -> dict[str, object]:
    compared = 0
    size = 0
    skipped_changed = 0
    skipped_gone = 0
    mismatches: list[dict[str, str]] = []
    for top in paths:
        source_files = regular_files(Path(top))
        restored_top = restored / top.lstrip("/")
        restored_files = {"/" + str(p.relative_to(restored)) for p in regular_files(restored_top)}
        for source in source_files:
            key = str(source)
            restored_files.discard(key)
            if source.stat().st_mtime >= started:
                skipped_changed += 1
                continue
            copy = restored / key.lstrip("/")
            if not copy.is_file():
                mismatches.append({"path": key, "reason": "missing from the restore"})
                continue
            compared += 1
            size += source.stat().st_size
            if sha256(copy) != sha256(source):
                mismatches.append({"path": key, "reason": "sha256 differs from the source"})
        skipped_gone += len(restored_files)
    return {
        "files_compared": compared,
        "bytes": size,
        "skipped_changed": skipped_changed,
        "skipped_gone": skipped_gone,
        "mismatches": mismatches,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--restored", required=True, type=Path)
    parser.add_argument("--snapshot-time", required=True)
    parser.add_argument("paths", nargs="+")
    args = parser.parse_args(argv)
    result = compare(args.restored, parse_time(args.snapshot_time), args.paths)
    json.dump(result, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
