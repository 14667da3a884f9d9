"""scripts/evidence_secrets.py: no secret of the run may appear in an evidence bundle or its
logs, in any common encoding. A planted secret must be found (exit 1), a clean bundle
must pass (exit 0). The last test scans the newest real bundle of each inventory under
evidence/ (or the bundles in LLMHOST_SCAN_BUNDLES, separated by ':') for this checkout's
secrets (.cache/secrets, HF_TOKEN)."""

from __future__ import annotations

import base64
import importlib.util
import os
import shutil
import sys
from pathlib import Path
from types import ModuleType
from urllib.parse import quote

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "data" / "evidence_fixture"
EXAMPLE = ROOT / "inventories" / "rented-gpu.example"
SECRET = "kZWC0JIZwiuBY8wbZG6acHRxmTDBrlnYuDsOSjKo"  # noqa: S105 (a test key, planted below)


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "evidence_secrets", ROOT / "scripts" / "evidence_secrets.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["evidence_secrets"] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


es = _load()
# The tokens of the environment pytest was started in (the unit tests run without them).
TOKENS = {name: os.environ[name] for name in es.DEFAULT_ENV if os.environ.get(name)}


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return Path(shutil.copytree(FIXTURE, tmp_path / "bundle"))


@pytest.fixture
def secrets(tmp_path: Path) -> Path:
    folder = tmp_path / "secrets"
    folder.mkdir()
    (folder / "vllm_api_key").write_text(SECRET, encoding="utf-8")
    return folder


@pytest.fixture(autouse=True)
def _no_tokens_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*es.DEFAULT_ENV, "ANSIBLE_VAULT_PASSWORD_FILE"):
        monkeypatch.delenv(name, raising=False)


def _scan(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = es.main(list(args))
    out = capsys.readouterr()
    return code, out.out + out.err


def _plant(bundle: Path, data: bytes, name: str = "openllm_gpu_training_run/sample.txt") -> None:
    path = bundle / name
    path.write_bytes(path.read_bytes() + b"\n" + data + b"\n")


def test_clean_bundle_passes(
    capsys: pytest.CaptureFixture[str], bundle: Path, secrets: Path
) -> None:
    code, out = _scan(capsys, str(bundle), "--secrets-dir", str(secrets))
    assert code == 0, out
    assert out.splitlines()[-1].startswith("clean: 21 files scanned for 1 secrets")


def test_planted_key_fails_and_is_not_printed(
    capsys: pytest.CaptureFixture[str], bundle: Path, secrets: Path
) -> None:
    _plant(bundle, f"Authorization: Bearer {SECRET}".encode())
    code, out = _scan(capsys, str(bundle), "--secrets-dir", str(secrets))
    assert code == 1
    assert (
        f"LEAK: {bundle}/openllm_gpu_training_run/sample.txt: secret file vllm_api_key (as is)"
        in out
    )
    assert SECRET not in out


@pytest.mark.parametrize("prefix", [b"", b"a", b"ab", b"abc", b'{"auth":"'])
@pytest.mark.parametrize("urlsafe", [False, True])
def test_secret_inside_a_larger_base64_blob_is_found(
    capsys: pytest.CaptureFixture[str], bundle: Path, secrets: Path, prefix: bytes, urlsafe: bool
) -> None:
    raw = prefix + b"user:" + SECRET.encode() + b"|trailing data"
    blob = base64.urlsafe_b64encode(raw) if urlsafe else base64.b64encode(raw)
    _plant(bundle, blob, "api_smoke_test.json")
    code, out = _scan(capsys, str(bundle), "--secrets-dir", str(secrets))
    assert code == 1 and "(base64)" in out, out


def test_url_encoded_json_escaped_and_hex_forms_are_found(
    capsys: pytest.CaptureFixture[str], bundle: Path, tmp_path: Path
) -> None:
    odd = 'p@ss/word+with=odd&"chars"'
    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / "key").write_text(odd, encoding="utf-8")
    _plant(bundle, f"https://host/?k={quote(odd, safe='')}".encode(), "first_run.md")
    _plant(bundle, ('{"k": "' + odd.replace('"', '\\"') + '"}').encode(), "model_store.json")
    _plant(bundle, odd.encode().hex().encode(), "gpu_plan.md")
    code, out = _scan(capsys, str(bundle), "--secrets-dir", str(folder))
    assert code == 1
    assert "first_run.md: secret file key (url-encoded)" in out
    assert "model_store.json: secret file key (json-escaped)" in out
    assert "gpu_plan.md: secret file key (hex)" in out


def test_secret_in_a_file_name_is_found(
    capsys: pytest.CaptureFixture[str], bundle: Path, secrets: Path
) -> None:
    (bundle / f"debug-{SECRET}.txt").write_text("x\n", encoding="utf-8")
    code, out = _scan(capsys, str(bundle), "--secrets-dir", str(secrets))
    assert code == 1 and "(as is, in the file name)" in out


def test_logs_outside_the_bundle_are_scanned_too(
    capsys: pytest.CaptureFixture[str], bundle: Path, secrets: Path, tmp_path: Path
) -> None:
    log = tmp_path / "ansible.log"
    log.write_text(f"ok: [llmhost-lab] => key={SECRET}\n", encoding="utf-8")
    code, out = _scan(capsys, str(bundle), "--secrets-dir", str(secrets), "--also", str(log))
    assert code == 1 and f"LEAK: {log}:" in out


def test_password_lookup_file_with_salt(tmp_path: Path) -> None:
    file = tmp_path / "pw"
    file.write_text("S3cretPassw0rd salt=abcdefgh\n", encoding="utf-8")
    values = {s.value for s in es.secrets_from_files([file], "f")}
    assert "S3cretPassw0rd" in values


def test_hf_token_from_the_environment(
    capsys: pytest.CaptureFixture[str],
    bundle: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = "hf_" + "Q" * 8 + "testtoken"
    monkeypatch.setenv("HF_TOKEN", token)
    empty = tmp_path / "none"
    assert _scan(capsys, str(bundle), "--secrets-dir", str(empty))[0] == 0
    _plant(bundle, f"HF_TOKEN={token}".encode(), "ansible.log")
    code, out = _scan(capsys, str(bundle), "--secrets-dir", str(empty))
    assert code == 1 and "$HF_TOKEN (as is)" in out


def test_secret_shapes_are_found_without_knowing_the_secret(
    capsys: pytest.CaptureFixture[str], bundle: Path, secrets: Path
) -> None:
    _plant(bundle, b"-----BEGIN OPENSSH PRIVATE KEY-----", "first_run.md")
    _plant(bundle, b"token: hf_" + b"AbCdEfGhIjKlMnOpQrStUvWxYz01234567", "gpu_plan.md")
    code, out = _scan(capsys, str(bundle), "--secrets-dir", str(secrets))
    assert code == 1
    assert "first_run.md: private key (by its shape)" in out
    assert "gpu_plan.md: Hugging Face token (by its shape)" in out


def test_vaulted_values_and_the_vault_password_are_secrets(
    capsys: pytest.CaptureFixture[str], bundle: Path, tmp_path: Path
) -> None:
    vault_args = [
        "--vault-file",
        str(EXAMPLE / "group_vars" / "all" / "secrets.yml"),
        "--vault-password-file",
        str(EXAMPLE / "vault-pass.example"),
        "--secrets-dir",
        str(tmp_path / "none"),
    ]
    assert _scan(capsys, str(bundle), *vault_args)[0] == 0
    _plant(bundle, b"tenant key example-tenant-key-a-replace-me", "api_smoke_test.json")
    _plant(bundle, b"vault pass llmhost-example", "ansible.log")
    code, out = _scan(capsys, str(bundle), *vault_args)
    assert code == 1
    assert "api_smoke_test.json: vaulted value in secrets.yml (as is)" in out
    assert "ansible.log: vault password file vault-pass.example (as is)" in out


def test_an_executable_vault_password_client_is_not_read_as_a_password(
    capsys: pytest.CaptureFixture[str], bundle: Path, tmp_path: Path
) -> None:
    client = tmp_path / "vault-client.sh"
    client.write_text("#!/bin/sh\nexec pass show llmhost/vault\n", encoding="utf-8")
    client.chmod(0o755)
    code, out = _scan(
        capsys,
        str(bundle),
        "--vault-password-file",
        str(client),
        "--secrets-dir",
        str(tmp_path / "none"),
    )
    assert code == 2 and "no secret to look for" in out


def test_nothing_to_look_for_or_scan_is_an_error(
    capsys: pytest.CaptureFixture[str], bundle: Path, tmp_path: Path
) -> None:
    short = tmp_path / "short"
    short.mkdir()
    (short / "pin").write_text("1234", encoding="utf-8")
    code, out = _scan(capsys, str(bundle), "--secrets-dir", str(short))
    assert code == 2 and "shorter than 8 characters" in out
    assert _scan(capsys, str(tmp_path / "absent"), "--secrets-dir", str(short))[0] == 2


def _real_bundles() -> list[Path]:
    listed = os.environ.get("LLMHOST_SCAN_BUNDLES", "")
    if listed:
        return [Path(p) for p in listed.split(os.pathsep) if p]
    inventories = [p for p in (ROOT / "evidence").glob("*") if p.is_dir() and p.name != "examples"]
    newest = [max((b for b in inv.iterdir() if b.is_dir()), default=None) for inv in inventories]
    return sorted(b for b in newest if b is not None)


@pytest.mark.parametrize("bundle", _real_bundles(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_real_bundle_holds_no_secret(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, bundle: Path
) -> None:
    for name, value in TOKENS.items():
        monkeypatch.setenv(name, value)
    secrets = ROOT / ".cache" / "secrets"
    if not secrets.is_dir() or not any(secrets.iterdir()):
        pytest.skip("no .cache/secrets in this checkout: nothing to look for")
    code, out = _scan(capsys, str(bundle), "--secrets-dir", str(secrets))
    assert code == 0, out
