#!/usr/bin/env python3
"""Scan an evidence bundle (and any logs) for the run's secrets.

    python3 scripts/evidence_secrets.py evidence/lab/<run id> [--also /path/to/log ...]
        [--inventory inventories/lab --vault-password-file .cache/vault/lab.pass]

The secrets: every file under --secrets-dir (default .cache/secrets, the lab's 0600
files), each --secret-file, each vault password file (--vault-password-file, or
ANSIBLE_VAULT_PASSWORD_FILE) and the string values of each --vault-file it opens, the
environment variables named by --env (default HF_TOKEN, HUGGING_FACE_HUB_TOKEN), and for
each --inventory (read with `ansible-inventory --list`): every string value under a
variable or field whose name contains key, token, password, passwd, secret or
credential (tenants' `key` fields included; names ending in _file, _path or _dir name
where a secret is kept and are skipped, as are Jinja expressions), every inline-vaulted
value, and every value of the inventory's vault-encrypted files.
Each is looked for in every file's bytes and name, as is, URL-encoded, JSON-escaped, in
hex and in base64 (standard and URL-safe, at every alignment, so a secret inside a
larger base64 blob is found too); private keys and Hugging Face tokens are found by
their shape. Prints where each one was found (never the secret), exits 1 on a finding,
0 when clean, 2 when there is nothing to scan or no secret to look for.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import mmap
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

ROOT = Path(__file__).resolve().parents[1]
MIN_LENGTH = 8
DEFAULT_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
SHAPES = {
    "private key": re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "Hugging Face token": re.compile(rb"(?<![A-Za-z0-9_])hf_[A-Za-z0-9]{30,}(?![A-Za-z0-9])"),
}
_URLSAFE = bytes.maketrans(b"+/", b"-_")
_SECRET_NAME = re.compile(r"key|token|passw(or)?d|secret|credential", re.IGNORECASE)
_PATH_NAME = re.compile(r"_(file|files|path|paths|dir)$", re.IGNORECASE)
_VAULT_HEADER = b"$ANSIBLE_VAULT;"
_INLINE_VAULT = "__ansible_vault"


@dataclass(frozen=True)
class Secret:
    """A secret value and where it came from (the label is printed, the value never)."""

    label: str
    value: str


@dataclass(frozen=True)
class Finding:
    """A secret (or a secret's shape) found in a file."""

    path: str
    label: str
    form: str


def base64_fragments(raw: bytes) -> set[bytes]:
    """The base64 characters that encode raw whatever bytes come before it: for each of
    the three alignments, the characters fully determined by raw (standard, URL-safe)."""
    out: set[bytes] = set()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw)
        start = (8 * offset + 5) // 6
        end = (8 * (offset + len(raw))) // 6
        fragment = encoded[start:end]
        out |= {fragment, fragment.translate(_URLSAFE)}
    return out


def forms(value: str) -> dict[bytes, str]:
    """{needle: form name} for one secret."""
    raw = value.encode("utf-8")
    needles = {raw: "as is"}
    for name, text in (
        ("url-encoded", quote(value, safe="")),
        ("url-encoded (plus)", quote_plus(value)),
        ("json-escaped", json.dumps(value)[1:-1]),
    ):
        needles.setdefault(text.encode("utf-8"), name)
    needles.setdefault(raw.hex().encode(), "hex")
    needles.setdefault(raw.hex().upper().encode(), "hex")
    for fragment in base64_fragments(raw):
        needles.setdefault(fragment, "base64")
    return needles


def values_in_text(text: str) -> list[str]:
    """Secret values in a secret file: the whole content, each line, each KEY=VALUE's value,
    and the password of an Ansible password-lookup file ('<password> salt=...')."""
    text = text.strip()
    found = [text]
    for line in text.splitlines():
        line = line.strip()
        found.append(line)
        if " salt=" in line:
            found.append(line.split(" salt=", 1)[0])
        if "=" in line and not line.startswith("#"):
            found.append(line.split("=", 1)[1].strip().strip("'\""))
    return [v for v in dict.fromkeys(found) if v]


def secrets_from_files(paths: Iterable[Path], label: str) -> list[Secret]:
    """Every value of every readable regular file (folders are walked)."""
    out: list[Secret] = []
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            try:
                text = file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            out += [Secret(f"{label} {file.name}", v) for v in values_in_text(text)]
    return out


def _leaves(value: object) -> Iterator[str]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    elif isinstance(value, str | int) and not isinstance(value, bool):
        yield str(value)


def _vault(password_files: list[Path]) -> Any:
    """An ansible VaultLib that opens what these password files open, as ansible does
    (an executable file is a client script that prints the password; needs ansible-core)."""
    from ansible.parsing.dataloader import DataLoader
    from ansible.parsing.vault import VaultLib, get_file_vault_secret

    loader = DataLoader()
    secrets = []
    for path in password_files:
        secret = get_file_vault_secret(filename=str(path), loader=loader)
        secret.load()
        secrets.append(("default", secret))
    return VaultLib(secrets)


def secrets_from_vault(vault_files: list[Path], password_files: list[Path]) -> list[Secret]:
    """The string values of vault-encrypted YAML files (needs ansible-core)."""
    if not vault_files:
        return []
    import yaml

    vault = _vault(password_files)
    out: list[Secret] = []
    for path in vault_files:
        data = yaml.safe_load(vault.decrypt(path.read_bytes()))
        out += [Secret(f"vaulted value in {path.name}", v) for v in _leaves(data)]
    return out


def secret_name(name: object) -> bool:
    """Whether a variable or field name names a secret (vllm_api_key, hf_token, key, ...);
    a name ending in _file, _path or _dir names where a secret is kept, not the secret."""
    text = str(name)
    return bool(_SECRET_NAME.search(text)) and not _PATH_NAME.search(text)


def vaulted_files(folder: Path) -> list[Path]:
    """The vault-encrypted files under an inventory folder (or the file itself)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else [folder]
    out = []
    for path in files:
        with contextlib.suppress(OSError), path.open("rb") as handle:
            if handle.read(len(_VAULT_HEADER)) == _VAULT_HEADER:
                out.append(path)
    return out


def secrets_from_inventory(
    data: object, password_files: list[Path], where: str = "inventory"
) -> list[Secret]:
    """Secrets in `ansible-inventory --list` output: every string under a secret-named
    key (recursively) and every inline-vaulted value, decrypted. Jinja expressions are
    not values (a password lookup's file is scanned as a secret file instead)."""
    out: list[Secret] = []
    vault: Any = None

    def visit(value: object, path: str, secret: bool) -> None:
        nonlocal vault
        if isinstance(value, dict) and set(value) == {_INLINE_VAULT}:
            vault = vault or _vault(password_files)
            plain = vault.decrypt(str(value[_INLINE_VAULT]).encode()).decode("utf-8")
            out.append(Secret(f"{where} {path} (vaulted)", plain))
        elif isinstance(value, dict):
            for key, item in value.items():
                visit(item, f"{path}.{key}" if path else str(key), secret or secret_name(key))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                visit(item, f"{path}[{index}]", secret)
        elif secret and isinstance(value, str) and "{{" not in value and "{%" not in value:
            out.append(Secret(f"{where} {path}", value))

    hostvars = data.get("_meta", {}).get("hostvars", {}) if isinstance(data, dict) else {}
    for host in sorted(hostvars):
        visit(hostvars[host], "", False)
    groups = data if isinstance(data, dict) else {}
    for group, body in sorted(groups.items()):
        if group != "_meta" and isinstance(body, dict) and "vars" in body:
            visit(body["vars"], f"group {group}", False)
    return out


def inventory_secrets(
    inventory: Path, password_files: list[Path], ansible_inventory: str | None = None
) -> list[Secret]:
    """The secrets of an inventory: its variables (`ansible-inventory --list`, run with
    the vault password files) and the values of its vault-encrypted files. Raises
    RuntimeError when the inventory cannot be read."""
    binary = ansible_inventory or venv_tool("ansible-inventory")
    command = [binary, "-i", str(inventory), "--list"]
    for path in password_files:
        command += ["--vault-password-file", str(path)]
    done = subprocess.run(  # noqa: S603 - fixed argument list, no shell
        command, capture_output=True, text=True, check=False, timeout=300
    )
    if done.returncode != 0:
        detail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"ansible-inventory -i {inventory} failed: {detail[0]}")
    from ansible.errors import AnsibleError

    folder = inventory if inventory.is_dir() else inventory.parent
    try:
        data = json.loads(done.stdout)
        secrets = secrets_from_inventory(data, password_files, f"inventory {inventory.name}:")
        return secrets + secrets_from_vault(vaulted_files(folder), password_files)
    except (AnsibleError, ValueError) as error:
        raise RuntimeError(f"cannot read the secrets of {inventory}: {error}") from error


def venv_tool(name: str) -> str:
    """A tool of this Python's venv, else the one on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() else (shutil.which(name) or name)


def usable(secrets: Iterable[Secret]) -> tuple[list[Secret], list[Secret]]:
    """(secrets to scan for, those too short to scan without false positives)."""
    unique = {s.value: s for s in secrets if s.value}
    values = sorted(unique.values(), key=lambda s: s.label)
    return [s for s in values if len(s.value) >= MIN_LENGTH], [
        s for s in values if len(s.value) < MIN_LENGTH
    ]


def iter_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Every regular file under paths (symlinks are not followed)."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink())
        elif path.is_file():
            yield path


def scan(paths: Iterable[Path], secrets: list[Secret]) -> list[Finding]:
    """Every finding in the files (content and names) under paths."""
    needles = [(needle, form, s.label) for s in secrets for needle, form in forms(s.value).items()]
    findings: list[Finding] = []
    for file in iter_files(paths):
        name = str(file).encode("utf-8")
        with _mapped(file) as data:
            for needle, form, label in needles:
                if data.find(needle) != -1:
                    findings.append(Finding(str(file), label, form))
                if needle in name:
                    findings.append(Finding(str(file), label, f"{form}, in the file name"))
            findings += [
                Finding(str(file), shape, "by its shape")
                for shape, rx in SHAPES.items()
                if rx.search(data)
            ]
    return findings


@contextlib.contextmanager
def _mapped(path: Path) -> Iterator[bytes | mmap.mmap]:
    """The file's bytes, memory-mapped (a multi-GB checkpoint is not read into memory)."""
    with path.open("rb") as handle:
        if path.stat().st_size == 0:
            yield b""
            return
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            yield data


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("paths", nargs="+", type=Path, help="bundles, folders or files to scan")
    parser.add_argument(
        "--also", action="append", type=Path, default=[], help="another path to scan (a log)"
    )
    parser.add_argument("--secrets-dir", type=Path, default=ROOT / ".cache" / "secrets")
    parser.add_argument("--secret-file", action="append", type=Path, default=[])
    parser.add_argument("--vault-password-file", action="append", type=Path, default=[])
    parser.add_argument("--vault-file", action="append", type=Path, default=[])
    parser.add_argument(
        "--env", action="append", default=None, help=f"default {', '.join(DEFAULT_ENV)}"
    )
    parser.add_argument(
        "--inventory",
        action="append",
        type=Path,
        default=[],
        help="an inventory whose secret variables and vaulted values are looked for",
    )
    return parser.parse_args(argv)


def collect(args: argparse.Namespace) -> list[Secret]:
    """Every secret the arguments name."""
    return gather(
        secrets_dir=args.secrets_dir,
        secret_files=args.secret_file,
        password_files=args.vault_password_file,
        vault_files=args.vault_file,
        env=args.env if args.env is not None else DEFAULT_ENV,
        inventories=args.inventory,
    )


def gather(
    secrets_dir: Path | None = None,
    secret_files: Iterable[Path] = (),
    password_files: Iterable[Path] = (),
    vault_files: Iterable[Path] = (),
    env: Iterable[str] = DEFAULT_ENV,
    inventories: Iterable[Path] = (),
) -> list[Secret]:
    """Every secret of these sources (see the module's help); ANSIBLE_VAULT_PASSWORD_FILE
    counts as a password file. An executable password file is a vault client script: its
    text is not the password, and it is not passed to the vault."""
    passwords = list(password_files)
    if os.environ.get("ANSIBLE_VAULT_PASSWORD_FILE"):
        passwords.append(Path(os.environ["ANSIBLE_VAULT_PASSWORD_FILE"]))
    readable = [p for p in passwords if not os.access(p, os.X_OK)]
    secrets = secrets_from_files(
        [secrets_dir] if secrets_dir and secrets_dir.is_dir() else [], "secret file"
    )
    secrets += secrets_from_files(secret_files, "secret file")
    secrets += secrets_from_files(readable, "vault password file")
    secrets += secrets_from_vault(list(vault_files), passwords)
    for inventory in inventories:
        secrets += inventory_secrets(inventory, passwords)
    for name in env:
        secrets.append(Secret(f"${name}", os.environ.get(name, "")))
    return secrets


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    targets = [*args.paths, *args.also]
    absent = [p for p in targets if not p.exists()]
    if absent:
        print(f"error: not found: {', '.join(map(str, absent))}", file=sys.stderr)
        return 2
    try:
        secrets, short = usable(collect(args))
    except (RuntimeError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for secret in short:
        print(
            f"warning: {secret.label} is shorter than {MIN_LENGTH} characters; not scanned",
            file=sys.stderr,
        )
    if not secrets:
        print("error: no secret to look for (see --help for the sources)", file=sys.stderr)
        return 2
    findings = scan(targets, secrets)
    for f in findings:
        print(f"LEAK: {f.path}: {f.label} ({f.form})")
    checked = sum(1 for _ in iter_files(targets))
    verdict = f"{len(findings)} findings" if findings else "clean"
    print(f"{verdict}: {checked} files scanned for {len(secrets)} secrets")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
