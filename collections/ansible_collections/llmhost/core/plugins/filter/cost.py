"""Filter llmhost.core.cost_per_mtok: cost.json of a run from its load test's throughput
and the GPU plan's hourly budget (the evaluation role). The computation: module_utils/cost.py.

Documentation: cost_per_mtok.yml next to this file.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ansible_collections.llmhost.core.plugins.module_utils.cost import cost_per_million

__all__ = ["FilterModule"]


class FilterModule:
    """llmhost.core cost filter."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"cost_per_mtok": cost_per_million}
