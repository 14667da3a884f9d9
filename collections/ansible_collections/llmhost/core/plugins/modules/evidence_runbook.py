#!/usr/bin/python
"""llmhost.core.evidence_runbook: open_llm_runbook.json of an llmhost evidence bundle."""
# Ansible layout: the documentation blocks come before the imports.
# ruff: noqa: E402

from __future__ import annotations

DOCUMENTATION = r"""
---
module: evidence_runbook
short_description: Write a bundle's open_llm_runbook.json (runtime, adaptation, required evidence)
version_added: 0.1.0
description:
  - Writes C(open_llm_runbook.json) at the top of the bundle O(path) with the runtime
    choice (O(runtime) and the fit decision from C(model_runtime_decision.json)), the
    adaptation choice and its reason (O(adaptation)), and every required evidence file
    (the GPU plan's O(plan_files) and the O(standard_files)) with whether the bundle
    holds it, at the top or in the sub-folder of one of O(hosts).
  - The file holds no timestamp and is rewritten only when its content changes, so a
    re-run reports RV(changed=false).
author:
  - llmhost project
options:
  path:
    description: The bundle folder on the control node.
    type: path
    required: true
  run_id:
    description: The run id.
    type: str
    required: true
  inventory:
    description: The inventory name.
    type: str
    required: true
  runtime:
    description: The serving runtime chosen (the GPU plan's runtime, e.g. C(vllm) or C(vllm-cpu)).
    type: str
    required: true
  adaptation:
    description:
      - How the model is adapted to the task, with the reason.
      - C(choice) is one of C(none), C(prompt), C(rag), C(quantization), C(lora).
    type: dict
    required: true
    options:
      choice:
        description: The adaptation.
        type: str
        required: true
        choices: [none, prompt, rag, quantization, lora]
      reason:
        description: Why; must not be empty.
        type: str
        required: true
  plan_files:
    description: The GPU plan's C(evidence_to_copy_back) list.
    type: list
    elements: str
    default: []
  standard_files:
    description: The evidence every run of this project must leave (relative paths).
    type: list
    elements: str
    default: []
  hosts:
    description:
      - Inventory hostnames whose sub-folders (C(<host>/<file>)) count as holding a
        required file; the roles write there when a play has several hosts.
    type: list
    elements: str
    default: []
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Write the runbook
  llmhost.core.evidence_runbook:
    path: "{{ evidence_dir }}"
    run_id: "{{ evidence_run_id }}"
    inventory: lab
    runtime: vllm-cpu
    adaptation:
      choice: none
      reason: The mini GPT-2 is served as trained; the lab proves the loop, not quality.
    plan_files: "{{ llmhost_gpu_plan.evidence_to_copy_back }}"
    standard_files: [environment_report.json, api_smoke_test.json]
  delegate_to: localhost
"""

RETURN = r"""
runbook:
  description: The content written to open_llm_runbook.json.
  returned: always
  type: dict
missing:
  description: Required evidence files the bundle does not hold.
  returned: always
  type: list
  elements: str
complete:
  description: Whether every required evidence file is present.
  returned: always
  type: bool
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

RUNBOOK = "open_llm_runbook.json"
PRODUCED_HERE = [RUNBOOK, "index.md", "index.html", "plots/", "MANIFEST.sha256"]


def _found_at(root: Path, rel: str, hosts: list[str]) -> list[str]:
    """Where the bundle holds rel: at the top and in the hosts' sub-folders (the roles
    write <host>/<file> when a play has several hosts)."""
    candidates = [rel, *(f"{host}/{rel}" for host in sorted(set(hosts)))]
    return [c for c in candidates if (root / c).is_file() and not (root / c).is_symlink()]


def required_evidence(
    root: Path, plan: list[str], standard: list[str], hosts: list[str] | None = None
) -> list[dict[str, Any]]:
    """Every required file once, in order (plan first), with who requires it and presence."""
    rows: dict[str, dict[str, Any]] = {}
    for source, files in (("gpu_plan", plan), ("standard", standard)):
        for rel in files:
            row = rows.setdefault(rel, {"file": rel, "required_by": []})
            row["required_by"].append(source)
    for rel, row in rows.items():
        found = _found_at(root, rel, hosts or [])
        row.update(present=bool(found), found_at=found)
    return list(rows.values())


def runtime_choice(root: Path, runtime: str) -> dict[str, Any]:
    """The runtime and the fit decision behind it (model_runtime_decision.json)."""
    choice: dict[str, Any] = {"choice": runtime}
    try:
        decision = json.loads((root / "model_runtime_decision.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {**choice, "decision": None, "decision_source": None}
    profile = decision.get("profile") if isinstance(decision.get("profile"), dict) else {}
    return {
        **choice,
        "decision": decision.get("decision"),
        "fits": decision.get("fits"),
        "quantization": decision.get("quantization"),
        "model": profile.get("model"),
        "route": decision.get("route"),
        "reason": decision.get("message"),
        "decision_source": "model_runtime_decision.json",
    }


def build(params: dict[str, Any]) -> dict[str, Any]:
    """The runbook for the module's parameters."""
    root = Path(params["path"])
    required = required_evidence(
        root, params["plan_files"], params["standard_files"], params["hosts"]
    )
    missing = [row["file"] for row in required if not row["present"]]
    return {
        "schema": "llmhost.open_llm_runbook/v1",
        "run_id": params["run_id"],
        "inventory": params["inventory"],
        "runtime": runtime_choice(root, params["runtime"]),
        "adaptation": {
            "choice": params["adaptation"]["choice"],
            "reason": params["adaptation"]["reason"],
        },
        "required_evidence": required,
        "missing": missing,
        "complete": not missing,
        "produced_by_evidence_role": PRODUCED_HERE,
    }


def _bad_input(params: dict[str, Any]) -> str | None:
    if not str(params["adaptation"]["reason"]).strip():
        return "adaptation.reason is empty: say why this adaptation (or none) was chosen"
    for rel in [*params["plan_files"], *params["standard_files"]]:
        if not rel or rel.startswith("/") or ".." in Path(rel).parts:
            return f"required file {rel!r} must be a relative path inside the bundle"
    for host in params["hosts"]:
        if not host or "/" in host or host in {".", ".."}:
            return f"host {host!r} cannot name a sub-folder of the bundle"
    return None


def handle(request: Request) -> dict[str, Any]:
    root = Path(request.params["path"])
    if not root.is_dir():
        raise ModuleFailure(f"path {root} is not a folder; point it at the evidence bundle")
    problem = _bad_input(request.params)
    if problem:
        raise ModuleFailure(problem)
    runbook = build(request.params)
    data = (json.dumps(runbook, indent=2, sort_keys=True) + "\n").encode("utf-8")
    target = root / RUNBOOK
    changed = differs(target, data, 0o644)
    if changed and not request.check_mode:
        write_if_changed(target, data, 0o644)
    return {
        "changed": changed,
        "runbook": runbook,
        "missing": runbook["missing"],
        "complete": runbook["complete"],
    }


def main() -> None:
    run_module(
        {
            "path": {"type": "path", "required": True},
            "run_id": {"type": "str", "required": True},
            "inventory": {"type": "str", "required": True},
            "runtime": {"type": "str", "required": True},
            "adaptation": {
                "type": "dict",
                "required": True,
                "options": {
                    "choice": {
                        "type": "str",
                        "required": True,
                        "choices": ["none", "prompt", "rag", "quantization", "lora"],
                    },
                    "reason": {"type": "str", "required": True},
                },
            },
            "plan_files": {"type": "list", "elements": "str", "default": []},
            "standard_files": {"type": "list", "elements": "str", "default": []},
            "hosts": {"type": "list", "elements": "str", "default": []},
        },
        handle,
    )


if __name__ == "__main__":
    main()
