"""The strategy shims freeze ansible-playbook's heap before workers fork
(plugin_utils/frozen_heap.py): a worker's garbage collections leave the parent's objects,
and so the pages it shares with the parent, alone."""

from __future__ import annotations

import gc
import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.llmhost.core.plugins.plugin_utils import frozen_heap
from role_runner import worker_answer

STRATEGIES = [
    "ansible_collections.llmhost.core.plugins.strategy.mitogen_linear",
    "ansible_collections.llmhost.core.plugins.strategy.mitogen_docker_linear",
]
# A filter that reports what the process templating it sees: the worker Ansible forked
# for the task (templating happens there, not in ansible-playbook itself).
FILTER = """
import gc, os


class FilterModule:
    def filters(self):
        return {"answer": lambda _: {"pid": os.getpid(), "frozen": gc.get_freeze_count()}}
"""


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


class _Base:
    def run(self, iterator: Any, play_context: Any) -> tuple[Any, Any, int]:
        return iterator, play_context, gc.get_freeze_count()


class _Strategy(frozen_heap.FrozenHeapMixin, _Base):
    pass


@pytest.mark.usefixtures("unfrozen")
def test_a_play_starts_with_the_heap_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(frozen_heap.ENV, raising=False)
    keep = [object() for _ in range(10)]  # alive, tracked objects of the parent
    iterator, context, frozen = _Strategy().run("iterator", "context")
    assert (iterator, context) == ("iterator", "context"), "arguments not passed on"
    assert frozen >= len(keep), frozen


@pytest.mark.usefixtures("unfrozen")
def test_the_benchmark_switch_turns_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(frozen_heap.ENV, "0")
    assert _Strategy().run("iterator", "context")[2] == 0


@pytest.mark.parametrize("name", STRATEGIES)
def test_both_shims_freeze_before_mitogen_starts(name: str) -> None:
    module = importlib.import_module(name)
    mro = module.StrategyModule.__mro__
    mixin = mro.index(frozen_heap.FrozenHeapMixin)
    mitogen = next(i for i, cls in enumerate(mro) if cls.__name__ == "StrategyMixin")
    assert mixin < mitogen, [cls.__name__ for cls in mro]


@pytest.mark.parametrize(("switch", "frozen"), [("1", True), ("0", False)])
def test_a_forked_worker_inherits_the_frozen_heap(
    tmp_path: Path, switch: str, frozen: bool
) -> None:
    seen = worker_answer(tmp_path, FILTER, {frozen_heap.ENV: switch})
    assert (seen["frozen"] > 0) is frozen, seen
