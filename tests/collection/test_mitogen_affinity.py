"""The Mitogen strategy shims leave CPU placement to the kernel (plugin_utils/mitogen_affinity.py):
ansible_mitogen's fixed policy would pin every process of a run to one CPU of a small
control node."""

from __future__ import annotations

import importlib
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import ansible_mitogen.affinity
import pytest
from ansible_collections.llmhost.core.plugins.plugin_utils import mitogen_affinity
from role_runner import run_play

STRATEGIES = [
    "ansible_collections.llmhost.core.plugins.strategy.mitogen_linear",
    "ansible_collections.llmhost.core.plugins.strategy.mitogen_docker_linear",
]
# Each process of the run, as the task sees it: the module's interpreter (the local
# connection's Mitogen child), the worker that ran the pipe lookup, and its parent (the
# top-level ansible-playbook).
CPUS = "import json, os; print(json.dumps(sorted(os.sched_getaffinity(0))))"
WORKER_AND_TOP = (
    "import json, os; w = os.getppid(); "
    "top = int(open('/proc/%d/stat' % w).read().rsplit(')', 1)[1].split()[1]); "
    "print(json.dumps([sorted(os.sched_getaffinity(p)) for p in (w, top)]))"
)


def _play(out: Path) -> dict[str, Any]:
    seen = (
        "{{ {'module': module_cpus.stdout | from_json, 'worker_and_top':"
        " lookup('ansible.builtin.pipe', worker_and_top) | from_json} | to_json }}"
    )
    return {
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [
            {
                "name": "Read the CPUs each process of this run may use",
                "ansible.builtin.command": {"argv": [sys.executable, "-c", CPUS]},
                "register": "module_cpus",
                "changed_when": False,
            },
            {
                "name": "Write them down",
                "ansible.builtin.copy": {"content": seen, "dest": str(out), "mode": "0644"},
                "vars": {"worker_and_top": shlex.join([sys.executable, "-c", WORKER_AND_TOP])},
            },
        ],
    }


def _pinned() -> bool:
    """Whether ansible_mitogen would still pin processes to CPUs (its base Policy pins none)."""
    return type(ansible_mitogen.affinity.policy) is not ansible_mitogen.affinity.Policy


@pytest.mark.parametrize("name", STRATEGIES)
def test_importing_a_shim_removes_the_pinning(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fixed = ansible_mitogen.affinity.LinuxPolicy(cpu_count=2)
    monkeypatch.setattr(ansible_mitogen.affinity, "policy", fixed)
    assert _pinned()
    importlib.reload(importlib.import_module(name))
    assert not _pinned()
    mitogen_affinity.unpin()  # again: still a no-op policy
    assert not _pinned()


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="pinning shows on 2 CPUs or more")
def test_a_run_with_the_configured_strategy_may_use_every_cpu(tmp_path: Path) -> None:
    out = tmp_path / "cpus.json"
    done = run_play(tmp_path, [_play(out)])
    assert done.returncode == 0, done.stdout + done.stderr
    seen = json.loads(out.read_text(encoding="utf-8"))
    everyone = sorted(os.sched_getaffinity(0))
    assert seen["module"] == everyone, seen
    assert seen["worker_and_top"] == [everyone, everyone], seen
