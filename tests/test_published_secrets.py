"""The secrets this repository publishes: scripts/published_secrets.py's committed list is
current and complete (a changed example without a new list fails here), holds digests
only; scripts/llmhost.py refuses the published vault password outside the example and
the lab."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml
from ansible.parsing.vault import VaultLib, VaultSecret
from loading import load_module

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "inventories" / "rented-gpu.example"
PASSWORD_FILE = EXAMPLE / "vault-pass.example"
VAULT_FILE = EXAMPLE / "group_vars" / "all" / "secrets.yml"
LIST = ROOT / "roles" / "preflight" / "files" / "published_secrets.json"


generator = load_module(
    "llmhost_published_secrets_script", ROOT / "scripts" / "published_secrets.py"
)
llmhost = load_module("llmhost_entry_point_published", ROOT / "scripts" / "llmhost.py")
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


# --- the entry point's refusal of the published vault password -------------------------


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A throwaway repository root with the example, the lab and a copy of the example."""
    for name in ("rented-gpu.example", "lab", "my-gpu"):
        (tmp_path / "inventories" / name).mkdir(parents=True)
        (tmp_path / "inventories" / name / "hosts.yml").write_text("all: {}\n", "utf-8")
    for name in list(os.environ):
        if name.startswith(("LLMHOST_", "ANSIBLE_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("LLMHOST_ROOT", str(tmp_path))
    return tmp_path


def _password_file(path: Path, text: str, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def test_a_copy_using_the_example_password_is_refused(root: Path) -> None:
    vault = _password_file(root / "my.pass", PASSWORD_FILE.read_text(encoding="utf-8"))
    with pytest.raises(llmhost.Refused) as refused:
        llmhost.check_vault_password("deploy", root, root / "inventories" / "my-gpu", vault)
    message = str(refused.value)
    assert f"the vault password file {vault} holds a password this repository publishes" in message
    assert "inventories/rented-gpu.example/vault-pass.example: the vault password" in message
    assert "inventory my-gpu is not the example or the lab" in message
    assert "openssl rand -base64 32 > .cache/vault/my-gpu.pass" in message
    assert "ansible-vault rekey" in message and "openssl rand -hex 24" in message
    assert _password() not in message


@pytest.mark.parametrize("text", ["llmhost-example", "  llmhost-example\n\n"])
def test_the_password_is_compared_as_ansible_reads_it(root: Path, text: str) -> None:
    vault = _password_file(root / "my.pass", text.replace("llmhost-example", _password()))
    assert llmhost.published_vault_password(root, root / "inventories" / "my-gpu", vault)


@pytest.mark.parametrize("name", ["rented-gpu.example", "lab"])
def test_the_example_and_the_lab_may_use_it(root: Path, name: str) -> None:
    vault = _password_file(root / "x.pass", _password())
    for inventory in (root / "inventories" / name, root / "inventories" / name / "hosts.yml"):
        llmhost.check_vault_password("deploy", root, inventory, vault)


@pytest.mark.parametrize(
    ("text", "mode"),
    [
        ("a-password-of-our-own\n", 0o600),
        ("", 0o600),
        ("\xff\xfe", 0o600),
        # A vault client script prints the password: its own text is not the password.
        (PASSWORD_FILE.read_text(encoding="utf-8"), 0o700),
    ],
    ids=["own", "empty", "not-utf8", "client-script"],
)
def test_other_password_files_pass(root: Path, text: str, mode: int) -> None:
    vault = root / "my.pass"
    vault.write_bytes(text.encode("latin-1"))
    vault.chmod(mode)
    llmhost.check_vault_password("deploy", root, root / "inventories" / "my-gpu", vault)


def test_no_password_file_passes(root: Path) -> None:
    llmhost.check_vault_password("deploy", root, root / "inventories" / "my-gpu", None)


@pytest.mark.parametrize("action", ["teardown", "status"])
def test_teardown_and_status_only_warn(
    root: Path, action: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A refused teardown would leave a rented host running; status changes nothing."""
    vault = _password_file(root / "my.pass", _password())
    llmhost.check_vault_password(action, root, root / "inventories" / "my-gpu", vault)
    assert "[llmhost] WARNING: the vault password file" in capsys.readouterr().out


@pytest.mark.parametrize("action", ["deploy", "eval", "train", "rollback", "lab"])
def test_a_run_is_refused_before_anything_exists(
    root: Path, action: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The default password file of the copy (.cache/vault/my-gpu.pass) holds the example's:
    exit status 2, no bundle, no runner folder."""
    _password_file(root / ".cache" / "vault" / "my-gpu.pass", _password())
    monkeypatch.chdir(root)
    assert llmhost.main([action, "-i", "inventories/my-gpu"]) == 2
    assert "[llmhost] refused: the vault password file" in capsys.readouterr().err
    assert not (root / "evidence").exists()
    assert not (root / ".cache" / "runner").exists()
