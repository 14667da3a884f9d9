#!/usr/bin/env python3
"""llmhost: the one entry point for any inventory, built on ansible-runner.

    python scripts/llmhost.py ACTION -i inventories/<x> [--limit H] [--tags T]
        [--skip-tags T] [--check] [--diff] [-e k=v | -e @vars.yml | -e '{"k": "v"}' ...]
    python scripts/llmhost.py status -i inventories/<x> [--limit H] [--json]

ACTION is deploy, release, upgrade, eval, teardown, train, rollback, lab or fleet-lab;
each invocation is one run: one run id (the runner ident, <UTC %Y%m%dT%H%M%SZ>-<git
sha12>, or LLMHOST_RUN_ID), one ansible-playbook process, one evidence bundle
evidence/<inventory>/<run id>/ that never existed before. The bundle is ansible-runner's
artifact folder (job_events/, stdout, stderr, command, rc, status) and holds what the
playbooks write there, ansible.log, run_ledger.json (the evidence_ledger callback),
secrets_scan.json and, written last, MANIFEST.sha256 (make verify-evidence
RUN=evidence/<inventory>/<run id>).

After the playbooks, the bundle and the hosts' logs (fetched by playbooks/host_logs.yml
into .cache/hostlogs/<run id>/, deleted after) are scanned for the inventory's secrets
(scripts/evidence_secrets.py); a leak fails the run after the bundle is sealed. Runner's
private folder is .cache/runner/<run id>/, removed after the run; the secret-named and
secret-valued variables of runner's `command` file (the environment) are redacted. A
secret given inline with -e is refused: it would reach the process list.

The vault password file: LLMHOST_VAULT_PASSWORD_FILE, else .cache/vault/<inventory>.pass
when it exists, else none; it is passed by path, never by value. One that holds the
password this repository publishes (the example's, roles/preflight/files/
published_secrets.json) is refused for any inventory but the example and the lab (a
warning only for teardown and status). `status` is read-only,
takes seconds and leaves no bundle (it is not a run, and a bundle per status check would
hide the inventory's last real run). Exit status: the playbook's rc, else 1 when the scan
found a leak or could not run, 2 for refused input.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

import ansible_runner
import yaml

SCRIPT_ROOT = Path(__file__).resolve().parents[1]
ACTIONS: dict[str, tuple[str, ...]] = {
    "deploy": ("deploy.yml",),
    "eval": ("eval.yml", "host_logs.yml", "evidence.yml"),
    "teardown": ("teardown.yml", "host_logs.yml", "evidence.yml"),
    "train": ("train.yml", "evidence.yml"),
    "rollback": ("rollback.yml", "host_logs.yml", "evidence.yml"),
    # Switch a serving host to another of the inventory's releases (-e llmhost_release=X)
    # behind a draining gateway, then evaluate it.
    "release": ("release.yml", "eval.yml", "host_logs.yml", "evidence.yml"),
    # lab.yml ends with teardown and the evidence role; host_logs.yml writes only into
    # .cache (never the bundle), so it may come after the role's seal: the entry point
    # seals the bundle last anyway.
    "lab": ("lab.yml", "host_logs.yml"),
    # Roll a release over the replicas behind the gateway, one at a time (-e llmhost_release=X).
    "upgrade": ("upgrade.yml", "host_logs.yml", "evidence.yml"),
    # The fleet lab's loop (make fleet-lab): serve, upgrade, roll back, seal.
    "fleet-lab": ("fleet-lab.yml", "host_logs.yml"),
}
STATUS = "status"
SERVING_GROUP = "llmhost"
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
RUN_ID_TIME = re.compile(r"^(\d{8}T\d{6}Z)")
SCAN_SCHEMA = "llmhost.secrets_scan/v1"
STATUS_SCHEMA = "llmhost.status/v1"
REDACTED = "<redacted>"
PLAN_STOP_VAR = "llmhost_gpu_plan.hard_stop_time"
# The secrets this repository publishes (scripts/published_secrets.py), and the only
# inventories that may run with them (relative to the repository root).
PUBLISHED_SECRETS = SCRIPT_ROOT / "roles" / "preflight" / "files" / "published_secrets.json"
PUBLISHED_SECRETS_INVENTORIES = ("inventories/rented-gpu.example", "inventories/lab")
# Actions run with a published vault password all the same, with a warning: a refused
# teardown would leave a rented host running (and billing); status changes nothing.
PUBLISHED_PASSWORD_WARN_ONLY = ("teardown", STATUS)


def _load(name: str, path: Path) -> ModuleType:
    """A module of this repository by its file path (no sys.path changes)."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


# The evidence bundle library imports the collection's digests by name
# (ansible_collections.llmhost.core), so the local collection goes on the path.
if str(SCRIPT_ROOT / "collections") not in sys.path:
    sys.path.insert(0, str(SCRIPT_ROOT / "collections"))
bundle_lib = importlib.import_module(
    "ansible_collections.llmhost.core.plugins.module_utils.evidence_bundle"
)
secrets_lib = _load("llmhost_evidence_secrets", SCRIPT_ROOT / "scripts" / "evidence_secrets.py")
hard_stop_lib = _load(
    "llmhost_hard_stop",
    SCRIPT_ROOT / "collections/ansible_collections/llmhost/core/plugins/plugin_utils/hard_stop.py",
)
published_lib = _load(
    "llmhost_published_secrets",
    SCRIPT_ROOT
    / "collections/ansible_collections/llmhost/core/plugins/plugin_utils"
    / "published_secrets.py",
)


class Refused(Exception):
    """Input the entry point will not run with (exit status 2)."""


def say(text: str) -> None:
    print(f"[llmhost] {text}", flush=True)


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def repo_root() -> Path:
    """The repository the run works in: LLMHOST_ROOT, else this script's checkout."""
    return Path(os.environ.get("LLMHOST_ROOT") or SCRIPT_ROOT).resolve()


def inventory_name(inventory: Path) -> str:
    """The inventory folder's name (inventories/lab and inventories/lab/hosts.yml: lab)."""
    path = inventory.resolve()
    return path.name if path.is_dir() else path.parent.name


def git_sha(root: Path) -> str:
    git = shutil.which("git")
    if git is None:
        return "nogit"
    done = subprocess.run(  # noqa: S603 - fixed argument list, no shell
        [git, "-C", str(root), "rev-parse", "--short=12", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else "nogit"


def new_run_id(root: Path) -> str:
    """LLMHOST_RUN_ID, else <UTC %Y%m%dT%H%M%SZ>-<git sha12>; refused unless a safe name."""
    run_id = os.environ.get("LLMHOST_RUN_ID") or (
        f"{utc_now().strftime('%Y%m%dT%H%M%SZ')}-{git_sha(root)}"
    )
    if not RUN_ID.match(run_id) or run_id in {".", ".."}:
        raise Refused(
            f"run id {run_id!r} is not a safe folder name: letters, digits, '.', '_' and '-'"
            " only (e.g. 20261122T230000Z-abc123def456)"
        )
    return run_id


def vault_password_file(root: Path, name: str) -> Path | None:
    """LLMHOST_VAULT_PASSWORD_FILE, else .cache/vault/<inventory>.pass when present."""
    configured = os.environ.get("LLMHOST_VAULT_PASSWORD_FILE")
    if configured:
        path = Path(configured).expanduser().resolve()
        if not path.is_file():
            raise Refused(f"LLMHOST_VAULT_PASSWORD_FILE={configured} is not a file")
        return path
    default = root / ".cache" / "vault" / f"{name}.pass"
    return default if default.is_file() else None


def published_vault_password(root: Path, inventory: Path, vault: Path | None) -> str | None:
    """Why the vault password file may not be used for this inventory: it holds a password
    this repository publishes (the example's) and the inventory is not the example or the
    lab. None when it may (or there is none, or it is a vault client script, whose text is
    not the password)."""
    if vault is None or os.access(vault, os.X_OK):
        return None
    folder = inventory.resolve() if inventory.is_dir() else inventory.resolve().parent
    if folder in {(root / name).resolve() for name in PUBLISHED_SECRETS_INVENTORIES}:
        return None
    try:
        password = vault.read_bytes().strip().decode("utf-8")  # as ansible reads it
    except (OSError, UnicodeDecodeError):
        return None  # not text: not the published password; ansible says the rest
    source = published_lib.load(PUBLISHED_SECRETS).get(published_lib.digest(password))
    if source is None:
        return None
    name = folder.name
    return (
        f"the vault password file {vault} holds a password this repository publishes "
        f"({source}), and inventory {name} is not the example or the lab: anyone can open "
        f"its vault. Fix: make a new password ((umask 077 && openssl rand -base64 32 > "
        f".cache/vault/{name}.pass)), rekey the vault with it (ansible-vault rekey "
        f"--vault-password-file {vault} --new-vault-password-file .cache/vault/{name}.pass "
        "<its vault files>), point LLMHOST_VAULT_PASSWORD_FILE at the new file or unset it, "
        "and make new keys too (openssl rand -hex 24 each): the old password opened them "
        "for anyone"
    )


def check_vault_password(action: str, root: Path, inventory: Path, vault: Path | None) -> None:
    """Refused (Refused): a published vault password outside the example and the lab;
    only a warning for teardown and status."""
    problem = published_vault_password(root, inventory, vault)
    if problem is None:
        return
    if action in PUBLISHED_PASSWORD_WARN_ONLY:
        say(f"WARNING: {problem}")
        return
    raise Refused(problem)


# --- extra vars --------------------------------------------------------------------


@dataclass
class ExtraVars:
    """-e values: inline ones (written to a 0600 file for ansible) and @files."""

    inline: dict[str, Any] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)


def _secret_paths(value: Any, path: str = "") -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if secrets_lib.secret_name(key):
                yield where
            else:
                yield from _secret_paths(item, where)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _secret_paths(item, f"{path}[{index}]")


def parse_extra_vars(items: Iterable[str]) -> ExtraVars:
    """k=v pairs, JSON/YAML mappings and @files, as ansible-playbook takes them; an inline
    secret-named variable is refused (the process list and runner's command would show it)."""
    out = ExtraVars()
    for item in items:
        text = item.strip()
        if text.startswith("@"):
            path = Path(text[1:]).expanduser().resolve()
            if not path.is_file():
                raise Refused(f"-e {item}: no such file")
            out.files.append(path)
            continue
        if text.startswith(("{", "[")):
            data = yaml.safe_load(text)
            if not isinstance(data, dict):
                raise Refused(f"-e {item!r}: not a mapping")
        else:
            data = {}
            for pair in shlex.split(text):
                key, sep, value = pair.partition("=")
                if not sep or not key:
                    raise Refused(f"-e {pair!r}: expected key=value")
                data[key] = value
        secret = sorted(_secret_paths(data))
        if secret:
            raise Refused(
                f"-e {', '.join(secret)}: a secret on the command line would reach the "
                "process list; put it in the inventory's vault or pass it with -e @file"
            )
        out.inline.update(data)
    return out


def extra_var_secrets(extra: ExtraVars) -> list[Any]:
    """The secret-named values of -e @files (plain YAML/JSON), to scan for."""
    found: list[Any] = []
    for path in extra.files:
        with contextlib.suppress(OSError, yaml.YAMLError, UnicodeDecodeError):
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            found += secrets_lib.secrets_from_inventory(
                {"_meta": {"hostvars": {"-e": data}}}, [], f"extra vars {path.name}:"
            )
    return found


# --- runner ------------------------------------------------------------------------


@dataclass
class Job:
    """One ansible-runner invocation and what it left."""

    status: str
    rc: int
    stats: dict[str, Any]
    events: list[dict[str, Any]]


def _interruptible() -> tuple[list[bool], Any]:
    """A SIGINT handler that asks runner to cancel (a second ^C interrupts for real)."""
    flag = [False]

    def handler(signum: int, frame: FrameType | None) -> None:
        if flag[0]:
            raise KeyboardInterrupt
        flag[0] = True
        say("interrupted: stopping ansible-playbook (^C again to abort at once)")

    return flag, signal.signal(signal.SIGINT, handler)


def run_runner(
    private: Path,
    artifact_dir: Path,
    ident: str,
    playbooks: list[Path],
    args: list[str],
    env: dict[str, str],
    quiet: bool,
    on_running: Any = None,
) -> Job:
    """ansible-playbook ARGS PLAYBOOKS... through ansible-runner (one process, one ident).

    Everything goes in cmdline so that the playbooks stay together at the end of the
    command; runner's fact cache is not used (ansible.cfg's applies), old artifact folders
    are never rotated away, and runner writes no env/ files."""
    *first, last = playbooks
    cmdline = shlex.join([*args, *map(str, first)])
    private.mkdir(parents=True, exist_ok=True, mode=0o700)
    cancelled, previous = _interruptible()

    def status_handler(data: dict[str, Any], runner_config: Any = None) -> None:
        if data.get("status") == "running" and on_running is not None:
            on_running(Path(runner_config.artifact_dir))

    try:
        runner = ansible_runner.run(
            private_data_dir=str(private),
            artifact_dir=str(artifact_dir),
            ident=ident,
            project_dir=str(repo_root()),
            playbook=str(last),
            cmdline=cmdline,
            envvars=env,
            quiet=quiet,
            rotate_artifacts=0,
            fact_cache_type="none",
            suppress_env_files=True,
            status_handler=status_handler,
            cancel_callback=lambda: cancelled[0],
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    events = list(runner.events)
    stats = next((e["event_data"] for e in events if e.get("event") == "playbook_on_stats"), {})
    rc = runner.rc if isinstance(runner.rc, int) else 1
    return Job(status=str(runner.status), rc=rc, stats=stats, events=events)


def _secret_setting(name: str, value: str) -> bool:
    """An environment variable that may hold a secret: a secret name with a value that is
    not a switch (ANSIBLE_HOST_KEY_CHECKING=True stays readable)."""
    switch = value.strip().lower() in {"", "true", "false", "yes", "no", "on", "off", "0", "1"}
    return secrets_lib.secret_name(name) and not switch


def redact_command(artifact_dir: Path, values: Iterable[str]) -> None:
    """Runner's `command` file records the whole environment: redact the variables whose
    name names a secret and every known secret value (the file keeps its mode)."""
    path = artifact_dir / "command"
    if not path.is_file():
        return
    data = json.loads(path.read_text(encoding="utf-8"))
    known = sorted({v for v in values if len(v) >= secrets_lib.MIN_LENGTH}, key=len, reverse=True)

    def clean(text: str) -> str:
        for value in known:
            text = text.replace(value, REDACTED)
        return text

    env = data.get("env") or {}
    data["env"] = {
        k: REDACTED if _secret_setting(k, str(v)) else clean(str(v)) for k, v in env.items()
    }
    data["command"] = [clean(str(a)) for a in data.get("command") or []]
    text = json.dumps(data, ensure_ascii=False)
    mode = path.stat().st_mode & 0o777
    bundle_lib.write_if_changed(path, text.encode("utf-8"), mode)


# --- secrets scan ------------------------------------------------------------------


@dataclass
class Inventory:
    """What the scan and the report need of an inventory."""

    data: dict[str, Any]
    secrets: list[Any]
    error: str | None = None

    def hosts(self, group: str) -> set[str]:
        """The hosts of a group and of its children."""
        body = self.data.get(group) or {}
        found = set(body.get("hosts") or [])
        for child in body.get("children") or []:
            found |= self.hosts(child)
        return found


def read_inventory(inventory: Path, vault: Path | None) -> Inventory:
    """The inventory as `ansible-inventory --list` shows it (with the vault) and its
    secrets: secret-named values, inline-vaulted values, its vault-encrypted files."""
    passwords = [vault] if vault else []
    command = [secrets_lib.venv_tool("ansible-inventory"), "-i", str(inventory)]
    command += ["--list", *(["--vault-password-file", str(vault)] if vault else [])]
    done = subprocess.run(  # noqa: S603 - fixed argument list, no shell
        command, capture_output=True, text=True, check=False, timeout=300
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return Inventory({}, [], f"ansible-inventory -i {inventory} --list failed: {last}")
    try:
        data = json.loads(done.stdout)
        folder = inventory if inventory.is_dir() else inventory.parent
        secrets = secrets_lib.secrets_from_inventory(data, passwords, f"inventory {folder.name}:")
        secrets += secrets_lib.secrets_from_vault(secrets_lib.vaulted_files(folder), passwords)
    except Exception as error:  # any failure makes the scan incomplete, not the run crash
        return Inventory({}, [], f"cannot read the secrets of {inventory}: {error}")
    return Inventory(data, secrets)


def known_secrets(root: Path, vault: Path | None, extra: list[Any]) -> list[Any]:
    """Secrets without reading the inventory: .cache/secrets, the vault password,
    HF tokens in the environment, secret-named values of -e @files."""
    return [
        *secrets_lib.gather(
            secrets_dir=root / ".cache" / "secrets",
            password_files=[vault] if vault else [],
        ),
        *extra,
    ]


def scan(
    bundle: Path, hostlogs: Path, secrets: list[Any], errors: list[str]
) -> tuple[dict[str, Any], list[str]]:
    """secrets_scan.json's content (no secret value in it) and the terminal's lines."""
    usable, short = secrets_lib.usable(secrets)
    targets = [bundle, *([hostlogs] if hostlogs.is_dir() else [])]
    found = secrets_lib.scan(targets, usable)
    findings = []
    for item in found:
        path = Path(item.path)
        if path.is_relative_to(bundle):
            where, rel = "bundle", path.relative_to(bundle).as_posix()
        else:
            where, rel = "host logs", path.relative_to(hostlogs).as_posix()
        findings.append({"where": where, "path": rel, "secret": item.label, "form": item.form})
    host_files = list(secrets_lib.iter_files([hostlogs])) if hostlogs.is_dir() else []
    verdict = "leak" if findings else ("incomplete" if errors else "clean")
    report = {
        "schema": SCAN_SCHEMA,
        "run_id": bundle.name,
        "scanned_at": iso(utc_now()),
        "verdict": verdict,
        "bundle_files": sum(1 for _ in secrets_lib.iter_files([bundle])),
        "host_log_files": len(host_files),
        "host_log_hosts": sorted({p.relative_to(hostlogs).parts[0] for p in host_files}),
        "secrets": len(usable),
        "secrets_too_short_to_scan": len(short),
        "shapes": sorted(secrets_lib.SHAPES),
        "findings": findings,
        "errors": errors,
    }
    lines = [
        f"LEAK in the {f['where']}: {f['path']}: {f['secret']} ({f['form']})" for f in findings
    ]
    lines += [f"scan incomplete: {e}" for e in errors]
    return report, lines


def missing_host_logs(
    job: Job, inventory: Inventory, hostlogs: Path, limit_to: set[str] | None = None
) -> list[str]:
    """Serving hosts the run reached whose logs were not fetched (the run failed on them
    before playbooks/host_logs.yml)."""
    reached = set(job.stats.get("processed") or {})
    expected = reached & inventory.hosts(SERVING_GROUP)
    if limit_to is not None:
        expected &= limit_to
    fetched = {p.name for p in hostlogs.iterdir() if p.is_dir()} if hostlogs.is_dir() else set()
    return sorted(expected - fetched)


# --- a run -------------------------------------------------------------------------


@dataclass
class Options:
    action: str
    inventory: Path
    limit: str | None
    tags: str | None
    skip_tags: str | None
    check: bool
    diff: bool
    extra_vars: list[str]
    json: bool


def with_control_node(limit: str) -> str:
    """A --limit pattern that keeps the control node: every run's context and evidence
    plays run on localhost, which a plain --limit gpu-1 would leave out."""
    parts = re.split(r"[,:]", limit)
    return limit if "localhost" in parts else f"{limit},localhost"


def playbook_args(opts: Options, vault: Path | None, extra_files: list[Path]) -> list[str]:
    args = ["-i", str(opts.inventory)]
    if opts.limit:
        args += ["--limit", with_control_node(opts.limit)]
    if opts.tags:
        args += ["--tags", opts.tags]
    if opts.skip_tags:
        args += ["--skip-tags", opts.skip_tags]
    args += ["--check"] if opts.check else []
    args += ["--diff"] if opts.diff else []
    if vault:
        args += ["--vault-password-file", str(vault)]
    for path in extra_files:
        args += ["-e", f"@{path}"]
    return args


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes}m {secs}s" if hours else f"{minutes}m {secs}s"


def _relative(path: Path, root: Path) -> str:
    with contextlib.suppress(ValueError):
        return path.relative_to(root).as_posix()
    return str(path)


def _run_env(root: Path, run_id: str, bundle: Path, started: float) -> dict[str, str]:
    """ansible-playbook's environment for a run (runner adds its own and the caller's)."""
    return {
        "LLMHOST_RUN_ID": run_id,
        "LLMHOST_EVIDENCE_DIR": str(bundle),
        "LLMHOST_ROOT": str(root),
        "LLMHOST_RUN_STARTED": str(int(started)),
        "ANSIBLE_CONFIG": str(root / "ansible.cfg"),
        "ANSIBLE_LOG_PATH": str(bundle / "ansible.log"),
        # ansible-runner turns host key checking off unless this is set; ansible.cfg has it on.
        "ANSIBLE_HOST_KEY_CHECKING": os.environ.get("ANSIBLE_HOST_KEY_CHECKING", "True"),
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }


def claim_bundle(root: Path, name: str, run_id: str) -> Path:
    """Create evidence/<inventory>/<run id>; refused when it exists (never overwritten)."""
    evidence = root / "evidence" / name
    evidence.mkdir(parents=True, exist_ok=True, mode=0o750)
    bundle = evidence / run_id
    try:
        bundle.mkdir(mode=0o750)
    except FileExistsError:
        raise Refused(
            f"{_relative(bundle, root)} exists: evidence is never overwritten"
            " (unset LLMHOST_RUN_ID or pick another)"
        ) from None
    return bundle


def refetch_host_logs(
    private: Path, run_id: str, args: list[str], env: dict[str, str], hosts: list[str]
) -> Job:
    """playbooks/host_logs.yml again, for the hosts the run stopped on before it (ansible
    skips the rest of a run after a failed play): not part of the run's record, so its
    artifacts, log and ledger stay out of the bundle."""
    say(f"fetching the logs of {', '.join(hosts)} for the scan (the run stopped before)")
    playbook = Path(env["LLMHOST_ROOT"]) / "playbooks" / "host_logs.yml"
    quiet_env = {
        **env,
        "ANSIBLE_LOG_PATH": str(private / "host_logs.log"),
        "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks",  # no run ledger entry
    }
    return run_runner(
        private / "host_logs",
        private / "artifacts",
        f"{run_id}-host-logs",
        [playbook],
        [*args, "--limit", with_control_node(",".join(hosts))],
        quiet_env,
        quiet=True,
    )


def run_action(opts: Options) -> int:
    """One run of ACTION: runner, redaction, secrets scan, seal; the exit status."""
    root = repo_root()
    name = inventory_name(opts.inventory)
    vault = vault_password_file(root, name)
    check_vault_password(opts.action, root, opts.inventory, vault)
    run_id = new_run_id(root)
    extra = parse_extra_vars(opts.extra_vars)
    extra_secrets = extra_var_secrets(extra)
    bundle = claim_bundle(root, name, run_id)
    private = root / ".cache" / "runner" / run_id
    hostlogs = root / ".cache" / "hostlogs" / run_id
    shutil.rmtree(private, ignore_errors=True)
    private.mkdir(parents=True, mode=0o700)
    for folder in (hostlogs.parent, hostlogs):  # host_logs.yml adds <host>/ in it
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    started = time.time()
    env = _run_env(root, run_id, bundle, started)
    say(f"run {run_id}: {opts.action} on {opts.inventory} ({', '.join(ACTIONS[opts.action])})")
    try:
        files = list(extra.files)
        if extra.inline:
            inline = private / "extra_vars.json"
            inline.touch(mode=0o600)
            inline.write_text(json.dumps(extra.inline), encoding="utf-8")
            files.append(inline)
        args = playbook_args(opts, vault, files)
        early = [s.value for s in known_secrets(root, vault, extra_secrets)]
        job = run_runner(
            private,
            bundle.parent,
            run_id,
            [root / "playbooks" / p for p in ACTIONS[opts.action]],
            args,
            env,
            quiet=False,
            on_running=lambda artifacts: redact_command(artifacts, early),
        )
        duration = time.time() - started
        inventory = read_inventory(opts.inventory, vault)
        errors = [inventory.error] if inventory.error else []
        refetched: list[str] = []
        if "host_logs.yml" in ACTIONS[opts.action] and not inventory.error:
            missing = missing_host_logs(job, inventory, hostlogs)
            if missing:
                refetch_host_logs(private, run_id, args, env, missing)
                still = missing_host_logs(job, inventory, hostlogs)
                refetched, missing = sorted(set(missing) - set(still)), still
            errors += [
                f"no logs fetched from {host}: its logs were not scanned" for host in missing
            ]
        secrets = [*known_secrets(root, vault, extra_secrets), *inventory.secrets]
        redact_command(bundle, [s.value for s in secrets])
        report, lines = scan(bundle, hostlogs, secrets, errors)
        report["host_logs_refetched"] = refetched
    finally:
        shutil.rmtree(private, ignore_errors=True)
        shutil.rmtree(hostlogs, ignore_errors=True)
    scan_text = json.dumps(report, indent=2, sort_keys=True) + "\n"
    bundle_lib.write_if_changed(bundle / "secrets_scan.json", scan_text.encode("utf-8"), 0o644)
    _, manifest = bundle_lib.seal(bundle)
    sealed = bundle_lib.verify(bundle).ok
    for line in lines:
        print(line, flush=True)
    code = job.rc if job.rc != 0 else (0 if report["verdict"] == "clean" else 1)
    code = code if sealed else (code or 1)
    rel = _relative(bundle, root)
    say(f"run {run_id} {'finished' if code == 0 else 'FAILED'}")
    hosts = ", ".join(report["host_log_hosts"]) or "no host"
    print(
        f"  run id     {run_id}\n"
        f"  rc         {job.rc} ({job.status})\n"
        f"  duration   {_duration(duration)}\n"
        f"  bundle     {rel} ({manifest.count(chr(10))} files in MANIFEST.sha256)\n"
        f"  scan       {report['verdict']}: {report['bundle_files']} bundle files and "
        f"{report['host_log_files']} host log files ({hosts}) for {report['secrets']} secrets"
        f" and {len(report['shapes'])} shapes\n"
        f"  sealed     {'yes' if sealed else 'NO: the bundle does not match its manifest'}\n"
        f"  verify     make verify-evidence RUN={rel}",
        flush=True,
    )
    return code


# --- status ------------------------------------------------------------------------


def parse_time(value: str) -> datetime | None:
    """A systemctl timestamp: @<epoch> (--timestamp=unix) or 'Thu 2026-12-04 10:00:00 UTC'."""
    value = value.strip()
    if not value or value in {"n/a", "0"}:
        return None
    if value.startswith("@") and value[1:].isdigit():
        seconds = int(value[1:])
        return datetime.fromtimestamp(seconds, UTC) if seconds > 0 else None
    with contextlib.suppress(ValueError):
        return datetime.strptime(value, "%a %Y-%m-%d %H:%M:%S %Z").replace(tzinfo=UTC)
    return None


def parse_units(stdout: str) -> list[dict[str, Any]]:
    """`systemctl show` blocks (one per unit, blank-line separated) as unit records."""
    units = []
    for block in re.split(r"\n\s*\n", stdout.strip()):
        props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if not props.get("Id"):
            continue
        since = parse_time(props.get("StateChangeTimestamp", ""))
        units.append(
            {
                "unit": props["Id"],
                "load": props.get("LoadState", ""),
                "active": props.get("ActiveState", ""),
                "sub": props.get("SubState", ""),
                "since": iso(since),
                "active_since": iso(parse_time(props.get("ActiveEnterTimestamp", ""))),
                "next_elapse": iso(parse_time(props.get("NextElapseUSecRealtime", ""))),
            }
        )
    return units


def parse_iso(value: Any) -> datetime | None:
    if not value:
        return None
    with contextlib.suppress(ValueError, TypeError):
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return None


def plan_hard_stop(value: Any) -> tuple[datetime | None, str | None]:
    """The GPU plan's hard stop as status.yml hands it over, read with the one format every
    reader uses: (the moment, None); (None, None) when empty; (None, the refusal naming
    llmhost_gpu_plan.hard_stop_time) for any other value."""
    try:
        return hard_stop_lib.parse(value, PLAN_STOP_VAR), None
    except hard_stop_lib.HardStopError as error:
        return None, str(error)


def run_start(run_id: str) -> datetime | None:
    match = RUN_ID_TIME.match(run_id)
    if not match:
        return None
    return datetime.strptime(match.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def last_run(root: Path, name: str) -> dict[str, Any] | None:
    """The newest bundle of the inventory (by modification time, then name)."""
    folder = root / "evidence" / name
    bundles = [p for p in folder.iterdir() if p.is_dir()] if folder.is_dir() else []
    if not bundles:
        return None
    newest = max(bundles, key=lambda p: (p.stat().st_mtime, p.name))

    def read(file: str) -> str | None:
        with contextlib.suppress(OSError):
            return (newest / file).read_text(encoding="utf-8").strip()
        return None

    rc = read("rc")
    return {
        "run_id": newest.name,
        "bundle": _relative(newest, root),
        "started": iso(run_start(newest.name)),
        "status": read("status"),
        "rc": int(rc) if rc and rc.lstrip("-").isdigit() else None,
        "sealed": (newest / bundle_lib.MANIFEST_NAME).is_file(),
    }


def host_status(raw: dict[str, Any], now: datetime, last: dict[str, Any] | None) -> dict[str, Any]:
    """One host's status from what playbooks/status.yml handed over."""
    units_raw = raw.get("units") or {}
    units = parse_units(str(units_raw.get("stdout", "")))
    vllm = raw.get("vllm") or {}
    by_name = {u["unit"]: u for u in units}
    vllm_unit = by_name.get(str(vllm.get("unit") or "vllm.service"))
    try:
        budget = float(raw.get("hourly_budget") or 0)
    except (TypeError, ValueError):
        budget = 0.0
    since, basis = None, None
    if vllm_unit and vllm_unit["active"] == "active" and vllm_unit["active_since"]:
        since, basis = parse_iso(vllm_unit["active_since"]), "vllm active since"
    elif last and last.get("started"):
        since, basis = parse_iso(last["started"]), "last run started"
    hours = max(0.0, (now - since).total_seconds() / 3600) if since else None
    plan_stop, plan_error = plan_hard_stop(raw.get("hard_stop_time"))
    timer = by_name.get("llmhost-hard-stop.timer") or {}
    timer_stop = parse_iso(timer.get("next_elapse"))
    stop, source = (plan_stop, "gpu plan") if plan_stop else (timer_stop, "hard-stop timer")
    return {
        "units": units,
        "units_error": None
        if units_raw.get("rc") in (0, "0")
        else (str(units_raw.get("stderr") or "systemctl failed").strip() or "systemctl failed"),
        "vllm": {
            "release": vllm.get("current") or vllm.get("release") or None,
            "previous": vllm.get("previous") or None,
            "package": vllm.get("package") or None,
            "version": vllm.get("version") or None,
            "model": vllm.get("model") or None,
            "revision": vllm.get("revision") or None,
            "model_path": vllm.get("model_path") or None,
        },
        "tenants": sorted(raw.get("tenants") or []),
        "cost": {
            "hourly_budget": budget,
            "since": iso(since),
            "basis": basis,
            "hours": None if hours is None else round(hours, 2),
            "so_far": None if hours is None else round(hours * budget, 2),
        },
        "hard_stop": {
            "time": iso(stop),
            "source": source if stop else None,
            "seconds_left": None if stop is None else int((stop - now).total_seconds()),
            "plan_error": plan_error,
            "timer": {"active": timer.get("active"), "next_elapse": timer.get("next_elapse")}
            if timer
            else None,
        },
        "error": None,
    }


def _host_errors(job: Job) -> dict[str, str]:
    errors: dict[str, str] = {}
    for event in job.events:
        kind = event.get("event")
        if kind in {"runner_on_unreachable", "runner_on_failed"}:
            data = event.get("event_data") or {}
            if kind == "runner_on_failed" and data.get("ignore_errors"):
                continue
            msg = str((data.get("res") or {}).get("msg") or kind).strip()
            errors.setdefault(str(data.get("host")), msg.splitlines()[0][:300] if msg else kind)
    return errors


def _ago(seconds: float) -> str:
    seconds = abs(int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {minutes}m" if hours else f"{minutes}m"


def render_status(report: dict[str, Any]) -> str:
    """The human table of `status`."""
    now = parse_iso(report["checked_at"]) or utc_now()
    out = [f"inventory {report['inventory']} ({report['inventory_path']}), {report['checked_at']}"]
    last = report.get("last_run")
    if last:
        state = f"{last['status']}, rc {last['rc']}" if last["status"] else "no runner status"
        sealed = "sealed" if last["sealed"] else "NOT sealed"
        out.append(f"last run   {last['run_id']}  {last['bundle']}  ({state}, {sealed})")
    else:
        out.append("last run   none (no bundle under evidence/)")
    for host, info in sorted(report["hosts"].items()):
        out.append("")
        out.append(host)
        if info.get("error"):
            out.append(f"  ERROR: {info['error']}")
            continue
        if info["units_error"]:
            out.append(f"  units: {info['units_error']}")
        out.append(f"  {'unit':<36} {'state':<22} since")
        for unit in info["units"]:
            state = (
                "not installed"
                if unit["load"] == "not-found"
                else f"{unit['active']} ({unit['sub']})"
            )
            when = ""
            if unit["since"] and unit["load"] != "not-found":
                moment = parse_iso(unit["since"])
                when = (
                    f"{unit['since']} ({_ago((now - moment).total_seconds())} ago)"
                    if moment
                    else ""
                )
            if unit["next_elapse"]:
                when += f"  next {unit['next_elapse']}"
            out.append(f"  {unit['unit']:<36} {state:<22} {when}".rstrip())
        vllm = info["vllm"]
        release = vllm["release"] or "none"
        out.append(f"  vLLM release   {release} (previous: {vllm['previous'] or 'none'})")
        model = vllm["model"] or "none"
        revision = f" at revision {vllm['revision']}" if vllm["revision"] else ""
        out.append(f"  model          {model}{revision}")
        out.append(f"  tenants        {', '.join(info['tenants']) or 'none'}")
        cost = info["cost"]
        if cost["hours"] is None:
            out.append("  cost so far    unknown (vLLM not active and no run recorded)")
        else:
            out.append(
                f"  cost so far    {cost['so_far']:.2f} = {cost['hours']:.2f} h ({cost['basis']} "
                f"{cost['since']}) x {cost['hourly_budget']:.2f}/h"
            )
        stop = info["hard_stop"]
        if stop.get("plan_error"):
            out.append(f"  plan refused   {stop['plan_error']}")
        if stop["time"] is None:
            plan = "the plan's time refused" if stop.get("plan_error") else "no hard_stop_time"
            out.append(f"  hard stop      none ({plan} in the GPU plan, no timer)")
        else:
            left = stop["seconds_left"]
            when = f"in {_ago(left)}" if left >= 0 else f"{_ago(left)} ago"
            out.append(f"  hard stop      {stop['time']} ({when}; {stop['source']})")
    return "\n".join(out)


def run_status(opts: Options) -> int:
    """Read-only status of the inventory's serving hosts: a table, or JSON with --json."""
    root = repo_root()
    name = inventory_name(opts.inventory)
    vault = vault_password_file(root, name)
    check_vault_password(opts.action, root, opts.inventory, vault)
    now = utc_now()
    ident = f"status-{now.strftime('%Y%m%dT%H%M%SZ')}-{os.getpid()}"
    private = root / ".cache" / "runner" / ident
    private.mkdir(parents=True, mode=0o700)
    env = {
        "LLMHOST_ROOT": str(root),
        # Not a run: no run ledger (an empty LLMHOST_EVIDENCE_DIR is a 'path' option,
        # which Ansible resolves to the working folder, where a ledger then appeared).
        "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks",
        "ANSIBLE_CONFIG": str(root / "ansible.cfg"),
        "ANSIBLE_HOST_KEY_CHECKING": os.environ.get("ANSIBLE_HOST_KEY_CHECKING", "True"),
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    args = ["-i", str(opts.inventory)]
    args += ["--limit", opts.limit] if opts.limit else []
    args += ["--check"] if opts.check else []
    args += ["--vault-password-file", str(vault)] if vault else []
    try:
        job = run_runner(
            private,
            private / "artifacts",
            ident,
            [root / "playbooks" / "status.yml"],
            args,
            env,
            quiet=True,
        )
        stdout = (private / "artifacts" / ident / "stdout").read_text(encoding="utf-8")
    finally:
        shutil.rmtree(private, ignore_errors=True)
    last = last_run(root, name)
    raw_hosts = (job.stats.get("artifact_data") or {}).get("llmhost_status") or {}
    hosts = {host: host_status(raw, now, last) for host, raw in raw_hosts.items()}
    for host, error in _host_errors(job).items():
        hosts.setdefault(host, {"error": error})
        hosts[host]["error"] = hosts[host].get("error") or error
    report = {
        "schema": STATUS_SCHEMA,
        "inventory": name,
        "inventory_path": str(opts.inventory),
        "checked_at": iso(now),
        "rc": job.rc,
        "last_run": last,
        "hosts": hosts,
    }
    if opts.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        print(render_status(report))
        if job.rc != 0 and not hosts:
            print(stdout[-3000:], file=sys.stderr)
    return job.rc


# --- command line ------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="llmhost.py",
        description="One entry point for any inventory: one run = one run id = one bundle.",
    )
    parser.add_argument("action", choices=[*ACTIONS, STATUS])
    parser.add_argument("-i", "--inventory", required=True, type=Path)
    parser.add_argument("-l", "--limit")
    parser.add_argument("-t", "--tags")
    parser.add_argument("--skip-tags")
    parser.add_argument("-C", "--check", action="store_true")
    parser.add_argument("-D", "--diff", action="store_true")
    parser.add_argument("-e", "--extra-vars", action="append", default=[])
    parser.add_argument("--json", action="store_true", help="status only: print JSON")
    args = parser.parse_args(argv)
    if args.json and args.action != STATUS:
        parser.error("--json is for status only")
    if not args.inventory.exists():
        parser.error(f"inventory {args.inventory} not found")
    return Options(
        action=args.action,
        inventory=args.inventory,
        limit=args.limit,
        tags=args.tags,
        skip_tags=args.skip_tags,
        check=args.check,
        diff=args.diff,
        extra_vars=args.extra_vars,
        json=args.json,
    )


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    try:
        return run_status(opts) if opts.action == STATUS else run_action(opts)
    except Refused as error:
        print(f"[llmhost] refused: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
