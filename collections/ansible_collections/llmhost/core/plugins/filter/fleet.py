"""Filters llmhost.core.replica_upstreams and llmhost.core.host_port.

Documentation: replica_upstreams.yml and host_port.yml next to this file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError

FACT = "llmhost_vllm"


def host_port(host: str, port: int | str) -> str:
    """host:port, a bare IPv6 address in brackets ([::1]:8000)."""
    host = str(host)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    try:
        return f"{host}:{int(port)}"
    except (TypeError, ValueError):
        return f"{host}:{port}"  # a bad port: the caller's own check names it


def replica_upstreams(
    replicas: Sequence[str], hostvars: Mapping[str, Any], targets: bool = False
) -> list[Any]:
    """Where each replica's vLLM listens, from the local fact its vllm role wrote
    (ansible_local.llmhost_vllm: host and port), in inventory order."""
    if isinstance(replicas, str) or not isinstance(replicas, Sequence):
        raise AnsibleFilterError("replica_upstreams: expects the list groups['llmhost_replicas']")
    if not replicas:
        raise AnsibleFilterError(
            "The inventory's llmhost_replicas group is empty: list the hosts that serve the "
            "model there (the lab: the one host, in llmhost_replicas and llmhost_gateway)."
        )
    out: list[Any] = []
    missing: list[str] = []
    for name in replicas:
        facts = (hostvars.get(name) or {}).get("ansible_facts") or {}
        fact = (facts.get("ansible_local") or {}).get(FACT)
        if not isinstance(fact, Mapping) or not fact.get("host") or not fact.get("port"):
            missing.append(name)
            continue
        host, port = str(fact["host"]), int(fact["port"])
        out.append(host_port(host, port) if targets else {"host": host, "port": port})
    if missing:
        raise AnsibleFilterError(
            f"No vLLM address known for replica(s) {', '.join(missing)}: their local fact "
            f"ansible_local.{FACT} is missing (vLLM not installed yet, or the host is not in "
            "this run). Fix: serve the replicas first (serve.yml without --limit, or with "
            "the replicas in the --limit)."
        )
    return out


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"replica_upstreams": replica_upstreams, "host_port": host_port}
