#!/usr/bin/python
"""llmhost.core.disk_space: free and total space of the filesystem that holds a path."""
# Ansible layout: the documentation blocks come before the imports.
# ruff: noqa: E402

from __future__ import annotations

DOCUMENTATION = r"""
---
module: disk_space
short_description: Free and total space of the filesystem that will hold a path
version_added: 0.1.0
description:
  - Walks up from O(path) to the nearest existing folder and reports the space of its
    filesystem with C(statvfs). The path need not exist yet (a models root before the
    first download, say).
  - Works where C(ansible_facts.mounts) does not list the root filesystem, as in
    containers whose root is an overlay.
  - Read-only; supports check mode.
author:
  - llmhost project
options:
  path:
    description: Absolute path on the host.
    type: path
    required: true
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: How much room is there for models
  llmhost.core.disk_space:
    path: /srv/llmhost/models
  register: models_disk
"""

RETURN = r"""
path:
  description: The path asked about.
  returned: always
  type: str
existing:
  description: The nearest existing folder at or above O(path) that was measured.
  returned: always
  type: str
  sample: /srv
total_bytes:
  description: Size of the filesystem.
  returned: always
  type: int
free_bytes:
  description: Space available to unprivileged users.
  returned: always
  type: int
total_gib:
  description: Size of the filesystem in GiB, 2 decimals.
  returned: always
  type: float
free_gib:
  description: Available space in GiB, 2 decimals.
  returned: always
  type: float
"""

import os
from pathlib import Path
from typing import Any

from ansible_collections.llmhost.core.plugins.module_utils.module import (
    ModuleFailure,
    Request,
    run_module,
)

GIB = 1024**3


def nearest_existing(path: str) -> str:
    """The path itself when it exists, else its nearest existing ancestor."""
    current = Path(path).absolute()
    while not current.exists() and current.parent != current:
        current = current.parent
    return str(current)


def measure(path: str) -> dict[str, Any]:
    """statvfs of the filesystem holding ``path`` (which may not exist yet)."""
    existing = nearest_existing(path)
    st = os.statvfs(existing)
    total = st.f_blocks * st.f_frsize
    free = st.f_bavail * st.f_frsize
    return {
        "path": path,
        "existing": existing,
        "total_bytes": total,
        "free_bytes": free,
        "total_gib": round(total / GIB, 2),
        "free_gib": round(free / GIB, 2),
    }


def handle(request: Request) -> dict[str, Any]:
    path = request.params["path"]
    if not Path(path).is_absolute():
        raise ModuleFailure(f"path must be absolute, got '{path}'")
    return {"changed": False, **measure(path)}


def main() -> None:
    run_module({"path": {"type": "path", "required": True}}, handle)


if __name__ == "__main__":
    main()
