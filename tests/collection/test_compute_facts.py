"""llmhost.core.compute_facts: helper functions directly, then the module run for real
through ansible-playbook (this machine has no GPU; a fake nvidia-smi prints the H100
captures) together with the filters called the way the roles call them."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible_collections.llmhost.core.plugins.module_utils.nvidia_smi import (
    CSV_FORMAT_ARG,
    QUERY_COMPUTE_APPS_ARG,
    QUERY_COMPUTE_CAP_ARG,
    QUERY_GPU_ARG,
    lowest_compute_cap,
    parse_compute_caps,
)
from ansible_collections.llmhost.core.plugins.modules import compute_facts

REPO_ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS_DIR = REPO_ROOT / "collections"
DATA_DIR = REPO_ROOT / "tests" / "data" / "nvidia-smi" / "h100"
PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
FAKE_TORCH = {
    "present": True,
    "version": "2.11.0+cu130",
    "cuda": "13.0",
    "cuda_available": True,
    "device_count": 1,
    "device_name": "NVIDIA H100 80GB HBM3",
}


def _script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body, encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def make_fake_nvidia_smi(folder: Path) -> Path:
    """An nvidia-smi that answers exactly the calls the module makes with the captures."""
    folder.mkdir(parents=True, exist_ok=True)
    return _script(
        folder / "nvidia-smi",
        f"""d='{DATA_DIR}'
case "$*" in
  '{QUERY_GPU_ARG} {CSV_FORMAT_ARG}') cat "$d/query-gpu.csv" ;;
  '{QUERY_COMPUTE_APPS_ARG} {CSV_FORMAT_ARG}') cat "$d/query-compute-apps-idle.csv" ;;
  '{QUERY_COMPUTE_CAP_ARG} {CSV_FORMAT_ARG}') echo 9.0 ;;
  '-L') cat "$d/nvidia-smi-L.txt" ;;
  '-q') cat "$d/nvidia-smi-q.txt" ;;
  '') cat "$d/nvidia-smi.txt" ;;
  *) echo "fake nvidia-smi: unexpected arguments: $*" >&2; exit 2 ;;
esac
""",
    )


def make_fake_python(folder: Path) -> Path:
    """An 'interpreter' that answers the torch probe like the H100 host's venv."""
    folder.mkdir(parents=True, exist_ok=True)
    line = compute_facts.PROBE_MARKER + json.dumps(FAKE_TORCH)
    return _script(
        folder / "fake-python",
        f"""[ "$1" = "-c" ] || {{ echo "expected -c" >&2; exit 2; }}
echo 'some import warning on stdout'
echo '{line}'
""",
    )


def make_broken_nvidia_smi(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return _script(
        folder / "nvidia-smi-broken",
        "echo \"NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA "
        'driver. Make sure that the latest NVIDIA driver is installed and running."\nexit 9\n',
    )


def never(_name: str) -> str | None:
    return None


# --- helpers, called directly ---------------------------------------------------------------


def test_gpu_facts_from_the_fake_h100(tmp_path: Path) -> None:
    fake = make_fake_nvidia_smi(tmp_path)
    gpu = compute_facts.gpu_facts(str(fake), 10, never)
    assert gpu["present"] is True
    assert gpu["reason"] == ""
    assert gpu["count"] == 1
    assert gpu["driver_version"] == "580.159.04"
    assert gpu["cuda_version"] == "13.0"
    assert gpu["gpus"][0]["name"] == "NVIDIA H100 80GB HBM3"
    assert gpu["gpus"][0]["memory_total_mib"] == 81559
    assert gpu["compute_apps"] == []
    # Not a capture: the H100's capability (9.0) as nvidia-smi prints compute_cap.
    assert gpu["compute_capabilities"] == ["9.0"]
    assert gpu["compute_capability"] == "9.0"


def test_compute_caps_parse_and_the_lowest_wins() -> None:
    assert parse_compute_caps("9.0\n8.9\n") == ["9.0", "8.9"]
    assert parse_compute_caps("[N/A]\n") == [None]
    assert lowest_compute_cap(["9.0", "8.9", "10.0"]) == "8.9"
    assert lowest_compute_cap(["9.0", None]) is None  # one unknown: unknown, never guessed
    assert lowest_compute_cap(None) is None
    with pytest.raises(ValueError):
        parse_compute_caps("Field compute_cap is not a valid field\n")


def test_gpu_facts_old_driver_without_compute_cap(tmp_path: Path) -> None:
    fake = make_fake_nvidia_smi(tmp_path)
    text = fake.read_text(encoding="utf-8").replace("echo 9.0", "exit 2")
    fake.write_text(text, encoding="utf-8")
    gpu = compute_facts.gpu_facts(str(fake), 10, never)
    assert gpu["present"] is True
    assert gpu["compute_capability"] is None


def test_gpu_facts_missing_binary_is_not_an_error() -> None:
    gpu = compute_facts.gpu_facts("nvidia-smi", 10, never)
    assert gpu["present"] is False
    assert gpu["reason"].startswith("nvidia-smi not found")
    assert gpu["gpus"] == [] and gpu["count"] == 0
    assert gpu["compute_apps"] is None


def test_gpu_facts_failing_binary_reports_its_output(tmp_path: Path) -> None:
    broken = make_broken_nvidia_smi(tmp_path)
    gpu = compute_facts.gpu_facts(str(broken), 10, never)
    assert gpu["present"] is False
    assert "rc 9" in gpu["reason"]
    assert "couldn't communicate with the NVIDIA driver" in gpu["reason"]


def test_gpu_facts_unparsable_output(tmp_path: Path) -> None:
    odd = _script(tmp_path / "nvidia-smi", "echo 'something, else'\n")
    gpu = compute_facts.gpu_facts(str(odd), 10, never)
    assert gpu["present"] is False
    assert gpu["reason"].startswith("could not parse nvidia-smi output")


def test_run_command_times_out(tmp_path: Path) -> None:
    slow = _script(tmp_path / "slow", "sleep 5\n")
    rc, _out, err = compute_facts.run_command([str(slow)], 0.3)
    assert rc == compute_facts.RC_TIMEOUT
    assert "timed out" in err


def test_torch_facts_first_interpreter_with_torch_wins(tmp_path: Path) -> None:
    fake = make_fake_python(tmp_path)
    torch = compute_facts.torch_facts(["python-absent-xyz", str(fake)], 10, never)
    assert torch == {**FAKE_TORCH, "reason": "", "interpreter": str(fake)}


def test_torch_facts_without_torch_says_why(tmp_path: Path) -> None:
    broken = _script(tmp_path / "py", "echo boom >&2\nexit 1\n")
    torch = compute_facts.torch_facts(["python-absent-xyz", str(broken)], 10, never)
    assert torch["present"] is False
    assert "python-absent-xyz: not found" in torch["reason"]
    assert "boom" in torch["reason"]
    assert torch["device_count"] == 0


def test_torch_probe_runs_on_a_real_interpreter() -> None:
    data, why = compute_facts.probe_interpreter(sys.executable, 60)
    if data is None:
        assert "torch" in why
    else:
        assert isinstance(data["version"], str)


# --- the module and the filters through ansible-playbook ------------------------------------

GOOD_INPUTS: dict[str, Any] = {
    "route": "rented_gpu",
    "gpu_plan": {
        "goal": "serve the pinned model",
        "model": "Qwen2.5-0.5B-Instruct",
        "runtime": "vllm",
        "instance_vram": 80,
        "hourly_budget": 2.49,
        "hard_stop_time": "2026-11-23T06:00:00Z",
        "fallback_if_oom": "lower max_num_seqs",
        "evidence_to_copy_back": ["environment_report.json"],
        "shutdown_proof": "shutdown_proof.json",
    },
    "model": {
        "name": "Qwen2.5-0.5B-Instruct",
        "source": "hub",
        "repo_id": "Qwen/Qwen2.5-0.5B-Instruct",
        "revision": "7ae557604adf67be50417f59c2c2f167def9a775",
        "params": 494032768,
        "dtype": "bfloat16",
        "num_layers": 24,
        "hidden_size": 896,
        "num_attention_heads": 14,
        "num_kv_heads": 2,
        "max_context": 32768,
        "license": "Apache-2.0",
        "rejected_alternatives": [],
    },
    "serving": {
        "max_model_len": 4096,
        "max_num_seqs": 64,
        "gpu_memory_utilization": 0.9,
        "kv_cache_dtype": "auto",
    },
    "models_root": "/srv/llmhost/models",
}


def _play(fakes: Path, out: Path) -> list[dict[str, Any]]:
    module = "llmhost.core.compute_facts"
    absent = "nvidia-smi-absent-llmhost-test"
    path_with_fakes = f"{fakes}:{os.environ.get('PATH', '/usr/bin:/bin')}"
    tasks: list[dict[str, Any]] = [
        {"name": "defaults", module: {}, "register": "default_run"},
        {
            "name": "absent",
            module: {"nvidia_smi": absent, "python_interpreters": ["python-absent-xyz"]},
            "register": "absent",
        },
        {
            "name": "fake by option",
            module: {
                "nvidia_smi": str(fakes / "nvidia-smi"),
                "python_interpreters": ["python-absent-xyz", str(fakes / "fake-python")],
            },
            "register": "by_option",
        },
        {
            "name": "fake on PATH, check mode",
            module: {"python_interpreters": []},
            "environment": {"PATH": path_with_fakes},
            "check_mode": True,
            "register": "on_path",
        },
        {
            "name": "broken",
            module: {"nvidia_smi": str(fakes / "nvidia-smi-broken"), "python_interpreters": []},
            "register": "broken",
        },
        {
            "name": "filters as the roles call them",
            "ansible.builtin.set_fact": {
                "fit": (
                    "{{ good.model | llmhost.core.model_fit(good.serving, good.route, "
                    "by_option.gpu.gpus, 64000, good.gpu_plan.instance_vram) }}"
                ),
            },
        },
        {
            "name": "write the results",
            "ansible.builtin.copy": {
                "dest": str(out),
                "mode": "0600",
                "content": (
                    "{{ {'default_run': default_run, 'absent': absent, 'by_option': by_option,"
                    " 'on_path': on_path, 'broken': broken,"
                    " 'fit': fit} | to_json }}"
                ),
            },
        },
    ]
    return [
        {
            "name": "compute_facts",
            "hosts": "localhost",
            "gather_facts": False,
            "vars": {"good": GOOD_INPUTS},
            "tasks": tasks,
        }
    ]


@pytest.fixture(scope="module")
def played(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("compute_facts")
    fakes = work / "bin"
    make_fake_nvidia_smi(fakes)
    make_fake_python(fakes)
    make_broken_nvidia_smi(fakes)
    out = work / "out.json"
    play = work / "play.yml"
    play.write_text(yaml.safe_dump(_play(fakes, out), sort_keys=False), encoding="utf-8")
    env = dict(
        os.environ,
        ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS_DIR),
        ANSIBLE_CONFIG=str(work / "none.cfg"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOCALHOST_WARNING="0",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="0",
    )
    interpreter = f"ansible_python_interpreter={sys.executable}"
    result = subprocess.run(
        [PLAYBOOK, "-i", "localhost,", "-c", "local", play, "-e", interpreter],
        capture_output=True,
        text=True,
        env=env,
        cwd=work,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(out.read_text(encoding="utf-8"))


def test_module_with_defaults_on_this_machine(played: dict[str, Any]) -> None:
    run = played["default_run"]
    assert run["changed"] is False
    if shutil.which("nvidia-smi") is None:
        assert run["gpu"]["present"] is False
        assert "nvidia-smi not found" in run["gpu"]["reason"]
    assert set(run["torch"]) >= {"present", "interpreter", "version", "cuda", "cuda_available"}


def test_module_without_nvidia_smi_reports_no_gpu_with_a_reason(played: dict[str, Any]) -> None:
    run = played["absent"]
    assert run["changed"] is False
    assert "failed" not in run or run["failed"] is False
    assert run["gpu"]["present"] is False
    assert "nvidia-smi-absent-llmhost-test" in run["gpu"]["reason"]
    assert run["torch"]["present"] is False
    assert "python-absent-xyz: not found" in run["torch"]["reason"]


def test_module_with_the_fake_h100_by_option(played: dict[str, Any]) -> None:
    run = played["by_option"]
    gpu = run["gpu"]
    assert run["changed"] is False
    assert gpu["present"] is True
    assert gpu["count"] == 1
    assert gpu["driver_version"] == "580.159.04"
    assert gpu["cuda_version"] == "13.0"
    assert gpu["gpus"][0]["name"] == "NVIDIA H100 80GB HBM3"
    assert gpu["gpus"][0]["memory_total_mib"] == 81559
    assert gpu["gpus"][0]["persistence_mode"] is True
    assert gpu["compute_apps"] == []
    assert run["torch"]["present"] is True
    assert run["torch"]["device_name"] == "NVIDIA H100 80GB HBM3"
    assert run["torch"]["interpreter"].endswith("fake-python")


def test_module_finds_the_fake_on_path_in_check_mode(played: dict[str, Any]) -> None:
    run = played["on_path"]
    assert run["changed"] is False
    assert run["gpu"]["present"] is True
    assert run["gpu"]["nvidia_smi_path"].endswith("/bin/nvidia-smi")
    assert run["torch"]["present"] is False


def test_module_with_a_failing_nvidia_smi(played: dict[str, Any]) -> None:
    gpu = played["broken"]["gpu"]
    assert gpu["present"] is False
    assert "failed with rc 9" in gpu["reason"]
    assert "couldn't communicate with the NVIDIA driver" in gpu["reason"]


def test_filters_through_jinja(played: dict[str, Any]) -> None:
    assert played["fit"]["decision"] == "fits"
    assert played["fit"]["profile"]["hardware"]["description"].startswith(
        "1 x NVIDIA H100 80GB HBM3"
    )
