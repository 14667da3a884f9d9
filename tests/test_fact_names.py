"""A fact a role sets never shadows a name the role defines as a variable.

set_fact outranks role vars and task vars for the rest of the play run, so a fact named
like one of them silently replaces it the next time the role runs in the same run (the
lab runs preflight once per play). Checked for every role: the names its tasks set with
set_fact or register against the names in vars/main.yml and in the tasks' own vars."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ROLES = sorted(p.parent for p in ROOT.glob("roles/*/tasks"))


def _tasks(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, list):
        for item in node:
            yield from _tasks(item)
    elif isinstance(node, dict):
        yield node
        for key in ("block", "rescue", "always"):
            yield from _tasks(node.get(key))


def _names(role: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(facts set: name -> file, variables defined: name -> file)."""
    facts: dict[str, str] = {}
    defined: dict[str, str] = {}
    vars_file = role / "vars" / "main.yml"
    if vars_file.is_file():
        for name in yaml.safe_load(vars_file.read_text(encoding="utf-8")) or {}:
            defined[name] = "vars/main.yml"
    for path in sorted((role / "tasks").glob("*.yml")):
        rel = path.relative_to(role).as_posix()
        for task in _tasks(yaml.safe_load(path.read_text(encoding="utf-8"))):
            for name in task.get("vars") or {}:
                defined.setdefault(name, rel)
            for key in ("ansible.builtin.set_fact", "set_fact"):
                for name in task.get(key) or {}:
                    if name != "cacheable":
                        facts.setdefault(name, rel)
            if isinstance(task.get("register"), str):
                facts.setdefault(task["register"], rel)
    return facts, defined


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_no_fact_shadows_a_role_variable(role: Path) -> None:
    facts, defined = _names(role)
    clashes = [f"{n} (set in {facts[n]}, defined in {defined[n]})" for n in facts if n in defined]
    assert clashes == []
