"""Filter llmhost.core.refused: the failing rules of a role's input check, one message each.

Every role checks its inputs with one assert over a list of rules, each
``{var, ok, msg}``; this filter keeps the rules whose ``ok`` is false and renders
``"<var>: <msg>"`` for each. One assert evaluates the whole list at once: an assert looping
over the rules costs a task execution per rule (about 40 ms each on the lab host), this
costs one. Documentation: refused.yml next to this file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean


def refused(rules: Iterable[Mapping[str, Any]]) -> list[str]:
    """["<var>: <msg>" for every rule whose ok is false], in the rules' order."""
    out: list[str] = []
    for index, rule in enumerate(rules):
        if not isinstance(rule, Mapping) or not {"var", "ok", "msg"} <= set(rule):
            got = f"{type(rule).__name__} {str(rule)[:100]!r}"
            raise AnsibleFilterError(
                f"llmhost.core.refused: rule {index} needs var, ok and msg, got {got}"
            )
        try:
            ok = boolean(rule["ok"], strict=True)
        except TypeError as error:
            raise AnsibleFilterError(
                f"llmhost.core.refused: rule {index} ({rule['var']}): ok is not a boolean"
            ) from error
        if not ok:
            out.append(f"{rule['var']}: {' '.join(str(rule['msg']).split())}")
    return out


class FilterModule:
    """llmhost.core input-check filter."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"refused": refused}
