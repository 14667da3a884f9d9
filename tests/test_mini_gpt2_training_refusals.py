"""The mini_gpt2_training role's preflight, run for real on localhost: every bad input is
refused with the variable's name, the problem, the value and the fix, before anything is
created (no package or run folder, no user). Run with the preflight tag only, so even a
missing refusal could not install anything on this machine."""

from __future__ import annotations

import pwd
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from role_runner import CaseResult, run_cases, run_role

# A user no test creates: a refused run must not have added it.
USER = "llmhost-pt-" + uuid.uuid4().hex[:8]


def _vars(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    return {
        "mini_gpt2_training_root": str(tmp_path / "opt" / "training"),
        "mini_gpt2_training_work_root": str(tmp_path / "work"),
        "mini_gpt2_training_user": USER,
        "mini_gpt2_training_run_id": "pytest",
        "mini_gpt2_training_evidence_dir": str(tmp_path / "bundle"),
        **overrides,
    }


def _run(tmp_path: Path, **overrides: Any) -> subprocess.CompletedProcess[str]:
    return run_role(
        tmp_path,
        "mini_gpt2_training",
        _vars(tmp_path, **overrides),
        gather_facts=False,
        tags="mini_gpt2_training_preflight",
    )


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _assert_unchanged(tmp_path: Path) -> None:
    for created in ("opt", "work", "textfile", "bundle"):
        assert not (tmp_path / created).exists(), f"{created} was created before the refusal"
    assert not _user_exists(USER), "the user was created before the refusal"


CASES: list[tuple[str, dict[str, Any], str]] = [
    # meta/argument_specs.yml: types and choices
    ("config-choice", {"mini_gpt2_training_config": "huge"}, "mini_gpt2_training_config"),
    ("device-choice", {"mini_gpt2_training_device": "tpu"}, "mini_gpt2_training_device"),
    ("install-choice", {"mini_gpt2_training_install": "conda"}, "mini_gpt2_training_install"),
    ("timeout-type", {"mini_gpt2_training_timeout_s": "soon"}, "mini_gpt2_training_timeout_s"),
    ("overrides-type", {"mini_gpt2_training_overrides": ["lr=1"]}, "mini_gpt2_training_overrides"),
    # tasks/preflight.yml: the assert list
    (
        "run-id",
        {"mini_gpt2_training_run_id": "../x"},
        "mini_gpt2_training_run_id: must be a safe folder name (it names the run folder), "
        "got '../x'",
    ),
    (
        "root-system",
        {"mini_gpt2_training_root": "/opt"},
        "mini_gpt2_training_root '/opt' is a system directory",
    ),
    (
        "root-not-normal",
        {"mini_gpt2_training_root": "/opt/llmhost/../../usr"},
        "mini_gpt2_training_root '/opt/llmhost/../../usr' is not a normalised path",
    ),
    (
        "work-root-system",
        {"mini_gpt2_training_work_root": "/var/lib"},
        "mini_gpt2_training_work_root '/var/lib' is a system directory",
    ),
    (
        "work-root-relative",
        {"mini_gpt2_training_work_root": "work"},
        "mini_gpt2_training_work_root must be an absolute path (got 'work')",
    ),
    (
        "textfile-system",
        {"mini_gpt2_training_textfile_dir": "/var/lib/prometheus"},
        "mini_gpt2_training_textfile_dir '/var/lib/prometheus' is a system directory",
    ),
    (
        "timeout-short",
        {"mini_gpt2_training_timeout_s": 60},
        "mini_gpt2_training_timeout_s: must be at least 120 s",
    ),
    (
        "poll-zero",
        {"mini_gpt2_training_poll_s": 0},
        "mini_gpt2_training_poll_s: must be at least 1 s, got 0. Fix:",
    ),
    (
        "steps-negative",
        {"mini_gpt2_training_steps": -5},
        "mini_gpt2_training_steps: must be 0 (the config's own number) or more optimizer "
        "steps, got -5",
    ),
    (
        "overrides-keys",
        {"mini_gpt2_training_overrides": {"Batch-Size": 32, "lr": 0.1}},
        "mini_gpt2_training_overrides: keys must be config field names "
        "(lower case letters, digits and '_'), got ['Batch-Size']",
    ),
    (
        "user",
        {"mini_gpt2_training_user": "Bad User"},
        "mini_gpt2_training_user: must be a valid user name, got 'Bad User'",
    ),
    (
        "vllm-service",
        {"mini_gpt2_training_vllm_service": "vllm; reboot"},
        "mini_gpt2_training_vllm_service: must be a systemd service name, got 'vllm; reboot'",
    ),
    # A runtime check, after reading the host: no candidate has the modules.
    (
        "preinstalled-without-modules",
        {
            "mini_gpt2_training_install": "preinstalled",
            "mini_gpt2_training_python_candidates": ["/nonexistent/python3"],
        },
        "mini_gpt2_training_install: is preinstalled, but none of "
        "mini_gpt2_training_python_candidates ['/nonexistent/python3']",
    ),
]


@pytest.fixture(scope="module")
def refusals(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, CaseResult]]:
    """Every bad input at once: one ansible-playbook, a host per case."""
    base = tmp_path_factory.mktemp("mini-gpt2-refusals")
    cases = {name: _vars(base / name, **overrides) for name, overrides, _ in CASES}
    results = run_cases(
        base, "mini_gpt2_training", cases, gather_facts=False, tags="mini_gpt2_training_preflight"
    )
    return base, results


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(CASES)), ids=[c[0] for c in CASES])
def test_bad_input_refused_before_any_change(
    refusals: tuple[Path, dict[str, CaseResult]], index: int
) -> None:
    base, results = refusals
    name, _, expected = CASES[index]
    result = results[name]
    assert result.failed, result.output
    assert expected in result.output, result.output
    _assert_unchanged(base / name)


@pytest.mark.slow
def test_every_bad_input_is_reported_in_one_run(tmp_path: Path) -> None:
    result = _run(
        tmp_path,
        mini_gpt2_training_run_id="a/b",
        mini_gpt2_training_root="/usr",
        mini_gpt2_training_poll_s=0,
        mini_gpt2_training_overrides={"X": 1},
    )
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    for expected in (
        "mini_gpt2_training_run_id: must be a safe folder name",
        "mini_gpt2_training_root '/usr' is a system directory",
        "mini_gpt2_training_poll_s: must be at least 1 s",
        "mini_gpt2_training_overrides: keys must be config field names",
    ):
        assert expected in out, out
    assert out.count("Fix:") >= 4, out
    _assert_unchanged(tmp_path)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has a GPU")
def test_cuda_run_on_a_host_without_gpu_is_refused(tmp_path: Path) -> None:
    result = _run(tmp_path, mini_gpt2_training_device="cuda")
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    expected = "mini_gpt2_training_device / mini_gpt2_training_require_cuda: a CUDA run needs"
    assert expected in out, out
    assert "Fix: run on the GPU host" in out, out
    _assert_unchanged(tmp_path)


@pytest.mark.slow
def test_good_input_passes_preflight(tmp_path: Path) -> None:
    result = _run(
        tmp_path,
        mini_gpt2_training_steps=7,
        mini_gpt2_training_overrides={"batch_size": 4},
        mini_gpt2_training_textfile_dir=str(tmp_path / "textfile"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    _assert_unchanged(tmp_path)
