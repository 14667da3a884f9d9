"""The strategy shims load the filter and test plugins in ansible-playbook before the first
fork (plugin_utils/jinja_plugin_preload.py): every worker finds them loaded instead of
importing them again for its one task."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.llmhost.core.plugins.plugin_utils import frozen_heap
from ansible_collections.llmhost.core.plugins.plugin_utils import jinja_plugin_preload as preload
from role_runner import worker_answer

ROOT = Path(__file__).resolve().parents[2]
STRATEGIES = [
    "ansible_collections.llmhost.core.plugins.strategy.mitogen_linear",
    "ansible_collections.llmhost.core.plugins.strategy.mitogen_docker_linear",
]
FILTERS = sorted(
    p.stem
    for p in (ROOT / "collections/ansible_collections/llmhost/core/plugins/filter").glob("*.py")
    if p.stem != "__init__"
)
# A filter that reports which of the collection's filter modules the process templating it
# (the worker Ansible forked for the task) had loaded before its task used any of them.
SEEN = """
import os, sys


class FilterModule:
    def filters(self):
        at = "ansible_collections.llmhost.core.plugins.filter."
        return {"answer": lambda _: sorted(k[len(at):] for k in sys.modules if k.startswith(at))}
"""


def _fresh(script: str, switch: str = "1") -> Any:
    """Run SCRIPT in a new interpreter (nothing loaded yet); the JSON it prints last."""
    env = {**os.environ, preload.ENV: switch, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")}
    prelude = (
        "import json, sys\n"
        "from ansible.plugins.loader import init_plugin_loader\n"
        f"init_plugin_loader([{str(ROOT / 'collections')!r}])\n"
        "from ansible_collections.llmhost.core.plugins.plugin_utils import "
        "jinja_plugin_preload as preload\n"
    )
    done = subprocess.run(  # this interpreter, a fixed script
        [sys.executable, "-c", prelude + script],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_loads_the_builtin_kinds_and_every_filter_of_the_collection() -> None:
    report = _fresh(
        "first = preload.preload()\n"
        "second = preload.preload()\n"
        "mods = sorted(k.rsplit('.', 1)[-1] for k in sys.modules\n"
        "              if k.startswith('ansible_collections.llmhost.core.plugins.filter.'))\n"
        "builtin = sorted(k.split('.')[3].split('_')[0] for k in sys.modules\n"
        "                 if k.startswith(('ansible.plugins.filter.', 'ansible.plugins.test.')))\n"
        "print(json.dumps({'first': first, 'second': second, 'mods': mods, 'builtin': builtin}))"
    )
    assert report["first"] == report["second"], "a second call loaded again"
    assert {"ansible.builtin.to_json", "ansible.builtin.match"} <= set(report["first"])
    assert report["mods"] == FILTERS
    assert {"core", "mathstuff", "urls"} <= set(report["builtin"]), report["builtin"]


def test_the_switch_leaves_it_to_the_workers() -> None:
    report = _fresh(
        "done = preload.preload()\n"
        "mods = [k for k in sys.modules\n"
        "        if k.startswith('ansible_collections.llmhost.core.plugins.filter.')]\n"
        "print(json.dumps({'done': done, 'mods': mods}))",
        switch="0",
    )
    assert report == {"done": [], "mods": []}


def test_a_broken_plugin_is_left_to_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    class _Loader:
        def get_with_context(self, name: str) -> None:
            calls.append(name)
            raise RuntimeError("broken plugin")

    import ansible.plugins.loader as loader

    monkeypatch.setattr(loader, "filter_loader", _Loader())
    monkeypatch.setattr(loader, "test_loader", _Loader())
    monkeypatch.setattr(preload, "_done", [])
    monkeypatch.delenv(preload.ENV, raising=False)
    done = preload.preload()  # no exception
    assert calls == ["ansible.builtin.to_json", "ansible.builtin.match"]
    assert not any(name.startswith("ansible.builtin.") for name in done)


class _Base:
    def run(self, iterator: Any, play_context: Any) -> tuple[Any, Any, list[str]]:
        return iterator, play_context, list(preload._done)


class _Strategy(preload.JinjaPluginPreloadMixin, _Base):
    pass


def test_the_mixin_preloads_before_the_play_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(preload, "_done", [])
    monkeypatch.delenv(preload.ENV, raising=False)
    iterator, context, seen = _Strategy().run("iterator", "context")
    assert (iterator, context) == ("iterator", "context")
    assert seen and seen == preload._done


@pytest.mark.parametrize("name", STRATEGIES)
def test_both_shims_preload_before_the_freeze(name: str) -> None:
    mro = importlib.import_module(name).StrategyModule.__mro__
    assert mro.index(preload.JinjaPluginPreloadMixin) < mro.index(frozen_heap.FrozenHeapMixin)


@pytest.mark.parametrize(("switch", "loaded"), [("1", True), ("0", False)])
def test_a_forked_worker_finds_the_collections_filters_loaded(
    tmp_path: Path, switch: str, loaded: bool
) -> None:
    seen = worker_answer(tmp_path, SEEN, {preload.ENV: switch})
    assert seen == (FILTERS if loaded else []), seen
