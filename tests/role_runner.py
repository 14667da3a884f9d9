"""Run one role of this repository for real on localhost, the way the refusal tests need:
extra vars from a file, the repository's ansible.cfg, this venv's interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
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
) -> subprocess.CompletedProcess[str]:
    """ansible-playbook of a one-role play against localhost; stdout and stderr captured."""
    vars_file = tmp_path / "vars.yml"
    vars_file.write_text(yaml.safe_dump(extra_vars), encoding="utf-8")
    play = tmp_path / "play.yml"
    play.write_text(
        yaml.safe_dump(
            [{"name": "t", "hosts": "localhost", "gather_facts": gather_facts, "roles": [role]}]
        ),
        encoding="utf-8",
    )
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        ANSIBLE_FACT_CACHING="memory",
    )
    cmd = [str(PLAYBOOK), "-i", "localhost,", "-c", "local", str(play), "-e", f"@{vars_file}"]
    if tags:
        cmd += ["--tags", tags]
    return subprocess.run(
        cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600, check=False
    )
