"""Filter llmhost.core.evidence_folder: a host's folder in the run's bundle, by the rule
llmhost.core.evidence_write writes by (module_utils/evidence_bundle.py, host_folder).

Documentation: evidence_folder.yml next to this file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.llmhost.core.plugins.module_utils.evidence_bundle import host_folder


def evidence_folder(bundle: Any, host: str, play_hosts: Sequence[str]) -> str:
    """``<bundle>/<host>`` when the play has several hosts, else ``<bundle>``; '' for ''."""
    if isinstance(play_hosts, str) or not isinstance(play_hosts, Sequence):
        raise AnsibleFilterError("evidence_folder: play_hosts must be ansible_play_hosts_all")
    return host_folder(str(bundle or ""), str(host), list(play_hosts))


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"evidence_folder": evidence_folder}
