#!/usr/bin/python
"""llmhost.core.evidence_readiness: the readiness report of an llmhost evidence bundle."""
# Ansible layout: the documentation blocks come before the imports.
# ruff: noqa: E402

from __future__ import annotations

DOCUMENTATION = r"""
---
module: evidence_readiness
short_description: Decide the reference checklists against an llmhost evidence bundle
version_added: 0.1.0
description:
  - Loads the checklists (one YAML file per reference checklist in O(checklists)) and decides
    every item against the bundle O(path) as C(pass), C(fail), C(n.a.) or C(attested), with
    the bundle-relative file(s) and the named check that decided it (see
    C(module_utils/readiness.py)).
  - Writes C(readiness.json) and C(readiness.md) at the top of the bundle, only when their
    bytes change, so a re-run reports RV(changed=false).
  - With O(validate_only), checks O(attestations) and O(required) against the checklists and
    returns RV(errors) without reading or writing a bundle (the evidence role's preflight).
author:
  - llmhost project
options:
  path:
    description: The bundle folder on the control node; required unless O(validate_only).
    type: path
    default: ""
  checklists:
    description: The folder of checklist YAML files (the evidence role's C(files/checklists)).
    type: path
    required: true
  run_id:
    description: The run id shown in the report.
    type: str
    default: ""
  inventory:
    description: The inventory name shown in the report.
    type: str
    default: ""
  hosts:
    description: Hosts whose sub-folders (C(<host>/<file>)) hold evidence too.
    type: list
    elements: str
    default: []
  attestations:
    description: Item id -> C({owner, date, reference}) for the items decided by attestation.
    type: dict
    default: {}
  required:
    description: Item ids that must pass or be attested (RV(required_failed) lists the others).
    type: list
    elements: str
    default: []
  validate_only:
    description: Only check O(attestations) and O(required); write nothing.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Write readiness.json and readiness.md
  llmhost.core.evidence_readiness:
    path: "{{ evidence_dir }}"
    checklists: "{{ role_path }}/files/checklists"
    run_id: "{{ evidence_run_id }}"
    inventory: "{{ evidence_inventory_name }}"
    attestations: "{{ evidence_attestations }}"
    required: "{{ evidence_readiness_required }}"
  delegate_to: localhost
"""

RETURN = r"""
errors:
  description: What is wrong with O(attestations) or O(required) (empty when valid).
  returned: always
  type: list
  elements: str
counts:
  description: "{checklist: {pass, fail, n.a., attested}}."
  returned: when a report was made
  type: dict
required_failed:
  description: The O(required) items that did not pass and are not attested.
  returned: always
  type: list
  elements: str
written:
  description: Files written (or that would be in check mode).
  returned: always
  type: list
  elements: str
"""

import json
from pathlib import Path
from typing import Any

from ansible_collections.llmhost.core.plugins.module_utils.evidence_bundle import (
    differs,
    write_if_changed,
)
from ansible_collections.llmhost.core.plugins.module_utils.module import (
    ModuleFailure,
    Request,
    run_module,
)
from ansible_collections.llmhost.core.plugins.module_utils.readiness import (
    evaluate,
    input_errors,
    load_checklists,
    render_markdown,
    report,
)


def render(params: dict) -> tuple[dict[str, bytes], dict]:
    """{file: bytes} of readiness.json and readiness.md, and the report."""
    checklists = load_checklists(Path(params["checklists"]))
    root = Path(params["path"])
    results = evaluate(checklists, root, params["hosts"], params["attestations"])
    data = report(checklists, results, params["run_id"], params["inventory"], params["required"])
    text = json.dumps(data, indent=2, sort_keys=False) + "\n"
    return {
        "readiness.json": text.encode("utf-8"),
        "readiness.md": render_markdown(data).encode("utf-8"),
    }, data


def handle(request: Request) -> dict[str, Any]:
    p = request.params
    try:
        checklists = load_checklists(Path(p["checklists"]))
    except (OSError, ValueError, KeyError) as err:
        raise ModuleFailure(f"checklists {p['checklists']}: {err}") from err
    errors = input_errors(checklists, p["attestations"], p["required"])
    if p["validate_only"]:
        return {"changed": False, "errors": errors, "required_failed": [], "written": []}
    if errors:
        raise ModuleFailure("; ".join(errors), errors=errors)
    root = Path(p["path"])
    if not p["path"] or not root.is_dir():
        raise ModuleFailure(f"path {root} is not a folder; point it at the evidence bundle")
    outputs, data = render(p)
    written = sorted(rel for rel, blob in outputs.items() if differs(root / rel, blob))
    if not request.check_mode:
        for rel in written:
            write_if_changed(root / rel, outputs[rel], 0o644)
    return {
        "changed": bool(written),
        "errors": [],
        "counts": data["counts"],
        "required_failed": data["required_failed"],
        "written": written,
    }


def main() -> None:
    run_module(
        {
            "path": {"type": "path", "default": ""},
            "checklists": {"type": "path", "required": True},
            "run_id": {"type": "str", "default": ""},
            "inventory": {"type": "str", "default": ""},
            "hosts": {"type": "list", "elements": "str", "default": []},
            "attestations": {"type": "dict", "default": {}},
            "required": {"type": "list", "elements": "str", "default": []},
            "validate_only": {"type": "bool", "default": False},
        },
        handle,
    )


if __name__ == "__main__":
    main()
