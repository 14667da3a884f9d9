"""Test llmhost.core.ip_source: an IPv4/IPv6 address or network a firewall rule may name.

Python's ipaddress (standard library) instead of ansible.utils' ipaddr, which needs netaddr
on the control node for one predicate. Documentation: ip_source.yml next to this file.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any


def ip_source(value: object) -> bool:
    """True for an address or a network in CIDR form (host bits clear), v4 or v6.

    Refused: names, empty strings, host bits set (10.0.0.1/8, which nft would also refuse),
    and the whole address space (0.0.0.0/0, ::/0): that is not a source restriction.
    """
    if not isinstance(value, str) or not value.strip() or value != value.strip():
        return False
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError:
        return False
    return network.prefixlen > 0


class TestModule:
    """llmhost.core network tests."""

    def tests(self) -> dict[str, Callable[..., Any]]:
        return {"ip_source": ip_source}
