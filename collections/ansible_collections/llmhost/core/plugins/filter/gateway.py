"""Filter llmhost.core.gateway_errors: every problem with the gateway role's inputs.

Documentation: gateway_errors.yml next to this file. Keys are secrets: a message names
the tenant and the variable, never the key.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.llmhost.core.plugins.plugin_utils.values import as_int, is_text

TENANT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
KEY_CHARS = re.compile(r"^[A-Za-z0-9._~+/=-]+$")
MIN_KEY_CHARS = 16
MAX_KEY_CHARS = 200  # the map's hash bucket (256 bytes) holds 'Bearer ' + the key
ENDPOINT_PATH = re.compile(r"^/[A-Za-z0-9/_.-]*$")
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
SIZE = re.compile(r"^[1-9][0-9]*[kKmM]?$")
LIMITS = ("rate_per_minute", "rate_burst", "concurrency")
KEY_FIX = (
    "Fix: give it a random key of at least 16 letters/digits in the vault "
    "(e.g. `openssl rand -hex 24`)."
)


def _tenant_errors(index: int, tenant: object, defaults: Mapping[str, Any]) -> list[str]:
    where = f"gateway_tenants[{index}]"
    if not isinstance(tenant, Mapping):
        return [f"{where}: must be a dict with name and key. Fix: see roles/gateway/README.md."]
    errors: list[str] = []
    name = tenant.get("name")
    if not is_text(name) or not TENANT_NAME.match(str(name)):
        errors.append(
            f"{where}.name: must be lowercase letters, digits or '_' (at most 32, starting "
            f"with a letter), got {name!r}. Fix: name the tenant, e.g. team_a."
        )
    else:
        where = f"gateway_tenants[{index}] ({name})"
    key = tenant.get("key")
    if not is_text(key) or not key:
        errors.append(f"{where}.key: is missing or empty. {KEY_FIX}")
    elif not MIN_KEY_CHARS <= len(str(key)) <= MAX_KEY_CHARS or not KEY_CHARS.match(str(key)):
        errors.append(
            f"{where}.key: must be {MIN_KEY_CHARS} to {MAX_KEY_CHARS} characters of letters, "
            f"digits or ._~+/=- (the value is not shown). {KEY_FIX}"
        )
    for field in LIMITS:
        value = tenant.get(field, defaults.get(field))
        number = as_int(value)
        minimum = 0 if field == "rate_burst" else 1
        if number is None or number < minimum:
            errors.append(
                f"{where}.{field}: must be a whole number >= {minimum}, got {value!r}. "
                f"Fix: set it (or gateway_tenant_defaults.{field}) to e.g. "
                f"{ {'rate_per_minute': 600, 'rate_burst': 20, 'concurrency': 16}[field] }."
            )
    unknown = sorted(set(tenant) - {"name", "key", *LIMITS})
    if unknown:
        errors.append(
            f"{where}: unknown settings {unknown}. Fix: use only name, key, {', '.join(LIMITS)}."
        )
    return errors


def _tenants_errors(tenants: object, defaults: Mapping[str, Any]) -> list[str]:
    if not isinstance(tenants, list) or not tenants:
        return [
            "gateway_tenants: no tenant is defined, so nobody could use the gateway. "
            "Fix: list at least one {name, key} (keys from the vault)."
        ]
    errors: list[str] = []
    for index, tenant in enumerate(tenants):
        errors.extend(_tenant_errors(index, tenant, defaults))
    good = [t for t in tenants if isinstance(t, Mapping)]
    names = [str(t.get("name")) for t in good]
    for name in sorted({n for n in names if names.count(n) > 1}):
        errors.append(
            f"gateway_tenants: the name {name!r} is used twice. Fix: one entry per tenant."
        )
    keys: dict[str, list[str]] = {}
    for tenant in good:
        if is_text(tenant.get("key")) and tenant.get("key"):
            # nginx's map compares strings case-insensitively: so must this check.
            keys.setdefault(str(tenant["key"]).lower(), []).append(str(tenant.get("name")))
    for owners in keys.values():
        if len(owners) > 1:
            errors.append(
                f"gateway_tenants: tenants {owners} share one key, so the logs could not tell "
                "them apart. Fix: give each tenant its own key."
            )
    return errors


def _endpoint_errors(endpoints: object) -> list[str]:
    if not isinstance(endpoints, list) or not endpoints:
        return [
            "gateway_endpoints: the allowlist is empty, so every request would be 404. "
            "Fix: list the endpoints to expose, e.g. {path: /v1/chat/completions, methods: [POST]}."
        ]
    errors: list[str] = []
    paths: list[str] = []
    for index, endpoint in enumerate(endpoints):
        where = f"gateway_endpoints[{index}]"
        if not isinstance(endpoint, Mapping):
            errors.append(f"{where}: must be a dict with path and methods.")
            continue
        path = endpoint.get("path")
        if not is_text(path) or not ENDPOINT_PATH.match(str(path)) or str(path) == "/healthz":
            errors.append(
                f"{where}.path: must be an absolute URL path other than /healthz, got "
                f"{path!r}. Fix: e.g. /v1/chat/completions."
            )
        else:
            paths.append(str(path))
        methods = endpoint.get("methods")
        if (
            not isinstance(methods, list)
            or not methods
            or any(m not in HTTP_METHODS for m in methods)
        ):
            errors.append(
                f"{where}.methods: must be a non-empty list of {list(HTTP_METHODS)}, got "
                f"{methods!r}. Fix: e.g. [POST]."
            )
    for path in sorted({p for p in paths if paths.count(p) > 1}):
        errors.append(f"gateway_endpoints: {path} is listed twice. Fix: one entry per path.")
    return errors


def _upstream_errors(upstreams: object) -> list[str]:
    if not isinstance(upstreams, list) or not upstreams:
        return [
            "gateway_upstreams: no vLLM backend is listed. Fix: e.g. "
            "[{host: 127.0.0.1, port: 8000}]."
        ]
    errors: list[str] = []
    for index, upstream in enumerate(upstreams):
        where = f"gateway_upstreams[{index}]"
        if not isinstance(upstream, Mapping):
            errors.append(f"{where}: must be a dict with host and port.")
            continue
        host = upstream.get("host")
        if not is_text(host) or not re.match(r"^[A-Za-z0-9.:-]+$", str(host)):
            errors.append(f"{where}.host: must be a host name or address, got {host!r}.")
        port = as_int(upstream.get("port"))
        if port is None or not 0 < port < 65536:
            errors.append(f"{where}.port: must be 1-65535, got {upstream.get('port')!r}.")
    return errors


def _scalar_errors(inputs: Mapping[str, Any]) -> list[str]:
    errors: list[str] = []
    for name in (
        "listen_port",
        "status_port",
        "connect_timeout_s",
        "read_timeout_s",
        "send_timeout_s",
        "client_body_timeout_s",
        "retry_after_s",
        "tls_valid_days",
    ):
        value = inputs.get(name)
        number = as_int(value)
        if number is None or number < 1 or (name.endswith("port") and number > 65535):
            errors.append(f"gateway_{name}: must be a positive whole number, got {value!r}.")
    if not SIZE.match(str(inputs.get("max_body_size", ""))):
        errors.append(
            f"gateway_max_body_size: must be an nginx size like 1m or 512k, got "
            f"{inputs.get('max_body_size')!r}."
        )
    if inputs.get("http") not in ("off", "redirect"):
        errors.append(f"gateway_http: must be 'off' or 'redirect', got {inputs.get('http')!r}.")
    upstream_key = inputs.get("upstream_api_key")
    if not is_text(upstream_key) or len(str(upstream_key)) < MIN_KEY_CHARS:
        errors.append(
            "gateway_upstream_api_key: must be vLLM's API key (vllm_api_key, at least 16 "
            "characters; the value is not shown). Fix: set it from the vault."
        )
    cert, key = inputs.get("tls_certificate") or "", inputs.get("tls_private_key") or ""
    if bool(cert) != bool(key):
        errors.append(
            "gateway_tls_certificate / gateway_tls_private_key: give both (PEM) or neither "
            "(a self-signed certificate is then generated)."
        )
    elif cert and "BEGIN CERTIFICATE" not in str(cert):
        errors.append("gateway_tls_certificate: is not a PEM certificate.")
    renew, valid = as_int(inputs.get("tls_renew_days")), as_int(inputs.get("tls_valid_days"))
    if renew is None or valid is None or not 0 <= renew < valid:
        errors.append(
            f"gateway_tls_renew_days: must be >= 0 and below gateway_tls_valid_days ({valid}), "
            f"got {inputs.get('tls_renew_days')!r}."
        )
    return errors


def gateway_errors(inputs: Mapping[str, Any]) -> list[str]:
    """One message per problem in the gateway inputs (keys as in gateway_* without prefix)."""
    defaults = inputs.get("tenant_defaults") or {}
    if not isinstance(defaults, Mapping):
        return ["gateway_tenant_defaults: must be a dict of limits."]
    return [
        *_tenants_errors(inputs.get("tenants"), defaults),
        *_endpoint_errors(inputs.get("endpoints")),
        *_upstream_errors(inputs.get("upstreams")),
        *_scalar_errors(inputs),
    ]


def gateway_errors_filter(inputs: Mapping[str, Any]) -> list[str]:
    if not isinstance(inputs, Mapping):
        raise AnsibleFilterError("llmhost.core.gateway_errors: the input must be a dict")
    return gateway_errors(inputs)


class FilterModule:
    """llmhost.core gateway filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"gateway_errors": gateway_errors_filter}
