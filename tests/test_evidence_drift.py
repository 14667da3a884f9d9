"""playbooks/evidence.yml's drift play for real (--tags evidence_drift), three runs of one
inventory against localhost: the first has no previous run, a changed unit is a
difference, an unchanged host is identical; the bundle holds host_state.json and the
drift report, the previous state comes from .cache/state/<inventory>/, never a bundle."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"


def _inventory(tmp: Path) -> Path:
    host = {
        "ansible_connection": "local",
        "ansible_become": False,
        "ansible_python_interpreter": sys.executable,
        "llmhost_inventory_name": "drifttest",
        "evidence_host_state_venv_roots": [str(tmp / "opt")],
        "evidence_host_state_units": [f"{tmp}/systemd/**"],
        "evidence_host_state_files": [f"{tmp}/etc/**"],
        "evidence_drift_state_dir": str(tmp / "state" / "drifttest"),
    }
    hosts = {
        "all": {
            "children": {
                "llmhost": {"hosts": {"drifthost": host}},
                "llmhost_replicas": {"hosts": {"drifthost": None}},
                "llmhost_gateway": {"hosts": {"drifthost": None}},
            }
        }
    }
    path = tmp / "hosts.yml"
    path.write_text(yaml.safe_dump(hosts), encoding="utf-8")
    return path


def _run(tmp: Path, run_id: str) -> dict[str, Any]:
    bundle = tmp / "evidence" / run_id
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        LLMHOST_RUN_ID=run_id,
        LLMHOST_EVIDENCE_DIR=str(bundle),
        LLMHOST_FACTS_DIR=str(tmp / "facts.d"),
    )
    cmd = [str(PLAYBOOK), "-i", str(_inventory(tmp)), str(ROOT / "playbooks" / "evidence.yml")]
    cmd += ["--tags", "evidence_drift"]
    out = subprocess.run(
        cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert (bundle / "host_state.json").is_file()
    assert (bundle / "drift_report.md").is_file()
    return json.loads((bundle / "drift_report.json").read_text(encoding="utf-8"))


def test_three_runs_of_one_inventory(tmp_path: Path) -> None:
    (tmp_path / "systemd").mkdir()
    unit = tmp_path / "systemd" / "vllm.service"
    unit.write_text("[Service]\nUser=vllm\n", encoding="utf-8")
    (tmp_path / "etc").mkdir()
    env_file = tmp_path / "etc" / "vllm.env"
    env_file.write_text("VLLM_API_KEY=drift-secret-value\n", encoding="utf-8")

    first = _run(tmp_path, "run-1")
    assert first["previous_run"] is None and first["identical"] is None
    cached = tmp_path / "state" / "drifttest" / "drifthost.json"
    assert json.loads(cached.read_text(encoding="utf-8"))["run_id"] == "run-1"

    unit.write_text("[Service]\nUser=root\n", encoding="utf-8")
    second = _run(tmp_path, "run-2")
    assert second["previous_run"] == "run-1"
    assert second["identical"] is False
    assert [d["key"] for d in second["differences"]] == [f"unit:{unit}"]

    third = _run(tmp_path, "run-3")
    assert third["previous_run"] == "run-2"
    assert third["identical"] is True, third["differences"]
    state = (tmp_path / "evidence" / "run-3" / "host_state.json").read_text(encoding="utf-8")
    assert "drift-secret-value" not in state
