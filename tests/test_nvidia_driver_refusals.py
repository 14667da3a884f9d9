"""The nvidia_driver role, run for real on localhost (no GPU here): bad input is refused
with the variable's name and the fix before anything is written, and the CPU route
skips with its reason recorded in nvidia_driver_report.json."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from role_runner import CaseResult, refused_vars, run_cases, run_role

MANAGED = [
    Path("/etc/apt/preferences.d/llmhost-nvidia-driver.pref"),
    Path("/etc/apt/sources.list.d/llmhost-nvidia-cuda.sources"),
    Path("/etc/modprobe.d/llmhost-blacklist-nouveau.conf"),
    Path("/etc/systemd/system/nvidia-persistenced.service.d/llmhost.conf"),
]


def _vars(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    extra: dict[str, Any] = {
        "nvidia_driver_route": "rented_gpu",
        "nvidia_driver_run_id": "refusal-test",
        "nvidia_driver_evidence_dir": str(tmp_path / "evidence"),
    }
    extra.update(overrides)
    return extra


def _run(tmp_path: Path, **overrides: Any) -> subprocess.CompletedProcess[str]:
    return run_role(tmp_path, "nvidia_driver", _vars(tmp_path, **overrides))


# Every rule of meta/argument_specs.yml and tasks/preflight.yml, refused with the variable.
CASES = [
    # Shapes and choices (meta/argument_specs.yml).
    ({"nvidia_driver_route": "gpu"}, "value of nvidia_driver_route must be one of: local_cpu"),
    ({"nvidia_driver_source": "ppa"}, "value of nvidia_driver_source must be one of: cuda_repo"),
    (
        {"nvidia_driver_kernel_modules": "nouveau"},
        "value of nvidia_driver_kernel_modules must be one of: auto, open, proprietary",
    ),
    ({"nvidia_driver_expected_gpu_count": "all"}, "nvidia_driver_expected_gpu_count"),
    # The branch and the version.
    ({"nvidia_driver_branch": "58x"}, "nvidia_driver_branch: must be a driver branch number"),
    ({"nvidia_driver_branch": "5800"}, "nvidia_driver_branch: must be a driver branch number"),
    ({"nvidia_driver_branch": True}, "nvidia_driver_branch: must be a driver branch number"),
    (
        {"nvidia_driver_version": "575.57.08"},
        "nvidia_driver_version: is not in branch 580, got '575.57.08'. Fix: use a 580.x version,"
        ' or set nvidia_driver_branch: "575".',
    ),
    ({"nvidia_driver_version": "580"}, "nvidia_driver_version: must be an exact driver version"),
    ({"nvidia_driver_version": "latest"}, "nvidia_driver_version: must be an exact driver version"),
    (
        {"nvidia_driver_branch": "510", "nvidia_driver_kernel_modules": "open"},
        "nvidia_driver_kernel_modules: open needs branch 515 or newer",
    ),
    # Toolkits.
    (
        {"nvidia_driver_install_cuda_toolkit": True, "nvidia_driver_cuda_toolkit_version": "13"},
        "nvidia_driver_cuda_toolkit_version: must be major.minor, got '13'",
    ),
    (
        {"nvidia_driver_install_cuda_toolkit": True, "nvidia_driver_cuda_toolkit_version": "10.2"},
        "nvidia_driver_cuda_toolkit_version: CUDA 10.x is not known to this role"
        " (known: [11, 12, 13])",
    ),
    (
        {"nvidia_driver_branch": "575", "nvidia_driver_install_cuda_toolkit": True},
        "nvidia_driver_cuda_toolkit_version: CUDA 13.x needs driver branch 580 or newer",
    ),
    (
        {
            "nvidia_driver_install_container_toolkit": True,
            "nvidia_driver_container_toolkit_version": "1.19",
        },
        "nvidia_driver_container_toolkit_version: must be an exact version x.y.z",
    ),
    # Keys, URLs, names, numbers.
    (
        {"nvidia_driver_cuda_repo_key_fingerprint": "3BF863CC"},
        "nvidia_driver_cuda_repo_key_fingerprint: must be a full key fingerprint",
    ),
    (
        {"nvidia_driver_cuda_repo_url": "developer.download.nvidia.com"},
        "nvidia_driver_cuda_repo_url: must be an http(s) or file URL,"
        " got ['developer.download.nvidia.com']",
    ),
    (
        {"nvidia_driver_expected_gpu_count": -1},
        "nvidia_driver_expected_gpu_count: must be a whole number >= 0",
    ),
    (
        {"nvidia_driver_reboot_timeout_s": 0},
        "nvidia_driver_reboot_timeout_s: must be a positive number of seconds",
    ),
    ({"nvidia_driver_run_id": "../x"}, "nvidia_driver_run_id: is not a safe folder name"),
    (
        {"nvidia_driver_persistenced_user": "Nvidia User"},
        "nvidia_driver_persistenced_user: is not a valid user name",
    ),
    # Against the distro matrix.
    (
        {"nvidia_driver_platform": "Rocky-9"},
        "nvidia_driver_platform: Rocky-9 is not a supported distribution (supported: Debian-12,"
        " Ubuntu-22.04, Ubuntu-24.04). Fix: use one of them, or for a derivative set"
        " nvidia_driver_platform to the release it follows",
    ),
    (
        {"nvidia_driver_platform": "Debian-12", "nvidia_driver_source": "distro"},
        "nvidia_driver_branch: Debian 12 packages driver branch(es) 535 only",
    ),
    (
        {"nvidia_driver_platform": "Ubuntu-24.04", "nvidia_driver_branch": "590"},
        "nvidia_driver_branch: from 590 NVIDIA's Ubuntu packages no longer carry the branch",
    ),
    (
        {"nvidia_driver_platform": "Debian-12", "_nvidia_driver_architecture": "aarch64"},
        "nvidia_driver_source: NVIDIA's CUDA repository for Debian 12 has no aarch64 packages",
    ),
    (
        {
            "nvidia_driver_platform": "Debian-12",
            "nvidia_driver_source": "distro",
            "nvidia_driver_branch": "535",
            "nvidia_driver_fabric_manager": "install",
        },
        "nvidia_driver_fabric_manager: Debian 12's distro packages have no Fabric Manager",
    ),
    (
        {
            "nvidia_driver_platform": "Ubuntu-24.04",
            "nvidia_driver_install_container_toolkit": True,
            "_nvidia_driver_architecture": "ppc64le",
        },
        "nvidia_driver_install_container_toolkit: no container toolkit packages for ppc64le",
    ),
    # Valid inputs on a host without a GPU: the plan's refusal, after every check passed.
    ({}, "nvidia_driver_route is rented_gpu but this host has no NVIDIA GPU"),
]


# Each supported platform's defaults (the last with the toolkits and an exact version).
GOOD: list[dict[str, Any]] = [
    {"nvidia_driver_platform": "Ubuntu-22.04"},
    {"nvidia_driver_platform": "Ubuntu-24.04", "_nvidia_driver_architecture": "aarch64"},
    {"nvidia_driver_platform": "Debian-12"},
    {
        "nvidia_driver_platform": "Debian-12",
        "nvidia_driver_source": "distro",
        "nvidia_driver_branch": 535,
    },
    {
        "nvidia_driver_version": "580.159.04",
        "nvidia_driver_install_cuda_toolkit": True,
        "nvidia_driver_install_container_toolkit": True,
        "nvidia_driver_expected_gpu_count": "8",
    },
]
GOOD_IDS = ["ubuntu-22.04", "ubuntu-24.04-arm", "debian-12", "debian-12-distro-535", "toolkits"]


@pytest.fixture(scope="module")
def refusals(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, dict[str, CaseResult], dict[Path, bool], dict[Path, bool]]:
    """Every bad input at once (one ansible-playbook, a host per case); the role's files
    under /etc before and after."""
    base = tmp_path_factory.mktemp("nvidia-driver-refusals")
    # A case that sets an internal variable (the role's vars/main.yml outranks host vars)
    # runs on its own with extra vars, below. The good platforms (GOOD) ride along.
    cases = {
        f"case{i}": _vars(base / f"case{i}", **c[0])
        for i, c in enumerate(CASES)
        if not any(k.startswith("_") for k in c[0])
    } | {
        f"good{i}": _vars(base / f"good{i}", **overrides)
        for i, overrides in enumerate(GOOD)
        if not any(k.startswith("_") for k in overrides)
    }
    before = {path: path.exists() for path in MANAGED}
    results = run_cases(base, "nvidia_driver", cases)
    return base, results, before, {path: path.exists() for path in MANAGED}


def _result(
    base: Path, results: dict[str, CaseResult], name: str, overrides: dict[str, Any]
) -> CaseResult:
    """The batch's result of the case NAME; a case that sets an internal variable (the
    role's vars/main.yml outranks host vars) runs on its own, with extra vars."""
    if name in results:
        return results[name]
    (base / name).mkdir(exist_ok=True)
    alone = _run(base / name, **overrides)
    out = alone.stdout + alone.stderr
    return CaseResult(alone.returncode != 0, out, "", tuple(refused_vars(out)))


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(CASES)), ids=[c[1][:40] for c in CASES])
def test_bad_input_refused_before_any_change(
    refusals: tuple[Path, dict[str, CaseResult], dict[Path, bool], dict[Path, bool]], index: int
) -> None:
    base, results, before, after = refusals
    result = _result(base, results, f"case{index}", CASES[index][0])
    if f"case{index}" not in results:  # it ran on its own, after the batch
        after = {path: path.exists() for path in MANAGED}
    assert result.failed, result.output
    assert CASES[index][1] in result.output, result.output
    assert not (base / f"case{index}" / "evidence").exists(), "evidence written before the refusal"
    assert after == before


@pytest.mark.slow
def test_cpu_route_skips_and_records_why(tmp_path: Path) -> None:
    result = _run(tmp_path, nvidia_driver_route="local_cpu")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "evidence" / "nvidia_driver_report.json").read_text())
    assert report["status"] == "skipped"
    assert report["reason"] == "skipped: no NVIDIA GPU / route local_cpu"
    assert report["route"] == "local_cpu"
    assert report["detected"]["nvidia_smi"]["present"] is False
    assert report["verification"] == {"checked": False, "passed": True, "failures": []}
    assert not any(path.exists() for path in MANAGED[2:])


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(GOOD)), ids=GOOD_IDS)
def test_good_inputs_pass_every_check(
    refusals: tuple[Path, dict[str, CaseResult], dict[Path, bool], dict[Path, bool]], index: int
) -> None:
    """Each supported platform's defaults pass: the run stops only at the plan (no GPU here)."""
    base, results, _, _ = refusals
    result = _result(base, results, f"good{index}", GOOD[index])
    assert result.failed, result.output
    assert "nvidia_driver_route is rented_gpu but this host has no NVIDIA GPU" in result.output
    assert result.refused == (), result.output  # the input check passed
    assert not (base / f"good{index}" / "evidence").exists()


@pytest.mark.slow
def test_an_unsupported_distribution_is_fine_on_local_cpu(tmp_path: Path) -> None:
    result = _run(tmp_path, nvidia_driver_route="local_cpu", nvidia_driver_platform="Debian-13")
    assert result.returncode == 0, result.stdout + result.stderr
