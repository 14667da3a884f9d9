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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "collections"))

from ansible_collections.llmhost.core.plugins.filter.preflight import (  # noqa: E402
    preflight_errors,
)

INVENTORIES = ["lab", "gpu-local", "rented-gpu.example"]
EXAMPLE_VAULT = ROOT / "inventories" / "rented-gpu.example" / "vault-pass.example"


def _inventory(name: str) -> dict[str, Any]:
    cmd = [
        str(Path(sys.executable).parent / "ansible-inventory"),
        "-i",
        f"inventories/{name}",
        "--list",
        "--vault-password-file",
        str(EXAMPLE_VAULT),
    ]
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def _host_vars(inv: dict[str, Any]) -> dict[str, Any]:
    hosts = inv["llmhost"]["hosts"]
    assert hosts, "the llmhost group is empty"
    return inv["_meta"]["hostvars"][hosts[0]]


@pytest.mark.parametrize("name", INVENTORIES)
def test_inventory_passes_the_input_gate(name: str) -> None:
    hv = _host_vars(_inventory(name))
    assert hv["llmhost_inventory_name"] == name
    inputs = {
        "route": hv["llmhost_route"],
        "gpu_plan": hv["llmhost_gpu_plan"],
        "model": hv["llmhost_model"],
        "serving": hv["llmhost_serving"],
        "models_root": "/srv/llmhost/models",
    }
    # A fixed "now": the committed stop times are examples that users move per rental.
    assert preflight_errors(inputs, now="2026-11-22T00:00:00Z") == []


def test_lab_uses_docker_exec() -> None:
    hv = _host_vars(_inventory("lab"))
    assert hv["ansible_connection"] == "community.docker.docker"
    assert hv["llmhost_route"] == "local_cpu"


def test_gpu_local_uses_a_local_connection() -> None:
    hv = _host_vars(_inventory("gpu-local"))
    assert hv["ansible_connection"] == "local"
    assert hv["llmhost_route"] == "rented_gpu"


def test_example_secrets_are_vaulted_and_open_with_the_documented_password() -> None:
    secrets = ROOT / "inventories" / "rented-gpu.example" / "group_vars" / "all" / "secrets.yml"
    assert secrets.read_text(encoding="utf-8").startswith("$ANSIBLE_VAULT;1.1;AES256")
    hv = _host_vars(_inventory("rented-gpu.example"))
    assert hv["llmhost_hf_token"].startswith("hf_example")
    assert hv["ansible_user"] == "ubuntu"
    assert hv["ansible_become"] is True
