"""Write the scenario's one-wheel package, offline: llmhost_probe-1.0-py3-none-any.whl
(a module with VALUE), byte-for-byte the same on every run. With --tar, also a tar of
that wheel and the given files (a wheelhouse tar whose wheel the manifest does not know)."""

from __future__ import annotations

import argparse
import base64
import hashlib
import tarfile
import zipfile
from pathlib import Path

NAME, VERSION = "llmhost_probe", "1.0"
INFO = f"{NAME}-{VERSION}.dist-info"


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def make_wheel(out: Path, value: str) -> Path:
    files = {
        f"{NAME}/__init__.py": f'VALUE = "{value}"\n'.encode(),
        f"{INFO}/METADATA": (
            f"Metadata-Version: 2.1\nName: llmhost-probe\nVersion: {VERSION}\n"
        ).encode(),
        f"{INFO}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: llmhost\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = [_record_line(p, d) for p, d in files.items()] + [f"{INFO}/RECORD,,"]
    files[f"{INFO}/RECORD"] = ("\n".join(record) + "\n").encode()
    out.mkdir(parents=True, exist_ok=True)
    wheel = out / f"{NAME}-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in files.items():
            zf.writestr(zipfile.ZipInfo(path, date_time=(2020, 1, 1, 0, 0, 0)), data)
    return wheel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--value", default="pinned")
    parser.add_argument("--tar", type=Path)
    parser.add_argument("--with", dest="extra", type=Path, action="append", default=[])
    args = parser.parse_args()
    wheel = make_wheel(args.out, args.value)
    if args.tar:
        with tarfile.open(args.tar, "w") as tar:
            for path in [wheel, *args.extra]:
                tar.add(path, arcname=path.name)


if __name__ == "__main__":
    main()
