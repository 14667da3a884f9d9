"""The inventory always wins (DESIGN.md principle 2).

Role defaults hold every default; an inventory overrides any role variable; nothing at
playbook level sets a role variable, except the one-line handovers where a role is
called (what one role produces and another consumes, read from the host's local facts).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
# Internal roles (_common) take their inputs where they are included, never from an inventory.
ROLES = sorted(
    p.name for p in (ROOT / "roles").iterdir() if p.is_dir() and not p.name.startswith("_")
)
PLAYBOOKS = sorted((ROOT / "playbooks").glob("*.yml"))

# One variable of every role, set in a throwaway inventory, with a value no default has.
OVERRIDES: dict[str, Any] = {
    "preflight_models_root": "/srv/override/models",
    "nvidia_driver_branch": "575",
    "mini_gpt2_training_steps": 7,
    "model_store_root": "/srv/override/models",
    "vllm_max_num_seqs": 99,
    "gateway_listen_port": 9443,
    "evidence_fail_on_missing": True,
    "evaluation_load_requests": 5,
    "monitoring_retention_time": "3d",
    "teardown_drain_timeout_s": 77,
    "backup_keep_daily": 11,
}


def _role_prefixes() -> tuple[str, ...]:
    return tuple(f"{role}_" for role in ROLES)


def test_every_role_has_an_override_case() -> None:
    assert sorted({k for k in OVERRIDES for r in ROLES if k.startswith(r + "_")}) == sorted(
        OVERRIDES
    )
    covered = {r for r in ROLES for k in OVERRIDES if k.startswith(r + "_")}
    assert covered == set(ROLES), f"roles without an override case: {set(ROLES) - covered}"


def test_no_playbook_level_vars_file_sets_a_role_variable() -> None:
    offenders = []
    for folder in ("group_vars", "host_vars"):
        base = ROOT / "playbooks" / folder
        if not base.exists():
            continue
        for path in base.rglob("*"):
            if path.is_file():
                data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
                bad = [k for k in data if k.startswith(_role_prefixes())]
                offenders.append(
                    f"{path.relative_to(ROOT)}: {bad or 'any file here outranks the inventory'}"
                )
    assert not offenders, "playbook-level vars outrank the inventory: " + "; ".join(offenders)


def _plays() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in PLAYBOOKS:
        for play in yaml.safe_load(path.read_text(encoding="utf-8")) or []:
            out.append((path.name, play))
    return out


def test_plays_set_no_role_variable() -> None:
    bad = []
    for name, play in _plays():
        for key in play.get("vars") or {}:
            if key.startswith(_role_prefixes()):
                bad.append(f"{name}: play '{play.get('name')}' sets {key}")
        if play.get("vars_files"):
            bad.append(f"{name}: play '{play.get('name')}' loads vars_files")
    assert not bad, bad


HANDOVER = re.compile(
    r"ansible_local\.|\bpreflight_compute\b|\b(?:vllm|model_store)_(?:host|port|root)\b"
    r"|\bgateway_drain_file\b|\breplica_upstreams\(hostvars\b"  # the replicas' local facts
)


def test_role_call_vars_are_one_line_handovers() -> None:
    """vars where a role is called only hand over what another role produced."""
    seen = 0
    for name, play in _plays():
        for entry in play.get("roles") or []:
            if not isinstance(entry, dict):
                continue
            role = entry.get("role", "")
            for key, value in (entry.get("vars") or {}).items():
                seen += 1
                assert key.startswith(role + "_"), f"{name}: {role} is given {key}"
                text = json.dumps(value)
                assert HANDOVER.search(text), (
                    f"{name}: {key} is not a handover from the host's facts or another role: {text}"
                )
                assert not any(text.count(f"{{{{ {p}") for p in (f"{role}_",)), text
    assert seen >= 5, "the serving handovers (model, release, upstreams) are missing"


def _ansible(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / args[0]
    return subprocess.run(
        [str(exe), *args[1:]], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


def test_the_inventory_overrides_one_variable_of_every_role(tmp_path: Path) -> None:
    """Real Ansible precedence: each role's defaults are loaded, the inventory sets one
    variable of each, and every role sees the inventory's value; the project-wide plan
    (llmhost_serving) still feeds what the inventory did not set."""
    inv = tmp_path / "inventories" / "override"
    shutil.copytree(
        ROOT / "inventories" / "lab" / "group_vars",
        inv / "group_vars",
        ignore=shutil.ignore_patterns("vault.yml"),
    )
    (inv / "group_vars" / "all" / "override.yml").write_text(
        yaml.safe_dump(OVERRIDES), encoding="utf-8"
    )
    (inv / "group_vars" / "all" / "vault.yml").write_text(
        yaml.safe_dump(
            {
                "vault_llmhost_vllm_api_key": "k" * 40,
                "vault_gateway_keys": {"lab_eval": "e" * 40, "lab_load": "l" * 40},
                "vault_backup_password": "b" * 40,
            }
        ),
        encoding="utf-8",
    )
    (inv / "hosts.yml").write_text(
        yaml.safe_dump(
            {
                "all": {
                    "children": {"llmhost": {"hosts": {"probe": {"ansible_connection": "local"}}}}
                }
            }
        ),
        encoding="utf-8",
    )
    probe_vars = [
        *OVERRIDES,
        "vllm_max_model_len",
        "vllm_served_model_name",
        "model_store_source",
        "gateway_tenants",
    ]
    playbook = [
        {
            "name": "Every role loaded; only the probe runs",
            "hosts": "llmhost",
            "gather_facts": False,
            "roles": [{"role": r, "tags": [r]} for r in ROLES],
            "tasks": [
                {
                    "name": "probe",
                    "ansible.builtin.debug": {"msg": {v: f"{{{{ {v} }}}}" for v in probe_vars}},
                    "tags": ["probe"],
                }
            ],
        }
    ]
    (tmp_path / "probe.yml").write_text(yaml.safe_dump(playbook, sort_keys=False), encoding="utf-8")
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_ROLES_PATH=str(ROOT / "roles"),
        ANSIBLE_COLLECTIONS_PATH=str(ROOT / "collections"),
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
        ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks",
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
    )
    out = _ansible(
        "ansible-playbook",
        "-i",
        str(inv),
        str(tmp_path / "probe.yml"),
        "--tags",
        "probe",
        "--skip-tags",
        "always",
        env=env,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    result, _ = json.JSONDecoder().raw_decode(out.stdout[out.stdout.index("{\n") :])
    tasks = result["plays"][0]["tasks"]
    msg = next(t for t in tasks if t["task"]["name"] == "probe")["hosts"]["probe"]["msg"]
    for key, value in OVERRIDES.items():
        assert msg[key] == value, f"{key}: the role sees {msg[key]!r}, the inventory set {value!r}"
    lab = yaml.safe_load(
        (ROOT / "inventories/lab/group_vars/all/llmhost.yml").read_text(encoding="utf-8")
    )
    # The release the lab serves by default: its model and serving limits reach the roles.
    release = lab["llmhost_releases"][lab["llmhost_release"]]
    assert msg["vllm_max_model_len"] == release["serving"]["max_model_len"]
    assert msg["vllm_served_model_name"] == release["model"]["name"]
    assert msg["model_store_source"] == release["model"]["source"]
    assert [t["key"] for t in msg["gateway_tenants"]] == ["e" * 40, "l" * 40]


@pytest.mark.parametrize("inventory", ["lab", "rented-gpu.example"])
def test_playbooks_pass_a_syntax_check(inventory: str) -> None:
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    vault = ROOT / "inventories" / "rented-gpu.example" / "vault-pass.example"
    # Every playbook in one run (ansible-playbook checks each in turn and names it).
    args = ["ansible-playbook", "-i", f"inventories/{inventory}", "--syntax-check"]
    if inventory != "lab":
        args += ["--vault-password-file", str(vault)]
    out = _ansible(*args, *map(str, PLAYBOOKS), env=env, cwd=ROOT)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    checked = re.findall(r"^playbook: (\S+)$", out.stdout, re.M)
    assert checked == [str(book) for book in PLAYBOOKS], checked
