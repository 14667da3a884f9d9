"""The secrets this repository publishes: scripts/published_secrets.py's committed list is
current and complete (a changed example without a new list fails here), holds digests
only."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path
from types import ModuleType

import yaml
from ansible.parsing.vault import VaultLib, VaultSecret

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "inventories" / "rented-gpu.example"
PASSWORD_FILE = EXAMPLE / "vault-pass.example"
VAULT_FILE = EXAMPLE / "group_vars" / "all" / "secrets.yml"
LIST = ROOT / "roles" / "preflight" / "files" / "published_secrets.json"


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


generator = _load("llmhost_published_secrets_script", ROOT / "scripts" / "published_secrets.py")
digest = generator.published_lib.digest


def _password() -> str:
    return PASSWORD_FILE.read_text(encoding="utf-8").strip()


def _vault() -> VaultLib:
    return VaultLib([("default", VaultSecret(_password().encode()))])


def _example_values() -> list[str]:
    """The example's published values, read here without the generator."""
    data = yaml.safe_load(_vault().decrypt(VAULT_FILE.read_bytes()))
    keys = data.pop("vault_gateway_keys")
    return [v for v in [*data.values(), *keys.values(), _password()] if v]


# --- the committed list ----------------------------------------------------------------


def test_the_committed_list_is_current() -> None:
    assert generator.main(["--check"]) == 0, "run: python scripts/published_secrets.py"
    assert LIST.read_text(encoding="utf-8") == generator.document(ROOT)


def test_every_published_secret_is_listed_and_none_in_clear() -> None:
    listed = json.loads(LIST.read_text(encoding="utf-8"))
    digests = {entry["sha256"] for entry in listed["secrets"]}
    values = _example_values()
    assert len(values) >= 5  # the password, the vLLM key, the hub token, two tenant keys
    assert {digest(v) for v in values} == digests
    text = LIST.read_text(encoding="utf-8")
    for value in values:
        assert value not in text


def _copy_repo(tmp_path: Path) -> Path:
    """The example inventory and the committed list in a throwaway repository."""
    shutil.copytree(EXAMPLE, tmp_path / "inventories" / "rented-gpu.example")
    (tmp_path / generator.OUTPUT).parent.mkdir(parents=True)
    shutil.copy(LIST, tmp_path / generator.OUTPUT)
    assert generator.main(["--check", "--root", str(tmp_path)]) == 0
    return tmp_path


def test_a_changed_example_without_a_new_list_fails_the_check(tmp_path: Path) -> None:
    root = _copy_repo(tmp_path)
    vault_file = root / VAULT_FILE.relative_to(ROOT)
    data = yaml.safe_load(_vault().decrypt(vault_file.read_bytes()))
    data["vault_gateway_keys"]["team_b"] = "example-tenant-key-b-replace-me"
    vault_file.write_bytes(_vault().encrypt(yaml.safe_dump(data)))
    assert generator.main(["--check", "--root", str(root)]) == 1
    assert generator.main(["--root", str(root)]) == 0  # regenerated
    assert generator.main(["--check", "--root", str(root)]) == 0
    listed = json.loads((root / generator.OUTPUT).read_text(encoding="utf-8"))
    sources = [entry["source"] for entry in listed["secrets"]]
    assert any(source.endswith(": vault_gateway_keys.team_b") for source in sources)


def test_a_new_example_password_fails_the_check(tmp_path: Path) -> None:
    root = _copy_repo(tmp_path)
    (root / PASSWORD_FILE.relative_to(ROOT)).write_text("another-password\n", encoding="utf-8")
    vault_file = root / VAULT_FILE.relative_to(ROOT)
    plain = _vault().decrypt(vault_file.read_bytes())
    new = VaultLib([("default", VaultSecret(b"another-password"))])
    vault_file.write_bytes(new.encrypt(plain))
    assert generator.main(["--check", "--root", str(root)]) == 1


def test_plain_files_publish_inline_vaulted_and_secret_named_literals(tmp_path: Path) -> None:
    root = _copy_repo(tmp_path)
    inline = _vault().encrypt("inline-vaulted-provider-token").decode()
    extra = root / "inventories" / "rented-gpu.example" / "group_vars" / "all" / "extra.yml"
    extra.write_text(
        "provider_api_token: literal-provider-token-123\n"
        'templated_key: "{{ vault_llmhost_vllm_api_key }}"\n'
        "plain_setting: not-a-secret-value\n"
        "db:\n  password: !vault |\n" + "".join(f"    {line}\n" for line in inline.splitlines()),
        encoding="utf-8",
    )
    found = generator.published(root)
    assert found[digest("literal-provider-token-123")].endswith("extra.yml: provider_api_token")
    assert found[digest("inline-vaulted-provider-token")].endswith("extra.yml: db.password")
    assert digest("not-a-secret-value") not in found
    assert digest("{{ vault_llmhost_vllm_api_key }}") not in found
