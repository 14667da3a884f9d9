"""llmhost.core.evidence_ledger: the run ledger of an llmhost run, in its evidence bundle."""
# Ansible layout: the documentation block comes before the imports.
# ruff: noqa: E402

from __future__ import annotations

DOCUMENTATION = r"""
---
name: evidence_ledger
type: aggregate
short_description: The run ledger (who, git state, inventory, redacted extra vars) in the bundle
version_added: 0.1.0
description:
  - Keeps C(<bundle>/run_ledger.json) up to date with what ansible-runner does not record,
    one entry per playbook of the run (a run may use several playbooks) with the playbook
    and when it started, who ran it on which control host (and C(SUDO_USER)), the
    repository's git commit and whether the checkout was dirty (and which paths), the
    inventory's name and sources, the extra vars with secrets redacted, and the
    ansible-core and Python versions.
  - What ansible-runner records in the same bundle (C(scripts/llmhost.py) runs every
    playbook through it with the bundle as its artifact folder) is no longer written
    here; the callback used to write it too. Gone are C(ledger/<playbook>.jsonl) (one
    line per task result; runner's C(job_events/) hold every task result, no_log results
    censored), and from C(run_ledger.json) the command line (runner's C(command)), the
    plays, the per-host recap and the task counts (C(job_events/), C(stdout)), the end
    time and status (runner's C(status) and C(rc)). It no longer reseals
    C(MANIFEST.sha256) when the process exits either; the entry point seals the bundle
    last, after runner's final artifacts and the secrets scan.
  - Redacts every value whose key contains a word such as key, token, password, pass,
    secret or credential, and vaulted values; then scrubs the ledger's text for known
    secret values (the files under the secrets folder, C(HF_TOKEN), the vault password
    files, the redacted extra vars).
  - The bundle is O(evidence_dir) when set (C(scripts/llmhost.py) exports it), else
    C(<repo>/evidence/<inventory>/<run_id>) when O(run_id) is set, the inventory name
    being the folder of the first inventory source (C(inventories/lab) -> C(lab)). With
    neither, the callback does nothing.
requirements:
  - enable it with C(callbacks_enabled = llmhost.core.evidence_ledger) in ansible.cfg
options:
  evidence_dir:
    description: The run's bundle folder on the control node.
    type: path
    env:
      - name: LLMHOST_EVIDENCE_DIR
    ini:
      - section: callback_evidence_ledger
        key: evidence_dir
  run_id:
    description:
      - The run id, used with the repository root and the inventory name when
        O(evidence_dir) is not set.
    type: str
    env:
      - name: LLMHOST_RUN_ID
  repo_root:
    description: The repository; default the git top level of the playbook's folder.
    type: path
    env:
      - name: LLMHOST_ROOT
  secrets_dir:
    description:
      - Folder of secret files whose values never reach the ledger.
      - Default C(<repo>/.cache/secrets).
    type: path
    env:
      - name: LLMHOST_SECRETS_DIR
"""

import contextlib
import getpass
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ansible import context
from ansible.plugins.callback import CallbackBase
from ansible.release import __version__ as ansible_version
from ansible_collections.llmhost.core.plugins.module_utils.evidence_bundle import (
    write_if_changed,
)

REDACTED = "<redacted>"
SCHEMA = "llmhost.run_ledger/v2"
_SECRET_WORDS = frozenset(
    {
        "key",
        "token",
        "password",
        "passwd",
        "pass",
        "secret",
        "secrets",
        "passphrase",
        "credential",
        "credentials",
        "apikey",
        "auth",
        "authorization",
        "bearer",
        "cookie",
    }
)
_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
_MIN_SECRET = 6


def now() -> str:
    """UTC time, ISO 8601 with milliseconds and Z."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def secret_key(name: Any) -> bool:
    """Whether a variable or result key names a secret (vllm_api_key, hf_token, ...)."""
    text = str(name)
    words = {w.lower() for w in _WORDS.findall(text)}
    lowered = text.lower()
    return bool(words & _SECRET_WORDS) or "password" in lowered or "secret" in lowered


def _vaulted(value: Any) -> bool:
    try:
        from ansible.parsing.vault import EncryptedString, VaultHelper
    except ImportError:  # pragma: no cover - older ansible-core
        return False
    if isinstance(value, EncryptedString):
        return True
    return VaultHelper.get_ciphertext(value, with_tags=False) is not None


def redact(value: Any, found: list[str]) -> Any:
    """A copy with secret-named and vaulted values replaced; the string values taken out
    are appended to found (to scrub them from free text later)."""
    if _vaulted(value):
        return REDACTED
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if secret_key(key) and item not in (None, "", [], {}):
                found.extend(_strings(item))
                out[str(key)] = REDACTED
            else:
                out[str(key)] = redact(item, found)
        return out
    if isinstance(value, list | tuple):
        return [redact(item, found) for item in value]
    return value


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list | tuple):
        return [s for item in value for s in _strings(item)]
    return [str(value)] if isinstance(value, str | int) and not isinstance(value, bool) else []


def inventory_name(sources: list[str] | tuple[str, ...]) -> str:
    """lab for inventories/lab or inventories/lab/hosts.yml; adhoc for a host list."""
    for source in sources:
        path = Path(source)
        if path.is_dir():
            return path.resolve().name
        if path.is_file():
            return path.resolve().parent.name
    return "adhoc"


def resolve_bundle(
    evidence_dir: str | None, run_id: str | None, repo_root: Path, sources: list[str]
) -> Path | None:
    """The bundle folder, or None when the run is not an evidence run."""
    if evidence_dir:
        return Path(evidence_dir).expanduser().resolve()
    if run_id and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", run_id):
        return repo_root / "evidence" / inventory_name(sources) / run_id
    return None


def _git(root: Path, *args: str) -> str | None:
    git = shutil.which("git")
    if git is None:
        return None
    try:
        out = subprocess.run(  # noqa: S603 - fixed argument list, no shell
            [git, "-C", str(root), *args], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def git_state(root: Path) -> dict[str, Any]:
    """Commit, dirty flag and the dirty paths (first 200) of the checkout at root."""
    sha = _git(root, "rev-parse", "HEAD")
    status = _git(root, "status", "--porcelain=v1", "--untracked-files=normal")
    if sha is None or status is None:
        return {"sha": None, "dirty": None, "dirty_files": [], "error": "not a git checkout"}
    changed = [line[3:] for line in status.splitlines() if line.strip()]
    return {"sha": sha.strip(), "dirty": bool(changed), "dirty_files": changed[:200]}


def repo_root_of(playbook: Path, configured: str | None) -> Path:
    """The repository: configured, else git's top level of the playbook's folder."""
    if configured:
        return Path(configured).expanduser().resolve()
    top = _git(playbook.parent, "rev-parse", "--show-toplevel")
    return Path(top.strip()) if top else playbook.parent.parent


def relative(path: str | Path, root: Path) -> str:
    """path relative to root when inside it."""
    with contextlib.suppress(ValueError):
        return Path(path).resolve().relative_to(root).as_posix()
    return str(path)


def read_secrets(folder: Path | None, files: list[str]) -> list[str]:
    """Secret values: each file of folder and each named file (first token), HF tokens."""
    paths = [p for p in folder.iterdir() if p.is_file()] if folder and folder.is_dir() else []
    paths += [Path(f) for f in files if f and Path(f).is_file() and not os.access(f, os.X_OK)]
    values = []
    for path in paths:
        with contextlib.suppress(OSError, UnicodeDecodeError):
            text = path.read_text(encoding="utf-8").strip()
            if text:
                values.append(text.split()[0] if " salt=" in text else text)
    values += [os.environ.get(n, "") for n in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")]
    return sorted({v for v in values if len(v) >= _MIN_SECRET}, key=len, reverse=True)


def update_run_ledger(path: Path, run_id: str, bundle: str, entry: dict[str, Any]) -> None:
    """Insert or replace this playbook's entry in run_ledger.json."""
    data: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(path.read_text(encoding="utf-8"))
    runs = [
        r for r in data.get("invocations", []) if isinstance(r, dict) and r.get("id") != entry["id"]
    ]
    runs.append(entry)
    runs.sort(key=lambda r: str(r.get("started_at", "")))
    ledger = {
        "schema": SCHEMA,
        "run_id": run_id,
        "bundle": bundle,
        "playbooks": [r.get("playbook") for r in runs],
        "invocations": runs,
    }
    text = json.dumps(ledger, indent=2, sort_keys=True, default=str) + "\n"
    write_if_changed(path, text.encode("utf-8"), 0o644)


class CallbackModule(CallbackBase):
    """Run ledger into the evidence bundle; inert when the run has no bundle."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "llmhost.core.evidence_ledger"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._bundle: Path | None = None
        self._root = Path.cwd()
        self._entry: dict[str, Any] = {}
        self._secrets: list[str] = []
        self._extra_vars_done = False

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(json.dumps(secret)[1:-1], REDACTED)
        return text

    def _save(self) -> None:
        if self._bundle is None:
            return
        entry = json.loads(self._scrub(json.dumps(self._entry, default=str)))
        bundle = relative(self._bundle, self._root)
        update_run_ledger(self._bundle / "run_ledger.json", self._bundle.name, bundle, entry)

    def v2_playbook_on_start(self, playbook: Any) -> None:
        file_name = Path(getattr(playbook, "_file_name", "") or "playbook.yml").resolve()
        self._root = repo_root_of(file_name, self.get_option("repo_root"))
        sources = list(context.CLIARGS.get("inventory") or ())
        bundle = resolve_bundle(
            self.get_option("evidence_dir"), self.get_option("run_id"), self._root, sources
        )
        if bundle is None:
            return
        secrets_dir = self.get_option("secrets_dir") or self._root / ".cache" / "secrets"
        vault_files = list(context.CLIARGS.get("vault_password_files") or ())
        vault_files.append(os.environ.get("ANSIBLE_VAULT_PASSWORD_FILE", ""))
        self._secrets = read_secrets(Path(secrets_dir), vault_files)
        bundle.mkdir(parents=True, exist_ok=True, mode=0o750)
        self._bundle = bundle
        self._extra_vars_done = False
        started = now()
        self._entry = {
            "id": f"{started}-{os.getpid()}",
            "playbook": relative(file_name, self._root),
            "started_at": started,
            "user": getpass.getuser(),
            "sudo_user": os.environ.get("SUDO_USER"),
            "control_host": socket.gethostname(),
            "git": git_state(self._root),
            "inventory": {
                "name": inventory_name(sources),
                "sources": [relative(s, self._root) for s in sources],
            },
            "extra_vars": {},
            "ansible_core": ansible_version,
            "python": sys.version.split()[0],
        }
        self._save()

    def v2_playbook_on_play_start(self, play: Any) -> None:
        if self._bundle is None or self._extra_vars_done:
            return
        self._extra_vars_done = True
        found: list[str] = []
        extra = dict(play.get_variable_manager().extra_vars or {})
        self._entry["extra_vars"] = redact(extra, found)
        self._secrets = sorted(
            set(self._secrets) | {s for s in found if len(s) >= _MIN_SECRET},
            key=len,
            reverse=True,
        )
        self._save()
