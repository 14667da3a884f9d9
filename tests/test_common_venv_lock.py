"""_common's venv entry point, run for real on localhost: one build at a time per work
folder. make test's lanes build the control node's load venv in one .cache/venvs; before
the lock, a run found another's half-made venv (bin/python there, pip not yet) and failed
with "No module named pip"."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest
from role_runner import ROOT, run_play

MAKE_WHEEL = ROOT / "roles" / "_common" / "molecule" / "default" / "files" / "make_wheel.py"
LOCK = ".llmhost-venv-build.lock"
# The task's header, profile_tasks' timestamp line, then its result.
INSTALLED = re.compile(r"^TASK \[_common : Install the pins[^\n]*\n[^\n]*\n(\w+):", re.M)

pytestmark = pytest.mark.slow


def _wheel_dir(tmp_path: Path) -> Path:
    spec = importlib.util.spec_from_file_location("make_wheel", MAKE_WHEEL)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "wheels"
    module.make_wheel(out, "pinned")
    return out


def _build(run_dir: Path, venv: Path, wheels: Path) -> subprocess.CompletedProcess[str]:
    run_dir.mkdir(parents=True, exist_ok=True)
    task = {
        "name": "Build the venv",
        "ansible.builtin.include_role": {"name": "_common", "tasks_from": "venv"},
        "vars": {
            "_common_venv_path": str(venv),
            "_common_venv_requirements": ["llmhost-probe==1.0"],
            "_common_venv_pip_extra_args": ["--no-index", "--find-links", str(wheels)],
            "_common_venv_no_deps": True,
            "_common_venv_python": "{{ ansible_playbook_python }}",
        },
    }
    play = {"name": "t", "hosts": "localhost", "gather_facts": False, "tasks": [task]}
    return run_play(run_dir, [play])


def _imports(venv: Path) -> str:
    code = "import llmhost_probe; print(llmhost_probe.VALUE)"
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, check=False
    )
    return done.stdout.strip()


def test_two_runs_building_one_venv_at_once_both_succeed_and_one_builds(tmp_path: Path) -> None:
    wheels, venv = _wheel_dir(tmp_path), tmp_path / "venvs" / "probe"
    results: dict[str, subprocess.CompletedProcess[str]] = {}

    def build(name: str) -> None:
        results[name] = _build(tmp_path / name, venv, wheels)

    threads = [threading.Thread(target=build, args=(n,)) for n in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(600)
    for name, done in results.items():
        assert done.returncode == 0, (name, done.stdout[-3000:])
    assert len(results) == 2
    outcomes = sorted(
        (m.group(1) if (m := INSTALLED.search(done.stdout)) else "not run")
        for done in results.values()
    )
    # One run built it; the other found it built: while waiting for the lock (the install
    # skipped), or, had it started after the first had finished, at its first look.
    assert outcomes in (["changed", "skipping"], ["changed", "not run"]), outcomes
    assert _imports(venv) == "pinned"
    assert not (venv.parent / LOCK).exists()


def test_a_held_lock_is_waited_for(tmp_path: Path) -> None:
    wheels, venv = _wheel_dir(tmp_path), tmp_path / "venvs" / "probe"
    lock = venv.parent / LOCK
    lock.mkdir(parents=True)
    released: list[float] = []

    def release() -> None:
        time.sleep(6)
        released.append(time.monotonic())
        lock.rmdir()

    releaser = threading.Thread(target=release)
    releaser.start()
    done = _build(tmp_path / "run", venv, wheels)
    finished = time.monotonic()
    releaser.join()
    assert done.returncode == 0, done.stdout[-3000:]
    assert released and finished > released[0]
    assert _imports(venv) == "pinned"
    assert not lock.exists()


def test_an_interrupted_runs_lock_is_taken_over(tmp_path: Path) -> None:
    wheels, venv = _wheel_dir(tmp_path), tmp_path / "venvs" / "probe"
    lock = venv.parent / LOCK
    lock.mkdir(parents=True)
    old = time.time() - 3 * 3600
    os.utime(lock, (old, old))
    done = _build(tmp_path / "run", venv, wheels)
    assert done.returncode == 0, done.stdout[-3000:]
    assert _imports(venv) == "pinned"
    assert not lock.exists()


def test_a_failed_build_releases_the_lock(tmp_path: Path) -> None:
    venv = tmp_path / "venvs" / "probe"
    done = _build(tmp_path / "run", venv, tmp_path / "no-wheels-here")
    assert done.returncode != 0
    assert "Install the pins" in done.stdout
    assert not (venv.parent / LOCK).exists()
