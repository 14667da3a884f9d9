#!/usr/bin/python
"""llmhost.core.host_state_drift: a host's state compared with the last run's (control node)."""
# Ansible layout: the documentation blocks come before the imports.
# ruff: noqa: E402

from __future__ import annotations

DOCUMENTATION = r"""
---
module: host_state_drift
short_description: Compare a host's state with the previous run of the same inventory
version_added: 0.3.0
description:
  - Runs on the control node. Reads the previous state of the host from the control-node
    cache (O(previous), C(.cache/state/<inventory>/<host>.json)), never from a past
    evidence bundle, and compares it with O(current) (what llmhost.core.host_state
    returned in this run).
  - Returns the drift report (C(identical) is true when the only differences are
    run-specific values) and its Markdown page. Writes nothing; the role writes the
    report into the bundle and then the current state into the cache.
  - The first run of an inventory has no previous state; C(previous_run) and
    C(identical) are then null.
author:
  - llmhost project
options:
  current:
    description: This run's state of the host.
    type: dict
    required: true
  previous:
    description: The cached state of the host's previous run (absent on a first run).
    type: path
    required: true
attributes:
  check_mode:
    support: full
"""

EXAMPLES = r"""
- name: Compare with the previous run
  llmhost.core.host_state_drift:
    current: "{{ _state.state }}"
    previous: "{{ playbook_dir | dirname }}/.cache/state/lab/llmhost-lab.json"
  delegate_to: localhost
  register: _drift
"""

RETURN = r"""
report:
  description: >-
    drift_report.json: schema, host, run_id, previous_run, identical, summary,
    compared_keys, differences ([{key, previous, current}]) and run_specific
    ([{key, previous, current, reason}]).
  returned: always
  type: dict
markdown:
  description: drift_report.md.
  returned: always
  type: str
"""

from pathlib import Path
from typing import Any

from ansible_collections.llmhost.core.plugins.module_utils.host_state import (
    compare,
    read_state,
    render_markdown,
)
from ansible_collections.llmhost.core.plugins.module_utils.module import (
    Request,
    run_module,
)


def handle(request: Request) -> dict[str, Any]:
    report = compare(read_state(Path(request.params["previous"])), request.params["current"])
    return {"changed": False, "report": report, "markdown": render_markdown(report)}


def main() -> None:
    run_module(
        {
            "current": {"type": "dict", "required": True},
            "previous": {"type": "path", "required": True},
        },
        handle,
    )


if __name__ == "__main__":
    main()
