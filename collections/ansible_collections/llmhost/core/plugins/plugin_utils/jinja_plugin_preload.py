"""Load the filter and test plugins once, in ansible-playbook, before workers fork.

Ansible finds a Jinja filter or test when a template first uses it, in the worker forked for
the task, and the worker ends with its task: every task that uses one loads it again. For
this collection's filters that means importing all of them (a name like
``llmhost.core.refused`` is not a file name, so ansible-core imports every filter file of
the collection to find which one defines it) with the code they import; for ansible's own,
its five filter files. Measured on our 2-CPU build machine (50 local hosts, 6 set_fact tasks
each, 300 workers a run): 24 ms of CPU per worker for a task templating no filter, 32 ms
with ``to_json``, 67 ms with ``llmhost.core.refused``; with the preload 25, 24 and 25 ms.
``scripts/bench_strategy_fork.py --switch jinja-preload`` (500 workers a run, three runs
each way, alternated): 14.1 vs 32.4 CPU-seconds. What the preload itself costs: about
0.08 CPU-seconds per ansible-playbook run (one debug task: 0.60-0.71 s against 0.56-0.65 s).

A strategy shim calls ``preload()`` at the start of its first play, before the heap is
frozen (plugin_utils/frozen_heap.py): the workers it forks find the plugins loaded, in the
same module objects under the same names the loader would give them. What is preloaded:
ansible.builtin's filters and tests (through Ansible's own loader, so under its names) and
every filter and test module of llmhost.core (imported as the collection loader imports
them). A plugin that fails to load here is left for the worker, which reports it as it did
before. ``LLMHOST_JINJA_PLUGIN_PRELOAD=0`` turns it off (the benchmark's switch).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pkgutil
from typing import Any

ENV = "LLMHOST_JINJA_PLUGIN_PRELOAD"  # "0": leave the loading to the workers
# One plugin of each builtin kind: the loader then loads every file of that kind.
BUILTIN = (("filter", "ansible.builtin.to_json"), ("test", "ansible.builtin.match"))
COLLECTION = "ansible_collections.llmhost.core.plugins"

_done: list[str] = []


def preload() -> list[str]:
    """Load the plugins (once per process); the names of what was loaded."""
    if _done or os.environ.get(ENV, "1") == "0":
        return list(_done)
    from ansible.plugins.loader import filter_loader, test_loader

    loaders: dict[str, Any] = {"filter": filter_loader, "test": test_loader}
    for kind, name in BUILTIN:
        with contextlib.suppress(Exception):  # the worker reports it, as without preloading
            loaders[kind].get_with_context(name)
            _done.append(name)
    for kind in ("filter", "test"):
        try:
            package = importlib.import_module(f"{COLLECTION}.{kind}")
        except ImportError:
            continue  # no plugin of this kind in the collection
        for module in pkgutil.iter_modules(package.__path__):
            name = f"{package.__name__}.{module.name}"
            with contextlib.suppress(Exception):
                importlib.import_module(name)
                _done.append(name)
    return list(_done)


class JinjaPluginPreloadMixin:
    """Strategy mixin: preload the plugins before the play's first fork."""

    def run(self, iterator: Any, play_context: Any, *args: Any, **kwargs: Any) -> Any:
        preload()
        return super().run(iterator, play_context, *args, **kwargs)  # type: ignore[misc]
