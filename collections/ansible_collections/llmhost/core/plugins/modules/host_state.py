#!/usr/bin/python
"""llmhost.core.host_state: what is on a serving host, for the run's drift report."""
# Ansible layout: the documentation blocks come before the imports.
# ruff: noqa: E402

from __future__ import annotations

DOCUMENTATION = r"""
---
module: host_state
short_description: Collect what is installed and configured on a serving host (host_state.json)
version_added: 0.3.0
description:
  - Reads, without running anything, the installed Debian packages (dpkg's status file),
    the distributions of every Python venv under O(venv_roots) (their dist-info METADATA),
    sha256 of the systemd units and drop-ins (O(units)) and of the config files
    (O(files)), the llmhost local facts (model revision and manifest digest, vLLM's
    release), vLLM's current C(release.json), the sha256 fingerprint of the gateway's
    certificate (DER) and a digest of C(/etc/machine-id).
  - File contents are hashed, never returned, as the config files include secrets (the
    gateway's keys, vLLM's environment file).
  - Marks the keys a rebuild changes by design (O(run_specific)) so that the comparison
    with the previous run can tell them from real differences.
  - Changes nothing; runs with become to read root-only files.
author:
  - llmhost project
options:
  run_id:
    description: The run's id, recorded in the document.
    type: str
    required: true
  host:
    description: The inventory host name, recorded in the document.
    type: str
    required: true
  dpkg_status:
    description: dpkg's status file.
    type: path
    default: /var/lib/dpkg/status
  venv_roots:
    description: Folders searched for venvs (folders holding C(pyvenv.cfg)).
    type: list
    elements: path
    default: [/opt/llmhost]
  venv_max_depth:
    description: How many levels below a root a venv may be.
    type: int
    default: 4
  units:
    description: >-
      Units and drop-ins to hash: C(<dir>/**) is everything below dir, other patterns
      are globs. Symlinks (enabled units) are recorded as C(-> target).
    type: list
    elements: str
    default: [/etc/systemd/system/**]
  files:
    description: Config files to hash, patterns as for O(units).
    type: list
    elements: str
    default: []
  facts_dir:
    description: The local facts folder (C(llmhost_*.fact) are read).
    type: path
    default: /etc/ansible/facts.d
  certificate:
    description: The gateway's certificate (PEM); empty = the llmhost_gateway fact's path.
    type: path
    default: ""
  machine_id_file:
    description: The machine id (only its sha256 is recorded).
    type: path
    default: /etc/machine-id
  run_specific:
    description: >-
      Rules for values a rebuild changes: C(key) an fnmatch pattern over the flattened
      keys (C(package:<name>:<arch>), C(venv:<path>:<dist>), C(unit:<path>),
      C(file:<path>), C(fact:<fact>.<field>), C(model:<field>), C(tls:<field>),
      C(host:machine_id_sha256)), C(reason), and C(self_signed_only) to apply the rule
      only when the certificate is self-signed.
    type: list
    elements: dict
    default: []
attributes:
  check_mode:
    support: full
"""

EXAMPLES = r"""
- name: Collect the host's state
  llmhost.core.host_state:
    run_id: "{{ llmhost_run_id }}"
    host: "{{ inventory_hostname }}"
    files: [/etc/nginx/**, /etc/prometheus/**, /etc/llmhost/**]
    run_specific:
      - key: host:machine_id_sha256
        reason: a new host gets a new machine id on its first boot
  become: true
  register: _state
"""

RETURN = r"""
state:
  description: >-
    The host_state.json document: packages (count, sha256, versions), venvs, units, files,
    local_facts, model, tls, machine_id_sha256 and run_specific ([{key, reason}]).
  returned: always
  type: dict
"""

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ansible_collections.llmhost.core.plugins.module_utils.host_state import collect
from ansible_collections.llmhost.core.plugins.module_utils.module import (
    ModuleFailure,
    Request,
    run_module,
)


def handle(request: Request) -> dict[str, Any]:
    params = request.params
    bad = [r for r in params["run_specific"] if not isinstance(r.get("key"), str)]
    if bad:
        raise ModuleFailure(f"run_specific: each rule needs a 'key' pattern, got {bad}")
    try:
        state = collect(
            host=params["host"],
            run_id=params["run_id"],
            collected_at=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),  # noqa: UP017 - hosts may run 3.10
            dpkg_status=Path(params["dpkg_status"]),
            venv_roots=params["venv_roots"],
            venv_max_depth=params["venv_max_depth"],
            units=params["units"],
            files=params["files"],
            facts_dir=Path(params["facts_dir"]),
            certificate=params["certificate"] or "",
            machine_id_file=Path(params["machine_id_file"]),
            run_specific=params["run_specific"],
        )
    except (OSError, ValueError) as error:
        raise ModuleFailure(f"cannot collect the host's state: {error}") from error
    return {"changed": False, "state": state}


def main() -> None:
    run_module(
        {
            "run_id": {"type": "str", "required": True},
            "host": {"type": "str", "required": True},
            "dpkg_status": {"type": "path", "default": "/var/lib/dpkg/status"},
            "venv_roots": {"type": "list", "elements": "path", "default": ["/opt/llmhost"]},
            "venv_max_depth": {"type": "int", "default": 4},
            "units": {"type": "list", "elements": "str", "default": ["/etc/systemd/system/**"]},
            "files": {"type": "list", "elements": "str", "default": []},
            "facts_dir": {"type": "path", "default": "/etc/ansible/facts.d"},
            "certificate": {"type": "path", "default": ""},
            "machine_id_file": {"type": "path", "default": "/etc/machine-id"},
            "run_specific": {"type": "list", "elements": "dict", "default": []},
        },
        handle,
    )


if __name__ == "__main__":
    main()
