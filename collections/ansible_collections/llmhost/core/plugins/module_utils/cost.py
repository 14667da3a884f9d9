"""The cost per million output tokens of a run, from its measured load test.

usd_per_million_output_tokens = hourly_budget / (output_tokens_per_s x 3600) x 1e6: what a
million generated tokens cost at the rented GPU's hourly price and the throughput the load
test measured through the gateway (at its concurrency; a busier endpoint costs less per
token). Standard library only; the evaluation role calls it through the
llmhost.core.cost_per_mtok filter (tasks/load.yml) and the tests call it directly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

SOURCE = "load_test.json"


def finite_number(value: Any) -> float | None:
    """A finite number from a YAML/JSON value (None for none, booleans, text, inf, nan)."""
    if value is None or isinstance(value, bool) or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def cost_per_million(
    load_test: Mapping[str, Any] | None, hourly_budget_usd: Any, target_usd_per_mtok: Any = 0
) -> dict[str, Any]:
    """cost.json: {usd_per_million_output_tokens, output_tokens_per_s, hourly_budget_usd,
    target_usd_per_million_output_tokens, within_target, source, reason}.

    The cost is null with a reason when the throughput is 0 or unknown, or the budget is
    unknown; within_target is null when there is no target (0 or unset) or no cost.
    """
    load = load_test if isinstance(load_test, Mapping) else {}
    tps = finite_number(load.get("output_tokens_per_s"))
    budget = finite_number(hourly_budget_usd)
    target = finite_number(target_usd_per_mtok)
    target = target if target is not None and target > 0 else None
    cost: float | None = None
    reason = ""
    if not load:
        reason = "no load test result (evaluation_load_enabled false, or it did not run)"
    elif tps is None or tps <= 0:
        reason = f"the load test measured no output throughput (output_tokens_per_s {tps})"
    elif budget is None or budget < 0:
        reason = "no hourly budget (llmhost_gpu_plan.hourly_budget / evaluation_hourly_budget_usd)"
    else:
        cost = round(budget / (tps * 3600) * 1e6, 4)
    return {
        "usd_per_million_output_tokens": cost,
        "output_tokens_per_s": tps,
        "hourly_budget_usd": budget,
        "target_usd_per_million_output_tokens": target,
        "within_target": None if cost is None or target is None else cost <= target,
        "source": SOURCE,
        "reason": reason,
    }
