"""llmhost.core.apt_satisfied: skip apt only when every spec is installed as asked."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.llmhost.core.plugins.filter.packages import apt_satisfied

FACTS = {
    "nginx": [{"name": "nginx", "version": "1.22.1-9+deb12u3"}],
    "g++": [{"name": "g++", "version": "4:12.2.0-3"}],
    "libc6": [
        {"name": "libc6", "version": "2.36-9"},
        {"name": "libc6", "version": "2.36-9+deb12u1"},
    ],
}


def test_installed_names_and_exact_versions_are_satisfied() -> None:
    assert apt_satisfied(["nginx=1.22.1-9+deb12u3", "g++"], FACTS)
    assert apt_satisfied(["libc6=2.36-9+deb12u1"], FACTS)  # one of several installed arches


@pytest.mark.parametrize(
    "specs",
    [["nginx=1.22.1-9+deb12u4"], ["absent"], ["g++", "python3-dev"]],
    ids=["other-version", "missing", "one-missing"],
)
def test_anything_missing_or_other_means_apt_runs(specs: list[str]) -> None:
    assert apt_satisfied(specs, FACTS) is False


def test_no_facts_means_apt_runs() -> None:
    assert apt_satisfied(["nginx"], {}) is False
    assert apt_satisfied(["nginx"], None) is False


def test_a_string_is_refused() -> None:
    with pytest.raises(AnsibleFilterError, match="list of package specs"):
        apt_satisfied("nginx", FACTS)  # type: ignore[arg-type]
