"""The secrets this repository publishes, known by their sha256 digests only.

The example inventory (inventories/rented-gpu.example) ships a vault whose password is
committed: its tenant keys, vLLM API key and hub token, and the password itself, are
public. scripts/published_secrets.py writes their digests (never the values) to
roles/preflight/files/published_secrets.json; preflight refuses an inventory whose
secrets match one (llmhost.core.published_secrets_errors) and scripts/llmhost.py a vault
password file that holds the published password. Both compare digests here.

Standard library only: scripts/ load this file by its path.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path

SCHEMA = "llmhost.published_secrets/v1"


def digest(value: str) -> str:
    """The sha256 of a secret's UTF-8 bytes, in hex."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def load(path: Path) -> dict[str, str]:
    """{digest: where the repository publishes it} from the committed list."""
    return index(json.loads(path.read_text(encoding="utf-8")))


def index(document: object) -> dict[str, str]:
    """{digest: source} of the committed list's content; ValueError when it is malformed."""
    if not isinstance(document, Mapping) or document.get("schema") != SCHEMA:
        raise ValueError(f"not a {SCHEMA} document")
    entries = document.get("secrets")
    if not isinstance(entries, list):
        raise ValueError("its secrets must be a list")
    out: dict[str, str] = {}
    for entry in entries:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("sha256"), str):
            raise ValueError(f"an entry without a sha256: {entry!r}")
        out[entry["sha256"]] = str(entry.get("source") or "this repository")
    return out


def leaves(value: object, path: str) -> Iterator[tuple[str, str]]:
    """(path, text) for every string under value: gateway_tenants[0].key, ..."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from leaves(item, f"{path}.{key}")
    elif isinstance(value, (list, tuple)):
        for position, item in enumerate(value):
            yield from leaves(item, f"{path}[{position}]")


def matches(values: Mapping[str, object], published: Mapping[str, str]) -> dict[str, list[str]]:
    """{source of a published secret: the variables (paths) holding it}, in source order.
    Empty strings are never secrets."""
    found: dict[str, list[str]] = {}
    for name, value in values.items():
        for path, text in leaves(value, str(name)):
            source = published.get(digest(text)) if text else None
            if source is not None and path not in found.setdefault(source, []):
                found[source].append(path)
    return dict(sorted(found.items()))
