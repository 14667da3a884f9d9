"""The preflight role, run for real on localhost: bad plans are refused with the
variable's name before anything is written; a good CPU plan writes the reports."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from role_runner import ROOT, run_role

GOOD_MODEL: dict[str, Any] = {
    "name": "mini-gpt2-test",
    "source": "local",
    "params": 1400000,
    "dtype": "float32",
    "num_layers": 4,
    "hidden_size": 128,
    "num_attention_heads": 4,
    "num_kv_heads": 4,
    "max_context": 512,
    "license": "test",
}
GOOD_PLAN: dict[str, Any] = {
    "goal": "test",
    "model": "mini-gpt2-test",
    "runtime": "vllm",
    "instance_vram": 80,
    "hourly_budget": 2.5,
    "hard_stop_time": "2099-01-01T00:00:00Z",
    "fallback_if_oom": "lower max_num_seqs",
    "evidence_to_copy_back": ["environment_report.json"],
    "shutdown_proof": "shutdown_proof.json",
}


def _run(tmp_path: Path, **overrides: Any) -> subprocess.CompletedProcess[str]:
    extra: dict[str, Any] = {
        "preflight_route": "local_cpu",
        "preflight_model": GOOD_MODEL,
        "preflight_serving": {"max_model_len": 256, "max_num_seqs": 4},
        "preflight_gpu_plan": {},
        "preflight_run_id": "pytest",
        "preflight_evidence_dir": str(tmp_path / "bundle"),
        "preflight_models_root": str(tmp_path / "models"),
    }
    extra.update(overrides)
    return run_role(tmp_path, "preflight", extra)


BAD_CASES = [
    ({"preflight_route": "colab"}, "preflight_route"),
    (
        {"preflight_route": "rented_gpu", "preflight_gpu_plan": {**GOOD_PLAN, "hourly_budget": -3}},
        "preflight_gpu_plan.hourly_budget",
    ),
    (
        {"preflight_model": {**GOOD_MODEL, "source": "hub", "repo_id": "a/b", "revision": "main"}},
        "preflight_model.revision",
    ),
    (
        {
            "preflight_route": "rented_gpu",
            "preflight_gpu_plan": {**GOOD_PLAN, "hard_stop_time": "2001-01-01T00:00:00Z"},
        },
        "preflight_gpu_plan.hard_stop_time",
    ),
    # Two services of the host on one port, whichever roles they belong to.
    (
        {"vllm_port": 443, "gateway_listen_port": 443},
        "gateway_listen_port and vllm_port are all 443",
    ),
    (
        {"vllm_port": 9090, "monitoring_prometheus_port": 9090},
        "monitoring_prometheus_port and vllm_port",
    ),
    ({"gateway_status_port": 22}, "ansible_port (SSH) and gateway_status_port are all 22"),
    (
        {"gateway_http": "redirect", "vllm_port": 80},
        "gateway_http (port 80) and vllm_port are all 80",
    ),
    ({"vllm_port": 70000}, "vllm_port must be a port number 1-65535"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("overrides", "variable"), BAD_CASES, ids=[c[1] for c in BAD_CASES])
def test_bad_plan_refused_before_any_change(
    tmp_path: Path, overrides: dict[str, Any], variable: str
) -> None:
    result = _run(tmp_path, **overrides)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert variable in out, out
    assert not (tmp_path / "bundle").exists(), "a report was written before the refusal"


@pytest.mark.slow
def test_an_unquoted_yaml_stop_time_is_refused(tmp_path: Path) -> None:
    """hard_stop_time: 2099-01-01 00:00:00+00:00 unquoted (the vars file): a YAML timestamp,
    refused whatever it holds, as every reader of the hard stop refuses it."""
    plan = {**GOOD_PLAN, "hard_stop_time": datetime(2099, 1, 1, tzinfo=UTC)}
    result = _run(tmp_path, preflight_route="rented_gpu", preflight_gpu_plan=plan)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    flat = " ".join(out.split())
    assert (
        "preflight_gpu_plan.hard_stop_time: must be a quoted RFC 3339 (ISO 8601) time with "
        "seconds and a zone (Z or +HH:MM); this one is a YAML timestamp (unquoted), not a "
        "string, got 2099-01-01 00:00:00+00:00." in flat
    ), out
    assert not (tmp_path / "bundle").exists()


@pytest.mark.slow
def test_model_that_cannot_fit_is_refused_with_numbers(tmp_path: Path) -> None:
    huge = {
        **GOOD_MODEL,
        "name": "huge",
        "params": 10**13,
        "num_layers": 80,
        "hidden_size": 8192,
        "num_attention_heads": 64,
        "num_kv_heads": 8,
        "max_context": 8192,
    }
    result = _run(tmp_path, preflight_model=huge)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "does not fit" in out and "GiB" in out, out
    assert not (tmp_path / "bundle").exists()


@pytest.mark.slow
def test_good_cpu_plan_writes_and_fetches_reports(tmp_path: Path) -> None:
    result = _run(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    bundle = tmp_path / "bundle"
    report = json.loads((bundle / "environment_report.json").read_text(encoding="utf-8"))
    assert report["route"] == "local_cpu"
    assert report["gpu"]["present"] is False
    decision = json.loads((bundle / "model_runtime_decision.json").read_text(encoding="utf-8"))
    assert decision["decision"] == "cpu_only"
    assert decision["fits"] is True
    for name in ("compute_route.md", "gpu_plan.md", "model_decision.md", "environment_report.txt"):
        assert (bundle / name).stat().st_size > 50
    # preflight changes nothing on the host; the reports go straight into the bundle.
    assert "changed=0" in result.stdout, result.stdout
    # A second run for the same run id keeps the reports it finds (never overwritten).
    before = {p.name: p.read_bytes() for p in bundle.iterdir()}
    again = _run(tmp_path)
    assert again.returncode == 0
    assert "changed=0" in again.stdout, again.stdout
    assert {p.name: p.read_bytes() for p in bundle.iterdir()} == before


# --- secrets this repository publishes -------------------------------------------------

EXAMPLE = ROOT / "inventories" / "rented-gpu.example"
EXAMPLE_PASSWORD = EXAMPLE / "vault-pass.example"
LAB_PASSWORD = ROOT / ".cache" / "vault" / "lab.pass"


def _example_secrets() -> list[str]:
    """The example vault's values in clear (to prove none of them is ever printed)."""
    from ansible.parsing.vault import VaultLib, VaultSecret

    password = EXAMPLE_PASSWORD.read_text(encoding="utf-8").strip().encode()
    vault = VaultLib([("default", VaultSecret(password))])
    data = yaml.safe_load(vault.decrypt((EXAMPLE / "group_vars/all/secrets.yml").read_bytes()))
    keys = data.pop("vault_gateway_keys")
    return [*data.values(), *keys.values(), password.decode()]


def _run_inventory(
    tmp_path: Path, inventory: Path, extra: dict[str, Any], tags: str | None = None
) -> subprocess.CompletedProcess[str]:
    """preflight on the inventory's serving host, reached with a local connection."""
    vars_file = tmp_path / "vars.yml"
    vars_file.write_text(
        yaml.safe_dump(
            {
                "ansible_connection": "local",
                "ansible_become": False,
                "ansible_python_interpreter": sys.executable,
                "preflight_run_id": "pytest",
                "preflight_evidence_dir": str(tmp_path / "bundle"),
                "preflight_models_root": str(tmp_path / "models"),
                **extra,
            }
        ),
        encoding="utf-8",
    )
    play = tmp_path / "play.yml"
    play.write_text(
        yaml.safe_dump([{"name": "t", "hosts": "llmhost", "roles": ["preflight"]}]),
        encoding="utf-8",
    )
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        LLMHOST_FACTS_DIR=str(tmp_path / "facts.d"),
    )
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory)]
    cmd += ["--vault-password-file", str(EXAMPLE_PASSWORD), str(play), "-e", f"@{vars_file}"]
    if LAB_PASSWORD.is_file():  # the lab's generated vault (scripts/lab-init.sh), when present
        cmd += ["--vault-password-file", str(LAB_PASSWORD)]
    cmd += ["--tags", tags] if tags else []
    return subprocess.run(
        cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600, check=False
    )


@pytest.mark.slow
def test_a_copied_example_inventory_is_refused_before_any_change(tmp_path: Path) -> None:
    """cp -r inventories/rented-gpu.example inventories/my-gpu, keys unchanged: refused,
    naming each variable that holds a published secret (never the value), although the
    copy carries the example's opt-in along."""
    copy = tmp_path / "inventories" / "my-gpu"
    shutil.copytree(EXAMPLE, copy)
    result = _run_inventory(tmp_path, copy, {})
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "preflight refused the inputs before changing anything" in out, out
    assert "preflight_allow_published_secrets: is true, but this inventory" in out, out
    assert "Fix: remove llmhost_allow_published_secrets from your copy" in " ".join(out.split())
    flat = " ".join(out.split()).replace("''", "'")  # the YAML result, lines unwrapped
    for names, source in (
        ("llmhost_vllm_api_key, vault_llmhost_vllm_api_key", "vault_llmhost_vllm_api_key"),
        ("gateway_tenants[0].key, vault_gateway_keys.team_a", "vault_gateway_keys.team_a"),
        (
            "gateway_tenants[1].key, evaluation_api_key, vault_gateway_keys.loadtest",
            "vault_gateway_keys.loadtest",
        ),
        ("llmhost_hf_token, vault_hf_token", "vault_hf_token"),
    ):
        expected = (
            f"{names}: hold a secret this repository publishes "
            f"(inventories/rented-gpu.example/group_vars/all/secrets.yml: {source})"
        )
        assert expected in flat, flat
    assert "openssl rand -hex 24" in flat and "ansible-vault edit" in flat
    for secret in _example_secrets():
        assert secret not in out, "a published secret was printed"
    assert not (tmp_path / "bundle").exists(), "a report was written before the refusal"
    assert not (tmp_path / "facts.d").exists(), "a host fact was written before the refusal"


@pytest.mark.slow
def test_the_example_itself_is_accepted(tmp_path: Path) -> None:
    """The example opts in and is the example: its published secrets pass the gate
    (up to the input checks: its plan is an 80 GiB GPU this machine does not have)."""
    result = _run_inventory(tmp_path, EXAMPLE, {}, tags="preflight_validate")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "Refuse secrets this repository publishes" in out


@pytest.mark.slow
def test_the_example_without_its_opt_in_is_refused(tmp_path: Path) -> None:
    """What the opt-in lets through: the same gate, the same folder, no opt-in."""
    result = _run_inventory(
        tmp_path, EXAMPLE, {"llmhost_allow_published_secrets": False}, tags="preflight_validate"
    )
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "llmhost_vllm_api_key, vault_llmhost_vllm_api_key: hold a secret" in " ".join(
        out.split()
    )
    assert "preflight_allow_published_secrets: is true" not in out


@pytest.mark.slow
def test_the_lab_is_accepted(tmp_path: Path) -> None:
    """The lab with the keys scripts/lab-init.sh makes (random; stood in for here)."""
    keys = {
        "vault_llmhost_vllm_api_key": secrets.token_hex(20),
        "vault_gateway_keys": {
            "lab_eval": secrets.token_hex(20),
            "lab_load": secrets.token_hex(20),
        },
    }
    result = _run_inventory(tmp_path, ROOT / "inventories" / "lab", keys, tags="preflight_validate")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "Refuse secrets this repository publishes" in out
