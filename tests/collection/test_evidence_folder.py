"""llmhost.core.evidence_folder: the host's folder in the bundle, the rule evidence_write
writes by (one definition: module_utils/evidence_bundle.host_folder)."""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.llmhost.core.plugins.action import evidence_write
from ansible_collections.llmhost.core.plugins.filter.evidence import evidence_folder


def test_own_folder_only_when_the_play_has_several_hosts() -> None:
    assert evidence_folder("/b/run", "h1", ["h1"]) == "/b/run"
    assert evidence_folder("/b/run", "h1", ["h1", "h2"]) == "/b/run/h1"


def test_no_bundle_no_folder() -> None:
    assert evidence_folder("", "h1", ["h1", "h2"]) == ""
    assert evidence_folder(None, "h1", ["h1"]) == ""


@pytest.mark.parametrize("hosts", [["h1"], ["h1", "h2"]])
def test_the_filter_names_the_folder_evidence_write_writes_into(hosts: list[str]) -> None:
    folder = evidence_folder("/b/run", "h1", hosts)
    assert Path(folder) == evidence_write.target_dir("/b/run", "h1", hosts)


def test_a_host_name_is_not_a_host_list() -> None:
    with pytest.raises(AnsibleFilterError, match="ansible_play_hosts_all"):
        evidence_folder("/b", "h1", "h1")  # type: ignore[arg-type]
