"""The gateway role's input checks, run for real on localhost (preflight tag only): the
shapes in meta/argument_specs.yml (tenants, upstreams, endpoints, tenant defaults, choices)
and the cross-field rules of tasks/preflight.yml (unique names and keys, key format, limits,
ports, paths, server names, the firewall's SSH port, numbers in range, sizes); each refused
with the variable's name, before anything is installed or written, and no key is shown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from role_runner import CaseResult, run_cases

KEY = "gateway-refusal-key-0123456789"
KEY_B = "gateway-refusal-key-bob-0123456789"
UPSTREAM_KEY = "upstream-refusal-key-0123456789"
ALICE = {"name": "alice", "key": KEY}
CHAT = {"path": "/v1/chat/completions", "methods": ["POST"]}


def _vars(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    extra: dict[str, Any] = {
        "gateway_tenants": [ALICE],
        "gateway_upstream_api_key": UPSTREAM_KEY,
        "gateway_evidence_dir": str(tmp_path / "bundle"),
        "gateway_firewall_enabled": False,
    }
    extra.update(overrides)
    return extra


def _tenants(*extra: dict[str, Any]) -> dict[str, Any]:
    return {"gateway_tenants": [ALICE, *extra]}


def _opening(port: int, *sources: str) -> dict[str, Any]:
    return {"gateway_firewall_allow": [{"port": port, "sources": list(sources), "comment": "vllm"}]}


CASES = [
    # Server names, the firewall's SSH port, client limits (cross-field rules).
    ({"gateway_server_names": ["llm.example.com;"]}, "gateway_server_names: must list DNS names"),
    ({"gateway_server_names": ["a b"]}, "refused: ['a b']"),
    ({"gateway_server_names": ["x.com { return 200; }"]}, "gateway_server_names"),
    ({"gateway_server_names": ["-bad.example.com"]}, "gateway_server_names"),
    ({"gateway_server_names": ["*"]}, "gateway_server_names"),
    ({"gateway_server_names": []}, "an empty list"),
    (
        {"gateway_firewall_enabled": True, "gateway_firewall_ssh_port": 22, "ansible_port": 2222},
        "gateway_firewall_ssh_port: 22 is not the port this run",
    ),
    ({"gateway_client_header_timeout_s": 0}, "gateway_client_header_timeout_s"),
    ({"gateway_anonymous_rate_per_minute": 0}, "gateway_anonymous_rate_per_minute"),
    # Nested shapes (meta/argument_specs.yml).
    (
        {"gateway_tenants": [{"name": "alice"}]},
        "missing required arguments: key found in gateway_tenants",
    ),
    (
        {"gateway_tenants": [{**ALICE, "colour": "red"}]},
        "gateway_tenants.colour. Supported parameters include",
    ),
    (
        {"gateway_tenant_defaults": {"rate_per_minute": 60}},
        "missing required arguments: concurrency, rate_burst found in gateway_tenant_defaults",
    ),
    (
        {"gateway_upstreams": [{"host": "127.0.0.1", "port": "eighty"}]},
        "argument 'port' is of type str found in 'gateway_upstreams'",
    ),
    (
        {"gateway_endpoints": [{"path": "/v1/models"}]},
        "missing required arguments: methods found in gateway_endpoints",
    ),
    (
        {"gateway_endpoints": [{"path": "/v1/models", "methods": ["FETCH"]}]},
        "value of methods must be one or more of: GET, POST, PUT, PATCH, DELETE",
    ),
    (
        {"gateway_tls_protocols": ["TLSv1", "TLSv1.2"]},
        "value of gateway_tls_protocols must be one or more of: TLSv1.2, TLSv1.3",
    ),
    ({"gateway_http": "on"}, "value of gateway_http must be one of: off, redirect"),
    (
        {"gateway_firewall_allow": [{"port": 8000, "sources": ["10.0.0.5"]}]},
        "missing required arguments: comment found in gateway_firewall_allow",
    ),
    # Firewall openings: named sources only, a port not already open to everyone.
    (_opening(8000, "0.0.0.0/0"), "refused: ['0.0.0.0/0']"),
    (_opening(8000, "::/0", "10.0.0.5"), "refused: ['::/0']"),
    (_opening(8000), "refused: ['none for port 8000']"),
    (_opening(8000, "gateway.example.com"), "refused: ['gateway.example.com']"),
    (_opening(8000, "10.0.0.1/8"), "refused: ['10.0.0.1/8']"),
    (_opening(8000, "10.0.0.5; accept"), "gateway_firewall_allow[].sources"),
    (_opening(443, "10.0.0.5"), "gateway_firewall_allow[].port: must be 1-65535 and not 22, 443"),
    (_opening(70000, "10.0.0.5"), "got [70000]"),
    # Tenants (cross-field rules; keys never shown).
    ({"gateway_tenants": []}, "gateway_tenants: no tenant is defined"),
    (_tenants({"name": "Team A", "key": KEY_B}), "starting with a letter; got ['Team A']"),
    (_tenants({"name": "alice", "key": KEY_B}), "the names ['alice'] are used more than once"),
    (
        _tenants({"name": "bob", "key": KEY.upper()}),
        "tenants ['alice', 'bob'] share one key (nginx compares keys ignoring case)",
    ),
    (
        _tenants({"name": "bob", "key": "bob-short-key"}),
        "the keys of tenants ['bob'] are not 16 to 200 characters",
    ),
    (
        _tenants({"name": "bob", "key": "bob key with spaces 0123456789"}),
        "the keys of tenants ['bob'] are not 16 to 200 characters",
    ),
    (
        _tenants({"name": "bob", "key": KEY_B, "rate_per_minute": 0}),
        "got ['bob.rate_per_minute=0']",
    ),
    (_tenants({"name": "bob", "key": KEY_B, "rate_burst": -1}), "got ['bob.rate_burst=-1']"),
    (
        {"gateway_tenant_defaults": {"rate_per_minute": 60, "rate_burst": 5, "concurrency": 0}},
        "got ['alice.concurrency=0']",
    ),
    # Upstreams and vLLM's key.
    ({"gateway_upstreams": []}, "gateway_upstreams: no vLLM backend is listed"),
    (
        {"gateway_upstreams": [{"host": "127.0.0.1", "port": 70000}]},
        "port 1-65535; got ['127.0.0.1:70000']",
    ),
    ({"gateway_upstreams": [{"host": "::1", "port": 8000}]}, "[IPv6] address and port 1-65535"),
    (
        {"gateway_upstream_api_key": "short-upstream"},
        "gateway_upstream_api_key: must be vLLM's API key",
    ),
    # The allowlist.
    (
        {"gateway_endpoints": [{"path": "v1/chat/completions", "methods": ["POST"]}]},
        "other than /healthz; got ['v1/chat/completions']",
    ),
    ({"gateway_endpoints": [{"path": "/healthz", "methods": ["GET"]}]}, "got ['/healthz']"),
    ({"gateway_endpoints": [CHAT, CHAT]}, "['/v1/chat/completions'] listed twice"),
    (
        {"gateway_endpoints": [{"path": "/v1/models", "methods": []}]},
        "every endpoint needs at least one method",
    ),
    # Scalars and pairs.
    ({"gateway_worker_connections": 0}, "gateway_worker_connections: must be 64 to 262144"),
    ({"gateway_log_retention_days": -1}, "gateway_log_retention_days: must be a whole number"),
    ({"gateway_log_max_size": "100 MB"}, "gateway_log_max_size: must be a logrotate size"),
    ({"gateway_healthz_cache_s": 0}, "gateway_healthz_cache_s: must be 1 to 10 s"),
    (
        {"gateway_access_log": "/srv/logs/gateway.log"},
        "must be two different *.log files directly in /var/log/nginx",
    ),
    ({"gateway_status_port": 443}, "must be two different ports within 1-65535; got [443, 443]"),
    ({"gateway_max_body_size": "1 GB"}, "gateway_max_body_size: must be an nginx size"),
    ({"gateway_read_timeout_s": 3}, "must exceed gateway_connect_timeout_s (5)"),
    (
        {"gateway_tls_certificate": "-----BEGIN CERTIFICATE-----\nMIIB\n"},
        "gateway_tls_certificate / gateway_tls_private_key: give both as PEM",
    ),
    (
        {"gateway_tls_valid_days": 90, "gateway_tls_renew_days": 90},
        "shorter than the validity; got 90 of 90 days",
    ),
]


def _secrets(overrides: dict[str, Any]) -> set[str]:
    """Every key of the run (tenants', vLLM's), as it was given and in upper case."""
    tenants = overrides.get("gateway_tenants", [ALICE])
    keys = {KEY, UPSTREAM_KEY, str(overrides.get("gateway_upstream_api_key", UPSTREAM_KEY))}
    keys |= {str(t["key"]) for t in tenants if isinstance(t, dict) and "key" in t}
    return {k for k in keys if k} | {k.upper() for k in keys if k}


# Good inputs, in the refusals' batch: the names every kind of server name takes, and full
# shapes with numbers given as strings (-e, templated handovers).
GOOD: dict[str, dict[str, Any]] = {
    "good-names": {
        "gateway_server_names": ["llm.example.com", "*.example.com", "localhost", "10.0.0.5", "::1"]
    },
    "good-nested": {
        "gateway_tenants": [
            ALICE,
            {
                "name": "batch_2",
                "key": KEY_B,
                "rate_per_minute": "60",
                "rate_burst": 0,
                "concurrency": 4,
            },
        ],
        "gateway_tenant_defaults": {"rate_per_minute": 120, "rate_burst": 10, "concurrency": "8"},
        "gateway_upstreams": [
            {"host": "[::1]", "port": "8000"},
            {"host": "vllm-1.internal", "port": 8001},
        ],
        "gateway_endpoints": [CHAT, {"path": "/v1/models", "methods": ["GET"]}],
        "gateway_enable_embeddings": True,
        "gateway_worker_connections": "1024",
        "gateway_healthz_cache_s": 1,
        "gateway_log_retention_days": 30,
        "gateway_log_max_size": "512k",
        "gateway_firewall_allow": [
            {"port": 8000, "sources": ["10.0.0.5", "10.1.0.0/16", "fd00::/64"], "comment": "vllm"},
            {"port": "9100", "sources": ["192.168.1.7"], "comment": "node exporter"},
        ],
    },
}


@pytest.fixture(scope="module")
def refusals(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, CaseResult]]:
    """Every bad input at once: one ansible-playbook, a host per case."""
    base = tmp_path_factory.mktemp("gateway-refusals")
    cases = {f"case{i}": _vars(base / f"case{i}", **c[0]) for i, c in enumerate(CASES)}
    cases |= {name: _vars(base / name, **overrides) for name, overrides in GOOD.items()}
    return base, run_cases(base, "gateway", cases, tags="gateway_preflight")


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(CASES)), ids=[str(c[0])[:50] for c in CASES])
def test_bad_input_refused_before_any_change(
    refusals: tuple[Path, dict[str, CaseResult]], index: int
) -> None:
    base, results = refusals
    overrides, expected = CASES[index]
    result = results[f"case{index}"]
    assert result.failed, result.output
    assert expected in result.output, result.output
    for secret in _secrets(overrides):
        assert secret not in result.log, "a key reached the output"
    assert not (base / f"case{index}" / "bundle").exists(), (
        "evidence was written before the refusal"
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", list(GOOD))
def test_good_inputs_pass_the_checks(
    refusals: tuple[Path, dict[str, CaseResult]], name: str
) -> None:
    result = refusals[1][name]
    assert not result.failed, result.output
