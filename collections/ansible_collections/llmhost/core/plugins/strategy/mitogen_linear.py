"""Mitogen's linear strategy, from the pinned ``mitogen`` package of the control node's venv.

ansible.cfg selects it (``strategy = llmhost.core.mitogen_linear``): Mitogen keeps one
Python interpreter per host for the whole run and sends modules to it, instead of
starting a new interpreter over SSH for every task. The play order, become, check mode
and the results are Ansible's own linear strategy; ``ANSIBLE_STRATEGY=linear`` runs
without Mitogen. Connections Mitogen does not handle (community.docker's, used by the
Molecule scenarios) fall back to Ansible's own plugin.

A shim rather than ``strategy_plugins = <venv>/lib/python3.x/site-packages/...`` in
ansible.cfg: the path would depend on the control node's Python version.
"""

from __future__ import annotations

import ansible_mitogen.loaders
import ansible_mitogen.strategy
from ansible_collections.llmhost.core.plugins.plugin_utils import strategy_savings

DOCUMENTATION = r"""
name: mitogen_linear
short_description: Ansible's linear strategy over Mitogen connections
description:
  - Runs tasks like C(ansible.builtin.linear) with one persistent Mitogen interpreter per host.
author: llmhost
"""

# No CPU pinning, each template compiled once per control node (plugin_utils/
# strategy_savings.py names each saving and where its figures are).
strategy_savings.prepare()

_Linear = ansible_mitogen.loaders.strategy_loader.get("linear", class_only=True)


class StrategyModule(
    strategy_savings.SavingsMixin, ansible_mitogen.strategy.StrategyMixin, _Linear
):  # type: ignore[misc,valid-type]
    """Linear strategy with Mitogen's connection multiplexer.

    SavingsMixin, before each play's first fork: the Jinja plugins loaded, the heap frozen
    (plugin_utils/strategy_savings.py).
    """
