"""The committed inventories parse, decrypt with the documented example password,
and pass the preflight input gate as they stand."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from role_runner import run_role

ROOT = Path(__file__).resolve().parents[1]

INVENTORIES = ["lab", "gpu-local", "rented-gpu.example"]
EXAMPLE_VAULT = ROOT / "inventories" / "rented-gpu.example" / "vault-pass.example"
LAB_VAULT = ROOT / ".cache" / "vault" / "lab.pass"


def _inventory(name: str) -> dict[str, Any]:
    cmd = [
        str(Path(sys.executable).parent / "ansible-inventory"),
        "-i",
        f"inventories/{name}",
        "--list",
        "--vault-password-file",
        str(EXAMPLE_VAULT),
    ]
    if LAB_VAULT.is_file():  # the lab's generated vault (scripts/lab-init.sh), when present
        cmd += ["--vault-password-file", str(LAB_VAULT)]
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def _host_vars(inv: dict[str, Any]) -> dict[str, Any]:
    hosts = inv["llmhost"]["hosts"]
    assert hosts, "the llmhost group is empty"
    return inv["_meta"]["hostvars"][hosts[0]]


@pytest.mark.slow
@pytest.mark.parametrize("name", INVENTORIES)
def test_inventory_passes_the_input_gate(name: str, tmp_path: Path) -> None:
    """The inventory's plan through preflight's input checks (its argument_specs and its
    assert list, tag preflight_validate), run for real on localhost."""
    hv = _host_vars(_inventory(name))
    assert hv["llmhost_inventory_name"] == name
    inputs = {
        "preflight_route": hv["llmhost_route"],
        "preflight_gpu_plan": hv["llmhost_gpu_plan"],
        "preflight_model": hv["llmhost_model"],
        "preflight_serving": hv["llmhost_serving"],
        "preflight_route_notes": hv["llmhost_route_notes"],
        "preflight_models_root": "/srv/llmhost/models",
        "preflight_run_id": "pytest",
        # A fixed "now": the committed stop times are examples that users move per rental.
        "preflight_now": "2026-11-22T00:00:00Z",
    }
    result = run_role(tmp_path, "preflight", inputs, tags="preflight_validate")
    assert result.returncode == 0, result.stdout + result.stderr


def test_lab_is_reached_like_a_rented_host() -> None:
    hv = _host_vars(_inventory("lab"))
    assert hv["ansible_connection"] == "ssh"
    assert hv["ansible_host"] == "127.0.0.1"
    assert hv["ansible_user"] != "root"
    assert hv["ansible_become"] is True
    args = hv["ansible_ssh_common_args"]  # composed once: a value marked unsafe, not a template
    assert "StrictHostKeyChecking=yes" in args.get("__ansible_unsafe", args)
    assert hv["llmhost_route"] == "local_cpu"


def test_gpu_local_uses_a_local_connection() -> None:
    hv = _host_vars(_inventory("gpu-local"))
    assert hv["ansible_connection"] == "local"
    assert hv["llmhost_route"] == "rented_gpu"


def _names(name: str) -> tuple[set[str], set[str]]:
    group = yaml.safe_load(
        (ROOT / "inventories" / name / "group_vars" / "all" / "llmhost.yml").read_text("utf-8")
    )
    hosts = yaml.safe_load((ROOT / "inventories" / name / "hosts.yml").read_text("utf-8"))
    host_vars = set(next(iter(hosts["all"]["children"]["llmhost"]["hosts"].values())))
    # Variables a constructed source composes when the inventory is read (the lab's SSH
    # route, see inventories/lab/ssh.constructed.yml) are host variables too.
    for composed in (ROOT / "inventories" / name).glob("*.constructed.yml"):
        host_vars |= set(yaml.safe_load(composed.read_text("utf-8"))["compose"])
    return set(group), host_vars


def test_rented_example_differs_from_the_lab_only_in_values() -> None:
    """Same variable names: a rented host differs in address, user, route, plan and keys."""
    lab_group, lab_host = _names("lab")
    rented_group, rented_host = _names("rented-gpu.example")
    assert lab_group == rented_group, (
        f"only in lab: {sorted(lab_group - rented_group)}; "
        f"only in rented-gpu.example: {sorted(rented_group - lab_group)}"
    )
    assert lab_host == rented_host, lab_host ^ rented_host


def test_tenants_carry_their_own_keys_from_the_vault() -> None:
    for name in ("lab", "rented-gpu.example"):
        group = yaml.safe_load(
            (ROOT / "inventories" / name / "group_vars" / "all" / "llmhost.yml").read_text("utf-8")
        )
        for tenant in group["gateway_tenants"]:
            assert tenant["key"].startswith("{{ vault_gateway_keys."), (name, tenant["name"])
        assert group["llmhost_vllm_api_key"] == "{{ vault_llmhost_vllm_api_key }}"


def test_example_secrets_are_vaulted_and_open_with_the_documented_password() -> None:
    secrets = ROOT / "inventories" / "rented-gpu.example" / "group_vars" / "all" / "secrets.yml"
    assert secrets.read_text(encoding="utf-8").startswith("$ANSIBLE_VAULT;1.1;AES256")
    hv = _host_vars(_inventory("rented-gpu.example"))
    assert hv["vault_hf_token"].startswith("hf_example")
    assert set(hv["vault_gateway_keys"]) == {t["name"] for t in hv["gateway_tenants"]}
    assert hv["ansible_user"] == "ubuntu"
    assert hv["ansible_become"] is True
