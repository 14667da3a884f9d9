"""Filters llmhost.core.serving_checks and llmhost.core.timeout_hierarchy: the serving
settings checked before any change (preflight's decide phase, the vllm role's preflight).
The rules and their sources: plugin_utils/serving.py.

Documentation: serving_checks.yml and timeout_hierarchy.yml next to this file.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.llmhost.core.plugins.plugin_utils.serving import (
    serving_checks,
    timeout_hierarchy,
)

__all__ = ["FilterModule", "serving_checks_filter", "timeout_hierarchy_filter"]


def serving_checks_filter(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """serving_checks (plugin_utils/serving.py, its arguments), its errors as filter errors."""
    try:
        return serving_checks(*args, **kwargs)
    except ValueError as exc:
        raise AnsibleFilterError(f"llmhost.core.serving_checks: {exc}") from exc


def timeout_hierarchy_filter(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """timeout_hierarchy (plugin_utils/serving.py, its arguments), errors as filter errors."""
    try:
        return timeout_hierarchy(*args, **kwargs)
    except ValueError as exc:
        raise AnsibleFilterError(f"llmhost.core.timeout_hierarchy: {exc}") from exc


class FilterModule:
    """llmhost.core serving filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "serving_checks": serving_checks_filter,
            "timeout_hierarchy": timeout_hierarchy_filter,
        }
