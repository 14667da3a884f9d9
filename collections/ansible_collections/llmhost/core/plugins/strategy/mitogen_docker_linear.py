"""Mitogen's linear strategy for container connections only (the Molecule scenarios).

molecule/base.yml selects it: a scenario's tasks reach the container through one Mitogen
interpreter started by a single ``docker exec`` (Mitogen's ``mitogen_docker``), not a
``docker exec`` and a new interpreter for every task. Every other connection, ``local``
above all, stays Ansible's own: the local plays (molecule/create.yml and destroy.yml, the
evidence scenario) gain nothing from Mitogen, and Molecule's stock create and destroy
plays, which a scenario may still name, wait on async jobs in the folder they name in
``ansible_async_dir``, which Mitogen's local connection does not use (its jobs land in
~/.ansible_async and the wait never ends).

The list of redirected connections is a module global of ``ansible_mitogen.strategy``;
one ansible-playbook loads one strategy (Molecule's generated ansible.cfg names this
one), so narrowing it here changes no other run. ansible.cfg's ``mitogen_linear`` keeps
the full list.
"""

from __future__ import annotations

import ansible_mitogen.loaders
import ansible_mitogen.strategy
from ansible_collections.llmhost.core.plugins.plugin_utils import strategy_savings

DOCUMENTATION = r"""
name: mitogen_docker_linear
short_description: Ansible's linear strategy, over Mitogen for docker connections only
description:
  - Runs tasks like C(ansible.builtin.linear); hosts reached with the C(docker) connection
    get one persistent Mitogen interpreter each, every other connection is Ansible's own.
author: llmhost
"""

ansible_mitogen.strategy.REDIRECTED_CONNECTION_PLUGINS = ("docker",)

# No CPU pinning, each template compiled once per control node (plugin_utils/
# strategy_savings.py names each saving and where its figures are).
strategy_savings.prepare()

_Linear = ansible_mitogen.loaders.strategy_loader.get("linear", class_only=True)


class StrategyModule(
    strategy_savings.SavingsMixin, ansible_mitogen.strategy.StrategyMixin, _Linear
):  # type: ignore[misc,valid-type]
    """Linear strategy with Mitogen's connection multiplexer for docker connections.

    SavingsMixin, before each play's first fork: the Jinja plugins loaded, the heap frozen
    (plugin_utils/strategy_savings.py).
    """
