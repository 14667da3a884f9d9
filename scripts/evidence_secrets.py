#!/usr/bin/env python3
"""Scan an evidence bundle (and any logs) for the run's secrets.

    python3 scripts/evidence_secrets.py evidence/lab/<run id> [--also /path/to/log ...]

The secrets: every file under --secrets-dir (default .cache/secrets, the lab's 0600
files), each --secret-file, each vault password file (--vault-password-file, or
ANSIBLE_VAULT_PASSWORD_FILE) and the string values of each --vault-file it opens, and
the environment variables named by --env (default HF_TOKEN, HUGGING_FACE_HUB_TOKEN).
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
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, quote_plus

ROOT = Path(__file__).resolve().parents[1]
MIN_LENGTH = 8
DEFAULT_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
SHAPES = {
    "private key": re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "Hugging Face token": re.compile(rb"(?<![A-Za-z0-9_])hf_[A-Za-z0-9]{30,}(?![A-Za-z0-9])"),
}
_URLSAFE = bytes.maketrans(b"+/", b"-_")


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


def secrets_from_vault(vault_files: list[Path], password_files: list[Path]) -> list[Secret]:
    """The string values of vault-encrypted YAML files (needs ansible-core)."""
    if not vault_files:
        return []
    import yaml
    from ansible.parsing.vault import VaultLib, VaultSecret

    passwords = [p.read_bytes().strip() for p in password_files]
    vault = VaultLib([("default", VaultSecret(pw)) for pw in passwords])
    out: list[Secret] = []
    for path in vault_files:
        data = yaml.safe_load(vault.decrypt(path.read_bytes()))
        out += [Secret(f"vaulted value in {path.name}", v) for v in _leaves(data)]
    return out


def usable(secrets: Iterable[Secret]) -> tuple[list[Secret], list[Secret]]:
    """(secrets to scan for, those too short to scan without false positives)."""
    unique = {s.value: s for s in secrets if s.value}
    values = sorted(unique.values(), key=lambda s: s.label)
    return [s for s in values if len(s.value) >= MIN_LENGTH], [
        s for s in values if len(s.value) < MIN_LENGTH
    ]


def _files(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink())
        elif path.is_file():
            yield path


def scan(paths: Iterable[Path], secrets: list[Secret]) -> list[Finding]:
    """Every finding in the files (content and names) under paths."""
    needles = [(needle, form, s.label) for s in secrets for needle, form in forms(s.value).items()]
    findings: list[Finding] = []
    for file in _files(paths):
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
    return parser.parse_args(argv)


def collect(args: argparse.Namespace) -> list[Secret]:
    """Every secret the arguments name."""
    password_files = list(args.vault_password_file)
    if os.environ.get("ANSIBLE_VAULT_PASSWORD_FILE"):
        password_files.append(Path(os.environ["ANSIBLE_VAULT_PASSWORD_FILE"]))
    # An executable password file is a client script: its text is not the password.
    password_files = [p for p in password_files if not os.access(p, os.X_OK)]
    secrets = secrets_from_files(
        [args.secrets_dir] if args.secrets_dir.is_dir() else [], "secret file"
    )
    secrets += secrets_from_files(args.secret_file, "secret file")
    secrets += secrets_from_files(password_files, "vault password file")
    secrets += secrets_from_vault(args.vault_file, password_files)
    for name in args.env if args.env is not None else DEFAULT_ENV:
        secrets.append(Secret(f"${name}", os.environ.get(name, "")))
    return secrets


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    targets = [*args.paths, *args.also]
    absent = [p for p in targets if not p.exists()]
    if absent:
        print(f"error: not found: {', '.join(map(str, absent))}", file=sys.stderr)
        return 2
    secrets, short = usable(collect(args))
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
    checked = sum(1 for _ in _files(targets))
    verdict = f"{len(findings)} findings" if findings else "clean"
    print(f"{verdict}: {checked} files scanned for {len(secrets)} secrets")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
