"""llmhost.core.ip_source: the sources a firewall opening may name."""

from __future__ import annotations

import pytest
from ansible_collections.llmhost.core.plugins.test.network import TestModule as NetworkTests
from ansible_collections.llmhost.core.plugins.test.network import ip_source


@pytest.mark.parametrize(
    "value", ["10.0.0.5", "10.0.0.0/8", "192.168.1.0/24", "fd00::1", "fd00::/64", "127.0.0.1/32"]
)
def test_addresses_and_networks_are_sources(value: str) -> None:
    assert ip_source(value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        " ",
        " 10.0.0.5",
        "10.0.0.5 ",
        "10.0.0.1/8",  # host bits set: nft refuses it too
        "0.0.0.0/0",  # everyone: no restriction
        "::/0",
        "gateway.example.com",
        "10.0.0.256",
        "10.0.0.0/33",
        "10.0.0.5; accept",
        "10.0.0.5, 10.0.0.6",
        None,
        5,
        ["10.0.0.5"],
    ],
)
def test_anything_else_is_refused(value: object) -> None:
    assert not ip_source(value)


def test_the_plugin_exposes_it() -> None:
    assert NetworkTests().tests()["ip_source"] is ip_source
