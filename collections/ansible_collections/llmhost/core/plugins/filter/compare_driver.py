"""Filter llmhost.core.compare_driver: installed vs wanted NVIDIA driver."""

from __future__ import annotations

DOCUMENTATION = r"""
name: compare_driver
short_description: Compare the installed NVIDIA driver with the wanted branch or version
version_added: 0.1.0
author:
  - llmhost project
description:
  - Decides whether a preinstalled driver can be left alone.
  - O(wanted) is a branch (V(580)), a branch.minor (V(580.159)) or an exact version
    (V(580.159.04)); an installed version matches when it starts with every component of
    O(wanted). An empty O(wanted) accepts any installed driver.
  - Fails when O(wanted) is not a dotted number.
positional: _input, wanted
options:
  _input:
    description: Installed version (e.g. C(compute.gpu.driver_version)); null or empty when
      no driver is loaded.
    type: str
    required: true
  wanted:
    description: Wanted branch or exact version.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Decide whether to touch the driver
  ansible.builtin.set_fact:
    _driver: "{{ compute.gpu.driver_version | llmhost.core.compare_driver('580') }}"
# _driver.status == 'match' on a host with 580.159.04 installed

- name: Say why the driver is left alone
  ansible.builtin.debug:
    msg: "{{ _driver.message }}"
  when: _driver.status == 'match'
"""

RETURN = r"""
_value:
  description: The comparison.
  type: dict
  contains:
    status:
      description: match, mismatch or absent (no driver installed).
      type: str
      sample: match
    installed:
      description: The installed version, null when absent.
      type: str
      sample: 580.159.04
    wanted:
      description: The wanted branch or version, null when any is accepted.
      type: str
      sample: "580"
    message:
      description: One sentence naming both versions.
      type: str
      sample: Installed NVIDIA driver 580.159.04 matches the wanted branch 580.
"""

from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

from ansible.errors import AnsibleFilterError  # noqa: E402
from ansible_collections.llmhost.core.plugins.module_utils.nvidia_smi import (  # noqa: E402
    compare_driver,
)


def compare_driver_filter(
    installed: str | None, wanted: str | int | float | None
) -> dict[str, Any]:
    try:
        have = None if installed is None else str(installed)
        return compare_driver(have, None if wanted is None else str(wanted))
    except ValueError as exc:
        raise AnsibleFilterError(f"llmhost.core.compare_driver: {exc}") from exc


class FilterModule:
    """llmhost.core driver filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"compare_driver": compare_driver_filter}
