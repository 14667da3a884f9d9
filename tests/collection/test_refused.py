"""llmhost.core.refused: one message per failing rule of a role's input check."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.llmhost.core.plugins.filter.refusals import FilterModule, refused


def test_only_failing_rules_in_order_with_the_variable_first() -> None:
    rules = [
        {"var": "a_port", "ok": True, "msg": "never shown"},
        {"var": "a_host", "ok": False, "msg": "must be loopback,\n  got 'x'. Fix: 127.0.0.1."},
        {"var": "a_root", "ok": "false", "msg": "a system directory"},
        {"var": "a_mode", "ok": "True", "msg": "never shown either"},
    ]
    assert refused(rules) == [
        "a_host: must be loopback, got 'x'. Fix: 127.0.0.1.",
        "a_root: a system directory",
    ]


def test_every_rule_holding_is_empty() -> None:
    assert refused([]) == []
    assert refused([{"var": "x", "ok": 1, "msg": "m"}]) == []


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ([{"var": "x", "msg": "m"}], "rule 0 needs var, ok and msg"),
        (["not a rule"], "rule 0 needs var, ok and msg"),
        (
            [{"var": "x", "ok": True, "msg": "m"}, {"var": "y", "ok": "maybe", "msg": "m"}],
            "rule 1 (y): ok is not a boolean",
        ),
    ],
)
def test_malformed_rules_are_errors(rules: list, message: str) -> None:
    with pytest.raises(AnsibleFilterError, match=message.replace("(", r"\(").replace(")", r"\)")):
        refused(rules)


def test_the_plugin_exposes_it() -> None:
    assert FilterModule().filters()["refused"] is refused
