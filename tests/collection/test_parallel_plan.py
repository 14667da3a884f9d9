"""llmhost.core.parallel_plan: vLLM 0.32's parallelism rules before any change. Every
refusal names the variable and says the fix; a check without its facts is skipped with the
reason, never passed."""

from __future__ import annotations

from typing import Any

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.llmhost.core.plugins.filter.parallel import FilterModule
from ansible_collections.llmhost.core.plugins.plugin_utils.parallel import layer_split

plan = FilterModule().filters()["parallel_plan"]

# Qwen2.5-7B-Instruct (config.json): 28 heads, 4 KV heads, 28 layers.
QWEN_7B: dict[str, Any] = {"num_attention_heads": 28, "num_kv_heads": 4, "num_layers": 28}
# Qwen2.5-0.5B-Instruct: 14 heads, 2 KV heads, 24 layers.
QWEN_05B: dict[str, Any] = {"num_attention_heads": 14, "num_kv_heads": 2, "num_layers": 24}
# The lab's mini GPT-2: 4 heads, no GQA, 4 layers.
MINI: dict[str, Any] = {"num_attention_heads": 4, "num_kv_heads": 4, "num_layers": 4}
LOCK_NO_RAY = {"file": "requirements-cuda.lock.txt", "packages": ["vllm", "torch"]}
LOCK_RAY = {"file": "requirements-cuda.lock.txt", "packages": ["vllm", "torch", "ray"]}


def cuda(**over: Any) -> dict[str, Any]:
    base = {
        "vllm_tensor_parallel_size": 0,
        "vllm_pipeline_parallel_size": 1,
        "vllm_distributed_executor_backend": "auto",
        "vllm_ray_address": "",
        "vllm_ray_nodes": 0,
        "vllm_ray_gpus_per_node": 0,
        "vllm_device": "cuda",
        "vllm_cpu_omp_threads_bind": "auto",
    }
    return {**base, **{f"vllm_{k}": v for k, v in over.items()}}


def cpu(**over: Any) -> dict[str, Any]:
    return cuda(device="cpu", **over)


def ray(**over: Any) -> dict[str, Any]:
    base = {
        "distributed_executor_backend": "ray",
        "ray_address": "10.0.0.1:6379",
        "ray_nodes": 2,
        "ray_gpus_per_node": 4,
        "tensor_parallel_size": 4,
        "pipeline_parallel_size": 2,
    }
    return cuda(**{**base, **over})


def results(out: dict[str, Any]) -> dict[str, str]:
    return {c["check"]: c["result"] for c in out["checks"]}


def test_one_gpu_default_passes() -> None:
    out = plan(cuda(), QWEN_7B, {}, 1, LOCK_NO_RAY)
    assert out["refused"] == []
    assert (out["tensor_parallel_size"], out["pipeline_parallel_size"], out["world_size"]) == (
        1,
        1,
        1,
    )
    assert results(out)["ranks / this host"] == "ok"


def test_tensor_zero_means_one_rank_per_gpu() -> None:
    out = plan(cuda(), QWEN_7B, {}, 4, LOCK_NO_RAY)
    assert out["tensor_parallel_size"] == 4
    assert out["refused"] == []


# (settings, model, gpus, the variable the refusal names, a piece of its message)
REFUSED: list[tuple[dict[str, Any], dict[str, Any], int | None, str, str]] = [
    # vLLM: "Total number of attention heads must be divisible by tensor parallel size".
    (
        cuda(tensor_parallel_size=4),
        QWEN_05B,
        4,
        "vllm_tensor_parallel_size",
        "4 does not divide the model's 14 attention heads",
    ),
    (cuda(), QWEN_05B, 4, "vllm_tensor_parallel_size", "a divisor of 14: 1, 2, 7, 14"),
    # KV heads: 28 heads / 4 KV heads; tp 14 divides the heads but is no multiple of 4.
    (
        cuda(tensor_parallel_size=14),
        QWEN_7B,
        14,
        "vllm_tensor_parallel_size",
        "14 and the model's 4 KV heads",
    ),
    # Pipeline: more stages than layers.
    (
        cuda(tensor_parallel_size=1, pipeline_parallel_size=5),
        MINI,
        5,
        "vllm_pipeline_parallel_size",
        "5 stages for the model's 4 layers leave a stage without a layer",
    ),
    # One host (mp/auto): tensor x pipeline against this host's GPUs.
    (
        cuda(tensor_parallel_size=4, pipeline_parallel_size=2),
        QWEN_7B,
        4,
        "vllm_tensor_parallel_size x vllm_pipeline_parallel_size",
        "8 ranks but this host has 4 GPU(s)",
    ),
    (
        cuda(tensor_parallel_size=2, distributed_executor_backend="mp"),
        QWEN_7B,
        4,
        "vllm_tensor_parallel_size x vllm_pipeline_parallel_size",
        "leave 2 of this host's 4 GPUs idle",
    ),
    (
        cuda(ray_address="10.0.0.1:6379", distributed_executor_backend="mp"),
        QWEN_7B,
        1,
        "vllm_ray_address",
        "only the ray backend uses it",
    ),
    # Ray: the declared cluster against the plan.
    (
        ray(ray_nodes=1),
        QWEN_7B,
        4,
        "vllm_ray_nodes x vllm_ray_gpus_per_node",
        "the Ray cluster (1 x 4 = 4 GPUs) is smaller than the plan's 8 ranks",
    ),
    (
        ray(pipeline_parallel_size=1),
        QWEN_7B,
        4,
        "vllm_tensor_parallel_size x vllm_pipeline_parallel_size",
        "leave 4 of the Ray cluster's 8 GPUs idle",
    ),
    (ray(ray_gpus_per_node=8, ray_nodes=1), QWEN_7B, 4, "vllm_ray_gpus_per_node", "has 4 GPU(s)"),
    (ray(ray_address=""), QWEN_7B, 4, "vllm_ray_address", "must be the Ray head's host:port"),
    (ray(ray_address="ray://head"), QWEN_7B, 4, "vllm_ray_address", "host:port"),
    (ray(ray_nodes=0), QWEN_7B, 4, "vllm_ray_nodes", "must be a whole number >= 1"),
    (ray(), QWEN_7B, 4, "vllm_distributed_executor_backend", "pins none"),
    # vllm-cpu 0.32 has no Ray device.
    (
        cpu(distributed_executor_backend="ray"),
        MINI,
        0,
        "vllm_distributed_executor_backend",
        "ray is not supported by vllm-cpu 0.32",
    ),
    # CPU, a manual binding: one core set per rank.
    (
        cpu(pipeline_parallel_size=2, cpu_omp_threads_bind="0-1"),
        MINI,
        0,
        "vllm_cpu_omp_threads_bind",
        "lists 1 core set(s) ('|' between ranks) for 2 CPU ranks",
    ),
    # The settings' own shapes.
    (cuda(tensor_parallel_size=-1), QWEN_7B, 1, "vllm_tensor_parallel_size", ">= 0"),
    (cuda(pipeline_parallel_size=0), QWEN_7B, 1, "vllm_pipeline_parallel_size", ">= 1"),
    (cuda(pipeline_parallel_size=True), QWEN_7B, 1, "vllm_pipeline_parallel_size", ">= 1"),
    (
        cuda(distributed_executor_backend="uni"),
        QWEN_7B,
        1,
        "vllm_distributed_executor_backend",
        "must be one of auto, mp, ray",
    ),
]


@pytest.mark.parametrize(
    ("settings", "model", "gpus", "var", "text"),
    REFUSED,
    ids=[f"{c[3]}-{i}" for i, c in enumerate(REFUSED)],
)
def test_refused_naming_the_variable(
    settings: dict[str, Any], model: dict[str, Any], gpus: int | None, var: str, text: str
) -> None:
    out = plan(settings, model, {}, gpus, LOCK_NO_RAY)
    mine = [m for m in out["refused"] if m.startswith(f"{var}: ")]
    assert mine, out["refused"]
    assert any(text in m for m in mine), out["refused"]
    assert all("Fix:" in m for m in out["refused"]), out["refused"]


def test_ray_plan_that_holds() -> None:
    out = plan(ray(), QWEN_7B, {}, 4, LOCK_RAY)
    assert out["refused"] == []
    assert out["world_size"] == 8
    assert out["layer_split"] == [14, 14]
    got = results(out)
    assert got["ranks / Ray cluster"] == "ok"
    assert got["this host in the Ray cluster"] == "ok"
    assert got["live Ray cluster"] == "skipped"


def test_uneven_layers_pass_as_vllm_splits_them() -> None:
    out = plan(cuda(tensor_parallel_size=1, pipeline_parallel_size=3), MINI, {}, 3, {})
    assert out["refused"] == []
    assert out["layer_split"] == [1, 2, 1]
    assert "uneven" in next(c for c in out["checks"] if c["check"] == "layers / pipeline")["detail"]


@pytest.mark.parametrize(
    ("layers", "stages", "split"),
    [(28, 2, [14, 14]), (30, 4, [7, 8, 8, 7]), (4, 3, [1, 2, 1]), (24, 5, [5, 5, 5, 5, 4])],
)
def test_layer_split_is_vllms(layers: int, stages: int, split: list[int]) -> None:
    # vllm/distributed/utils.py get_pp_indices (0.32): the rest goes to the stages before
    # the last, from the second-to-last backwards.
    assert layer_split(layers, stages) == split
    assert sum(split) == layers


def test_kv_heads_replicated_when_tensor_exceeds_them() -> None:
    out = plan(cuda(tensor_parallel_size=8), QWEN_7B, {}, 8, {})  # 28 % 8 != 0: heads refuse
    assert any("28 attention heads" in m for m in out["refused"])
    out = plan(cuda(tensor_parallel_size=4), {**QWEN_7B, "num_kv_heads": 2}, {}, 4, {})
    assert out["refused"] == []
    kv = next(c for c in out["checks"] if c["check"] == "KV heads / tensor")
    assert "replicated on 2 rank(s)" in kv["detail"]


def test_config_json_wins_and_a_contradiction_is_refused() -> None:
    config = {"num_attention_heads": 14, "num_key_value_heads": 2, "num_hidden_layers": 24}
    out = plan(cuda(tensor_parallel_size=2), QWEN_7B, config, 2, {}, "/models/q/config.json")
    assert out["facts_from"] == "config.json"
    assert "preflight_model.num_attention_heads: 28 but /models/q/config.json says 14" in " ".join(
        out["refused"]
    )
    out = plan(cuda(tensor_parallel_size=2), QWEN_05B, config, 2, {})
    assert out["refused"] == []


def test_gpt2_style_config_without_kv_heads() -> None:
    config = {"n_head": 4, "n_layer": 4}  # no num_key_value_heads: one KV head per head
    out = plan(cpu(), MINI, config, 0, {})
    assert out["refused"] == []
    assert results(out)["KV heads / tensor"] == "ok"


def test_missing_facts_are_skipped_with_the_reason() -> None:
    out = plan(cuda(), {}, {}, None, {})
    got = {c["check"]: c for c in out["checks"]}
    assert got["tensor-parallel size"]["result"] == "skipped"
    assert "no GPU was counted" in got["tensor-parallel size"]["detail"]
    assert got["layers / pipeline"]["result"] == "skipped"
    assert got["ranks / this host"]["result"] == "skipped"
    assert out["refused"] == []
    out = plan(cuda(tensor_parallel_size=2), {}, {}, 2, {})
    assert results(out)["attention heads / tensor"] == "skipped"
    assert results(out)["KV heads / tensor"] == "skipped"


def test_cpu_ranks_with_auto_binding_are_skipped_not_passed() -> None:
    out = plan(cpu(pipeline_parallel_size=2), MINI, {}, 0, {})
    assert out["refused"] == []
    check = next(c for c in out["checks"] if c["check"] == "ranks / this host")
    assert check["result"] == "skipped"
    assert "NUMA node per rank" in check["detail"]
    out = plan(cpu(pipeline_parallel_size=2, cpu_omp_threads_bind="0|1"), MINI, {}, 0, {})
    assert out["refused"] == []
    assert results(out)["ranks / this host"] == "ok"


def test_vllm_not_in_the_play_checks_nothing_and_says_so() -> None:
    out = plan({}, QWEN_7B, {}, 1, {})
    assert out["in_play"] is False
    assert out["refused"] == []
    assert out["checks"][0]["result"] == "skipped"
    assert "not in this play" in out["checks"][0]["detail"]


def test_string_sizes_from_templates() -> None:
    out = plan(cuda(tensor_parallel_size="2", pipeline_parallel_size="1"), QWEN_7B, {}, "2", {})
    assert out["refused"] == []
    assert out["world_size"] == 2


def test_bad_arguments_raise() -> None:
    with pytest.raises(AnsibleFilterError, match=r"llmhost.core.parallel_plan"):
        plan("x", QWEN_7B)
