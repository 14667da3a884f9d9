"""The Mitogen strategy shims leave CPU placement to the kernel (plugin_utils/mitogen_affinity.py):
ansible_mitogen's fixed policy would pin every process of a run to one CPU of a small
control node."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import ansible_mitogen.affinity
import pytest
from ansible_collections.llmhost.core.plugins.plugin_utils import mitogen_affinity

ROOT = Path(__file__).resolve().parents[2]
STRATEGIES = [
    "ansible_collections.llmhost.core.plugins.strategy.mitogen_linear",
    "ansible_collections.llmhost.core.plugins.strategy.mitogen_docker_linear",
]
# Each process of the run, as the task sees it: the module's interpreter (the local
# connection's Mitogen child), the worker that ran the pipe lookup, and its parent (the
# top-level ansible-playbook).
PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Read the CPUs each process of this run may use
      ansible.builtin.command:
        argv:
          - "{python}"
          - -c
          - "import json, os; print(json.dumps(sorted(os.sched_getaffinity(0))))"
      register: module_cpus
      changed_when: false
    - name: Write them down
      ansible.builtin.copy:
        content: >-
          {{{{ {{'module': module_cpus.stdout | from_json,
                 'worker_and_top': lookup('ansible.builtin.pipe', worker_and_top) | from_json}}
               | to_json }}}}
        dest: "{out}"
        mode: "0644"
      vars:
        worker_and_top: >-
          {python} -c "import json, os; w = os.getppid();
          top = int(open('/proc/%d/stat' % w).read().rsplit(')', 1)[1].split()[1]);
          print(json.dumps([sorted(os.sched_getaffinity(p)) for p in (w, top)]))"
"""


@pytest.mark.parametrize("name", STRATEGIES)
def test_importing_a_shim_removes_the_pinning(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fixed = ansible_mitogen.affinity.LinuxPolicy(cpu_count=2)
    monkeypatch.setattr(ansible_mitogen.affinity, "policy", fixed)
    assert mitogen_affinity.pinned()
    importlib.reload(importlib.import_module(name))
    assert not mitogen_affinity.pinned()
    mitogen_affinity.unpin()  # again: still a no-op policy
    assert not mitogen_affinity.pinned()


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="pinning shows on 2 CPUs or more")
def test_a_run_with_the_configured_strategy_may_use_every_cpu(tmp_path: Path) -> None:
    play = tmp_path / "play.yml"
    out = tmp_path / "cpus.json"
    play.write_text(PLAY.format(python=sys.executable, out=out), encoding="utf-8")
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        ANSIBLE_NOCOLOR="1",
    )
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            "localhost,",
            "-c",
            "local",
            str(play),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    seen = json.loads(out.read_text(encoding="utf-8"))
    everyone = sorted(os.sched_getaffinity(0))
    assert seen["module"] == everyone, seen
    assert seen["worker_and_top"] == [everyone, everyone], seen
