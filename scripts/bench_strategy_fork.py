"""What a forked task costs the control node, with and without one of the strategy shims'
savings, side by side in one run: the frozen heap (--switch gc-freeze,
collections/.../plugin_utils/frozen_heap.py), the template code cache (--switch
template-cache, plugin_utils/template_code_cache.py) or the Jinja plugins loaded before the
fork (--switch jinja-preload, plugin_utils/jinja_plugin_preload.py).

Usage (no host needed: the hosts are local connections on this machine):

    .venv/bin/python scripts/bench_strategy_fork.py [--switch gc-freeze] [--hosts 50]
        [--tasks 10] [--rounds 4]

One play of TASKS assert tasks against HOSTS local hosts (HOSTS x TASKS forked workers;
each task has a `when`, a templated task variable and three conditions, one of them with
this collection's `llmhost.core.refused` filter, as the roles' input checks), run with
ansible.cfg's strategy (llmhost.core.mitogen_linear) ROUNDS times each way, alternated
(on, off | off, on | ...) so drift hits both alike; the switch's variable set to 0 turns
the saving off. The CPU of a run is the user + system time of ansible-playbook and every
process it waited for (getrusage of the children). Prints one JSON document: each round's
figures, the means and the ratio on / off.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
SWITCHES = {  # --switch: the environment variable that turns the saving off with "0"
    "gc-freeze": "LLMHOST_STRATEGY_GC_FREEZE",
    "template-cache": "LLMHOST_TEMPLATE_CODE_CACHE",
    "jinja-preload": "LLMHOST_JINJA_PLUGIN_PRELOAD",
}


def write_play(folder: Path, hosts: int, tasks: int) -> tuple[Path, Path]:
    """An inventory of HOSTS local hosts and a play of TASKS asserts; their paths."""
    inventory = folder / "inventory.yml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "hosts": {
                        f"bench{i}": {
                            "ansible_connection": "local",
                            "ansible_python_interpreter": sys.executable,
                            "bench_value": i,
                        }
                        for i in range(hosts)
                    }
                }
            }
        ),
        encoding="utf-8",
    )
    play = folder / "play.yml"
    label = "host-{{ bench_value }}-{{ inventory_hostname | upper }}"
    assertion = {
        "that": [
            "bench_value | int >= 0",
            "bench_label is match('^host-')",
            "[{'var': 'bench_value', 'ok': true, 'msg': 'm'}] | llmhost.core.refused == []",
        ],
        "quiet": True,
    }
    play.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Forked tasks",
                    "hosts": "all",
                    "gather_facts": False,
                    "tasks": [
                        {
                            "name": f"Assert {n}",
                            "ansible.builtin.assert": assertion,
                            "vars": {"bench_label": label},
                            "when": "bench_value | int < 1000000",
                        }
                        for n in range(tasks)
                    ],
                }
            ]
        ),
        encoding="utf-8",
    )
    return inventory, play


def one_run(inventory: Path, play: Path, variable: str, on: bool) -> dict[str, Any]:
    """Run the play once, VARIABLE set to 1 (ON) or 0; its wall time and the CPU of
    ansible-playbook and its children."""
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), variable: "1" if on else "0"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    done = subprocess.run(  # noqa: S603 - our own ansible-playbook, argv list, no shell
        [str(PLAYBOOK), "-i", str(inventory), str(play)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"ansible-playbook failed ({done.returncode}):\n{done.stdout[-2000:]}")
    return {
        "on": on,
        "wall_s": round(wall, 2),
        "cpu_s": round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 2),
    }


def summary(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Means per side and the ratio on / off of CPU and wall time."""
    sides: dict[str, dict[str, float]] = {}
    for name, on in (("on", True), ("off", False)):
        mine = [r for r in runs if r["on"] is on]
        sides[name] = {
            "cpu_s": round(statistics.fmean(r["cpu_s"] for r in mine), 2),
            "wall_s": round(statistics.fmean(r["wall_s"] for r in mine), 2),
        }
    return {
        **sides,
        "cpu_ratio": round(sides["on"]["cpu_s"] / sides["off"]["cpu_s"], 3),
        "wall_ratio": round(sides["on"]["wall_s"] / sides["off"]["wall_s"], 3),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--switch", choices=sorted(SWITCHES), default="gc-freeze")
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args(argv)
    if min(args.hosts, args.tasks, args.rounds) < 1:
        parser.error("--hosts, --tasks and --rounds must be at least 1")
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-fork-") as folder:
        inventory, play = write_play(Path(folder), args.hosts, args.tasks)
        for round_ in range(args.rounds):
            order = (True, False) if round_ % 2 == 0 else (False, True)
            for on in order:
                runs.append(
                    {"round": round_, **one_run(inventory, play, SWITCHES[args.switch], on)}
                )
                print(json.dumps(runs[-1]), file=sys.stderr)
    workers = args.hosts * args.tasks
    print(
        json.dumps(
            {"switch": args.switch, "variable": SWITCHES[args.switch], "hosts": args.hosts,
             "tasks": args.tasks, "workers_per_run": workers, "runs": runs,
             "summary": summary(runs)},
            indent=2,
        )
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
