"""llmhost.core.evidence_ledger: the run ledger of an llmhost run, in its evidence bundle."""
# Ansible layout: the documentation block comes before the imports.
# ruff: noqa: E402

from __future__ import annotations

DOCUMENTATION = r"""
---
name: evidence_ledger
type: aggregate
short_description: Write the run ledger (per-task results and run facts) into the evidence bundle
version_added: 0.1.0
description:
  - Appends one JSON line per task result to C(<bundle>/ledger/<playbook>.jsonl) as the run
    goes (host, play, task, action, role, task file and line, status, changed, duration,
    the result with long strings shortened). Results of C(no_log) tasks are censored.
  - Keeps C(<bundle>/run_ledger.json) up to date, one entry per ansible-playbook
    invocation of the run (a run may use several playbooks), with the playbook, its plays,
    who ran it on which control host, start and end, the repository's git commit and
    whether the checkout was dirty (and which paths), the inventory, limit, tags, check
    mode, the extra vars and the command line with secrets redacted, and the per-host
    recap, so an auditor can replay the run.
  - Redacts every value whose key contains a word such as key, token, password, pass,
    secret or credential, and vaulted values; then scrubs the text of every line for
    known secret values (the files under the secrets folder, C(HF_TOKEN), the vault
    password files, the redacted extra vars).
  - The bundle is O(evidence_dir) when set (C(scripts/run-lab.sh) exports it), else
    C(<repo>/evidence/<inventory>/<run_id>) when O(run_id) is set, the inventory name
    being the folder of the first inventory source (C(inventories/lab) -> C(lab)). With
    neither, the callback does nothing.
  - When the process exits and the bundle holds a C(MANIFEST.sha256) (the evidence role
    ran), the manifest is written again so that it covers the ledger's last lines and
    the log; the entry records this as C(manifest_resealed_at_exit).
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
  max_string:
    description: Strings in results longer than this many characters are shortened.
    type: int
    default: 4096
    ini:
      - section: callback_evidence_ledger
        key: max_string
  max_result_bytes:
    description: A result larger than this (as JSON) is replaced by its keys and message.
    type: int
    default: 65536
    ini:
      - section: callback_evidence_ledger
        key: max_result_bytes
"""

import atexit
import contextlib
import getpass
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ansible import context
from ansible.plugins.callback import CallbackBase
from ansible.release import __version__ as ansible_version
from ansible_collections.llmhost.core.plugins.module_utils.evidence_bundle import (
    MANIFEST_NAME,
    seal,
    write_if_changed,
)

REDACTED = "<redacted>"
SCHEMA = "llmhost.run_ledger/v1"
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
_EXTRA_VARS_FLAGS = ("-e", "--extra-vars")
_MIN_SECRET = 6
_CENSORED = (
    "the output has been hidden due to the fact that 'no_log: true' was specified for this result"
)


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


def shorten(value: Any, limit: int) -> Any:
    """Strings longer than limit cut, with the original length noted."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]}... [{len(value) - limit} more characters]"
    if isinstance(value, dict):
        return {str(k): shorten(v, limit) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [shorten(v, limit) for v in value]
    return value


def _strip_internal(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _strip_internal(v) for k, v in value.items() if not str(k).startswith("_ansible")
        }
    if isinstance(value, list):
        return [_strip_internal(v) for v in value]
    return value


def clean_result(
    result: dict[str, Any], no_log: bool, max_string: int, max_bytes: int
) -> dict[str, Any]:
    """What the ledger keeps of a task result."""
    if no_log:
        kept = {k: result[k] for k in ("changed", "attempts") if k in result}
        return {**kept, "censored": _CENSORED}
    data = _strip_internal(result)
    for stream in ("stdout", "stderr"):
        if stream in data:
            data.pop(f"{stream}_lines", None)
    data = shorten(redact(data, []), max_string)
    size = len(json.dumps(data, default=str))
    if size <= max_bytes:
        return data
    kept = {k: data[k] for k in ("changed", "msg", "rc") if k in data}
    return {**kept, "omitted": f"result of {size} bytes (over {max_bytes})", "keys": sorted(data)}


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


def redact_argv(argv: list[str]) -> list[str]:
    """The command line with inline extra vars replaced (files given as @path are kept)."""
    out: list[str] = []
    expect_value = False
    for arg in argv:
        if expect_value:
            out.append(arg if arg.startswith("@") else "<extra vars: see extra_vars>")
            expect_value = False
        elif arg in _EXTRA_VARS_FLAGS:
            out.append(arg)
            expect_value = True
        elif arg.startswith("--extra-vars="):
            value = arg.split("=", 1)[1]
            out.append(
                arg if value.startswith("@") else "--extra-vars=<extra vars: see extra_vars>"
            )
        elif arg.startswith("-e") and not arg.startswith("-e@"):
            out.append("-e<extra vars: see extra_vars>")
        else:
            out.append(arg)
    return out


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
    """Insert or replace this invocation's entry in run_ledger.json."""
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
        self._jsonl: Path | None = None
        self._entry: dict[str, Any] = {}
        self._play = ""
        self._started: dict[str, float] = {}
        self._handlers: set[str] = set()
        self._secrets: list[str] = []
        self._tasks = {"total": 0, "changed": 0, "failed": 0, "skipped": 0, "unreachable": 0}

    # --- writing ---------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(json.dumps(secret)[1:-1], REDACTED)
        return text

    def _line(self, record: dict[str, Any]) -> None:
        if self._jsonl is None:
            return
        text = self._scrub(json.dumps(record, sort_keys=True, default=str, ensure_ascii=False))
        with self._jsonl.open("a", encoding="utf-8") as handle:
            handle.write(text + "\n")

    def _save(self) -> None:
        if self._bundle is None:
            return
        entry = json.loads(self._scrub(json.dumps(self._entry, default=str)))
        bundle = relative(self._bundle, self._root)
        update_run_ledger(self._bundle / "run_ledger.json", self._bundle.name, bundle, entry)

    # --- events ----------------------------------------------------------------------

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
        (bundle / "ledger").mkdir(parents=True, exist_ok=True, mode=0o750)
        self._bundle = bundle
        self._jsonl = bundle / "ledger" / f"{file_name.stem}.jsonl"
        self._entry = self._start_entry(file_name, sources)
        self._line({"event": "playbook_start", **self._entry_summary()})
        self._save()

    def _start_entry(self, playbook: Path, sources: list[str]) -> dict[str, Any]:
        args = context.CLIARGS
        started = now()
        return {
            "id": f"{started}-{os.getpid()}",
            "playbook": relative(playbook, self._root),
            "status": "running",
            "started_at": started,
            "ended_at": None,
            "user": getpass.getuser(),
            "sudo_user": os.environ.get("SUDO_USER"),
            "control_host": socket.gethostname(),
            "git": git_state(self._root),
            "inventory": {
                "name": inventory_name(sources),
                "sources": [relative(s, self._root) for s in sources],
            },
            "limit": args.get("subset"),
            "tags": list(args.get("tags") or ()),
            "skip_tags": list(args.get("skip_tags") or ()),
            "check_mode": bool(args.get("check")),
            "diff_mode": bool(args.get("diff")),
            "argv": redact_argv([Path(sys.argv[0]).name, *sys.argv[1:]]),
            "extra_vars": {},
            "plays": [],
            "ansible_core": ansible_version,
            "python": sys.version.split()[0],
            "ledger": f"ledger/{playbook.stem}.jsonl",
            "tasks": self._tasks,
        }

    def _entry_summary(self) -> dict[str, Any]:
        keys = ("id", "playbook", "started_at", "user", "control_host", "git", "inventory")
        return {k: self._entry[k] for k in keys}

    def v2_playbook_on_play_start(self, play: Any) -> None:
        if self._bundle is None:
            return
        self._play = play.get_name()
        if not self._entry["extra_vars"]:
            found: list[str] = []
            extra = dict(play.get_variable_manager().extra_vars or {})
            self._entry["extra_vars"] = redact(extra, found)
            self._secrets = sorted(
                set(self._secrets) | {s for s in found if len(s) >= _MIN_SECRET},
                key=len,
                reverse=True,
            )
        path = relative(play.get_path().rsplit(":", 1)[0], self._root) if play.get_path() else ""
        record = {"name": self._play, "hosts": play.hosts, "path": path}
        self._entry["plays"].append(record)
        self._line({"event": "play_start", "time": now(), **record})

    def v2_playbook_on_task_start(self, task: Any, is_conditional: bool) -> None:
        self._started[task._uuid] = time.monotonic()

    def v2_playbook_on_handler_task_start(self, task: Any) -> None:
        self._handlers.add(task._uuid)
        self._started[task._uuid] = time.monotonic()

    def v2_runner_on_start(self, host: Any, task: Any) -> None:
        self._started[f"{host.get_name()}/{task._uuid}"] = time.monotonic()

    def v2_runner_on_ok(self, result: Any) -> None:
        self._record(result, "changed" if result.is_changed() else "ok")

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._record(result, "failed", ignore_errors=ignore_errors)

    def v2_runner_on_skipped(self, result: Any) -> None:
        self._record(result, "skipped")

    def v2_runner_on_unreachable(self, result: Any) -> None:
        self._record(result, "unreachable")

    def _duration(self, host: str, uuid: str) -> float | None:
        start = self._started.pop(f"{host}/{uuid}", None) or self._started.get(uuid)
        return None if start is None else round(time.monotonic() - start, 3)

    def _record(self, result: Any, status: str, ignore_errors: bool = False) -> None:
        if self._bundle is None:
            return
        task, host = result.task, result.host.get_name()
        raw = dict(result.result)
        no_log = bool(raw.get("_ansible_no_log")) or task.no_log is True
        self._count(status, ignore_errors)
        role = getattr(task, "_role", None)
        self._line(
            {
                "event": "task",
                "time": now(),
                "play": self._play,
                "host": host,
                "delegate_to": task.delegate_to,
                "task": result.task_name,
                "action": task.action,
                "role": role.get_name() if role else None,
                "path": relative(task.get_path(), self._root) if task.get_path() else "",
                "tags": list(task.tags or []),
                "handler": task._uuid in self._handlers,
                "status": status,
                "changed": result.is_changed(),
                "failed": status == "failed",
                "ignore_errors": bool(ignore_errors),
                "skipped": status == "skipped",
                "unreachable": status == "unreachable",
                "duration_s": self._duration(host, task._uuid),
                "no_log": no_log,
                "result": clean_result(
                    raw, no_log, self.get_option("max_string"), self.get_option("max_result_bytes")
                ),
            }
        )

    def _count(self, status: str, ignore_errors: bool) -> None:
        self._tasks["total"] += 1
        if status in self._tasks and not (status == "failed" and ignore_errors):
            self._tasks[status] += 1

    def v2_playbook_on_stats(self, stats: Any) -> None:
        if self._bundle is None:
            return
        recap = {host: stats.summarize(host) for host in sorted(stats.processed)}
        failed = any(r.get("failures") or r.get("unreachable") for r in recap.values())
        sealed = (self._bundle / MANIFEST_NAME).is_file()
        self._entry.update(
            status="failed" if failed else "finished",
            ended_at=now(),
            recap=recap,
            manifest_resealed_at_exit=sealed,
        )
        self._line({"event": "playbook_end", "time": self._entry["ended_at"], "recap": recap})
        self._save()
        if sealed:
            atexit.register(seal, self._bundle)
