"""A smaller bill for every task Ansible forks, for both strategy shims (mitogen_linear,
mitogen_docker_linear).

Ansible runs each task of each host in a worker process forked from ansible-playbook, whose
heap by then holds the inventory, the variables, the play and every loaded plugin. A
forked worker shares those pages with its parent until it writes to them, and Python's
cyclic garbage collector writes to every object it scans (its GC header): a collection in
the worker copies much of the parent's heap, page by page, for a process that lives for one
task. Python's documentation gives the remedy for a process that forks without exec:
``gc.freeze()`` before the fork, which moves every object alive at that moment into a
permanent generation that collections leave alone (reference counting still frees them).

The shims freeze once per play, after a full collection, so that what is frozen is what the
play keeps anyway. Measured on our 2-CPU build machine with ``scripts/bench_strategy_fork.py``
(50 local hosts, 10 assert tasks each: 500 forked workers a run, alternated; the asserts
had no condition nor task variable then): two sets of
four runs each way, 17.6 vs 19.2 and 18.7 vs 20.7 CPU-seconds (-8 %, -10 %; every frozen
run below every unfrozen one); two later sets of two, on a machine slowed by a day's work,
-6 % and -2 %.
"""

from __future__ import annotations

import gc
import os
from typing import Any

# The benchmark's switch: "0" runs without the freeze, for a side-by-side figure.
ENV = "LLMHOST_STRATEGY_GC_FREEZE"


class FrozenHeapMixin:
    """Strategy mixin: freeze the parent's heap at the start of every play it runs."""

    def run(self, iterator: Any, play_context: Any, *args: Any, **kwargs: Any) -> Any:
        if os.environ.get(ENV, "1") != "0":
            gc.collect()
            gc.freeze()
        return super().run(iterator, play_context, *args, **kwargs)  # type: ignore[misc]
