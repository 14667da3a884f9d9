#!/usr/bin/python
"""llmhost.core.apt_signing_key: an APT repository key, trusted only by its fingerprint.

The key is read by module_utils/openpgp.py, not by community.crypto.gpg_fingerprint: that
plugin runs on the control node with its gpg binary (the key here is downloaded on the
host), returns only the first primary key's fingerprint of a block (a second key would pass
and be trusted by apt), and does not write the binary keyring apt reads. The full reasons:
roles/nvidia_driver/README.md, "Signing keys".
"""
# Ansible layout: the documentation blocks come before the imports.
# ruff: noqa: E402

from __future__ import annotations

DOCUMENTATION = r"""
---
module: apt_signing_key
short_description: Install an APT repository signing key only when its fingerprint is the pinned one
version_added: 0.1.0
description:
  - Writes one OpenPGP public key, in the binary form apt reads, to O(dest) (for example
    C(/etc/apt/keyrings/cuda-3bf863cc.gpg)), to be named by a sources file's C(Signed-By).
  - The key comes from O(url) (downloaded on the host) or O(content) (an armored or
    binary key the playbook brings, for air-gapped hosts and mirrors). Either way it is
    written only when it holds exactly one primary key and that key's fingerprint equals
    O(fingerprint); anything else fails with both fingerprints and nothing is written.
  - Idempotent and offline on re-runs. With O(url), a key already at O(dest) with the pinned
    fingerprint is kept without downloading. With O(content), O(dest) is rewritten only
    when its bytes differ.
  - Fingerprints are computed by a small OpenPGP reader in
    C(llmhost.core.plugins.module_utils.openpgp) (v4 keys SHA-1, v5/v6 SHA-256); no gpg
    is needed on the host. Signatures are verified later by apt itself.
author:
  - llmhost project
options:
  dest:
    description: Keyring file to write (binary OpenPGP; use a C(.gpg) name).
    type: path
    required: true
  fingerprint:
    description:
      - The pinned fingerprint, 40 hex digits for a v4 key (spaces allowed). A short key id
        is refused.
    type: str
    required: true
  url:
    description: Where to download the key (https, or file:// for a mirror on local disk).
      Mutually exclusive with O(content).
    type: str
  content:
    description: The key itself (ASCII-armored text). Mutually exclusive with O(url).
    type: str
  refresh:
    description:
      - With O(url), download again even when O(dest) already holds the pinned key (for a
        key whose expiry NVIDIA extended; the fingerprint stays the same).
    type: bool
    default: false
  timeout:
    description: Seconds the download may take.
    type: int
    default: 30
  mode:
    description: File mode of O(dest).
    type: str
    default: "0644"
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
notes:
  - In check mode the key is still downloaded and checked (read-only), but not written.
"""

EXAMPLES = r"""
- name: Trust NVIDIA's CUDA repository key (pinned fingerprint)
  llmhost.core.apt_signing_key:
    url: https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2404/x86_64/3bf863cc.pub
    fingerprint: EB693B3035CD5710E231E123A4B469963BF863CC
    dest: /etc/apt/keyrings/cuda-3bf863cc.gpg

- name: The same key brought from the control node (air-gapped host or mirror)
  llmhost.core.apt_signing_key:
    content: "{{ lookup('ansible.builtin.file', 'keys/3bf863cc.pub') }}"
    fingerprint: EB69 3B30 35CD 5710 E231  E123 A4B4 6996 3BF8 63CC
    dest: /etc/apt/keyrings/cuda-3bf863cc.gpg
"""

RETURN = r"""
fingerprint:
  description: The fingerprint of the key now at O(dest) (the pinned one).
  returned: success
  type: str
  sample: EB693B3035CD5710E231E123A4B469963BF863CC
user_ids:
  description: The key's user ids.
  returned: success
  type: list
  elements: str
  sample: ["cudatools <cudatools@nvidia.com>"]
subkeys:
  description: Fingerprints of the key's subkeys.
  returned: success
  type: list
  elements: str
  sample: []
created:
  description: The key's creation time (UTC).
  returned: success
  type: str
  sample: "2022-04-14T20:02:37Z"
source:
  description: Where the key came from in this run (existing, url or content).
  returned: success
  type: str
  sample: url
dest:
  description: The keyring file.
  returned: success
  type: str
  sample: /etc/apt/keyrings/cuda-3bf863cc.gpg
"""

import os
import tempfile
from pathlib import Path
from typing import Any

from ansible.module_utils.urls import fetch_url
from ansible_collections.llmhost.core.plugins.module_utils.module import (
    ModuleFailure,
    Request,
    run_module,
)
from ansible_collections.llmhost.core.plugins.module_utils.openpgp import (
    binary_keyring,
    check_single_key,
    normalize_fingerprint,
)


def read_existing(dest: Path, fingerprint: str) -> tuple[bytes | None, dict[str, Any] | None]:
    """(bytes, key) of dest when it holds exactly the pinned key; (bytes, None) otherwise."""
    try:
        data = dest.read_bytes()
    except OSError:
        return None, None
    try:
        return data, check_single_key(data, fingerprint)
    except ValueError:
        return data, None


def download(module: Any, url: str, timeout: int) -> bytes:
    response, info = fetch_url(module, url, timeout=timeout)
    status = info.get("status")
    # file:// (a mirror on local disk) answers without an HTTP status.
    ok = status == 200 or (status is None and url.startswith("file:"))
    if response is None or not ok:
        raise ModuleFailure(
            f"could not download the signing key from {url}: HTTP {status}, "
            f"{info.get('msg', 'no message')}. Fix: check the host's network or proxy, or "
            "bring the key with the content option (air-gapped hosts, mirrors)."
        )
    return response.read()


def write_atomically(module: Any, dest: Path, data: bytes, mode: str) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=str(dest.parent), prefix=f".{dest.name}.")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    Path(tmp).chmod(int(mode, 8))
    module.atomic_move(tmp, str(dest))


def handle(request: Request) -> dict[str, Any]:
    p = request.params
    module = request.module  # fetch_url, atomic_move and set_mode_if_different need it
    dest = Path(p["dest"])
    try:
        fingerprint = normalize_fingerprint(p["fingerprint"])
    except ValueError as exc:
        raise ModuleFailure(f"fingerprint: {exc}") from exc
    existing, existing_key = read_existing(dest, fingerprint)

    if p["url"] and existing_key is not None and not p["refresh"]:
        return {"changed": False, "source": "existing", "dest": str(dest), **existing_key}

    origin = p["url"] or "content"
    raw = (
        download(module, p["url"], p["timeout"])
        if p["url"]
        else p["content"].encode("utf-8", "surrogateescape")
    )
    try:
        key = check_single_key(raw, fingerprint)
        data = binary_keyring(raw)
    except ValueError as exc:
        raise ModuleFailure(f"signing key from {origin}: {exc}") from exc

    changed = existing != data
    if changed and not request.check_mode:
        write_atomically(module, dest, data, p["mode"])
    elif not request.check_mode:
        # Same bytes: only the mode may need fixing.
        changed = module.set_mode_if_different(str(dest), p["mode"], False)
    return {
        "changed": changed,
        "source": "url" if p["url"] else "content",
        "dest": str(dest),
        **key,
    }


def main() -> None:
    run_module(
        {
            "dest": {"type": "path", "required": True},
            "fingerprint": {"type": "str", "required": True},
            "url": {"type": "str"},
            "content": {"type": "str"},
            "refresh": {"type": "bool", "default": False},
            "timeout": {"type": "int", "default": 30},
            "mode": {"type": "str", "default": "0644"},
        },
        handle,
        mutually_exclusive=[("url", "content")],
        required_one_of=[("url", "content")],
    )


if __name__ == "__main__":
    main()
