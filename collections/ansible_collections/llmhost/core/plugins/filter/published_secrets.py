"""Filter llmhost.core.published_secrets_errors: the secrets this repository publishes
(the example inventory's vault and its committed password) refused in any other inventory.

Documentation: published_secrets_errors.yml next to this file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.llmhost.core.plugins.plugin_utils import published_secrets

OPT_IN = "llmhost_allow_published_secrets"
FIX = (
    "Fix: make a new one (a key: openssl rand -hex 24; a token: a new one from its "
    "provider), put it in this inventory's vault with ansible-vault edit, and re-run."
)


def _folder(path: object) -> str | None:
    return os.path.realpath(str(path)) if isinstance(path, str) and path else None


def allowed_inventory(inventory_dir: object, allowed: object) -> bool:
    """Whether the inventory is one of the folders that may use the published secrets."""
    here = _folder(inventory_dir)
    folders = allowed if isinstance(allowed, (list, tuple)) else []
    return here is not None and here in {_folder(folder) for folder in folders}


def published_secrets_errors(inputs: Mapping[str, Any]) -> list[str]:
    """One message per published secret found (naming the variables that hold it, never
    the value); none when the inventory opts in and is the example or the lab."""
    try:
        published = published_secrets.index(inputs.get("published"))
    except ValueError as error:
        raise AnsibleFilterError(
            f"llmhost.core.published_secrets_errors: the published list: {error}"
        ) from None
    secrets = inputs.get("secrets")
    if not isinstance(secrets, Mapping):
        raise AnsibleFilterError("llmhost.core.published_secrets_errors: secrets must be a dict")
    allowed = inputs.get("allowed_inventories")
    opted_in = inputs.get("allow") is True
    if opted_in and allowed_inventory(inputs.get("inventory_dir"), allowed):
        return []
    found = published_secrets.matches(secrets, published)
    errors = [
        f"{', '.join(paths)}: {'holds' if len(paths) == 1 else 'hold'} a secret this "
        f"repository publishes ({source}), so anyone who has read the repository can use "
        f"it. {FIX}"
        for source, paths in found.items()
    ]
    if errors and opted_in:
        folders = ", ".join(str(folder) for folder in allowed or [])
        errors.insert(
            0,
            f"preflight_allow_published_secrets: is true, but this inventory "
            f"({inputs.get('inventory_dir') or 'none'}) is not the example or the lab "
            f"({folders}), the only ones that may use the published secrets. Fix: remove "
            f"{OPT_IN} from your copy's group_vars and give it secrets of its own.",
        )
    return errors


def _errors_filter(inputs: Mapping[str, Any]) -> list[str]:
    if not isinstance(inputs, Mapping):
        raise AnsibleFilterError("llmhost.core.published_secrets_errors: the input must be a dict")
    return published_secrets_errors(inputs)


class FilterModule:
    """llmhost.core published-secrets filter."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"published_secrets_errors": _errors_filter}
