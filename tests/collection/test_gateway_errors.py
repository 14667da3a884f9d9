"""llmhost.core.gateway_errors: every bad gateway input is named, with its fix, and keys
are never quoted."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from ansible_collections.llmhost.core.plugins.filter.gateway import gateway_errors

KEY_A = "alice-key-0123456789abcdef"
KEY_B = "bob-key-0123456789abcdef"
GOOD: dict[str, Any] = {
    "tenants": [{"name": "alice", "key": KEY_A}, {"name": "bob", "key": KEY_B, "concurrency": 2}],
    "tenant_defaults": {"rate_per_minute": 600, "rate_burst": 20, "concurrency": 16},
    "endpoints": [
        {"path": "/v1/chat/completions", "methods": ["POST"]},
        {"path": "/v1/models", "methods": ["GET"]},
    ],
    "upstreams": [{"host": "127.0.0.1", "port": 8000}],
    "upstream_api_key": "vllm-key-0123456789abcdef",
    "listen_port": 443,
    "status_port": 8081,
    "connect_timeout_s": 5,
    "read_timeout_s": 600,
    "send_timeout_s": 60,
    "client_body_timeout_s": 30,
    "retry_after_s": 30,
    "max_body_size": "1m",
    "http": "off",
    "tls_certificate": "",
    "tls_private_key": "",
    "tls_valid_days": 90,
    "tls_renew_days": 30,
}


def _with(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    inputs = copy.deepcopy(GOOD)
    target: Any = inputs
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return inputs


def test_good_inputs_pass() -> None:
    assert gateway_errors(GOOD) == []


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("tenants",), [], "gateway_tenants: no tenant is defined"),
        (("tenants", 0, "key"), "", "gateway_tenants[0] (alice).key: is missing or empty"),
        (("tenants", 0, "key"), "short", "must be 16 to 200 characters"),
        (("tenants", 0, "key"), "k" * 201, "must be 16 to 200 characters"),
        (("tenants", 0, "key"), "has spaces in it 0123456789", "must be 16 to 200 characters"),
        (("tenants", 1, "key"), KEY_A, "share one key"),
        (("tenants", 1, "key"), KEY_A.upper(), "share one key"),
        (("tenants", 1, "name"), "alice", "the name 'alice' is used twice"),
        (("tenants", 1, "name"), "Bad Name", "gateway_tenants[1].name"),
        (("tenants", 1, "concurrency"), 0, "gateway_tenants[1] (bob).concurrency: must be"),
        (("tenants", 1, "rate_per_minute"), 0, "(bob).rate_per_minute: must be a whole"),
        (("tenants", 1, "rate_burst"), -1, "(bob).rate_burst: must be a whole number >= 0"),
        (("tenants", 1, "colour"), "red", "unknown settings ['colour']"),
        (("tenant_defaults", "concurrency"), 0, "gateway_tenants[0] (alice).concurrency"),
        (("endpoints",), [], "gateway_endpoints: the allowlist is empty"),
        (("endpoints", 0, "path"), "v1/chat", "gateway_endpoints[0].path"),
        (("endpoints", 0, "path"), "/healthz", "other than /healthz"),
        (("endpoints", 1, "path"), "/v1/chat/completions", "is listed twice"),
        (("endpoints", 0, "methods"), [], "gateway_endpoints[0].methods"),
        (("endpoints", 0, "methods"), ["FETCH"], "gateway_endpoints[0].methods"),
        (("upstreams",), [], "gateway_upstreams: no vLLM backend"),
        (("upstreams", 0, "port"), 0, "gateway_upstreams[0].port"),
        (("upstreams", 0, "host"), "a b", "gateway_upstreams[0].host"),
        (("upstream_api_key",), "", "gateway_upstream_api_key"),
        (("listen_port",), 70000, "gateway_listen_port"),
        (("read_timeout_s",), 0, "gateway_read_timeout_s"),
        (("max_body_size",), "1 GB", "gateway_max_body_size"),
        (("http",), "on", "gateway_http"),
        (("tls_certificate",), "-----BEGIN CERTIFICATE-----", "give both"),
        (("tls_renew_days",), 90, "gateway_tls_renew_days"),
    ],
)
def test_bad_input_is_named(path: tuple[Any, ...], value: Any, expected: str) -> None:
    errors = gateway_errors(_with(path, value))
    assert any(expected in e for e in errors), errors


@pytest.mark.parametrize("bad_key", ["", "short", KEY_A])
def test_keys_are_never_quoted(bad_key: str) -> None:
    inputs = _with(("tenants", 1, "key"), bad_key)
    for message in gateway_errors(inputs):
        assert KEY_A not in message and (not bad_key or bad_key not in message)
        assert "vllm-key-0123456789abcdef" not in message


def test_a_tenant_that_is_not_a_dict() -> None:
    assert "gateway_tenants[0]: must be a dict" in gateway_errors(_with(("tenants", 0), "alice"))[0]
