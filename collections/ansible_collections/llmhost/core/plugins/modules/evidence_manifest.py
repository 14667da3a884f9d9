#!/usr/bin/python
"""llmhost.core.evidence_manifest: seal an evidence bundle with MANIFEST.sha256, or verify it."""
# Ansible layout: the documentation blocks come before the imports.
# ruff: noqa: E402

from __future__ import annotations

DOCUMENTATION = r"""
---
module: evidence_manifest
short_description: Write or verify the MANIFEST.sha256 of an llmhost evidence bundle
version_added: 0.1.0
description:
  - With O(state=present), writes C(MANIFEST.sha256) at the top of the bundle O(path),
    one C(<sha256>  <relative path>) line per regular file, sorted by path, the manifest
    itself left out (the format of C(sha256sum), so C(sha256sum --strict -c) checks it).
    The file is rewritten only when its content would change, so a re-run reports
    RV(changed=false).
  - With O(state=verified), changes nothing and fails when a file differs from the
    manifest, is missing, was added, is not a regular file, or a line is malformed.
  - Runs on the control node, where the bundle is (C(delegate_to=localhost)).
author:
  - llmhost project
options:
  path:
    description: The bundle folder (C(evidence/<inventory>/<run id>)).
    type: path
    required: true
  state:
    description: C(present) writes the manifest, C(verified) only checks it.
    type: str
    choices: [present, verified]
    default: present
  mode:
    description: Mode of the manifest file as an octal string.
    type: str
    default: "0644"
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Seal the bundle
  llmhost.core.evidence_manifest:
    path: "{{ evidence_dir }}"
  delegate_to: localhost

- name: Verify a bundle (fails on a changed, missing or extra file)
  llmhost.core.evidence_manifest:
    path: evidence/lab/20261123T010656Z-4500af7b9c75
    state: verified
  delegate_to: localhost
"""

RETURN = r"""
manifest:
  description: Path of the manifest.
  returned: always
  type: str
file_count:
  description: Number of files the manifest names (present) or that matched it (verified).
  returned: always
  type: int
manifest_sha256:
  description: sha256 of the manifest text; names the sealed bundle as a whole.
  returned: when state is present
  type: str
mismatched:
  description: Files whose content differs from the manifest.
  returned: when state is verified
  type: list
  elements: str
missing:
  description: Files the manifest names that are gone.
  returned: when state is verified
  type: list
  elements: str
extra:
  description: Files that are not in the manifest.
  returned: when state is verified
  type: list
  elements: str
"""

import hashlib
from pathlib import Path
from typing import Any

from ansible_collections.llmhost.core.plugins.module_utils.evidence_bundle import (
    MANIFEST_NAME,
    differs,
    manifest_text,
    verify,
    write_if_changed,
)
from ansible_collections.llmhost.core.plugins.module_utils.module import (
    ModuleFailure,
    Request,
    run_module,
)


def _present(root: Path, mode: int, check_mode: bool) -> dict[str, Any]:
    try:
        text = manifest_text(root)
    except ValueError as err:
        raise ModuleFailure(str(err)) from err
    data = text.encode("utf-8")
    target = root / MANIFEST_NAME
    changed = differs(target, data, mode)
    if changed and not check_mode:
        write_if_changed(target, data, mode)
    return {
        "changed": changed,
        "manifest": str(target),
        "file_count": len(text.splitlines()),
        "manifest_sha256": hashlib.sha256(data).hexdigest(),
    }


def _verified(root: Path) -> dict[str, Any]:
    found = verify(root)
    result = {
        "changed": False,
        "manifest": str(root / MANIFEST_NAME),
        "file_count": found.checked,
        "mismatched": found.mismatched,
        "missing": found.missing,
        "extra": found.extra + found.special,
    }
    if not found.manifest_found:
        raise ModuleFailure(f"{root}: no {MANIFEST_NAME}; the bundle was never sealed", **result)
    if not found.ok:
        problems = [
            f"{label}: {', '.join(names)}"
            for label, names in (
                ("changed", found.mismatched),
                ("missing", found.missing),
                ("not in the manifest", found.extra),
                ("not a regular file", found.special),
                ("malformed manifest lines", found.malformed),
            )
            if names
        ]
        raise ModuleFailure(
            f"{root} does not match {MANIFEST_NAME}: " + "; ".join(problems), **result
        )
    return result


def handle(request: Request) -> dict[str, Any]:
    p = request.params
    root = Path(p["path"])
    if not root.is_dir():
        raise ModuleFailure(f"path {root} is not a folder; point it at the evidence bundle")
    try:
        mode = int(p["mode"], 8)
    except ValueError:
        raise ModuleFailure(f"mode {p['mode']!r} is not an octal string such as '0644'") from None
    if p["state"] == "verified":
        return _verified(root)
    return _present(root, mode, request.check_mode)


def main() -> None:
    run_module(
        {
            "path": {"type": "path", "required": True},
            "state": {"type": "str", "choices": ["present", "verified"], "default": "present"},
            "mode": {"type": "str", "default": "0644"},
        },
        handle,
    )


if __name__ == "__main__":
    main()
