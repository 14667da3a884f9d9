"""Just enough OpenPGP (RFC 4880 / RFC 9580) to pin an APT signing key by fingerprint.

Standard library only: the apt_signing_key module ships this file to hosts running
Python 3.10 and newer (Ubuntu 22.04). It reads an ASCII-armored or binary public key
block, splits it into packets and computes the fingerprints of the primary keys
(v4: SHA-1, v5/v6: SHA-256) and their subkeys. It never verifies signatures: apt
(gpgv/sqv) does that with the keyring this produces; the fingerprint pin decides which
keyring apt gets.

Why not community.crypto's gpg_fingerprint filter/lookup (community.crypto 3.0.5 in the
pinned bundle): it runs on the control node and shells out to the gpg binary there, so it
cannot see a key the host downloads (the url option; the download and the check would be
two machines apart); it returns only the first primary key's fingerprint (the first
`fpr:` line of `gpg --import-options show-only`), so a block carrying a second primary key
passes, and apt would trust that one too; and it does not produce the dearmored keyring
apt's Signed-By reads. Neither tool checks expiry: apt refuses an expired key itself.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from datetime import datetime, timezone
from typing import Any

ARMOR_BEGIN = "-----BEGIN PGP PUBLIC KEY BLOCK-----"
ARMOR_END = "-----END PGP PUBLIC KEY BLOCK-----"
TAG_PUBLIC_KEY = 6
TAG_USER_ID = 13
TAG_PUBLIC_SUBKEY = 14
_CRC24_INIT = 0xB704CE
_CRC24_POLY = 0x1864CFB
_ARMOR_HEADER = re.compile(r"^[A-Za-z][A-Za-z0-9-]*: ")
_FINGERPRINT = re.compile(r"^(?:[0-9A-F]{40}|[0-9A-F]{64})$")
_KEY_PREFIX = {4: (b"\x99", 2, "sha1"), 5: (b"\x9a", 4, "sha256"), 6: (b"\x9b", 4, "sha256")}


def crc24(data: bytes) -> int:
    """The CRC-24 of an armor checksum line (RFC 4880 section 6.1)."""
    crc = _CRC24_INIT
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= _CRC24_POLY
    return crc & 0xFFFFFF


def normalize_fingerprint(value: str) -> str:
    """Upper-case hex without spaces or a 0x prefix; ValueError unless 40 or 64 hex digits."""
    text = re.sub(r"\s+", "", value or "").upper()
    text = text.removeprefix("0X")
    if not _FINGERPRINT.match(text):
        raise ValueError(
            f"a key fingerprint is 40 hex digits (v4) or 64 (v6), got {value!r}; "
            "a short key id is not enough to pin a key"
        )
    return text


def dearmor(text: str) -> bytes:
    """The binary packets of an ASCII-armored public key block; checks the CRC-24 line."""
    lines = text.replace("\r\n", "\n").split("\n")
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == ARMOR_BEGIN)
        end = next(i for i, line in enumerate(lines) if line.strip() == ARMOR_END and i > start)
    except StopIteration:
        raise ValueError("not an ASCII-armored PGP public key block") from None
    body = lines[start + 1 : end]
    # Armor headers (Version: ..., Comment: ...) end at the first blank line.
    blank = next((i for i, line in enumerate(body) if not line.strip()), None)
    if blank is not None and all(_ARMOR_HEADER.match(line) for line in body[:blank]):
        body = body[blank + 1 :]
    checksum = None
    data_lines = []
    for line in (stripped.strip() for stripped in body):
        if not line:
            continue
        if line.startswith("=") and len(line) == 5:
            checksum = line[1:]
            continue
        data_lines.append(line)
    try:
        data = base64.b64decode("".join(data_lines), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"the armored key is not valid base64: {exc}") from None
    if checksum is not None:
        want = int.from_bytes(base64.b64decode(checksum), "big")
        if crc24(data) != want:
            raise ValueError("the armored key's CRC-24 checksum does not match: damaged copy")
    return data


def _new_length(data: bytes, pos: int) -> tuple[int, int, bool]:
    """(length, header bytes used, partial) of a new-format packet length at pos."""
    first = data[pos]
    if first < 192:
        return first, 1, False
    if first < 224:
        return ((first - 192) << 8) + data[pos + 1] + 192, 2, False
    if first == 255:
        return int.from_bytes(data[pos + 1 : pos + 5], "big"), 5, False
    return 1 << (first & 0x1F), 1, True


def packets(data: bytes) -> list[tuple[int, bytes]]:
    """Split binary OpenPGP data into (tag, body) pairs; ValueError when malformed."""
    out: list[tuple[int, bytes]] = []
    pos = 0
    try:
        while pos < len(data):
            header = data[pos]
            if not header & 0x80:
                raise ValueError(f"byte {pos} is not a packet header")
            if header & 0x40:  # new format
                tag = header & 0x3F
                pos += 1
                body = b""
                while True:
                    length, used, partial = _new_length(data, pos)
                    pos += used
                    body += data[pos : pos + length]
                    pos += length
                    if not partial:
                        break
            else:  # old format
                tag = (header >> 2) & 0x0F
                kind = header & 0x03
                if kind == 3:
                    raise ValueError("indeterminate-length packets are not used in keys")
                size = (1, 2, 4)[kind]
                length = int.from_bytes(data[pos + 1 : pos + 1 + size], "big")
                pos += 1 + size
                body = data[pos : pos + length]
                pos += length
            if pos > len(data):
                raise ValueError("a packet runs past the end of the data (truncated key)")
            out.append((tag, body))
    except IndexError:
        raise ValueError("truncated OpenPGP data") from None
    return out


def key_fingerprint(body: bytes) -> str:
    """The fingerprint of a public-key or public-subkey packet body (v4, v5 or v6)."""
    if not body:
        raise ValueError("empty key packet")
    version = body[0]
    if version not in _KEY_PREFIX:
        raise ValueError(f"OpenPGP v{version} keys are not supported (v4, v5 and v6 are)")
    prefix, size, algorithm = _KEY_PREFIX[version]
    digest = hashlib.new(algorithm, prefix + len(body).to_bytes(size, "big") + body)
    return digest.hexdigest().upper()


def _created(body: bytes) -> str:
    stamp = int.from_bytes(body[1:5], "big")
    moment = datetime.fromtimestamp(stamp, timezone.utc)  # noqa: UP017 - hosts may run 3.10
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def read_keys(raw: bytes) -> list[dict[str, Any]]:
    """The primary keys of an armored or binary key block, in order.

    Each: {fingerprint, created (UTC ISO), user_ids, subkeys (fingerprints)}.
    """
    stripped = raw.lstrip()
    data = dearmor(stripped.decode("ascii", "replace")) if stripped.startswith(b"-----") else raw
    keys: list[dict[str, Any]] = []
    for tag, body in packets(data):
        if tag == TAG_PUBLIC_KEY:
            keys.append(
                {
                    "fingerprint": key_fingerprint(body),
                    "created": _created(body),
                    "user_ids": [],
                    "subkeys": [],
                }
            )
        elif not keys:
            raise ValueError("the data does not start with a public key packet")
        elif tag == TAG_USER_ID:
            keys[-1]["user_ids"].append(body.decode("utf-8", "replace"))
        elif tag == TAG_PUBLIC_SUBKEY:
            keys[-1]["subkeys"].append(key_fingerprint(body))
    if not keys:
        raise ValueError("no public key found")
    return keys


def binary_keyring(raw: bytes) -> bytes:
    """The binary form apt reads from a .gpg keyring (armor removed when present)."""
    stripped = raw.lstrip()
    if stripped.startswith(b"-----"):
        return dearmor(stripped.decode("ascii", "replace"))
    packets(raw)  # raises on damaged binary data
    return raw


def check_single_key(raw: bytes, fingerprint: str) -> dict[str, Any]:
    """The one primary key of raw when its fingerprint is the pinned one; ValueError else.

    A block holding a second primary key is refused too: apt would trust that one as well.
    """
    want = normalize_fingerprint(fingerprint)
    keys = read_keys(raw)
    found = [key["fingerprint"] for key in keys]
    if len(keys) != 1:
        raise ValueError(
            f"the key block holds {len(keys)} primary keys ({', '.join(found)}); "
            f"exactly one, {want}, is allowed"
        )
    if found[0] != want:
        raise ValueError(
            f"the key's fingerprint is {found[0]}, but {want} is pinned: "
            "refusing to trust it (a different or rotated key, or a tampered download)"
        )
    return keys[0]
