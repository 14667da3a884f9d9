"""The lab is reached like a rented host: scripts/lab-init.sh makes its key pair, vault
password and vault once (modes, idempotence, reuse of older .cache/secrets, a clear
refusal when vault and password disagree), and inventories/lab (hosts.yml and
ssh.constructed.yml) connects over
SSH on loopback as the non-root operator with become, pinning the host key.

labhost.sh's part (publishing, account, known_hosts) is in test_scripts.py."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
LAB_INIT = ROOT / "scripts" / "lab-init.sh"
VENV_BIN = Path(sys.executable).parent
ANSIBLE_VAULT = VENV_BIN / "ansible-vault"

KEY = ".cache/lab/ssh/id_ed25519"
PASS = ".cache/vault/lab.pass"  # noqa: S105 (a path, not a password)
VAULT = "inventories/lab/group_vars/all/vault.yml"


def _init(root: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMHOST_")}
    env.update(LLMHOST_ROOT=str(root), LLMHOST_ANSIBLE_VAULT=str(ANSIBLE_VAULT))
    return subprocess.run(
        ["bash", str(LAB_INIT)], env=env, capture_output=True, text=True, timeout=300
    )


def _view(root: Path) -> dict:
    out = subprocess.run(
        [str(ANSIBLE_VAULT), "view", "--vault-password-file", str(root / PASS), str(root / VAULT)],
        capture_output=True,
        text=True,
        check=True,
        cwd=root,
    )
    return yaml.safe_load(out.stdout)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _snapshot(root: Path) -> dict[str, tuple[int, int, bytes]]:
    return {
        str(p.relative_to(root)): (p.stat().st_mtime_ns, _mode(p), p.read_bytes())
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_creates_key_pair_password_and_vault(tmp_path: Path) -> None:
    result = _init(tmp_path)
    assert result.returncode == 0, result.stderr

    assert _mode(tmp_path / ".cache/lab/ssh") == 0o700
    assert _mode(tmp_path / KEY) == 0o600
    pub = (tmp_path / f"{KEY}.pub").read_text()
    assert pub.startswith("ssh-ed25519 ")
    assert pub.rstrip().endswith(" llmhost-lab")
    assert "PRIVATE KEY" in (tmp_path / KEY).read_text()

    assert _mode(tmp_path / ".cache/vault") == 0o700
    assert _mode(tmp_path / PASS) == 0o600
    assert re.fullmatch(r"[A-Za-z0-9]{48}\n", (tmp_path / PASS).read_text())

    assert (tmp_path / VAULT).read_text().startswith("$ANSIBLE_VAULT;1.1;AES256")
    data = _view(tmp_path)
    assert set(data) == {
        "vault_llmhost_vllm_api_key",
        "vault_gateway_keys",
        "vault_backup_password",
    }
    assert set(data["vault_gateway_keys"]) == {"lab_eval", "lab_load"}
    keys = [
        data["vault_llmhost_vllm_api_key"],
        *data["vault_gateway_keys"].values(),
        data["vault_backup_password"],
    ]
    assert all(re.fullmatch(r"[A-Za-z0-9]{40}", k) for k in keys), "40 alphanumerics each"
    assert len(set(keys)) == 4
    # No plaintext (nor temp file) left anywhere.
    for p in tmp_path.rglob("*"):
        if p.is_file():
            assert not any(k.encode() in p.read_bytes() for k in keys), p
    assert sorted(p.name for p in (tmp_path / ".cache/vault").iterdir()) == ["lab.pass"]


def test_second_run_changes_nothing(tmp_path: Path) -> None:
    assert _init(tmp_path).returncode == 0
    before = _snapshot(tmp_path)
    result = _init(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "created" not in result.stderr
    assert _snapshot(tmp_path) == before


def test_reuses_the_keys_of_older_lab_runs(tmp_path: Path) -> None:
    legacy = tmp_path / ".cache/secrets"
    legacy.mkdir(parents=True)
    old = {
        "vllm_api_key": "A" * 20 + "1234567890abcdefghij",
        "gateway_key_lab_eval": "0123456789" * 4,  # all digits: must stay a string
        "gateway_key_lab_load": "Zz9" * 13 + "x",
    }
    for name, value in old.items():
        (legacy / name).write_text(value + "\n")
    assert _init(tmp_path).returncode == 0
    data = _view(tmp_path)
    assert data["vault_llmhost_vllm_api_key"] == old["vllm_api_key"]
    assert data["vault_gateway_keys"] == {
        "lab_eval": old["gateway_key_lab_eval"],
        "lab_load": old["gateway_key_lab_load"],
    }


def test_adds_a_later_key_to_an_older_vault(tmp_path: Path) -> None:
    """A lab vault made before roles/backup existed gets vault_backup_password added; its
    other keys, the password file and the vault's password stay."""
    assert _init(tmp_path).returncode == 0
    data = _view(tmp_path)
    older = {k: v for k, v in data.items() if k != "vault_backup_password"}
    password = (tmp_path / PASS).read_bytes()
    subprocess.run(
        [
            str(ANSIBLE_VAULT),
            "encrypt",
            "--vault-password-file",
            str(tmp_path / PASS),
            "--output",
            str(tmp_path / VAULT),
            "-",
        ],
        input=yaml.safe_dump(older),
        capture_output=True,
        text=True,
        check=True,
    )
    assert "vault_backup_password" not in _view(tmp_path)
    result = _init(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "added vault_backup_password" in result.stderr
    upgraded = _view(tmp_path)
    assert {k: v for k, v in upgraded.items() if k != "vault_backup_password"} == older
    assert re.fullmatch(r"[A-Za-z0-9]{40}", upgraded["vault_backup_password"])
    assert (tmp_path / PASS).read_bytes() == password
    assert _mode(tmp_path / VAULT) == 0o600
    assert sorted(p.name for p in (tmp_path / ".cache/vault").iterdir()) == ["lab.pass"]
    second = _init(tmp_path)
    assert "added" not in second.stderr
    assert _view(tmp_path) == upgraded


def test_keeps_existing_files(tmp_path: Path) -> None:
    assert _init(tmp_path).returncode == 0
    (tmp_path / f"{KEY}.pub").unlink()
    key = (tmp_path / KEY).read_bytes()
    result = _init(tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / KEY).read_bytes() == key
    assert (tmp_path / f"{KEY}.pub").read_text().startswith("ssh-ed25519 ")


def test_refuses_a_vault_the_password_does_not_open(tmp_path: Path) -> None:
    assert _init(tmp_path).returncode == 0
    vault = (tmp_path / VAULT).read_bytes()
    (tmp_path / PASS).write_text("not-the-password\n")
    result = _init(tmp_path)
    assert result.returncode != 0
    assert "vault.yml cannot be decrypted with .cache/vault/lab.pass" in result.stderr
    assert "delete both" in result.stderr
    assert (tmp_path / VAULT).read_bytes() == vault
    assert (tmp_path / PASS).read_text() == "not-the-password\n"


def test_refuses_a_vault_without_its_password(tmp_path: Path) -> None:
    assert _init(tmp_path).returncode == 0
    (tmp_path / PASS).unlink()
    result = _init(tmp_path)
    assert result.returncode != 0
    assert "lab.pass is missing" in result.stderr
    assert not (tmp_path / PASS).exists()


LAB_FILES = ("hosts.yml", "ssh.constructed.yml")
CONNECTION_VARS = ("ansible_port", "ansible_ssh_private_key_file", "ansible_ssh_common_args")


def _scratch_lab(tmp_path: Path) -> Path:
    """The lab inventory's host files (no vault to open) in a scratch checkout."""
    inv = tmp_path / "inventories" / "lab"
    inv.mkdir(parents=True)
    for name in LAB_FILES:
        (inv / name).write_bytes((ROOT / "inventories" / "lab" / name).read_bytes())
    return inv


def _host_vars(inv: Path, env_port: str | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "LLMHOST_LAB_SSH_PORT"}
    env["ANSIBLE_CONFIG"] = str(ROOT / "ansible.cfg")
    if env_port is not None:
        env["LLMHOST_LAB_SSH_PORT"] = env_port
    out = subprocess.run(
        [str(VENV_BIN / "ansible-inventory"), "-i", str(inv), "--host", "llmhost-lab"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def test_lab_inventory_connects_like_a_rented_host(tmp_path: Path) -> None:
    hv = _host_vars(_scratch_lab(tmp_path))
    assert hv["ansible_connection"] == "ssh"
    assert hv["ansible_host"] == "127.0.0.1"
    assert hv["ansible_port"] == 2222  # labhost.sh's LLMHOST_LAB_SSH_PORT default
    assert hv["ansible_user"] == "llmops"  # and LLMHOST_LAB_USER's
    assert hv["ansible_become"] is True
    assert hv["ansible_ssh_private_key_file"] == f"{tmp_path}/{KEY}"
    assert hv["ansible_ssh_common_args"] == (
        f"-o UserKnownHostsFile={tmp_path}/.cache/lab/ssh/known_hosts"
        " -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes"
    )


def test_connection_variables_are_computed_once_not_per_task() -> None:
    # A template in a host's connection variables is templated again for every task
    # (about 25 ms each, seconds per run): the lab's are composed when the inventory
    # is read, and hosts.yml holds plain values only.
    hosts = yaml.safe_load((ROOT / "inventories/lab/hosts.yml").read_text())
    host = hosts["all"]["children"]["llmhost"]["hosts"]["llmhost-lab"]
    assert not [k for k, v in host.items() if "{{" in str(v)]
    composed = yaml.safe_load((ROOT / "inventories/lab/ssh.constructed.yml").read_text())
    assert composed["plugin"] == "ansible.builtin.constructed"
    assert composed["strict"] is True
    assert set(composed["compose"]) == set(CONNECTION_VARS)
    # The constructed file must sort after hosts.yml, or its host does not exist yet.
    assert sorted(LAB_FILES) == list(LAB_FILES)


@pytest.mark.parametrize(("env_port", "expected"), [(None, 2222), ("2223", 2223), ("", 2222)])
def test_lab_inventory_follows_labhost_ssh_port(
    tmp_path: Path, env_port: str | None, expected: int
) -> None:
    assert _host_vars(_scratch_lab(tmp_path), env_port)["ansible_port"] == expected
