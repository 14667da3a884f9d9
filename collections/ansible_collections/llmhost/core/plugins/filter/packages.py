"""Filter llmhost.core.apt_satisfied. Documentation: apt_satisfied.yml next to this file."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError


def apt_satisfied(specs: Iterable[str], packages: Mapping[str, Any] | None) -> bool:
    """Whether every apt spec ('name' or 'name=version') is installed, per package_facts.

    No package facts (preflight did not run) answers False, so apt runs and decides."""
    if isinstance(specs, str) or not isinstance(specs, Iterable):
        raise AnsibleFilterError("apt_satisfied: expects a list of package specs")
    if not packages:
        return False
    for spec in specs:
        name, _, version = str(spec).partition("=")
        entries = packages.get(name) or []
        installed = [str(p.get("version", "")) for p in entries if isinstance(p, Mapping)]
        if not installed or (version and version not in installed):
            return False
    return True


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"apt_satisfied": apt_satisfied}
