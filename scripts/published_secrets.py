#!/usr/bin/env python3
"""Write the sha256 digests of every secret this repository publishes.

    python scripts/published_secrets.py           # rewrite the committed list
    python scripts/published_secrets.py --check   # exit 1 when it is not current

The list, roles/preflight/files/published_secrets.json, holds digests and where each
secret is published, never a value. Preflight refuses an inventory whose secrets match
one (unless it is the example or the lab and opts in with
llmhost_allow_published_secrets), and scripts/llmhost.py a vault password file that holds
a published password. Run this after changing the example's vault or its password;
tests/test_published_secrets.py fails until the list is current.

What is published, for each inventory of PUBLISHED (the example) with its committed vault
password: the password itself; every string of its vault-encrypted files (decrypted with
that password); every inline-vaulted value of its plain YAML files; and every literal
string under a secret-named variable or field of them (names as scripts/evidence_secrets.py
reads them: key, token, password, secret, credential; not Jinja expressions).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = Path("roles/preflight/files/published_secrets.json")
# (inventory folder, its committed vault password file), relative to the repository.
PUBLISHED = [
    (
        Path("inventories/rented-gpu.example"),
        Path("inventories/rented-gpu.example/vault-pass.example"),
    ),
]
ABOUT = (
    "sha256 of every secret this repository publishes (never the values), written by "
    "scripts/published_secrets.py; preflight and scripts/llmhost.py refuse them outside "
    "the example and the lab"
)


def _load(name: str, path: Path) -> ModuleType:
    """A module of this repository by its file path (no sys.path changes)."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


published_lib = _load(
    "llmhost_published_secrets",
    ROOT
    / "collections/ansible_collections/llmhost/core/plugins/plugin_utils"
    / "published_secrets.py",
)
secrets_lib = _load("llmhost_evidence_secrets", ROOT / "scripts" / "evidence_secrets.py")


class Vaulted(str):
    """The ciphertext of an inline-vaulted value (YAML tag !vault)."""


class _Loader(yaml.SafeLoader):
    """safe_load plus Ansible's !vault tag."""


_Loader.add_constructor("!vault", lambda loader, node: Vaulted(loader.construct_scalar(node)))


def _decrypt(ciphertext: bytes, password: str) -> str:
    from ansible.parsing.vault import VaultLib, VaultSecret

    vault = VaultLib([("default", VaultSecret(password.encode("utf-8")))])
    return vault.decrypt(ciphertext).decode("utf-8")


def _plain_secrets(value: object, path: str, secret: bool, password: str) -> Iterator[Any]:
    """(path, value) of inline-vaulted values and literal strings under secret names."""
    if isinstance(value, Vaulted):
        yield path, _decrypt(str(value).encode("utf-8"), password)
    elif isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            yield from _plain_secrets(item, where, secret or secrets_lib.secret_name(key), password)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _plain_secrets(item, f"{path}[{index}]", secret, password)
    elif secret and isinstance(value, str) and "{{" not in value and "{%" not in value:
        yield path, value


def _leaves(data: object) -> Iterator[tuple[str, str]]:
    """Every string of a decrypted vault file, by its variable's path."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield from published_lib.leaves(value, str(key))
    else:
        yield from published_lib.leaves(data, "(the file)")


def published(root: Path) -> dict[str, str]:
    """{digest: source} of every secret published under root."""
    found: dict[str, str] = {}

    def add(source: str, value: str) -> None:
        if value:
            found.setdefault(published_lib.digest(value), source)

    for folder, password_file in PUBLISHED:
        # As ansible reads a password file: its text, stripped.
        password = (root / password_file).read_text(encoding="utf-8").strip()
        add(f"{password_file.as_posix()}: the vault password", password)
        vaulted = set(secrets_lib.vaulted_files(root / folder))
        for path in sorted((root / folder).rglob("*.y*ml")):
            rel = path.relative_to(root).as_posix()
            if path in vaulted:
                data = yaml.safe_load(_decrypt(path.read_bytes(), password))
                for where, text in _leaves(data):
                    add(f"{rel}: {where}", text)
            else:
                data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506 - a SafeLoader
                for where, text in _plain_secrets(data, "", False, password):
                    add(f"{rel}: {where}", text)
    return found


def document(root: Path) -> str:
    """The committed list's text for the repository at root."""
    entries = sorted(
        ({"source": source, "sha256": digest} for digest, source in published(root).items()),
        key=lambda entry: (entry["source"], entry["sha256"]),
    )
    body = {"schema": published_lib.SCHEMA, "about": ABOUT, "secrets": entries}
    return json.dumps(body, indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the list is stale")
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository (default: this)")
    args = parser.parse_args(argv)
    target = args.root / OUTPUT
    text = document(args.root)
    count = len(json.loads(text)["secrets"])
    current = target.read_text(encoding="utf-8") if target.is_file() else None
    if args.check:
        if current != text:
            print(f"{OUTPUT} is not current: run scripts/published_secrets.py", file=sys.stderr)
            return 1
        print(f"{OUTPUT} is current ({count} published secrets)")
        return 0
    if current != text:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    print(f"{OUTPUT}: {count} published secrets")
    return 0


if __name__ == "__main__":
    sys.exit(main())
