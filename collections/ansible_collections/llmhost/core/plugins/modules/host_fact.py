#!/usr/bin/python
"""llmhost.core.host_fact: hand a role's result to later runs and roles through the host."""
# Ansible layout: the documentation blocks come before the imports.
# ruff: noqa: E402

from __future__ import annotations

DOCUMENTATION = r"""
---
module: host_fact
short_description: Record a role's result on the host as a local fact (facts.d)
version_added: 0.2.0
description:
  - Writes O(data) as JSON to C(<dir>/<name>.fact), the place Ansible reads local facts
    from, so that what one role produces (the model folder, the serving release, the
    gateway's certificate) is found by the role that consumes it in this run and in any
    later run, as C(ansible_local.<name>), even when the producing role is skipped
    (C(--tags)) or ran in another run. Nothing travels through the evidence bundle.
  - Returns every local fact of the folder as C(ansible_facts.ansible_local), so the new
    value is visible at once without gathering facts again.
  - Writes atomically (temporary file, then rename), mode 0644 (no secrets here), and
    only when the content changes. Check mode reports the change and returns the new
    facts without writing.
author:
  - llmhost project
options:
  name:
    description: Fact name (file C(<name>.fact)); letters, digits and C(_).
    type: str
    required: true
  data:
    description: The fact's content, a JSON-serialisable mapping. Never put secrets here.
    type: dict
    required: true
  dir:
    description:
      - The local facts folder. When not given, the environment variable
        C(LLMHOST_FACTS_DIR) of the module's process, else C(/etc/ansible/facts.d) (the
        tests that converge a role on the control node point it at a temporary folder).
    type: path
    default: /etc/ansible/facts.d
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
"""

EXAMPLES = r"""
- name: Record the model that is now in the store
  llmhost.core.host_fact:
    name: llmhost_model_store
    data:
      path: /srv/llmhost/models/tiny/local-0123456789ab
      revision: local-0123456789ab
"""

RETURN = r"""
path:
  description: The fact file.
  returned: always
  type: str
ansible_facts:
  description: C(ansible_local) with every local fact of O(dir), the new one included.
  returned: always
  type: dict
"""

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from ansible.module_utils.basic import env_fallback
from ansible_collections.llmhost.core.plugins.module_utils.module import (
    ModuleFailure,
    Request,
    run_module,
)

NAME_RE = re.compile(r"^[A-Za-z0-9_]+$")


def render(data: dict[str, Any]) -> str:
    """The file's text: stable key order so an unchanged result is byte-identical."""
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def read_local_facts(folder: Path) -> dict[str, Any]:
    """Every readable ``*.fact`` JSON file of ``folder``, by name (as setup reads them)."""
    facts: dict[str, Any] = {}
    if not folder.is_dir():
        return facts
    for path in sorted(folder.glob("*.fact")):
        try:
            facts[path.stem] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
    return facts


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        Path(tmp).chmod(0o644)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def handle(request: Request) -> dict[str, Any]:
    name = request.params["name"]
    if not NAME_RE.match(name):
        raise ModuleFailure(f"name '{name}' must use letters, digits and '_' only")
    folder = Path(request.params["dir"])
    path = folder / f"{name}.fact"
    text = render(request.params["data"])
    before = path.read_text(encoding="utf-8") if path.is_file() else ""
    changed = before != text
    if changed and not request.check_mode:
        folder.mkdir(mode=0o755, parents=True, exist_ok=True)
        write_atomic(path, text)
    facts = read_local_facts(folder)
    facts[name] = json.loads(text)
    return {
        "changed": changed,
        "path": str(path),
        "diff": {
            "before": before,
            "after": text,
            "before_header": str(path),
            "after_header": str(path),
        },
        "ansible_facts": {"ansible_local": facts},
    }


def main() -> None:
    run_module(
        {
            "name": {"type": "str", "required": True},
            "data": {"type": "dict", "required": True},
            "dir": {
                "type": "path",
                "default": "/etc/ansible/facts.d",
                "fallback": (env_fallback, ["LLMHOST_FACTS_DIR"]),
            },
        },
        handle,
    )


if __name__ == "__main__":
    main()
