#!/usr/bin/env python3
"""Verify an llmhost evidence bundle against its MANIFEST.sha256 (the auditor's check).

    python3 scripts/verify_evidence.py evidence/lab/<run id>      (make verify-evidence RUN=...)

Every file must match its sha256, no listed file may be missing, no file may be added,
nothing but regular files and folders may be in the bundle. Prints one line per
problem and exits 1; exits 0 when the bundle is intact, 2 when there is no bundle or no
manifest. Also names the required evidence that open_llm_runbook.json records as
missing (a note; --require-complete makes it a failure). Standard library only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "collections"))

from ansible_collections.llmhost.core.plugins.module_utils.evidence_bundle import (  # noqa: E402
    MANIFEST_NAME,
    Verification,
    verify,
)


def problems(found: Verification) -> list[str]:
    """One line per problem, grouped by kind."""
    kinds = (
        ("CHANGED", found.mismatched),
        ("MISSING", found.missing),
        ("EXTRA", found.extra),
        ("NOT A REGULAR FILE", found.special),
        ("MALFORMED", found.malformed),
    )
    return [f"{label}: {name}" for label, names in kinds for name in names]


def missing_evidence(bundle: Path) -> list[str]:
    """Required evidence the runbook records as missing ([] without a runbook)."""
    try:
        book = json.loads((bundle / "open_llm_runbook.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    missing = book.get("missing") if isinstance(book, dict) else None
    return [str(m) for m in missing] if isinstance(missing, list) else []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument(
        "bundle", type=Path, help="the bundle folder, evidence/<inventory>/<run id>"
    )
    parser.add_argument(
        "--require-complete",
        action="store_true",
        help="also fail when the runbook records missing required evidence",
    )
    args = parser.parse_args(argv)
    bundle: Path = args.bundle
    if not bundle.is_dir():
        print(f"error: {bundle} is not a folder", file=sys.stderr)
        return 2
    found = verify(bundle)
    if not found.manifest_found:
        print(
            f"error: {bundle}/{MANIFEST_NAME} is missing: the bundle was never sealed",
            file=sys.stderr,
        )
        return 2
    lines = problems(found)
    for line in lines:
        print(line)
    missing = missing_evidence(bundle)
    if missing:
        print(f"note: required evidence missing (open_llm_runbook.json): {', '.join(missing)}")
    if lines:
        print(f"FAILED: {bundle} does not match {MANIFEST_NAME} ({len(lines)} problems)")
        return 1
    print(f"OK: {found.checked} files match {bundle}/{MANIFEST_NAME}")
    return 1 if (missing and args.require_complete) else 0


if __name__ == "__main__":
    sys.exit(main())
