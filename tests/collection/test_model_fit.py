"""llmhost.core.model_fit on known model shapes, against the real H100 capture (80 GB)
and a 24 GB L4 (23034 MiB as nvidia-smi reports it)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.llmhost.core.plugins.filter.preflight import FilterModule, model_fit
from ansible_collections.llmhost.core.plugins.module_utils.nvidia_smi import parse_query_gpu_csv

GIB = 1024**3
DATA_DIR = Path(__file__).resolve().parents[1] / "data" / "nvidia-smi" / "h100"
H100 = parse_query_gpu_csv((DATA_DIR / "query-gpu.csv").read_text(encoding="utf-8"))
L4 = [{"index": 0, "name": "NVIDIA L4", "memory_total_mib": 23034}]

QWEN_05B: dict[str, Any] = {
    "name": "Qwen2.5-0.5B-Instruct",
    "params": 494032768,
    "dtype": "bfloat16",
    "num_layers": 24,
    "hidden_size": 896,
    "num_attention_heads": 14,
    "num_kv_heads": 2,
    "max_context": 32768,
}
MISTRAL_7B: dict[str, Any] = {
    "name": "Mistral-7B-v0.1",
    "params": 7241732096,
    "dtype": "bfloat16",
    "num_layers": 32,
    "hidden_size": 4096,
    "num_attention_heads": 32,
    "num_kv_heads": 8,
    "max_context": 32768,
}
LLAMA_70B: dict[str, Any] = {
    "name": "Llama-3.1-70B-Instruct",
    "params": 70553706496,
    "dtype": "bfloat16",
    "num_layers": 80,
    "hidden_size": 8192,
    "num_attention_heads": 64,
    "num_kv_heads": 8,
    "max_context": 131072,
}
LAB_GPT2: dict[str, Any] = {
    "name": "mini-gpt2-lab",
    "params": 1400000,
    "dtype": "float32",
    "num_layers": 4,
    "hidden_size": 128,
    "num_attention_heads": 4,
    "num_kv_heads": 4,
    "max_context": 512,
}
SERVING: dict[str, Any] = {
    "max_model_len": 8192,
    "max_num_seqs": 64,
    "gpu_memory_utilization": 0.9,
    "kv_cache_dtype": "auto",
}
LAB_SERVING: dict[str, Any] = {"max_model_len": 512, "max_num_seqs": 32}


def fit(model: dict[str, Any], gpus: list[dict[str, Any]] | None, **kw: Any) -> dict[str, Any]:
    serving = {**SERVING, **kw.pop("serving", {})}
    return model_fit(model, serving, kw.pop("route", "rented_gpu"), gpus, **kw)


@pytest.mark.parametrize(
    ("model", "gpus", "weights_gib", "kv_min_gib", "sequences"),
    [
        (QWEN_05B, H100, 0.920, 0.094, 743),
        (QWEN_05B, L4, 0.920, 0.094, 194),
        (MISTRAL_7B, H100, 13.489, 1.0, 55),
        (MISTRAL_7B, L4, 13.489, 1.0, 4),
    ],
    ids=["0.5B-80GB", "0.5B-24GB", "7B-80GB", "7B-24GB"],
)
def test_small_models_fit_at_bf16(
    model: dict[str, Any],
    gpus: list[dict[str, Any]],
    weights_gib: float,
    kv_min_gib: float,
    sequences: int,
) -> None:
    result = fit(model, gpus)
    assert result["decision"] == "fits"
    assert result["fits"] is True
    assert result["quantization"] is None
    assert result["estimate"]["weights_gib"] == weights_gib
    assert result["estimate"]["kv_min_gib"] == kv_min_gib
    assert result["max_concurrent_full_sequences"] == sequences
    assert f"{weights_gib:.3f}" in result["message"]
    assert result["message"].startswith(f"{model['name']} fits")


def test_the_arithmetic_of_the_7b_on_the_h100() -> None:
    result = fit(MISTRAL_7B, H100)
    estimate = result["estimate"]
    weights = 7241732096 * 2
    kv_token = 2 * 32 * 8 * (4096 // 32) * 2
    overhead = 1 * GIB + 0.10 * weights
    budget = 81559 * 1024**2 * 0.9
    assert result["profile"]["kv_bytes_per_token"] == kv_token == 131072
    assert result["profile"]["head_dim"] == 128
    assert estimate["weights_gib"] == round(weights / GIB, 3)
    assert estimate["overhead_gib"] == round(overhead / GIB, 3) == 2.349
    assert estimate["kv_min_gib"] == round(kv_token * 8192 / GIB, 3)
    assert estimate["kv_full_batch_gib"] == 64.0
    assert estimate["budget_gib"] == round(budget / GIB, 3) == 71.683
    assert estimate["hardware_total_gib"] == 79.647
    assert estimate["required_gib"] == round((weights + overhead + kv_token * 8192) / GIB, 3)
    expected_sequences = math.floor((budget - weights - overhead) / (kv_token * 8192))
    assert result["max_concurrent_full_sequences"] == expected_sequences
    lines = "\n".join(result["arithmetic"])
    assert "7241732096 x 2 = 14483464192 B = 13.489 GiB" in lines
    assert "2 x 32 x 8 x 128 x 2 (kv_cache_dtype auto) = 131072 B" in lines
    assert "131072 x 8192 = 1.000 GiB" in lines
    assert "1 GiB x 1 GPU(s) + 10% of weights = 2.349 GiB" in lines
    assert "79.647 GiB (1 x NVIDIA H100 80GB HBM3, 81559 MiB)" in lines
    assert "x gpu_memory_utilization 0.9 = 71.683 GiB" in lines


def test_70b_bf16_on_80gb_needs_int4() -> None:
    result = fit(LLAMA_70B, H100)
    assert result["decision"] == "needs_quantization"
    assert result["fits"] is False
    assert result["quantization"] == "int4"
    assert result["estimate"]["weights_gib"] == 131.417
    assert result["quantized_estimate"]["weights_gib"] == 32.854
    assert result["quantized_estimate"]["required_gib"] <= result["estimate"]["budget_gib"]
    lines = "\n".join(result["arithmetic"])
    assert "[int8] required = weights + overhead + KV minimum = 65.708 + 7.571 + 2.500" in lines
    assert "does not fit" in lines
    assert "[int4] required" in lines
    assert result["max_concurrent_full_sequences"] == 13
    assert "int4" in result["message"]
    assert "131.417" in result["message"]


def test_70b_bf16_on_24gb_needs_a_bigger_gpu() -> None:
    result = fit(LLAMA_70B, L4)
    assert result["decision"] == "needs_bigger_gpu"
    assert result["fits"] is False
    assert result["quantization"] is None
    assert result["quantized_estimate"] is None
    assert result["max_concurrent_full_sequences"] == 0
    assert result["estimate"]["budget_gib"] == 20.245
    assert result["estimate"]["min_memory_gib"] == round(148.058 / 0.9, 3)
    assert "rent at least 164.509 GiB" in result["message"]


def test_int8_is_chosen_when_it_is_enough() -> None:
    mid = {**LLAMA_70B, "name": "mid-40b", "params": 40_000_000_000}
    result = fit(mid, H100)
    assert result["decision"] == "needs_quantization"
    assert result["quantization"] == "int8"


def test_lab_gpt2_on_the_cpu_route_fits_in_ram() -> None:
    result = model_fit(LAB_GPT2, LAB_SERVING, "local_cpu", None, 7936, None)
    assert result["decision"] == "cpu_only"
    assert result["fits"] is True
    assert result["estimate"]["weights_gib"] == 0.005
    assert result["profile"]["kv_bytes_per_token"] == 2 * 4 * 4 * 32 * 4
    assert result["profile"]["hardware"]["kind"] == "cpu"
    assert result["estimate"]["budget_gib"] == round(7936 / 1024 * 0.8, 3)
    assert "1400000 x 4 = 5600000 B = 0.005 GiB" in "\n".join(result["arithmetic"])
    assert "CPU route" in result["message"]
    json.dumps(result)  # JSON-able


def test_cpu_route_ignores_gpus_and_can_refuse() -> None:
    huge = {**LAB_GPT2, "name": "huge", "params": 10**13}
    result = model_fit(huge, LAB_SERVING, "local_cpu", H100, 7936, 80)
    assert result["decision"] == "cpu_only"
    assert result["fits"] is False
    assert "does not fit in RAM" in result["message"]


def test_cpu_route_without_ram_does_not_claim_a_fit() -> None:
    result = model_fit(LAB_GPT2, LAB_SERVING, "local_cpu", None, None)
    assert result["decision"] == "cpu_only"
    assert result["fits"] is False
    assert "host RAM is unknown" in result["message"]


def test_instance_vram_is_the_budget_when_no_gpu_is_detected() -> None:
    result = fit(MISTRAL_7B, [], instance_vram_gib=80)
    assert result["decision"] == "fits"
    assert result["profile"]["hardware"]["kind"] == "instance_vram"
    assert result["estimate"]["budget_gib"] == 72.0


def test_no_gpu_and_no_plan_vram_is_not_a_fit() -> None:
    result = fit(QWEN_05B, None)
    assert result["decision"] == "needs_bigger_gpu"
    assert result["fits"] is False
    assert "no GPU detected" in result["message"]


def test_gpus_add_up_and_each_pays_a_cuda_context() -> None:
    two, four = fit(LLAMA_70B, H100 * 2), fit(LLAMA_70B, H100 * 4)
    assert two["decision"] == "needs_quantization"  # 149.1 GiB needed > 143.4 GiB budget
    assert two["quantization"] == "int8"
    assert four["decision"] == "fits"
    assert four["estimate"]["overhead_gib"] == round(4 + 0.1 * 131.417, 3)
    assert four["estimate"]["budget_gib"] == pytest.approx(4 * 71.683, abs=0.002)
    assert four["profile"]["hardware"]["devices"] == 4


def test_fp8_kv_cache_halves_the_kv() -> None:
    auto, fp8 = fit(MISTRAL_7B, L4), fit(MISTRAL_7B, L4, serving={"kv_cache_dtype": "fp8"})
    assert fp8["estimate"]["kv_min_gib"] == auto["estimate"]["kv_min_gib"] / 2
    assert fp8["max_concurrent_full_sequences"] > auto["max_concurrent_full_sequences"]


def test_explicit_head_dim_wins() -> None:
    gemma_like = {**QWEN_05B, "hidden_size": 3072, "num_attention_heads": 16, "head_dim": 256}
    assert fit(gemma_like, H100)["profile"]["head_dim"] == 256


def test_filter_entry_point_and_bad_input() -> None:
    model_fit_filter = FilterModule().filters()["model_fit"]
    assert model_fit_filter(QWEN_05B, SERVING, "rented_gpu", H100)["decision"] == "fits"
    with pytest.raises(AnsibleFilterError, match=r"model\.num_layers"):
        model_fit_filter({**QWEN_05B, "num_layers": 0}, SERVING, "rented_gpu", H100)
    with pytest.raises(AnsibleFilterError, match="gpu_memory_utilization"):
        model_fit_filter(QWEN_05B, {**SERVING, "gpu_memory_utilization": 90}, "rented_gpu")
