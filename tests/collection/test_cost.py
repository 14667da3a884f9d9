"""cost.json: the cost per million output tokens from the load test's throughput and the
GPU plan's hourly budget (module_utils/cost.py, the llmhost.core.cost_per_mtok filter)."""

from __future__ import annotations

import pytest
from ansible_collections.llmhost.core.plugins.filter.cost import FilterModule
from ansible_collections.llmhost.core.plugins.module_utils.cost import cost_per_million

cost = FilterModule().filters()["cost_per_mtok"]


def test_the_formula() -> None:
    # 2.49 USD/h at 1000 output tok/s: 2.49 / 3.6e6 x 1e6 = 0.6917 USD per million.
    out = cost_per_million({"output_tokens_per_s": 1000.0}, 2.49, 1.0)
    assert out["usd_per_million_output_tokens"] == pytest.approx(0.6917)
    assert out["within_target"] is True
    assert out["source"] == "load_test.json" and out["reason"] == ""
    assert out["hourly_budget_usd"] == 2.49 and out["output_tokens_per_s"] == 1000.0


def test_over_target() -> None:
    out = cost({"output_tokens_per_s": 50.0}, "2.49", "1")  # inventories give strings
    assert out["usd_per_million_output_tokens"] == pytest.approx(13.8333)
    assert out["within_target"] is False


def test_no_target_means_no_verdict() -> None:
    out = cost({"output_tokens_per_s": 50.0}, 2.49)
    assert out["target_usd_per_million_output_tokens"] is None
    assert out["within_target"] is None


@pytest.mark.parametrize(
    ("load", "budget", "why"),
    [
        ({"output_tokens_per_s": 0}, 2.49, "no output throughput"),
        ({"output_tokens_per_s": None}, 2.49, "no output throughput"),
        ({}, 2.49, "no load test result"),
        ({"output_tokens_per_s": 100.0}, "", "no hourly budget"),
        ({"output_tokens_per_s": 100.0}, "n/a", "no hourly budget"),
    ],
)
def test_null_with_a_reason(load: dict, budget: object, why: str) -> None:
    out = cost(load, budget, 1.0)
    assert out["usd_per_million_output_tokens"] is None
    assert out["within_target"] is None
    assert why in out["reason"]


def test_the_lab_has_no_budget_so_zero_cost() -> None:
    # The lab's GPU plan is empty: the role's default budget is 0, the host costs nothing.
    out = cost({"output_tokens_per_s": 120.5}, 0, 0)
    assert out["usd_per_million_output_tokens"] == 0.0
    assert out["within_target"] is None
