"""Run one role of this repository for real on localhost, the way the refusal tests need:
extra vars from a file, the repository's ansible.cfg, this venv's interpreter."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
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
    vars_file = tmp_path / "vars.yml"
    vars_file.write_text(yaml.safe_dump(extra_vars), encoding="utf-8")
    play = tmp_path / "play.yml"
    body: dict[str, Any] = {"roles": [role]}
    if tasks_from:
        include = {"name": role, "tasks_from": tasks_from}
        body = {"tasks": [{"ansible.builtin.include_role": include}]}
    play.write_text(
        yaml.safe_dump([{"name": "t", "hosts": "localhost", "gather_facts": gather_facts, **body}]),
        encoding="utf-8",
    )
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        ANSIBLE_FACT_CACHING="memory",
        # Roles record host facts (llmhost.core.host_fact): not in this machine's /etc.
        LLMHOST_FACTS_DIR=str(tmp_path / "facts.d"),
    )
    cmd = [str(PLAYBOOK), "-i", "localhost,", "-c", "local", str(play), "-e", f"@{vars_file}"]
    if tags:
        cmd += ["--tags", tags]
    return subprocess.run(
        cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600, check=False
    )


def refusals(output: str, task: str = "Check the inputs") -> list[str]:
    """The messages of the failed input check (the task named `task`) in a playbook output.

    The roles check their inputs with one assert whose fail_msg is the list of refusals
    (llmhost.core.refused); the YAML callback prints it under `msg:` of the fatal result.
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
    return [str(m) for m in msg] if isinstance(msg, list) else [str(msg)] if msg else []


def refused_vars(output: str) -> list[str]:
    """The variable each refusal names (the text before its first ': ')."""
    return [message.split(": ", 1)[0] for message in refusals(output)]
