"""Mitogen without its CPU pinning, for both strategy shims (mitogen_linear, mitogen_docker_linear).

ansible_mitogen pins processes to CPUs (``ansible_mitogen.affinity.policy``, a
``FixedPolicy`` "tested on an otherwise idle 16 thread machine"). With fewer than 4 CPUs it
keeps CPU 0 for its connection multiplexer and pins the top-level process, every worker
and every child it starts (ssh, the local connection's interpreter) to the other CPUs:
on a 2-CPU control node all of Ansible's own work runs on CPU 1 only, and every run
started beside it (a second playbook, a test worker) is pinned to that same CPU while
CPU 0 idles. Measured on our 2-CPU build machine during ``make test``: 10-17 runnable
tasks and 26-36 % of the CPU idle at once; in the fleet lab, trivial tasks (skipped ones
too) took 2-11 s each while a vLLM replica's engine was bound to CPU 1.

Ansible's own strategies pin nothing, and Mitogen offers no setting for it: the shims
replace the policy with Mitogen's base ``Policy``, whose methods do nothing, before the
strategy starts its processes. The kernel then places every process as it does any other.
"""

from __future__ import annotations

import ansible_mitogen.affinity


def unpin() -> None:
    """Make every later affinity call of ansible_mitogen a no-op (idempotent)."""
    ansible_mitogen.affinity.policy = ansible_mitogen.affinity.Policy()
