"""Memory estimate for serving a model with vLLM: does it fit the GPU (or the host RAM)?

All sizes are bytes internally and GiB (2**30 bytes) in the result. Formulas:

* weights   = params x bytes per parameter of the dtype
* head_dim  = hidden_size / num_attention_heads (or model.head_dim when given)
* KV/token  = 2 (K and V) x num_layers x num_kv_heads x head_dim x KV bytes per element
              (kv_cache_dtype fp8 -> 1; auto -> 4 for float32, else 2: quantized weights
              still compute and cache in 16 bit)
* KV min    = KV/token x max_model_len (vLLM refuses to start without room for one
              full-length sequence)
* overhead  = 1.0 GiB per GPU (CUDA context, CUDA graphs, allocator) + 10% of weights
              (activations, sampler); the same formula serves the CPU route
* budget    = VRAM of the detected GPUs (else the plan's instance_vram) x
              gpu_memory_utilization; on the CPU route: host RAM x 0.8
* fits      = weights + overhead + KV min <= budget
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ansible_collections.llmhost.core.plugins.plugin_utils.values import as_int, as_number

GIB = 1024**3
MIB = 1024**2
BYTES_PER_PARAM: dict[str, float] = {
    "float32": 4.0,
    "bfloat16": 2.0,
    "float16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "int4": 0.5,
}
QUANTIZATION_CANDIDATES = ("int8", "int4")
OVERHEAD_PER_DEVICE_GIB = 1.0
OVERHEAD_WEIGHT_FRACTION = 0.10
CPU_RAM_FRACTION = 0.8
DEFAULT_GPU_MEMORY_UTILIZATION = 0.9
ROUTE_CPU = "local_cpu"


@dataclass(frozen=True)
class Arch:
    """The model and serving numbers the estimate needs, validated."""

    name: str
    params: int
    dtype: str
    num_layers: int
    num_kv_heads: int
    head_dim: int
    head_dim_line: str
    max_model_len: int
    max_num_seqs: int
    gpu_memory_utilization: float
    kv_cache_dtype: str


@dataclass(frozen=True)
class Hardware:
    """What the budget is measured against."""

    kind: str  # gpu | instance_vram | cpu | none
    devices: int
    total_bytes: float
    fraction: float
    fraction_name: str
    description: str

    @property
    def budget_bytes(self) -> float:
        return self.total_bytes * self.fraction


@dataclass(frozen=True)
class Need:
    """Bytes one configuration needs."""

    dtype: str
    weight_bytes_per_param: float
    kv_bytes_per_element: int
    weights: float
    overhead: float
    kv_per_token: int
    kv_min: float
    kv_full: float

    @property
    def required(self) -> float:
        return self.weights + self.overhead + self.kv_min


def gib(value: float) -> float:
    return round(value / GIB, 3)


def _fmt(value: float) -> str:
    return f"{value / GIB:.3f}"


def _positive_int(section: Mapping[str, Any], key: str, where: str) -> int:
    number = as_int(section.get(key))
    if number is None or number <= 0:
        raise ValueError(
            f"model_fit: {where}.{key} must be a positive integer, got {section.get(key)!r}"
        )
    return number


def _head_dim(model: Mapping[str, Any]) -> tuple[int, str]:
    if model.get("head_dim") not in (None, ""):
        value = _positive_int(model, "head_dim", "model")
        return value, f"head_dim = model.head_dim = {value}"
    hidden = _positive_int(model, "hidden_size", "model")
    heads = _positive_int(model, "num_attention_heads", "model")
    if hidden % heads:
        raise ValueError(f"model_fit: hidden_size {hidden} is not divisible by {heads} heads")
    return hidden // heads, f"head_dim = hidden_size / num_attention_heads = {hidden} / {heads}"


def _utilization(serving: Mapping[str, Any]) -> float:
    """serving.gpu_memory_utilization, vLLM's default 0.9 when absent."""
    raw = serving.get("gpu_memory_utilization")
    value = DEFAULT_GPU_MEMORY_UTILIZATION if raw is None else as_number(raw)
    if value is None or not 0 < value <= 1:
        raise ValueError(
            f"model_fit: serving.gpu_memory_utilization must be in (0, 1], got {raw!r}"
        )
    return value


def read_arch(model: Mapping[str, Any], serving: Mapping[str, Any]) -> Arch:
    """Validate the inputs model_fit needs; ValueError names the first bad key."""
    if not isinstance(model, Mapping) or not isinstance(serving, Mapping):
        raise TypeError("model_fit: model and serving must be dicts")
    dtype = str(model.get("dtype", ""))
    if dtype not in BYTES_PER_PARAM:
        raise ValueError(f"model_fit: model.dtype must be one of {list(BYTES_PER_PARAM)}")
    kv_dtype = str(serving.get("kv_cache_dtype") or "auto")
    if kv_dtype not in ("auto", "fp8"):
        raise ValueError(f"model_fit: serving.kv_cache_dtype must be auto or fp8, got {kv_dtype!r}")
    head_dim, head_dim_line = _head_dim(model)
    return Arch(
        name=str(model.get("name") or "model"),
        params=_positive_int(model, "params", "model"),
        dtype=dtype,
        num_layers=_positive_int(model, "num_layers", "model"),
        num_kv_heads=_positive_int(model, "num_kv_heads", "model"),
        head_dim=head_dim,
        head_dim_line=head_dim_line,
        max_model_len=_positive_int(serving, "max_model_len", "serving"),
        max_num_seqs=_positive_int(serving, "max_num_seqs", "serving"),
        gpu_memory_utilization=_utilization(serving),
        kv_cache_dtype=kv_dtype,
    )


def _gpu_mib(gpu: Mapping[str, Any]) -> int:
    mib = as_int(gpu.get("memory_total_mib")) if isinstance(gpu, Mapping) else None
    if mib is None or mib <= 0:
        raise ValueError("model_fit: each detected GPU needs memory_total_mib (compute_facts)")
    return mib


def _gpu_hardware(gpus: list[Mapping[str, Any]], fraction: float) -> Hardware:
    mibs = [_gpu_mib(gpu) for gpu in gpus]
    names = sorted({str(gpu.get("name") or "GPU") for gpu in gpus})
    total = sum(mibs) * MIB
    described = f"{len(gpus)} x {' / '.join(names)}, {' + '.join(str(m) for m in mibs)} MiB"
    return Hardware("gpu", len(gpus), total, fraction, "gpu_memory_utilization", described)


def read_hardware(
    route: str,
    gpus: list[Mapping[str, Any]] | None,
    host_ram_mib: int | None,
    instance_vram_gib: float | None,
    utilization: float,
) -> Hardware:
    """The memory the model must fit in, for the route."""
    if route == ROUTE_CPU:
        ram = as_int(host_ram_mib)
        total = float(ram * MIB) if ram and ram > 0 else 0.0
        return Hardware(
            "cpu" if total else "none",
            0,
            total,
            CPU_RAM_FRACTION,
            "usable RAM fraction",
            f"host RAM {ram} MiB" if total else "host RAM unknown",
        )
    if gpus:
        return _gpu_hardware(list(gpus), utilization)
    vram = as_number(instance_vram_gib)
    if vram is not None and vram > 0:
        return Hardware(
            "instance_vram",
            1,
            vram * GIB,
            utilization,
            "gpu_memory_utilization",
            f"no GPU detected; gpu_plan.instance_vram {vram:g} GiB",
        )
    return Hardware(
        "none",
        1,
        0.0,
        utilization,
        "gpu_memory_utilization",
        "no GPU detected and no instance_vram given",
    )


def kv_bytes_per_element(dtype: str, kv_cache_dtype: str) -> int:
    if kv_cache_dtype == "fp8":
        return 1
    return 4 if dtype == "float32" else 2


def estimate_need(arch: Arch, dtype: str, devices: int) -> Need:
    """Bytes needed by arch with its weights stored as dtype."""
    per_param = BYTES_PER_PARAM[dtype]
    weights = arch.params * per_param
    kv_elem = kv_bytes_per_element(dtype, arch.kv_cache_dtype)
    kv_per_token = 2 * arch.num_layers * arch.num_kv_heads * arch.head_dim * kv_elem
    kv_min = float(kv_per_token * arch.max_model_len)
    overhead = max(devices, 1) * OVERHEAD_PER_DEVICE_GIB * GIB + OVERHEAD_WEIGHT_FRACTION * weights
    return Need(
        dtype,
        per_param,
        kv_elem,
        weights,
        overhead,
        kv_per_token,
        kv_min,
        kv_min * arch.max_num_seqs,
    )


def fits(need: Need, hardware: Hardware) -> bool:
    return hardware.budget_bytes > 0 and need.required <= hardware.budget_bytes


def full_sequences(need: Need, hardware: Hardware) -> int:
    """How many max_model_len sequences the KV budget left after weights+overhead holds."""
    left = hardware.budget_bytes - need.weights - need.overhead
    return max(0, math.floor(left / need.kv_min)) if need.kv_min > 0 else 0


def choose_quantization(arch: Arch, hardware: Hardware) -> Need | None:
    """The first candidate smaller than the model's dtype that fits, if any."""
    for dtype in QUANTIZATION_CANDIDATES:
        if BYTES_PER_PARAM[dtype] >= BYTES_PER_PARAM[arch.dtype]:
            continue
        need = estimate_need(arch, dtype, hardware.devices)
        if fits(need, hardware):
            return need
    return None


def smallest_need(arch: Arch, hardware: Hardware) -> Need:
    """The need at the smallest quantization the model could be served at."""
    smallest = min((arch.dtype, *QUANTIZATION_CANDIDATES), key=BYTES_PER_PARAM.__getitem__)
    return estimate_need(arch, smallest, hardware.devices)


def arithmetic_lines(arch: Arch, need: Need, hardware: Hardware) -> list[str]:
    """The formulas of the estimate with this model's numbers."""
    per_device = (
        f"{OVERHEAD_PER_DEVICE_GIB:g} GiB x {hardware.devices} GPU(s)"
        if hardware.devices
        else f"{OVERHEAD_PER_DEVICE_GIB:g} GiB (runtime)"
    )
    verdict = "fits" if fits(need, hardware) else "does not fit"
    relation = "<=" if fits(need, hardware) else ">"
    return [
        f"[{need.dtype}] weights = params x bytes/param = {arch.params} x "
        f"{need.weight_bytes_per_param:g} = {need.weights:.0f} B = {_fmt(need.weights)} GiB",
        f"[{need.dtype}] {arch.head_dim_line} = {arch.head_dim}",
        f"[{need.dtype}] KV per token = 2 x num_layers x num_kv_heads x head_dim x KV bytes "
        f"= 2 x {arch.num_layers} x {arch.num_kv_heads} x {arch.head_dim} x "
        f"{need.kv_bytes_per_element} (kv_cache_dtype {arch.kv_cache_dtype}) "
        f"= {need.kv_per_token} B",
        f"[{need.dtype}] KV minimum = KV per token x max_model_len = {need.kv_per_token} x "
        f"{arch.max_model_len} = {_fmt(need.kv_min)} GiB",
        f"[{need.dtype}] KV for max_num_seqs full sequences = {_fmt(need.kv_min)} x "
        f"{arch.max_num_seqs} = {_fmt(need.kv_full)} GiB (a shared pool, not needed up front)",
        f"[{need.dtype}] overhead = {per_device} + {OVERHEAD_WEIGHT_FRACTION:.0%} of weights "
        f"= {_fmt(need.overhead)} GiB",
        f"[{need.dtype}] required = weights + overhead + KV minimum = {_fmt(need.weights)} + "
        f"{_fmt(need.overhead)} + {_fmt(need.kv_min)} = {_fmt(need.required)} GiB "
        f"{relation} budget {_fmt(hardware.budget_bytes)} GiB: {verdict}",
    ]


def quantized_lines(arch: Arch, hardware: Hardware) -> list[str]:
    """Weights and total lines for each quantization smaller than the model's dtype."""
    lines: list[str] = []
    for dtype in QUANTIZATION_CANDIDATES:
        if BYTES_PER_PARAM[dtype] < BYTES_PER_PARAM[arch.dtype]:
            full = arithmetic_lines(arch, estimate_need(arch, dtype, hardware.devices), hardware)
            lines += [full[0], full[-1]]
    return lines


def budget_line(hardware: Hardware) -> str:
    return (
        f"budget = {_fmt(hardware.total_bytes)} GiB ({hardware.description}) x "
        f"{hardware.fraction_name} {hardware.fraction:g} = {_fmt(hardware.budget_bytes)} GiB"
    )


def sequences_line(need: Need, hardware: Hardware) -> str:
    left = hardware.budget_bytes - need.weights - need.overhead
    return (
        f"[{need.dtype}] KV budget = budget - weights - overhead = {_fmt(left)} GiB -> "
        f"floor({_fmt(left)} / {_fmt(need.kv_min)}) = {full_sequences(need, hardware)} "
        "full-length sequences"
    )


def estimate_dict(need: Need, hardware: Hardware) -> dict[str, Any]:
    return {
        "dtype": need.dtype,
        "weights_gib": gib(need.weights),
        "overhead_gib": gib(need.overhead),
        "kv_min_gib": gib(need.kv_min),
        "kv_full_batch_gib": gib(need.kv_full),
        "required_gib": gib(need.required),
        "hardware_total_gib": gib(hardware.total_bytes),
        "budget_gib": gib(hardware.budget_bytes),
        "kv_budget_gib": gib(max(0.0, hardware.budget_bytes - need.weights - need.overhead)),
        "headroom_gib": gib(hardware.budget_bytes - need.required),
        "min_memory_gib": gib(need.required / hardware.fraction),
    }


def profile_dict(arch: Arch, route: str, hardware: Hardware) -> dict[str, Any]:
    return {
        "model": arch.name,
        "params": arch.params,
        "dtype": arch.dtype,
        "num_layers": arch.num_layers,
        "num_kv_heads": arch.num_kv_heads,
        "head_dim": arch.head_dim,
        "max_model_len": arch.max_model_len,
        "max_num_seqs": arch.max_num_seqs,
        "gpu_memory_utilization": arch.gpu_memory_utilization,
        "kv_cache_dtype": arch.kv_cache_dtype,
        "kv_bytes_per_token": estimate_need(arch, arch.dtype, 1).kv_per_token,
        "route": route,
        "hardware": {
            "kind": hardware.kind,
            "devices": hardware.devices,
            "total_gib": gib(hardware.total_bytes),
            "description": hardware.description,
        },
    }


def _needs(need: Need) -> str:
    return (
        f"needs {_fmt(need.required)} GiB at {need.dtype} (weights {_fmt(need.weights)} + "
        f"overhead {_fmt(need.overhead)} + KV for one sequence {_fmt(need.kv_min)})"
    )


def _budget(hardware: Hardware) -> str:
    return (
        f"{_fmt(hardware.budget_bytes)} GiB budget ({hardware.description}, x "
        f"{hardware.fraction:g})"
    )


def cpu_message(arch: Arch, need: Need, hardware: Hardware) -> str:
    if hardware.kind == "none":
        return (
            f"{arch.name} {_needs(need)} on the CPU route, but the host RAM is unknown: "
            "pass ansible_facts.memtotal_mb as host_ram_mib."
        )
    if fits(need, hardware):
        return (
            f"{arch.name} runs on the CPU route: it {_needs(need)} of the {_budget(hardware)}, "
            f"room for {full_sequences(need, hardware)} full {arch.max_model_len}-token sequences."
        )
    return (
        f"{arch.name} does not fit in RAM on the CPU route: it {_needs(need)} but the "
        f"{_budget(hardware)} is smaller; pick a smaller model, lower max_model_len, or "
        "take the rented_gpu route."
    )


def gpu_message(arch: Arch, need: Need, hardware: Hardware, quant: Need | None) -> str:
    if fits(need, hardware):
        return (
            f"{arch.name} fits: it {_needs(need)} of the {_budget(hardware)}, leaving KV room "
            f"for {full_sequences(need, hardware)} full {arch.max_model_len}-token sequences "
            f"(max_num_seqs {arch.max_num_seqs})."
        )
    if quant is not None:
        return (
            f"{arch.name} does not fit at {arch.dtype}: it {_needs(need)} but the "
            f"{_budget(hardware)} is smaller; quantized to {quant.dtype} it needs "
            f"{_fmt(quant.required)} GiB and fits, so serve an {quant.dtype} checkpoint "
            f"or rent at least {_fmt(need.required / hardware.fraction)} GiB of VRAM."
        )
    smallest = smallest_need(arch, hardware)
    return (
        f"{arch.name} does not fit: it {_needs(need)}, and still {_fmt(smallest.required)} GiB "
        f"at {smallest.dtype}, but the {_budget(hardware)} is smaller; rent at least "
        f"{_fmt(need.required / hardware.fraction)} GiB of VRAM for {arch.dtype} "
        f"(or {_fmt(smallest.required / hardware.fraction)} GiB for {smallest.dtype})."
    )


def decide(arch: Arch, route: str, hardware: Hardware) -> tuple[str, Need, Need | None]:
    """(decision, need at the model's dtype, the quantized need that fits or None)."""
    need = estimate_need(arch, arch.dtype, hardware.devices)
    if route == ROUTE_CPU:
        return "cpu_only", need, None
    if fits(need, hardware):
        return "fits", need, None
    quant = choose_quantization(arch, hardware)
    return ("needs_quantization" if quant else "needs_bigger_gpu"), need, quant


def model_fit(
    model: Mapping[str, Any],
    serving: Mapping[str, Any],
    route: str,
    gpus: list[Mapping[str, Any]] | None = None,
    host_ram_mib: int | None = None,
    instance_vram_gib: float | None = None,
) -> dict[str, Any]:
    """Estimate memory and decide fits | needs_quantization | needs_bigger_gpu | cpu_only."""
    arch = read_arch(model, serving)
    hardware = read_hardware(
        str(route), gpus, host_ram_mib, instance_vram_gib, arch.gpu_memory_utilization
    )
    decision, need, quant = decide(arch, str(route), hardware)
    chosen = quant or need
    lines = arithmetic_lines(arch, need, hardware)
    arithmetic = [*lines[:-1], budget_line(hardware), lines[-1]]
    if decision in ("needs_quantization", "needs_bigger_gpu"):
        arithmetic += quantized_lines(arch, hardware)
    arithmetic.append(sequences_line(chosen, hardware))
    is_cpu = decision == "cpu_only"
    return {
        "profile": profile_dict(arch, str(route), hardware),
        "decision": decision,
        "fits": decision == "fits" or (is_cpu and fits(need, hardware)),
        "quantization": quant.dtype if quant else None,
        "estimate": estimate_dict(need, hardware),
        "quantized_estimate": estimate_dict(quant, hardware) if quant else None,
        "arithmetic": arithmetic,
        "max_concurrent_full_sequences": full_sequences(chosen, hardware),
        "message": (
            cpu_message(arch, need, hardware)
            if is_cpu
            else gpu_message(arch, need, hardware, quant)
        ),
    }
