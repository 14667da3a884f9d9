"""scripts/llmhost.py, the one entry point: one run = one run id = one evidence bundle
holding ansible-runner's artifacts, ansible.log, run_ledger.json, secrets_scan.json and
MANIFEST.sha256 (which verify_evidence accepts); an existing bundle is refused; a secret
in a host's log fails the run; neither the vault password nor any secret reaches the
bundle; `status --json` has its shape.

The runs are real ansible-runner runs against a throwaway inventory of one host with a
local connection, in a throwaway repository root (LLMHOST_ROOT) that holds the real
run_context.yml, host_logs.yml and status.yml next to tiny stand-ins for the playbooks
of the actions (deploy.yml, eval.yml, evidence.yml)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from loading import load_module

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
VAULT_PASSWORD = "entryPointVaultPassw0rd"  # noqa: S105 (a test password)
API_KEY = "entryPointApiKey0123456789abcdef"
TENANT_KEY = "entryPointTenantKey0123456789ab"
VAULTED = "entryPointVaultedToken0123456789"
HF_TOKEN = "hf_" + "EntryPointTokenAbCdEfGhIjKlMnOpQr"
ENV_SECRET = "entryPointEnvPassword0123456"  # noqa: S105 (a test password)


llmhost = load_module("llmhost_entry_point", ROOT / "scripts" / "llmhost.py")
verify_evidence = load_module("llmhost_verify_evidence", ROOT / "scripts" / "verify_evidence.py")

ANSIBLE_CFG = f"""[defaults]
collections_path = {ROOT / "collections"}
callbacks_enabled = ansible.posix.profile_tasks, llmhost.core.evidence_ledger
retry_files_enabled = false
interpreter_python = auto_silent
fact_caching = memory
nocows = true
"""
WORK_PLAY = {
    "name": "Work on the host",
    "hosts": "llmhost",
    "gather_facts": False,
    "tasks": [
        {
            "name": "Write evidence",
            "ansible.builtin.copy": {
                "content": "first run\n",
                "dest": "{{ llmhost_evidence_dir }}/first_run.md",
                "mode": "0644",
            },
            "delegate_to": "localhost",
        },
        {
            "name": "Use the key (no_log)",
            "ansible.builtin.debug": {"msg": "{{ llmhost_vllm_api_key }}"},
            "no_log": True,
        },
        {
            "name": "Fail when asked",
            "ansible.builtin.fail": {"msg": "asked to fail"},
            "when": "entry_point_fail | default(false) | bool",
        },
    ],
}
CONTEXT = {"name": "Run context", "ansible.builtin.import_playbook": "run_context.yml"}
HOST_LOGS = {"name": "Host logs", "ansible.builtin.import_playbook": "host_logs.yml"}
STUBS: dict[str, list[dict[str, Any]]] = {
    "deploy.yml": [CONTEXT, WORK_PLAY, HOST_LOGS],
    "eval.yml": [CONTEXT, WORK_PLAY],
    "evidence.yml": [
        CONTEXT,
        {
            "name": "Evidence",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Write the index",
                    "ansible.builtin.copy": {
                        "content": "index\n",
                        "dest": "{{ llmhost_evidence_dir }}/index.md",
                        "mode": "0644",
                    },
                }
            ],
        },
    ],
}


def _vaulted(value: str, password: str) -> str:
    """An inline-vaulted YAML value (what ansible-vault encrypt_string prints)."""
    from ansible.parsing.vault import VaultLib, VaultSecret

    text = VaultLib([("default", VaultSecret(password.encode()))]).encrypt(value).decode()
    return "!vault |\n" + "".join(f"  {line}\n" for line in text.splitlines())


def _layout(root: Path) -> Path:
    """A repository root with ansible.cfg, the playbooks and inventories/tiny."""
    (root / "playbooks").mkdir(parents=True)
    for name in ("run_context.yml", "host_logs.yml", "status.yml"):
        shutil.copy(ROOT / "playbooks" / name, root / "playbooks" / name)
    for name, plays in STUBS.items():
        text = "---\n" + yaml.safe_dump(plays, sort_keys=False)
        (root / "playbooks" / name).write_text(text, encoding="utf-8")
    (root / "ansible.cfg").write_text(ANSIBLE_CFG, encoding="utf-8")
    vault = root / "vault.pass"
    vault.write_text(VAULT_PASSWORD, encoding="utf-8")
    vault.chmod(0o600)
    inventory = root / "inventories" / "tiny"
    (inventory / "group_vars" / "all").mkdir(parents=True)
    hosts = {
        "all": {
            "children": {
                "llmhost": {
                    "hosts": {
                        "tinyhost": {
                            "ansible_connection": "local",
                            "ansible_become": False,
                            "ansible_python_interpreter": sys.executable,
                        }
                    }
                },
                "llmhost_replicas": {"hosts": {"tinyhost": None}},
                "llmhost_gateway": {"hosts": {"tinyhost": None}},
            }
        }
    }
    (inventory / "hosts.yml").write_text(yaml.safe_dump(hosts), encoding="utf-8")
    plain = {
        "llmhost_vllm_api_key": API_KEY,
        "llmhost_gateway_tenants": [{"name": "team_a", "key": TENANT_KEY}],
        "llmhost_gpu_plan": {"hourly_budget": 2.5, "hard_stop_time": "2030-01-01T18:00:00Z"},
    }
    text = yaml.safe_dump(plain) + "llmhost_hf_token: " + _vaulted(VAULTED, VAULT_PASSWORD)
    (inventory / "group_vars" / "all" / "llmhost.yml").write_text(text, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _layout(tmp_path_factory.mktemp("repo"))


def _env(mp: pytest.MonkeyPatch, root: Path) -> None:
    for name in list(os.environ):
        if name.startswith(("LLMHOST_", "ANSIBLE_")) or name in ("HF_TOKEN",):
            mp.delenv(name)
    mp.setenv("LLMHOST_ROOT", str(root))
    mp.setenv("LLMHOST_VAULT_PASSWORD_FILE", str(root / "vault.pass"))


def _bundles(root: Path) -> list[Path]:
    return sorted(p for p in (root / "evidence" / "tiny").glob("*") if p.is_dir())


@pytest.fixture(scope="module")
def deploy(repo: Path) -> Iterator[tuple[int, Path]]:
    """One deploy run, with a token and a password in the environment."""
    with pytest.MonkeyPatch.context() as mp:
        _env(mp, repo)
        mp.setenv("HF_TOKEN", HF_TOKEN)
        mp.setenv("ENTRY_POINT_DB_PASSWORD", ENV_SECRET)
        mp.chdir(repo)
        code = llmhost.main(["deploy", "-i", "inventories/tiny", "-e", "entry_point_note=hello"])
        (bundle,) = _bundles(repo)
        yield code, bundle


def test_one_run_is_one_sealed_bundle_with_runner_artifacts(deploy: tuple[int, Path]) -> None:
    code, bundle = deploy
    assert code == 0
    top = sorted(p.name for p in bundle.iterdir())
    assert top == [
        "MANIFEST.sha256",
        "ansible.log",
        "command",
        "first_run.md",
        "job_events",
        "rc",
        "run_ledger.json",
        "secrets_scan.json",
        "status",
        "stderr",
        "stdout",
    ]
    assert any((bundle / "job_events").iterdir())
    assert (bundle / "rc").read_text(encoding="utf-8") == "0"
    assert (bundle / "status").read_text(encoding="utf-8") == "successful"
    assert "TASKS RECAP" in (bundle / "stdout").read_text(encoding="utf-8")  # profile_tasks
    assert verify_evidence.main([str(bundle)]) == 0
    listed = (bundle / "MANIFEST.sha256").read_text(encoding="utf-8")
    assert "  secrets_scan.json\n" in listed and "  rc\n" in listed
    ledger = json.loads((bundle / "run_ledger.json").read_text(encoding="utf-8"))
    assert ledger["run_id"] == bundle.name
    assert ledger["invocations"][0]["extra_vars"] == {"entry_point_note": "hello"}
    assert ledger["invocations"][0]["inventory"]["name"] == "tiny"


def test_runner_private_data_and_host_logs_are_gone(deploy: tuple[int, Path], repo: Path) -> None:
    _, bundle = deploy
    assert not (repo / ".cache" / "runner" / bundle.name).exists()
    assert not (repo / ".cache" / "hostlogs" / bundle.name).exists()


def test_the_scan_covers_bundle_and_host_logs(deploy: tuple[int, Path]) -> None:
    _, bundle = deploy
    scan = json.loads((bundle / "secrets_scan.json").read_text(encoding="utf-8"))
    assert scan["verdict"] == "clean" and scan["findings"] == [] and scan["errors"] == []
    assert scan["host_log_hosts"] == ["tinyhost"] and scan["host_log_files"] == 1
    # vault password, vllm key, tenant key, vaulted token, $HF_TOKEN
    assert scan["secrets"] == 5
    assert scan["bundle_files"] == len(list(bundle.rglob("*"))) - 3  # not MANIFEST, scan, dir


def test_no_secret_and_no_vault_password_in_the_bundle(deploy: tuple[int, Path]) -> None:
    _, bundle = deploy
    for path in bundle.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for secret in (VAULT_PASSWORD, API_KEY, TENANT_KEY, VAULTED, HF_TOKEN, ENV_SECRET):
                assert secret.encode() not in data, (path, secret)
    command = json.loads((bundle / "command").read_text(encoding="utf-8"))
    argv = command["command"]
    assert argv[argv.index("--vault-password-file") + 1].endswith("vault.pass")
    assert not any("entry_point_note" in arg for arg in argv)  # -e values go by a 0600 file
    assert command["env"]["HF_TOKEN"] == llmhost.REDACTED
    assert command["env"]["ENTRY_POINT_DB_PASSWORD"] == llmhost.REDACTED
    assert command["env"]["ANSIBLE_HOST_KEY_CHECKING"] == "True"  # runner would turn it off
    assert command["env"]["LLMHOST_RUN_ID"] == bundle.name


def test_an_existing_bundle_is_refused(
    deploy: tuple[int, Path], repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, bundle = deploy
    before = (bundle / "MANIFEST.sha256").read_bytes()
    _env(monkeypatch, repo)
    monkeypatch.chdir(repo)
    monkeypatch.setenv("LLMHOST_RUN_ID", bundle.name)
    assert llmhost.main(["deploy", "-i", "inventories/tiny"]) == 2
    assert (bundle / "MANIFEST.sha256").read_bytes() == before
    monkeypatch.setenv("LLMHOST_RUN_ID", "../escape")
    assert llmhost.main(["deploy", "-i", "inventories/tiny"]) == 2
    monkeypatch.delenv("LLMHOST_RUN_ID")
    assert llmhost.main(["deploy", "-i", "inventories/tiny", "-e", "my_api_key=abc"]) == 2
    assert _bundles(repo) == [bundle]


def test_a_secret_in_a_host_log_fails_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _layout(tmp_path / "repo")
    fake = tmp_path / "bin" / "journalctl"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\necho 'nginx: Authorization: Bearer {TENANT_KEY}'\n")
    fake.chmod(0o755)
    _env(monkeypatch, root)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.chdir(root)
    assert llmhost.main(["deploy", "-i", "inventories/tiny"]) == 1
    (bundle,) = _bundles(root)
    scan = json.loads((bundle / "secrets_scan.json").read_text(encoding="utf-8"))
    assert scan["verdict"] == "leak"
    assert scan["findings"] == [
        {
            "where": "host logs",
            "path": "tinyhost/journal.txt",
            "secret": "inventory tiny: llmhost_gateway_tenants[0].key",
            "form": "as is",
        }
    ]
    assert verify_evidence.main([str(bundle)]) == 0  # sealed after the scan all the same
    out = capsys.readouterr().out
    assert "LEAK in the host logs: tinyhost/journal.txt" in out and TENANT_KEY not in out
    assert not (root / ".cache" / "hostlogs" / bundle.name).exists()


def test_a_failed_run_is_sealed_and_its_host_logs_scanned_all_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _layout(tmp_path / "repo")
    _env(monkeypatch, root)
    monkeypatch.chdir(root)
    code = llmhost.main(["eval", "-i", "inventories/tiny", "-e", "entry_point_fail=true"])
    assert code == 2  # ansible-playbook's rc for a failed host
    (bundle,) = _bundles(root)
    assert (bundle / "status").read_text(encoding="utf-8") == "failed"
    # ansible skips the playbooks after a failed one (host_logs.yml, evidence.yml): the
    # entry point fetches the host's logs once more, outside the run's record, and seals.
    assert not (bundle / "index.md").exists()
    scan = json.loads((bundle / "secrets_scan.json").read_text(encoding="utf-8"))
    assert scan["verdict"] == "clean" and scan["errors"] == []
    assert scan["host_logs_refetched"] == ["tinyhost"] and scan["host_log_hosts"] == ["tinyhost"]
    ledger = json.loads((bundle / "run_ledger.json").read_text(encoding="utf-8"))
    assert ledger["playbooks"] == ["playbooks/eval.yml"]
    assert verify_evidence.main([str(bundle)]) == 0
    assert not (root / ".cache" / "runner" / bundle.name).exists()


# --- status ------------------------------------------------------------------------


def test_status_json_shape(
    deploy: tuple[int, Path],
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, bundle = deploy
    _env(monkeypatch, repo)
    monkeypatch.chdir(repo)
    capsys.readouterr()
    assert llmhost.main(["status", "-i", "inventories/tiny", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert not (repo / "run_ledger.json").exists(), "status is not a run: no ledger anywhere"
    assert report["schema"] == "llmhost.status/v1" and report["inventory"] == "tiny"
    assert report["last_run"] == {
        "run_id": bundle.name,
        "bundle": f"evidence/tiny/{bundle.name}",
        "started": report["last_run"]["started"],
        "status": "successful",
        "rc": 0,
        "sealed": True,
    }
    host = report["hosts"]["tinyhost"]
    assert set(host) == {"units", "units_error", "vllm", "tenants", "cost", "hard_stop", "error"}
    assert set(host["vllm"]) == {
        "release",
        "previous",
        "package",
        "version",
        "model",
        "revision",
        "model_path",
    }
    assert host["cost"]["hourly_budget"] == 2.5
    assert host["hard_stop"]["time"] == "2030-01-01T18:00:00Z"
    assert host["hard_stop"]["source"] == "gpu plan" and host["hard_stop"]["seconds_left"] > 0
    assert not (repo / ".cache" / "runner").exists() or not any(
        (repo / ".cache" / "runner").iterdir()
    )
    assert _bundles(repo) == [bundle]  # a status check leaves no bundle


SHOW = """Id=vllm.service
LoadState=loaded
ActiveState=active
SubState=running
StateChangeTimestamp=@1796371200
ActiveEnterTimestamp=@1796371200
NextElapseUSecRealtime=

Id=nginx.service
LoadState=not-found
ActiveState=inactive
SubState=dead
StateChangeTimestamp=
ActiveEnterTimestamp=
NextElapseUSecRealtime=

Id=llmhost-hard-stop.timer
LoadState=loaded
ActiveState=active
SubState=waiting
StateChangeTimestamp=Fri 2026-12-04 08:00:00 UTC
ActiveEnterTimestamp=Fri 2026-12-04 08:00:00 UTC
NextElapseUSecRealtime=@1796385600
"""


def test_status_of_a_serving_host() -> None:
    now = datetime.fromtimestamp(1796371200 + 2 * 3600, UTC)  # vLLM active for 2 hours
    raw = {
        "units": {"rc": "0", "stdout": SHOW, "stderr": ""},
        "vllm": {"unit": "vllm.service", "current": "r2", "previous": "r1", "model": "m"},
        "tenants": ["team_b", "team_a"],
        "hourly_budget": "2.5",
        "hard_stop_time": "",
    }
    info = llmhost.host_status(raw, now, None)
    assert [u["unit"] for u in info["units"]] == [
        "vllm.service",
        "nginx.service",
        "llmhost-hard-stop.timer",
    ]
    assert info["units"][2]["since"] == "2026-12-04T08:00:00Z"
    assert info["cost"] == {
        "hourly_budget": 2.5,
        "since": "2026-12-04T08:00:00Z",
        "basis": "vllm active since",
        "hours": 2.0,
        "so_far": 5.0,
    }
    assert info["hard_stop"]["source"] == "hard-stop timer"
    assert info["hard_stop"]["seconds_left"] == 2 * 3600
    assert info["tenants"] == ["team_a", "team_b"] and info["vllm"]["release"] == "r2"
    report = {
        "inventory": "x",
        "inventory_path": "inventories/x",
        "checked_at": "2026-12-04T10:00:00Z",
        "last_run": None,
        "hosts": {"gpu-1": info, "gpu-2": {"error": "unreachable"}},
    }
    table = llmhost.render_status(report)
    assert "nginx.service" in table and "not installed" in table
    assert "cost so far    5.00 = 2.00 h" in table and "ERROR: unreachable" in table


# --- inventory secrets -------------------------------------------------------------


def test_inventory_secrets_by_name_and_vault(repo: Path) -> None:
    inventory = llmhost.read_inventory(repo / "inventories" / "tiny", repo / "vault.pass")
    assert inventory.error is None and inventory.hosts("llmhost") == {"tinyhost"}
    found = {s.label: s.value for s in inventory.secrets}
    assert found == {
        "inventory tiny: llmhost_vllm_api_key": API_KEY,
        "inventory tiny: llmhost_gateway_tenants[0].key": TENANT_KEY,
        "inventory tiny: llmhost_hf_token (vaulted)": VAULTED,
    }
    data = {
        "_meta": {
            "hostvars": {
                "h": {
                    "ansible_ssh_private_key_file": "~/.ssh/id",
                    "llmhost_api_key": "{{ lookup('password', 'x') }}",
                    "llmhost_gateway_tenant_keys": {"a": "keyOfTenantA123"},
                    "max_tokens": 64,
                }
            }
        }
    }
    values = {s.value for s in llmhost.secrets_lib.secrets_from_inventory(data, [])}
    assert values == {"keyOfTenantA123"}


def test_a_wrong_vault_password_makes_the_scan_incomplete(repo: Path, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.pass"
    wrong.write_text("not-the-password", encoding="utf-8")
    inventory = llmhost.read_inventory(repo / "inventories" / "tiny", wrong)
    assert inventory.error and "cannot read the secrets" in inventory.error


# --- make ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("deploy", "scripts/llmhost.py deploy -i inventories/x --check"),
        ("status", "scripts/llmhost.py status -i inventories/x --check"),
        ("teardown", "scripts/llmhost.py teardown -i inventories/x --check"),
    ],
)
def test_make_targets_call_the_entry_point(target: str, expected: str) -> None:
    out = subprocess.run(
        ["make", "-n", target, "INVENTORY=inventories/x", "ARGS=--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert expected in out.stdout


def test_make_lab_runs_the_lab_through_the_entry_point() -> None:
    out = subprocess.run(
        ["make", "-n", "lab"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    assert "scripts/llmhost.py lab -i inventories/lab" in out.stdout
    assert not (ROOT / "scripts" / "run-lab.sh").exists()


def test_the_new_playbooks_parse() -> None:
    playbooks = [ROOT / "playbooks" / p for p in ("deploy.yml", "host_logs.yml", "status.yml")]
    out = subprocess.run(
        [str(BIN / "ansible-playbook"), "--syntax-check", "-i", "localhost,", *map(str, playbooks)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")},
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
