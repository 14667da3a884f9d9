"""llmhost.core.published_secrets_errors: a secret this repository publishes is refused
(naming the variables that hold it, never the value) unless the inventory opts in and is
the example or the lab."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.llmhost.core.plugins.filter.published_secrets import (
    FilterModule,
    published_secrets_errors,
)
from ansible_collections.llmhost.core.plugins.plugin_utils import published_secrets

ROOT = Path(__file__).resolve().parents[2]
KEY = "a-published-key-0123456789"  # stands for a value of the example's vault
TOKEN = "hf_a_published_token_0123456789"  # noqa: S105 (a test token)
PUBLISHED: dict[str, Any] = {
    "schema": published_secrets.SCHEMA,
    "about": "test",
    "secrets": [
        {"source": "example: vault_llmhost_vllm_api_key", "sha256": published_secrets.digest(KEY)},
        {"source": "example: vault_hf_token", "sha256": published_secrets.digest(TOKEN)},
    ],
}
EXAMPLE = str(ROOT / "inventories" / "rented-gpu.example")
LAB = str(ROOT / "inventories" / "lab")
ALLOWED = [EXAMPLE, LAB]


def _errors(secrets: dict[str, Any], **inputs: Any) -> list[str]:
    body = {
        "secrets": secrets,
        "published": PUBLISHED,
        "allow": False,
        "inventory_dir": "/srv/inventories/my-gpu",
        "allowed_inventories": ALLOWED,
        **inputs,
    }
    return published_secrets_errors(body)


def test_a_published_key_is_refused_naming_every_variable_that_holds_it() -> None:
    secrets = {
        "llmhost_vllm_api_key": KEY,
        "vault_llmhost_vllm_api_key": KEY,
        "gateway_tenants": [{"name": "team_a", "key": "own-key-abcdef0123456789"}],
        "llmhost_hf_token": "",
    }
    [message] = _errors(secrets)
    assert message.startswith(
        "llmhost_vllm_api_key, vault_llmhost_vllm_api_key: hold a secret this repository "
        "publishes (example: vault_llmhost_vllm_api_key), so anyone"
    )
    assert "Fix: make a new one (a key: openssl rand -hex 24" in message
    assert "ansible-vault edit" in message
    assert KEY not in message


@pytest.mark.parametrize(
    ("secrets", "names"),
    [
        (
            {"gateway_tenants": [{"name": "a", "key": "x" * 20}, {"key": KEY}]},
            "gateway_tenants[1].key",
        ),
        (
            {"teardown_destroy_environment": {"PROVIDER_API_TOKEN": KEY}},
            "teardown_destroy_environment.PROVIDER_API_TOKEN",
        ),
        ({"vault_gateway_keys": {"team_a": KEY}}, "vault_gateway_keys.team_a"),
        ({"model_store_hf_token": TOKEN}, "model_store_hf_token"),
        ({"evaluation_api_key": KEY}, "evaluation_api_key"),
    ],
)
def test_nested_values_are_found_by_their_path(secrets: dict[str, Any], names: str) -> None:
    [message] = _errors(secrets)
    assert message.startswith(f"{names}: holds a secret this repository publishes")


@pytest.mark.parametrize(
    "secrets",
    [
        {"llmhost_vllm_api_key": "a-key-of-our-own-0123456789"},
        {"llmhost_vllm_api_key": "", "llmhost_hf_token": None, "gateway_tenants": []},
        {"llmhost_vllm_api_key": KEY + " "},  # not the published value
        {"gateway_tenants": [{"name": KEY[:-1]}]},
        {"n": 12345},
    ],
)
def test_own_or_empty_secrets_pass(secrets: dict[str, Any]) -> None:
    assert _errors(secrets) == []


@pytest.mark.parametrize("inventory", [EXAMPLE, LAB, EXAMPLE + "/", LAB + "/../lab"])
def test_the_example_and_the_lab_may_opt_in(inventory: str) -> None:
    secrets = {"llmhost_vllm_api_key": KEY}
    assert _errors(secrets, allow=True, inventory_dir=inventory) == []
    # The opt-in is what lets them through: the same folder without it is refused.
    assert len(_errors(secrets, allow=False, inventory_dir=inventory)) == 1


@pytest.mark.parametrize(
    "inventory",
    ["/srv/inventories/my-gpu", str(ROOT / "inventories" / "gpu-local"), "", None],
)
def test_a_copy_that_keeps_the_opt_in_is_refused_all_the_same(inventory: Any) -> None:
    errors = _errors({"llmhost_vllm_api_key": KEY}, allow=True, inventory_dir=inventory)
    assert len(errors) == 2
    assert errors[0].startswith("preflight_allow_published_secrets: is true, but this inventory")
    assert "Fix: remove llmhost_allow_published_secrets from your copy" in errors[0]
    assert errors[1].startswith("llmhost_vllm_api_key: holds a secret")


def test_a_copy_with_its_own_keys_is_not_refused_for_its_leftover_opt_in() -> None:
    assert _errors({"llmhost_vllm_api_key": "own-0123456789abcdef"}, allow=True) == []


def test_the_opt_in_must_be_a_real_boolean() -> None:
    assert len(_errors({"k": KEY}, allow="true", inventory_dir=EXAMPLE)) == 1


@pytest.mark.parametrize(
    "published",
    [
        None,
        {},
        {"schema": "other"},
        {"schema": published_secrets.SCHEMA, "secrets": "x"},
        {"schema": published_secrets.SCHEMA, "secrets": [{"source": "no digest"}]},
    ],
)
def test_a_malformed_list_is_an_error(published: Any) -> None:
    with pytest.raises(AnsibleFilterError, match="the published list"):
        _errors({"k": KEY}, published=published)


def test_the_filter_is_registered_and_refuses_a_non_dict() -> None:
    errors_filter = FilterModule().filters()["published_secrets_errors"]
    with pytest.raises(AnsibleFilterError, match="must be a dict"):
        errors_filter(["x"])
    with pytest.raises(AnsibleFilterError, match="secrets must be a dict"):
        _errors(["k"])  # type: ignore[arg-type]


def test_the_committed_list_loads_and_names_its_sources() -> None:
    path = ROOT / "roles" / "preflight" / "files" / "published_secrets.json"
    published = published_secrets.load(path)
    assert published == published_secrets.index(json.loads(path.read_text(encoding="utf-8")))
    assert all(len(digest) == 64 for digest in published)
    assert any("vault-pass.example" in source for source in published.values())
