"""Filter llmhost.core.model_fit: the memory estimate preflight decides with.

Documentation: model_fit.yml next to this file. preflight's input checks are the role's
meta/argument_specs.yml and the assert list of roles/preflight/tasks/validate.yml.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.llmhost.core.plugins.plugin_utils.model_fit import model_fit

__all__ = ["FilterModule", "model_fit", "model_fit_filter"]


def model_fit_filter(
    model: Mapping[str, Any],
    serving: Mapping[str, Any],
    route: str,
    gpus: list[Mapping[str, Any]] | None = None,
    host_ram_mib: int | None = None,
    instance_vram_gib: float | None = None,
) -> dict[str, Any]:
    try:
        return model_fit(model, serving, route, gpus, host_ram_mib, instance_vram_gib)
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError(f"llmhost.core.model_fit: {exc}") from exc


class FilterModule:
    """llmhost.core preflight filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"model_fit": model_fit_filter}
