"""What both strategy shims (mitogen_linear, mitogen_docker_linear) add to Mitogen's linear
strategy, in one place: each saving lives in its own module, with its figures.

At import of a shim (``prepare()``): no CPU pinning (mitogen_affinity.py) and each Jinja
template compiled once per control node (template_code_cache.py). Before each play's first
fork (``SavingsMixin``): the Jinja filter and test plugins loaded (jinja_plugin_preload.py),
then the heap frozen (frozen_heap.py), so that the loaded plugins are frozen too.
"""

from __future__ import annotations

from ansible_collections.llmhost.core.plugins.plugin_utils import (
    mitogen_affinity,
    template_code_cache,
)
from ansible_collections.llmhost.core.plugins.plugin_utils.frozen_heap import FrozenHeapMixin
from ansible_collections.llmhost.core.plugins.plugin_utils.jinja_plugin_preload import (
    JinjaPluginPreloadMixin,
)


def prepare() -> None:
    """What a shim does once, when Ansible imports it."""
    mitogen_affinity.unpin()
    template_code_cache.install()


class SavingsMixin(JinjaPluginPreloadMixin, FrozenHeapMixin):
    """Strategy mixin: the plugins preloaded, then the heap frozen, at each play's start."""
