"""Partial runs on a converged host, the way an operator runs them over SSH.

A second lab host (its own container, SSH on 127.0.0.1:2223, gateway on 127.0.0.1:8444;
the user's lab on 2222/8443 is left alone) is trained and served with the lab inventory,
then, on that converged host:

- site.yml again changes nothing (changed=0; every evidence file goes to the bundle);
- serve.yml --tags <role> works for every role and phase tag, changed=0;
- serve.yml --check --diff finishes, changed=0 (read-only probes run in check mode);
- eval.yml alone evaluates through the gateway, reading its certificate from the host;
- status answers from the host's local facts.

Every run writes its evidence into a throwaway folder, never into evidence/.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
INVENTORY = ROOT / "inventories" / "lab"
VAULT_PASS = ROOT / ".cache" / "vault" / "lab.pass"
LAB_ENV = {
    "LLMHOST_LAB_NAME": "llmhost-partial",
    "LLMHOST_LAB_SSH_PORT": "2223",
    "LLMHOST_LAB_GATEWAY_PORT": "8444",
}
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
# Every tag serve.yml offers: one per role, plus the guard of the pre_tasks.
SERVE_TAGS = [
    "preflight",
    "teardown_guard",
    "nvidia_driver",
    "model_store",
    "vllm",
    "gateway",
    "monitoring",
]

pytestmark = [pytest.mark.slow, pytest.mark.lab]


def _labhost(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "labhost.sh"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


@pytest.fixture(scope="module")
def lab() -> Iterator[dict[str, str]]:
    env = {**os.environ, **LAB_ENV, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    _labhost(env, "down")
    up = _labhost(env, "up")
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        yield env
    finally:
        _labhost(env, "down")


def _play(
    env: dict[str, str], bundle: Path, playbook: str, *args: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, dict[str, int]]]:
    run_env = {
        **env,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_VAULT_PASSWORD_FILE": str(VAULT_PASS),
        "LLMHOST_EVIDENCE_DIR": str(bundle),
        "ANSIBLE_CALLBACKS_ENABLED": "llmhost.core.evidence_ledger",
        "ANSIBLE_NOCOLOR": "1",
    }
    run_env.pop("LLMHOST_RUN_ID", None)
    done = subprocess.run(
        [
            str(BIN / "ansible-playbook"),
            "-i",
            str(INVENTORY),
            str(ROOT / "playbooks" / playbook),
            *args,
        ],
        env=run_env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    recap = {
        m[1]: {"ok": int(m[2]), "changed": int(m[3]), "unreachable": int(m[4]), "failed": int(m[5])}
        for m in RECAP.finditer(done.stdout)
    }
    return done, recap


def _tail(done: subprocess.CompletedProcess[str]) -> str:
    return "\n".join(done.stdout.splitlines()[-60:]) + done.stderr[-3000:]


def _changed_tasks(stdout: str) -> list[str]:
    task = ""
    out = []
    for line in stdout.splitlines():
        if line.startswith("TASK ["):
            task = line
        elif line.startswith("changed:"):
            out.append(task)
    return out


@pytest.fixture(scope="module")
def converged(lab: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Train the mini GPT-2 (a short CPU run) and serve it: the converged host."""
    bundle = tmp_path_factory.mktemp("converge")
    train, _ = _play(lab, bundle, "train.yml", "-e", "mini_gpt2_training_steps=20")
    assert train.returncode == 0, _tail(train)
    site, recap = _play(lab, bundle, "site.yml")
    assert site.returncode == 0, _tail(site)
    assert recap["llmhost-lab"]["failed"] == 0
    return lab


def test_site_again_changes_nothing_on_the_host(converged: dict[str, str], tmp_path: Path) -> None:
    done, recap = _play(converged, tmp_path, "site.yml")
    assert done.returncode == 0, _tail(done)
    assert recap["llmhost-lab"]["changed"] == 0, _changed_tasks(done.stdout)
    # The evidence still reached the bundle, from the control node.
    for name in (
        "environment_report.json",
        "api_smoke_test.json",
        "gateway_report.json",
        "model_store.json",
        "monitoring_targets.json",
        "nvidia_driver_report.json",
    ):
        assert (tmp_path / name).is_file(), name
    assert json.loads((tmp_path / "api_smoke_test.json").read_text(encoding="utf-8"))["passed"]


@pytest.mark.parametrize("tag", SERVE_TAGS)
def test_serve_with_one_tag_works_on_a_converged_host(
    converged: dict[str, str], tmp_path: Path, tag: str
) -> None:
    done, recap = _play(converged, tmp_path, "serve.yml", "--tags", tag)
    assert done.returncode == 0, _tail(done)
    assert recap["llmhost-lab"]["changed"] == 0, _changed_tasks(done.stdout)
    assert recap["llmhost-lab"]["ok"] > 1, "the tag selected nothing"


def test_check_diff_on_a_converged_host_changes_nothing(
    converged: dict[str, str], tmp_path: Path
) -> None:
    done, recap = _play(converged, tmp_path, "serve.yml", "--check", "--diff")
    assert done.returncode == 0, _tail(done)
    assert recap["llmhost-lab"]["changed"] == 0, _changed_tasks(done.stdout)
    assert not list(tmp_path.glob("api_smoke_test.json")), "check mode wrote this run's evidence"


def test_eval_alone_reads_the_certificate_from_the_host(
    converged: dict[str, str], tmp_path: Path
) -> None:
    # The model trained for a few steps only: what counts here is that every case went
    # through the gateway (200s over TLS, trusting the certificate read from the host),
    # not its answers, so the quality gate is opened for this run.
    gate = {"evaluation_gate_min_pass_rate": 0, "evaluation_gate_must_pass": []}
    done, _ = _play(converged, tmp_path, "eval.yml", "-e", json.dumps(gate))
    assert done.returncode == 0, _tail(done)
    summary = json.loads((tmp_path / "eval_summary.json").read_text(encoding="utf-8"))
    assert summary["total"] > 0
    assert summary["request_errors"] == [], summary["request_errors"]
    assert (
        (tmp_path / "gateway_certificate.pem")
        .read_text(encoding="utf-8")
        .startswith("-----BEGIN CERTIFICATE-----")
    )
