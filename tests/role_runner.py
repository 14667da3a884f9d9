"""Run one role of this repository for real on localhost, the way the refusal tests need:
extra vars from a file, the repository's ansible.cfg, this venv's interpreter.

run_cases runs many bad inputs in one ansible-playbook: one inventory host per case (all
local), the case's variables as its host vars, facts gathered once and handed to every
case through the fact cache; each host fails on its own. About 3 s a case one by one,
a fraction of that together.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"


def run_role(
    tmp_path: Path,
    role: str,
    extra_vars: dict[str, Any],
    *,
    gather_facts: bool = True,
    tags: str | None = None,
    tasks_from: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """ansible-playbook of a one-role play against localhost; stdout and stderr captured.

    With tasks_from, the play includes only that task file of the role (e.g. guard.yml).
    """
    body: dict[str, Any] = {"roles": [role]}
    if tasks_from:
        include = {"name": role, "tasks_from": tasks_from}
        body = {"tasks": [{"ansible.builtin.include_role": include}]}
    play = {"name": "t", "hosts": "localhost", "gather_facts": gather_facts, **body}
    return run_play(tmp_path, [play], extra_vars, tags=tags)


def run_play(
    tmp_path: Path,
    plays: list[dict[str, Any]],
    extra_vars: dict[str, Any] | None = None,
    *,
    tags: str | None = None,
    environment: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """ansible-playbook of these plays against localhost (local connection), with the
    repository's ansible.cfg and this venv's interpreter, ENVIRONMENT on top of this
    process's; stdout and stderr captured."""
    vars_file = tmp_path / "vars.yml"
    vars_file.write_text(yaml.safe_dump(extra_vars or {}), encoding="utf-8")
    play = tmp_path / "play.yml"
    play.write_text(yaml.safe_dump(plays), encoding="utf-8")
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        ANSIBLE_FACT_CACHING="memory",
        # Roles record host facts (llmhost.core.host_fact): not in this machine's /etc.
        LLMHOST_FACTS_DIR=str(tmp_path / "facts.d"),
        **(environment or {}),
    )
    cmd = [str(PLAYBOOK), "-i", "localhost,", "-c", "local", str(play), "-e", f"@{vars_file}"]
    if tags:
        cmd += ["--tags", tags]
    return subprocess.run(
        cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600, check=False
    )


def worker_answer(tmp_path: Path, filter_source: str, environment: dict[str, str]) -> Any:
    """What a forked worker reports about itself: FILTER_SOURCE is a filter plugin file
    defining the filter `answer`; one task templates `{{ 0 | answer | to_json }}` in the
    worker Ansible forks for it (ENVIRONMENT set for the run); the filter's answer."""
    plugins = tmp_path / "worker-filters"
    plugins.mkdir()
    (plugins / "answer.py").write_text(filter_source, encoding="utf-8")
    out = tmp_path / "answer.json"
    play = {
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [
            {
                "name": "Write down what the worker answers",
                "ansible.builtin.copy": {
                    "content": "{{ 0 | answer | to_json }}",
                    "dest": str(out),
                    "mode": "0644",
                },
            }
        ],
    }
    done = run_play(
        tmp_path, [play], environment={**environment, "ANSIBLE_FILTER_PLUGINS": str(plugins)}
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(out.read_text(encoding="utf-8"))


def refusals(output: str, task: str = "Check the inputs") -> list[str]:
    """The messages of the failed input check (the task named `task`) in a playbook output.

    The roles check their inputs with one assert whose fail_msg is the refusals
    (llmhost.core.refused), one per line; the YAML callback prints it under `msg:` of the
    fatal result.
    A failure of any other task is not an input refusal: [].
    """
    match = re.search(r"^fatal: \[[^\]]+\]: FAILED! => *\n((?: {4}.*\n?)+)", output, re.M)
    if match is None:
        return []
    headers = re.findall(r"^TASK \[(.*?)\]", output[: match.start()], re.M)
    if not headers or not headers[-1].endswith(f": {task}"):
        return []
    result = yaml.safe_load(textwrap.dedent(match[1]))
    msg = result.get("msg") if isinstance(result, dict) else None
    lines = msg if isinstance(msg, list) else str(msg or "").splitlines()
    return [str(line) for line in lines if str(line).strip()]


def refused_vars(output: str) -> list[str]:
    """The variable each refusal names (the text before its first ': ')."""
    return [message.split(": ", 1)[0] for message in refusals(output)]


@dataclass(frozen=True)
class CaseResult:
    """One case of run_cases: whether its host failed, every message it got (its own
    only), and the whole run's stdout and stderr (for scans that must cover everything)."""

    failed: bool
    output: str
    log: str
    refused: tuple[str, ...] = ()  # the variables the failed input check named, in order

    def assert_refused_by(self, check: str, words: str, hidden: tuple[str, ...] = ()) -> None:
        """The input check failed on exactly CHECK (named "CHECK: ..."), its message says
        WORDS, and no value of HIDDEN (a password, a credential) shows in it."""
        assert self.failed, self.output
        assert self.refused == (check,), self.output  # exactly the one check this input breaks
        assert f"{check}: " in self.output
        assert words in self.output, self.output
        for value in hidden:
            assert value not in self.output, "a secret was shown"


def _env(base: Path) -> dict[str, str]:
    return dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        LLMHOST_FACTS_DIR=str(base / "facts.d"),
    )


def _host_messages(report: dict[str, Any], host: str) -> str:
    """Every msg (and argument error) the host got, task by task, results of loops too."""
    out: list[str] = []
    for play in report.get("plays", []):
        for task in play.get("tasks", []):
            result = task.get("hosts", {}).get(host)
            if not result:
                continue
            for item in [result, *(result.get("results") or [])]:
                if not isinstance(item, dict):
                    continue
                msg = item.get("msg")
                if msg:
                    out.append(msg if isinstance(msg, str) else json.dumps(msg))
                out.extend(str(e) for e in item.get("argument_errors") or [])
    return "\n".join(out)


def _host_refused(
    report: dict[str, Any], host: str, task: str = "Check the inputs"
) -> tuple[str, ...]:
    """The variables named by the host's failed input check (one refusal per line)."""
    for play in report.get("plays", []):
        for entry in play.get("tasks", []):
            result = entry.get("hosts", {}).get(host) or {}
            name = str(entry.get("task", {}).get("name", ""))
            if result.get("failed") and name.endswith(task):
                lines = str(result.get("msg", "")).splitlines()
                return tuple(line.split(": ", 1)[0] for line in lines if line.strip())
    return ()


def run_cases(
    base: Path,
    role: str,
    cases: dict[str, dict[str, Any]],
    *,
    gather_facts: bool = True,
    tags: str | None = None,
    tasks_from: str | None = None,
    extra_vars: dict[str, Any] | None = None,
) -> dict[str, CaseResult]:
    """Run the role once for every case (host name -> variables); each case's result.

    Only inputs go in: a variable of the role's vars/main.yml (an `_` name) would be
    outranked there. EXTRA_VARS (extra vars: they outrank the role's vars) are the same
    for every case, e.g. the role's internal paths moved into BASE; a case that needs its
    own internal value uses run_role instead.
    """
    internal = sorted({k for v in cases.values() for k in v if k.startswith("_")})
    if internal:
        raise ValueError(f"run_cases takes inputs only; use run_role for {internal}")
    base.mkdir(parents=True, exist_ok=True)
    env = _env(base)
    hosts: dict[str, Any] = {
        name: {
            **variables,
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
        }
        for name, variables in cases.items()
    }
    inventory = base / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": hosts}}), encoding="utf-8")
    cache = base / "facts-cache"
    if gather_facts:
        # Gather once (localhost), then give every case host the same facts: smart
        # gathering skips a host whose facts are cached.
        cache.mkdir(exist_ok=True)
        subprocess.run(
            [
                str(PLAYBOOK.parent / "ansible"),
                "localhost",
                "-c",
                "local",
                "-i",
                "localhost,",
                "-m",
                "ansible.builtin.setup",
            ],
            env={
                **env,
                "ANSIBLE_CACHE_PLUGIN": "jsonfile",
                "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(cache),
            },
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=300,
            check=True,
        )
        gathered = [f for f in cache.iterdir() if f.name.endswith("localhost")]
        if len(gathered) != 1:
            raise AssertionError(f"no facts of localhost in the cache: {list(cache.iterdir())}")
        prefix = gathered[0].name.removesuffix("localhost")  # the cache plugin's own prefix
        for name in cases:
            shutil.copyfile(gathered[0], cache / f"{prefix}{name}")
    body: dict[str, Any] = {"roles": [role]}
    if tasks_from:
        body = {
            "tasks": [{"ansible.builtin.include_role": {"name": role, "tasks_from": tasks_from}}]
        }
    play = base / "play.yml"
    play.write_text(
        yaml.safe_dump([{"name": "t", "hosts": "all", "gather_facts": gather_facts, **body}]),
        encoding="utf-8",
    )
    cmd = [str(PLAYBOOK), "-i", str(inventory), str(play)]
    if extra_vars:
        shared = base / "extra-vars.yml"
        shared.write_text(yaml.safe_dump(extra_vars), encoding="utf-8")
        cmd += ["-e", f"@{shared}"]
    if tags:
        cmd += ["--tags", tags]
    done = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=900,
        check=False,
        env={
            **env,
            "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
            # profile_tasks would print into the JSON; the ledger writes nothing without a run id.
            "ANSIBLE_CALLBACKS_ENABLED": "llmhost.core.evidence_ledger",
            "ANSIBLE_CACHE_PLUGIN": "jsonfile",
            "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(cache),
            "ANSIBLE_GATHERING": "smart",
        },
    )
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError as error:
        raise AssertionError(
            f"no JSON report (rc {done.returncode}): {done.stderr[-3000:]}"
        ) from error
    stats = report.get("stats", {})
    # A case whose host ran no task (a play that failed to load, tags that select nothing)
    # would pass as "not failed": that is an error of the run, not a result.
    idle = [name for name in cases if name not in stats]
    if idle:
        raise AssertionError(
            f"{len(idle)} case(s) ran no task, e.g. {idle[:3]} (rc {done.returncode}): "
            f"{done.stderr[-3000:]}"
        )
    return {
        name: CaseResult(
            failed=bool(
                stats.get(name, {}).get("failures") or stats.get(name, {}).get("unreachable")
            ),
            output=_host_messages(report, name),
            log=done.stdout + done.stderr,
            refused=_host_refused(report, name),
        )
        for name in cases
    }
