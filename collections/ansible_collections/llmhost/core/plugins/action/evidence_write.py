"""llmhost.core.evidence_write: a role's evidence files straight into the run's bundle.

The one way a role records evidence it holds as data (reports, decisions, the smoke test's
result): the action runs on the control node and writes the files into the bundle,
``<dir>/<host>/<name>`` when the play has several hosts, else ``<dir>/<name>``. Nothing is
written on the managed host, so a re-run of an unchanged host changes nothing there.

- Evidence is per run and never overwritten: a file that is already in the bundle is kept
  (``kept``), so a second converge with the same run id writes nothing.
- ``changed`` stays false: the bundle is the run's output on the control node, not state
  of the host; what was written is listed in ``written``. The recap's ``changed`` counts
  only changes to hosts.
- Check mode writes nothing and lists the files under ``would_write``.
- An empty ``dir`` (a run without a bundle) writes nothing.
- Empty ``files`` only makes the folder: run_context.yml makes the bundle this way, on the
  control node without a module (no local interpreter to start, about a second a run).
- Folders it makes are 0750: a bundle may hold host logs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.llmhost.core.plugins.module_utils.evidence_bundle import (
    host_folder,
    write_if_changed,
)

DOCUMENTATION = r"""
module: evidence_write
short_description: Write a role's evidence files into the run's bundle on the control node
description:
  - "Runs on the control node. Each file goes to I(dir)/<host>/<name> when the play has
    several hosts, else I(dir)/<name>. A file already present is kept (evidence is never
    overwritten). Never reports C(changed), as the bundle is not state of the host."
options:
  dir:
    description: The run's evidence bundle on the control node; empty writes nothing.
    type: str
    required: true
  files:
    description: >-
      File name to content. A string is written as it is (a newline added when missing);
      a mapping or a list is written as indented JSON with sorted keys. Empty: only make
      the folder.
    type: dict
    required: true
  mode:
    description: File mode of the written files.
    type: str
    default: "0644"
author: llmhost
"""

RETURN = r"""
written:
  description: Paths written by this task.
  type: list
  elements: str
kept:
  description: Paths already in the bundle, left as they were.
  type: list
  elements: str
would_write:
  description: In check mode, the paths a run would write.
  type: list
  elements: str
"""


def render(content: Any) -> str:
    """The bytes a file holds: text as given, data as stable indented JSON."""
    if isinstance(content, str):
        text = content
    elif isinstance(content, (dict, list)):
        text = json.dumps(content, indent=2, sort_keys=True, ensure_ascii=False)
    else:
        raise TypeError(f"content must be text, a mapping or a list, not {type(content).__name__}")
    return text if text.endswith("\n") else text + "\n"


def target_dir(bundle: str, host: str, play_hosts: list[str]) -> Path:
    """The host's folder in the bundle: its own when the play has several hosts."""
    return Path(host_folder(bundle, host, play_hosts))


def safe_name(name: str) -> str:
    """A file name inside the bundle folder, never a path out of it."""
    if not name or name in {".", ".."} or "/" in name or "\\" in name or "\0" in name:
        raise ValueError(f"evidence file name {name!r} must be a plain name (no '/', '.' or '..')")
    return name


FOLDER_MODE = 0o750


def make_folder(folder: Path) -> None:
    """The folder and the parents it lacks, each 0750 (umask aside) when made here."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    for path in reversed(missing):
        path.mkdir(exist_ok=True)
        path.chmod(FOLDER_MODE)


def write_new(folder: Path, files: dict[str, Any], mode: int) -> tuple[list[str], list[str]]:
    """Write each file that is not there yet (atomically); return (written, kept)."""
    make_folder(folder)
    written: list[str] = []
    kept: list[str] = []
    for name in sorted(files):
        path = folder / safe_name(name)
        if path.exists():
            kept.append(str(path))
            continue
        write_if_changed(path, render(files[name]).encode("utf-8"), mode)
        written.append(str(path))
    return written, kept


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("dir", "files", "mode"))

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        args = self._task.args
        bundle = str(args.get("dir") or "")
        files = args.get("files")
        if not isinstance(files, dict):
            raise AnsibleActionFail("evidence_write: files must map file names to contents")
        try:
            mode = int(str(args.get("mode", "0644")), 8)
            names = [safe_name(str(n)) for n in files]
            for name in names:
                render(files[name])
        except (TypeError, ValueError) as error:
            raise AnsibleActionFail(f"evidence_write: {error}") from error
        result.update(changed=False, written=[], kept=[])
        if not bundle:
            result["msg"] = "no evidence bundle for this run (dir is empty): nothing written"
            return result
        host = str(task_vars.get("inventory_hostname", "localhost"))
        folder = target_dir(bundle, host, list(task_vars.get("ansible_play_hosts_all") or [host]))
        if self._task.check_mode:
            result["would_write"] = [str(folder / n) for n in sorted(names)]
            return result
        try:
            result["written"], result["kept"] = write_new(folder, dict(files), mode)
        except OSError as error:
            message = f"evidence_write: cannot write into {folder}: {error}"
            raise AnsibleActionFail(message) from error
        return result
