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

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.llmhost.core.plugins.module_utils.evidence_bundle import (
    MANIFEST_NAME,
    differs,
    manifest_text,
    verify,
    write_if_changed,
)


def _present(module: AnsibleModule, root: Path, mode: int) -> None:
    try:
        text = manifest_text(root)
    except ValueError as err:
        module.fail_json(msg=str(err))
    data = text.encode("utf-8")
    target = root / MANIFEST_NAME
    changed = differs(target, data, mode)
    if changed and not module.check_mode:
        write_if_changed(target, data, mode)
    module.exit_json(
        changed=changed,
        manifest=str(target),
        file_count=len(text.splitlines()),
        manifest_sha256=hashlib.sha256(data).hexdigest(),
    )


def _verified(module: AnsibleModule, root: Path) -> None:
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
        module.fail_json(msg=f"{root}: no {MANIFEST_NAME}; the bundle was never sealed", **result)
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
        module.fail_json(
            msg=f"{root} does not match {MANIFEST_NAME}: " + "; ".join(problems), **result
        )
    module.exit_json(**result)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "state": {"type": "str", "choices": ["present", "verified"], "default": "present"},
            "mode": {"type": "str", "default": "0644"},
        },
        supports_check_mode=True,
    )
    root = Path(module.params["path"])
    if not root.is_dir():
        module.fail_json(msg=f"path {root} is not a folder; point it at the evidence bundle")
    try:
        mode = int(module.params["mode"], 8)
    except ValueError:
        module.fail_json(
            msg=f"mode {module.params['mode']!r} is not an octal string such as '0644'"
        )
    if module.params["state"] == "verified":
        _verified(module, root)
    _present(module, root, mode)


if __name__ == "__main__":
    main()
