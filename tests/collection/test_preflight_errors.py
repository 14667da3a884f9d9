"""llmhost.core.preflight_errors: each bad input gives exactly one message that starts
with the variable's full inventory name; good inputs on both routes give []."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.llmhost.core.plugins.filter.preflight import (
    FilterModule,
    preflight_errors,
)

NOW = "2026-11-22T23:00:00Z"
SHA = "7ae557604adf67be50417f59c2c2f167def9a775"

RENTED: dict[str, Any] = {
    "route": "rented_gpu",
    "gpu_plan": {
        "goal": "CUDA training acceptance and a served endpoint with evidence",
        "model": "Qwen2.5-0.5B-Instruct",
        "runtime": "vllm",
        "instance_vram": 80,
        "hourly_budget": 2.49,
        "hard_stop_time": "2026-11-23T06:00:00Z",
        "fallback_if_oom": "lower max_num_seqs to 16, then max_model_len to 2048",
        "evidence_to_copy_back": ["environment_report.json", "shutdown_proof.json"],
        "shutdown_proof": "shutdown_proof.json with nvidia-smi --query-compute-apps empty",
    },
    "model": {
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
    },
    "serving": {
        "max_model_len": 4096,
        "max_num_seqs": 64,
        "gpu_memory_utilization": 0.9,
        "kv_cache_dtype": "auto",
    },
    "models_root": "/srv/llmhost/models",
}

LOCAL: dict[str, Any] = {
    "route": "local_cpu",
    "gpu_plan": {
        "goal": "Prove the whole loop on CPU",
        "model": "mini-gpt2-lab",
        "runtime": "vllm-cpu",
        "instance_vram": "",
        "hourly_budget": 0,
        "hard_stop_time": "",
        "fallback_if_oom": "lower max_num_seqs",
        "evidence_to_copy_back": ["environment_report.json"],
        "shutdown_proof": "shutdown_proof.json",
    },
    "model": {
        "name": "mini-gpt2-lab",
        "source": "local",
        "params": 1400000,
        "dtype": "float32",
        "num_layers": 4,
        "hidden_size": 128,
        "num_attention_heads": 4,
        "num_kv_heads": 4,
        "max_context": 512,
        "license": "Trained here from the repository's license-clean corpus",
        "rejected_alternatives": [],
    },
    "serving": {
        "max_model_len": 512,
        "max_num_seqs": 32,
        "gpu_memory_utilization": 0.9,
        "kv_cache_dtype": "auto",
    },
    "models_root": "/srv/llmhost/models",
}


def changed(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of base with the dotted path set to value (a _DELETE value removes it)."""
    inputs = copy.deepcopy(base)
    *parents, last = path.split(".")
    target = inputs
    for key in parents:
        target = target[key]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return inputs


_DELETE = object()

# (base, dotted path in inputs, bad value); the message must name "preflight_" + path.
BAD: list[tuple[dict[str, Any], str, Any]] = [
    (RENTED, "route", "colab"),
    (RENTED, "route", _DELETE),
    (RENTED, "gpu_plan.hourly_budget", -3),
    (RENTED, "gpu_plan.hourly_budget", "cheap"),
    (RENTED, "gpu_plan.hourly_budget", True),
    (RENTED, "gpu_plan.hourly_budget", _DELETE),
    (RENTED, "gpu_plan.instance_vram", 0),
    (RENTED, "gpu_plan.instance_vram", "eighty"),
    (RENTED, "gpu_plan.instance_vram", True),
    (RENTED, "gpu_plan.instance_vram", ""),
    (RENTED, "gpu_plan.hard_stop_time", "2026-11-22T06:00:00Z"),
    (RENTED, "gpu_plan.hard_stop_time", "2026-11-23T06:00:00"),
    (RENTED, "gpu_plan.hard_stop_time", "tomorrow 6pm"),
    (RENTED, "gpu_plan.hard_stop_time", ""),
    (RENTED, "gpu_plan.hard_stop_time", datetime(2026, 11, 23, 6, 0)),  # naive: no timezone
    # An unquoted YAML timestamp is refused even with a zone (tests/test_hard_stop_format.py).
    (RENTED, "gpu_plan.hard_stop_time", datetime(2026, 11, 23, 6, tzinfo=UTC)),
    (RENTED, "gpu_plan.goal", ""),
    (RENTED, "gpu_plan.runtime", "   "),
    (RENTED, "gpu_plan.fallback_if_oom", None),
    (RENTED, "gpu_plan.shutdown_proof", _DELETE),
    (RENTED, "gpu_plan.model", ["x"]),
    (RENTED, "gpu_plan.evidence_to_copy_back", []),
    (RENTED, "gpu_plan.evidence_to_copy_back", "a.json"),
    (RENTED, "gpu_plan.evidence_to_copy_back", ["a", 3]),
    (RENTED, "gpu_plan", None),
    (LOCAL, "gpu_plan", "none"),
    (LOCAL, "gpu_plan.hourly_budget", -1),
    (LOCAL, "gpu_plan.instance_vram", -8),
    (LOCAL, "gpu_plan.hard_stop_time", "2026-13-45T99:00Z"),
    (LOCAL, "gpu_plan.evidence_to_copy_back", "a.json"),
    (RENTED, "model.revision", "main"),
    (RENTED, "model.revision", "v1.0"),
    (RENTED, "model.revision", "7ae5576"),
    (RENTED, "model.revision", SHA.upper()),
    (RENTED, "model.revision", SHA + "0"),
    (RENTED, "model.revision", _DELETE),
    (RENTED, "model.repo_id", _DELETE),
    (RENTED, "model.repo_id", "Qwen/../etc"),
    (RENTED, "model.source", "s3"),
    (RENTED, "model.dtype", "bf16"),
    (RENTED, "model.params", "0.5B"),
    (RENTED, "model.params", 0),
    (RENTED, "model.params", True),
    (RENTED, "model.params", 4.9e8 + 0.5),
    (RENTED, "model.name", "../etc"),
    (RENTED, "model.name", "Qwen/Qwen2.5-0.5B"),
    (RENTED, "model.name", "a..b"),
    (RENTED, "model.name", "my model"),
    (RENTED, "model.name", ""),
    (RENTED, "model.num_layers", -24),
    (RENTED, "model.num_kv_heads", 3),
    (RENTED, "model.hidden_size", 900),
    (RENTED, "model.max_context", "32k"),
    (RENTED, "model.license", ""),
    (RENTED, "model.rejected_alternatives", "none"),
    (RENTED, "model.rejected_alternatives", [{"name": "Llama-3.1-8B"}]),
    (RENTED, "model", "Qwen2.5"),
    (RENTED, "serving.max_model_len", 0),
    (RENTED, "serving.max_model_len", 65536),
    (RENTED, "serving.max_num_seqs", 0),
    (RENTED, "serving.max_num_seqs", False),
    (RENTED, "serving.gpu_memory_utilization", 0),
    (RENTED, "serving.gpu_memory_utilization", 1.5),
    (RENTED, "serving.gpu_memory_utilization", 90),
    (RENTED, "serving.gpu_memory_utilization", True),
    (RENTED, "serving.kv_cache_dtype", "fp16"),
    (RENTED, "serving", []),
    (RENTED, "models_root", "models"),
    (RENTED, "models_root", "/srv/../etc"),
    (RENTED, "models_root", "/"),
    (RENTED, "models_root", _DELETE),
    (LOCAL, "models_root", "~/models"),
]


def _case_id(case: tuple[dict[str, Any], str, Any]) -> str:
    base, path, value = case
    route = "rented" if base is RENTED else "local"
    shown = "deleted" if value is _DELETE else repr(value)[:24]
    return f"{route}-{path}={shown}"


@pytest.mark.parametrize(("base", "path", "value"), BAD, ids=map(_case_id, BAD))
def test_bad_input_names_the_variable(base: dict[str, Any], path: str, value: Any) -> None:
    variable = f"preflight_{path}"
    errors = preflight_errors(changed(base, path, value), now=NOW)
    assert len(errors) == 1, errors
    message = errors[0]
    assert message.startswith((f"{variable}:", f"{variable}[")), message
    assert message.endswith("."), message
    if isinstance(value, (str, int, float)) and not isinstance(value, bool) and value != "":
        assert str(value)[:20] in message, message


def test_good_inputs_on_both_routes_give_no_errors() -> None:
    assert preflight_errors(RENTED, now=NOW) == []
    assert preflight_errors(LOCAL, now=NOW) == []


def test_the_message_says_what_and_how_to_fix() -> None:
    errors = preflight_errors(changed(RENTED, "gpu_plan.hourly_budget", -3), now=NOW)
    assert errors == [
        "preflight_gpu_plan.hourly_budget: must be a number >= 0, got -3. "
        "Set it to the provider's hourly price, e.g. 2.49."
    ]


def test_a_past_stop_time_shows_both_times() -> None:
    bad = changed(RENTED, "gpu_plan.hard_stop_time", "2026-11-22T06:00:00+01:00")
    (message,) = preflight_errors(bad, now=NOW)
    assert "2026-11-22T05:00:00Z" in message
    assert "2026-11-22T23:00:00Z" in message
    assert "in the past" in message


def test_every_problem_is_reported_at_once() -> None:
    bad = changed(RENTED, "route", "colab")
    bad = changed(bad, "model.revision", "main")
    bad = changed(bad, "serving.max_num_seqs", -1)
    bad = changed(bad, "models_root", "rel")
    names = [message.split(":")[0] for message in preflight_errors(bad, now=NOW)]
    assert names == [
        "preflight_route",
        "preflight_model.revision",
        "preflight_serving.max_num_seqs",
        "preflight_models_root",
    ]


def test_a_value_that_looks_like_a_token_is_not_shown() -> None:
    token = "hf_" + "abcdefghijklmnopqrstuvwxyz0123"
    (message,) = preflight_errors(changed(RENTED, "model.repo_id", token + "/x/y"), now=NOW)
    assert message.startswith("preflight_model.repo_id:")
    assert token not in message
    assert "secret" in message


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("gpu_plan.hourly_budget", "2.49"),
        ("gpu_plan.instance_vram", "80"),
        ("gpu_plan.hard_stop_time", "2026-11-23T07:00:00+01:00"),
        ("gpu_plan.evidence_to_copy_back", ("a.json",)),
        ("model.params", 494032768.0),
        ("model.rejected_alternatives", _DELETE),
        ("model.head_dim", 64),
        ("serving.gpu_memory_utilization", _DELETE),
        ("serving.gpu_memory_utilization", 1),
        ("serving.kv_cache_dtype", _DELETE),
        ("serving.kv_cache_dtype", "fp8"),
        ("serving.max_model_len", 32768),
    ],
)
def test_accepted_variants(path: str, value: Any) -> None:
    assert preflight_errors(changed(RENTED, path, value), now=NOW) == []


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("gpu_plan", None),
        ("gpu_plan", {}),
        ("gpu_plan.hard_stop_time", "2001-01-01T00:00:00Z"),
        ("gpu_plan.evidence_to_copy_back", []),
        ("gpu_plan.goal", ""),
        ("model.source", "local"),
    ],
)
def test_local_cpu_allows_an_empty_plan_but_checks_what_is_given(path: str, value: Any) -> None:
    assert preflight_errors(changed(LOCAL, path, value), now=NOW) == []


def test_default_now_is_the_current_time() -> None:
    future = changed(RENTED, "gpu_plan.hard_stop_time", "2099-01-01T00:00:00Z")
    past = changed(RENTED, "gpu_plan.hard_stop_time", "2001-01-01T00:00:00Z")
    assert preflight_errors(future) == []
    assert preflight_errors(past)[0].startswith("preflight_gpu_plan.hard_stop_time:")


def test_inputs_that_are_not_a_dict() -> None:
    (message,) = preflight_errors(["route"], now=NOW)  # type: ignore[arg-type]
    assert message.startswith("preflight inputs: must be a dict")


def test_filter_refuses_a_bad_now() -> None:
    errors_filter = FilterModule().filters()["preflight_errors"]
    with pytest.raises(AnsibleFilterError, match="now: must be a quoted RFC 3339"):
        errors_filter(RENTED, now="2026-11-22T23:00:00")
