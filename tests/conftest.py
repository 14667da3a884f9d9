"""Suite-wide collection order: modules marked `heavy` (minutes of fixtures in one
module, e.g. a refusal batch of a hundred inputs) are handed to pytest-xdist's workers
first, so the last minutes of `make unit` are not one worker finishing a batch alone
(`--dist loadfile` hands out modules in collection order)."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Heavy modules first; otherwise the collection order is kept (a stable sort)."""
    items.sort(key=lambda item: item.get_closest_marker("heavy") is None)
