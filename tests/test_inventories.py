"""The committed inventories parse, decrypt with the documented example password,
and pass the preflight input gate as they stand."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from role_runner import CaseResult, run_cases

ROOT = Path(__file__).resolve().parents[1]

INVENTORIES = ["lab", "gpu-local", "rented-gpu.example"]
EXAMPLE_VAULT = ROOT / "inventories" / "rented-gpu.example" / "vault-pass.example"
LAB_VAULT = ROOT / ".cache" / "vault" / "lab.pass"


@functools.cache
def _inventory(name: str) -> dict[str, Any]:
    """ansible-inventory --list of the inventory, read once per test process (not changed)."""
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


def _releases() -> list[tuple[str, str]]:
    """(inventory, release) for every release an inventory lists; '' when it lists none."""
    out = []
    for name in INVENTORIES:
        text = (ROOT / "inventories" / name / "group_vars" / "all" / "llmhost.yml").read_text()
        releases = (yaml.safe_load(text) or {}).get("llmhost_releases") or {"": None}
        out += [(name, release) for release in releases]
    return out


def _gate_inputs(name: str, release: str) -> dict[str, Any]:
    """The preflight inputs of the inventory's release ('' = the inventory's own model)."""
    hv = _host_vars(_inventory(name))
    assert hv["llmhost_inventory_name"] == name
    if release:  # llmhost_model and llmhost_serving follow llmhost_release
        assert hv["llmhost_model"] == "{{ llmhost_releases[llmhost_release].model }}"
        assert hv["llmhost_serving"] == "{{ llmhost_releases[llmhost_release].serving }}"
        assert hv["llmhost_release"] in hv["llmhost_releases"]
    chosen = hv["llmhost_releases"][release] if release else hv
    model, serving = (
        (chosen["model"], chosen["serving"])
        if release
        else (hv["llmhost_model"], hv["llmhost_serving"])
    )
    return {
        "preflight_route": hv["llmhost_route"],
        "preflight_gpu_plan": hv["llmhost_gpu_plan"],
        "preflight_model": model,
        "preflight_serving": serving,
        "preflight_route_notes": hv["llmhost_route_notes"],
        "preflight_models_root": "/srv/llmhost/models",
        "preflight_run_id": "pytest",
        # A fixed "now": the committed stop times are examples that users move per rental.
        "preflight_now": "2026-11-22T00:00:00Z",
    }


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CaseResult]:
    """Every inventory's every release through the gate in one ansible-playbook (a host
    per release, tests/role_runner.py)."""
    cases = {f"case{i}": _gate_inputs(*pair) for i, pair in enumerate(_releases())}
    return run_cases(tmp_path_factory.mktemp("gate"), "preflight", cases, tags="preflight_validate")


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(_releases())), ids=[f"{n}-{r}" for n, r in _releases()])
def test_inventory_passes_the_input_gate(gate: dict[str, CaseResult], index: int) -> None:
    """Each of the inventory's releases (model and serving limits) with its plan through
    preflight's input checks (its argument_specs and its assert list, tag
    preflight_validate), run for real on localhost."""
    result = gate[f"case{index}"]
    assert not result.failed, result.output or result.log[-5000:]


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


@pytest.mark.parametrize("release", ["nope", ""])
def test_an_unknown_release_is_refused_before_anything_runs(release: str, tmp_path: Path) -> None:
    """run_context.yml, imported first by every playbook, refuses a release the inventory
    does not list, naming the variable, the releases and the fix."""
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        LLMHOST_EVIDENCE_DIR=str(tmp_path / "bundle"),
        LLMHOST_RUN_ID="pytest",
    )
    cmd = [
        str(Path(sys.executable).parent / "ansible-playbook"),
        "-i",
        "inventories/rented-gpu.example",
        "--vault-password-file",
        str(EXAMPLE_VAULT),
        "-e",
        f"llmhost_release={release}",
        "playbooks/run_context.yml",
    ]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    out = done.stdout + done.stderr
    assert done.returncode != 0, out
    assert (
        f"llmhost_release: '{release}' is not one of the inventory's llmhost_releases (qwen7b)"
        in out
    ), out
    assert "Fix: -e llmhost_release=<one of them>" in out
