"""Filter llmhost.core.parallel_plan: vLLM's tensor/pipeline parallelism and executor
backend against the model's heads and layers and the GPUs the plan gives (preflight's
decide phase). The rules and their sources in vLLM: plugin_utils/parallel.py.

Documentation: parallel_plan.yml next to this file.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.llmhost.core.plugins.plugin_utils.parallel import (
    ParallelPlanError,
    parallel_plan,
)

__all__ = ["FilterModule", "parallel_plan_filter"]


def parallel_plan_filter(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """parallel_plan (plugin_utils/parallel.py, its arguments), its errors as filter errors."""
    try:
        return parallel_plan(*args, **kwargs)
    except ParallelPlanError as exc:
        raise AnsibleFilterError(f"llmhost.core.parallel_plan: {exc}") from exc


class FilterModule:
    """llmhost.core parallel-plan filter."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"parallel_plan": parallel_plan_filter}
