"""Filters llmhost.core.preflight_errors and llmhost.core.model_fit.

Documentation: preflight_errors.yml and model_fit.yml next to this file.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.llmhost.core.plugins.plugin_utils import hard_stop
from ansible_collections.llmhost.core.plugins.plugin_utils.model_fit import (
    BYTES_PER_PARAM,
    DEFAULT_GPU_MEMORY_UTILIZATION,
    model_fit,
)
from ansible_collections.llmhost.core.plugins.plugin_utils.values import (
    as_int,
    as_number,
    is_blank,
    is_text,
    show,
)

ROUTES = ("local_cpu", "rented_gpu")
SOURCES = ("hub", "local", "host")
DTYPES = tuple(BYTES_PER_PARAM)
KV_CACHE_DTYPES = ("auto", "fp8")
GPU_PLAN_TEXT_FIELDS = ("goal", "model", "runtime", "fallback_if_oom", "shutdown_proof")
GPU_PLAN_FIELDS = (
    *GPU_PLAN_TEXT_FIELDS,
    "instance_vram",
    "hourly_budget",
    "hard_stop_time",
    "evidence_to_copy_back",
)
GPU_PLAN_FIXES: dict[str, str] = {
    "goal": "Say what this rental must prove, e.g. 'serve the pinned model with evidence'.",
    "model": "Name the model this rental serves, e.g. Qwen2.5-7B-Instruct.",
    "runtime": "Name the serving runtime, e.g. vllm.",
    "fallback_if_oom": "Say what to lower first, e.g. 'max_num_seqs to 16, then max_model_len'.",
    "shutdown_proof": "Say how the end is proven, e.g. shutdown_proof.json.",
    "instance_vram": "Set it to the GPU memory of the instance in GiB, e.g. 80.",
    "hourly_budget": "Set it to the provider's hourly price, e.g. 2.49.",
    "hard_stop_time": f"Set it to when the rental must end, e.g. '{hard_stop.EXAMPLE}' (quoted).",
    "evidence_to_copy_back": "List the files to copy back, e.g. [environment_report.json].",
}
MODEL_SIZE_FIELDS: dict[str, str] = {
    "num_layers": "num_hidden_layers in config.json, e.g. 24",
    "hidden_size": "hidden_size in config.json, e.g. 896",
    "num_attention_heads": "num_attention_heads in config.json, e.g. 14",
    "num_kv_heads": "num_key_value_heads in config.json (= heads without GQA), e.g. 2",
    "max_context": "max_position_embeddings in config.json, e.g. 32768",
}
SAFE_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
REPO_ID = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9._-]*/)?[A-Za-z0-9][A-Za-z0-9._-]*$")
COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")
HEX = re.compile(r"^[0-9a-fA-F]+$")


def _msg(var: str, problem: str, value: object, fix: str) -> str:
    return f"{var}: {problem}, got {show(value)}. {fix}"


def _var(section: str, key: str) -> str:
    return f"preflight_{section}.{key}"


# --- time -------------------------------------------------------------------------------
# The hard stop's one format (and what counts as empty) is plugin_utils/hard_stop.py's.


def resolve_now(now: object) -> datetime:
    """``now`` as an aware datetime; the current UTC time when None or empty."""
    return hard_stop.parse(now, "now") or datetime.now(UTC)


def check_stop_time(var: str, value: object, now: datetime, future: bool) -> list[str]:
    try:
        moment = hard_stop.parse(value, var)
    except hard_stop.HardStopError as error:
        return [str(error)]
    if future and moment is not None and moment <= now:
        later = hard_stop.utc_text(now + timedelta(hours=4))
        return [
            f"{var}: lies in the past, got {hard_stop.utc_text(moment)} while it is now "
            f"{hard_stop.utc_text(now)}. Move it to when the rental must end, e.g. {later}."
        ]
    return []


# --- generic field checks -----------------------------------------------------------------


def check_text(var: str, value: object, fix: str) -> list[str]:
    if is_text(value):
        return []
    return [_msg(var, "must be a non-empty string", value, fix)]


def check_number(var: str, value: object, minimum: float, strict: bool, fix: str) -> list[str]:
    number = as_number(value)
    ok = number is not None and (number > minimum if strict else number >= minimum)
    if ok:
        return []
    bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
    return [_msg(var, f"must be a number {bound}", value, fix)]


def check_positive_int(var: str, value: object, fix: str) -> list[str]:
    number = as_int(value)
    if number is not None and number > 0:
        return []
    return [_msg(var, "must be a positive integer", value, fix)]


def check_choice(var: str, value: object, choices: tuple[str, ...], fix: str) -> list[str]:
    if isinstance(value, str) and value in choices:
        return []
    return [_msg(var, f"must be one of {', '.join(choices)}", value, fix)]


def check_string_list(var: str, value: object, required: bool, fix: str) -> list[str]:
    if not isinstance(value, (list, tuple)):
        return [_msg(var, "must be a list of strings", value, fix)]
    if required and not value:
        return [_msg(var, "must list at least one item", value, fix)]
    bad = [item for item in value if not is_text(item)]
    if bad:
        return [_msg(var, "must hold only non-empty strings", bad[0], fix)]
    return []


def check_mapping(var: str, value: object, fix: str) -> list[str]:
    if isinstance(value, Mapping):
        return []
    return [_msg(var, "must be a dict", value, fix)]


# --- sections -----------------------------------------------------------------------------


def check_route(route: object) -> list[str]:
    return check_choice(
        "preflight_route",
        route,
        ROUTES,
        "Set llmhost_route to local_cpu (the CPU lab) or rented_gpu (a rented GPU host).",
    )


def _gpu_plan_field(key: str, value: object, rented: bool, now: datetime) -> list[str]:
    var, fix = _var("gpu_plan", key), GPU_PLAN_FIXES[key]
    if key in GPU_PLAN_TEXT_FIELDS:
        return check_text(var, value, fix)
    if key == "instance_vram":
        return check_number(var, value, 0, True, fix)
    if key == "hourly_budget":
        return check_number(var, value, 0, False, fix)
    if key == "hard_stop_time":
        return check_stop_time(var, value, now, future=rented)
    return check_string_list(var, value, rented, fix)


def check_gpu_plan(plan: object, rented: bool, now: datetime) -> list[str]:
    """rented_gpu: every field filled in and well-formed; otherwise only what is given."""
    if plan is None and not rented:
        return []
    if not isinstance(plan, Mapping):
        fix = f"Fill in {', '.join(GPU_PLAN_FIELDS)} (see the inventory examples)."
        return [_msg("preflight_gpu_plan", "must be a dict", plan, fix)]
    errors: list[str] = []
    for key in GPU_PLAN_FIELDS:
        value = plan.get(key)
        blank = hard_stop.is_empty(value) if key == "hard_stop_time" else is_blank(value)
        if not blank:
            errors += _gpu_plan_field(key, value, rented, now)
        elif rented:
            var = _var("gpu_plan", key)
            errors.append(_msg(var, "must be filled in on rented_gpu", value, GPU_PLAN_FIXES[key]))
    return errors


def check_model_name(name: object) -> list[str]:
    var = _var("model", "name")
    fix = "Use letters, digits, '.', '_' and '-' only, e.g. Qwen2.5-0.5B-Instruct."
    if not is_text(name):
        return [_msg(var, "must be a non-empty string", name, fix)]
    text = str(name)
    if not SAFE_NAME.match(text) or ".." in text:
        return [_msg(var, "must be a safe folder name (no '/', no '..', no spaces)", name, fix)]
    return []


def _revision_problem(value: object) -> str:
    if isinstance(value, str) and HEX.match(value) and len(value) < 40:
        return f"must be a full 40-hex commit SHA, not a {len(value)}-character short SHA"
    if isinstance(value, str) and HEX.match(value) and len(value) == 40:
        return "must be a 40-hex commit SHA in lowercase"
    return "must be a 40-hex commit SHA (branches and tags move)"


def check_hub_source(model: Mapping[str, Any]) -> list[str]:
    errors: list[str] = []
    repo_id = model.get("repo_id")
    if not (is_text(repo_id) and REPO_ID.match(str(repo_id)) and ".." not in str(repo_id)):
        errors.append(
            _msg(
                _var("model", "repo_id"),
                "must be a hub repository id owner/name",
                repo_id,
                "Set it to the model's hub id, e.g. Qwen/Qwen2.5-0.5B-Instruct.",
            )
        )
    revision = model.get("revision")
    if not (isinstance(revision, str) and COMMIT_SHA.match(revision)):
        errors.append(
            _msg(
                _var("model", "revision"),
                _revision_problem(revision),
                revision,
                "Pin the full commit id from the model's 'Files and versions' history "
                "(quote it in YAML).",
            )
        )
    return errors


def check_rejected_alternatives(value: object) -> list[str]:
    var = _var("model", "rejected_alternatives")
    fix = "Write a list of {name, reason}, e.g. [{name: Llama-3.1-8B, reason: gated licence}]."
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        return [_msg(var, "must be a list of {name, reason}", value, fix)]
    for index, item in enumerate(value):
        if not (
            isinstance(item, Mapping) and is_text(item.get("name")) and is_text(item.get("reason"))
        ):
            return [_msg(f"{var}[{index}]", "must have a non-empty name and reason", item, fix)]
    return []


def check_model_shape(model: Mapping[str, Any]) -> list[str]:
    errors: list[str] = []
    for key, hint in MODEL_SIZE_FIELDS.items():
        errors += check_positive_int(_var("model", key), model.get(key), f"Set it to {hint}.")
    if errors or not is_blank(model.get("head_dim")):
        return errors
    hidden, heads = as_int(model["hidden_size"]) or 1, as_int(model["num_attention_heads"]) or 1
    kv_heads = as_int(model["num_kv_heads"]) or 1
    if hidden % heads:
        errors.append(
            f"{_var('model', 'hidden_size')}: {hidden} is not divisible by num_attention_heads "
            f"{heads}. Check config.json, or set preflight_model.head_dim explicitly."
        )
    if kv_heads > heads or heads % kv_heads:
        errors.append(
            f"{_var('model', 'num_kv_heads')}: {kv_heads} must divide num_attention_heads "
            f"{heads}. Copy num_key_value_heads from config.json."
        )
    return errors


def check_model(model: object) -> list[str]:
    fix = "Describe the model: name, source, params, dtype, sizes, max_context, license."
    if not isinstance(model, Mapping):
        return [_msg("preflight_model", "must be a dict", model, fix)]
    errors = check_model_name(model.get("name"))
    source = model.get("source")
    errors += check_choice(
        _var("model", "source"),
        source,
        SOURCES,
        "Use hub (download), local (a control-node folder) or host (a folder on the host).",
    )
    if source == "hub":
        errors += check_hub_source(model)
    errors += check_positive_int(
        _var("model", "params"),
        model.get("params"),
        "Set it to the parameter count as an integer, e.g. 494032768 (not '0.5B').",
    )
    errors += check_choice(
        _var("model", "dtype"), model.get("dtype"), DTYPES, "Use the checkpoint's torch_dtype."
    )
    errors += check_model_shape(model)
    errors += check_text(
        _var("model", "license"), model.get("license"), "Set it to the SPDX id or the terms."
    )
    errors += check_rejected_alternatives(model.get("rejected_alternatives"))
    return errors


def check_max_model_len(value: object, max_context: object) -> list[str]:
    var = _var("serving", "max_model_len")
    errors = check_positive_int(var, value, "Set it to the longest prompt+output, e.g. 4096.")
    length, context = as_int(value), as_int(max_context)
    if not errors and length and context and context > 0 and length > context:
        errors.append(
            f"{var}: {length} exceeds preflight_model.max_context {context}. "
            f"Lower it to {context} or less."
        )
    return errors


def check_utilization(value: object) -> list[str]:
    """Absent means vLLM's default 0.9; given, it must be a fraction in (0, 1]."""
    number = DEFAULT_GPU_MEMORY_UTILIZATION if value is None else as_number(value)
    if number is not None and 0 < number <= 1:
        return []
    return [
        _msg(
            _var("serving", "gpu_memory_utilization"),
            "must be a fraction in (0, 1]",
            value,
            "Use e.g. 0.9 (vLLM's default); 90 is not a fraction.",
        )
    ]


def check_serving(serving: object, model: object) -> list[str]:
    fix = "Set max_model_len and max_num_seqs (gpu_memory_utilization, kv_cache_dtype optional)."
    if not isinstance(serving, Mapping):
        return [_msg("preflight_serving", "must be a dict", serving, fix)]
    max_context = model.get("max_context") if isinstance(model, Mapping) else None
    errors = check_max_model_len(serving.get("max_model_len"), max_context)
    errors += check_positive_int(
        _var("serving", "max_num_seqs"),
        serving.get("max_num_seqs"),
        "Set it to the concurrent sequences to serve, e.g. 64.",
    )
    errors += check_utilization(serving.get("gpu_memory_utilization"))
    errors += check_choice(
        _var("serving", "kv_cache_dtype"),
        serving.get("kv_cache_dtype", "auto"),
        KV_CACHE_DTYPES,
        "Use auto (the model's dtype) or fp8 (half the KV memory on Hopper).",
    )
    return errors


def check_models_root(value: object) -> list[str]:
    var = "preflight_models_root"
    fix = "Set it to an absolute folder, e.g. /srv/llmhost/models."
    if not (is_text(value) and str(value).startswith("/")):
        return [_msg(var, "must be an absolute path", value, fix)]
    if ".." in str(value).split("/") or posixpath.normpath(str(value)) == "/":
        return [_msg(var, "must be a folder below / without '..'", value, fix)]
    return []


def preflight_errors(inputs: Mapping[str, Any], now: str | None = None) -> list[str]:
    """Every problem with the preflight inputs, one message each (empty list: all good).

    inputs: {route, gpu_plan, model, serving, models_root}; now: the time the hard stop
    is compared with, in the hard stop's format (default: the current UTC time).
    """
    if not isinstance(inputs, Mapping):
        return [
            _msg(
                "preflight inputs",
                "must be a dict",
                inputs,
                "Pass {route, gpu_plan, model, serving, models_root} from the preflight_* vars.",
            )
        ]
    moment = resolve_now(now)
    route = inputs.get("route")
    errors = check_route(route)
    errors += check_gpu_plan(inputs.get("gpu_plan"), route == "rented_gpu", moment)
    errors += check_model(inputs.get("model"))
    errors += check_serving(inputs.get("serving"), inputs.get("model"))
    errors += check_models_root(inputs.get("models_root"))
    return errors


# --- Ansible entry points -----------------------------------------------------------------


def preflight_errors_filter(inputs: Mapping[str, Any], now: str | None = None) -> list[str]:
    try:
        return preflight_errors(inputs, now)
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError(f"llmhost.core.preflight_errors: {exc}") from exc


def model_fit_filter(
    model: Mapping[str, Any],
    serving: Mapping[str, Any],
    route: str,
    gpus: list[Mapping[str, Any]] | None = None,
    host_ram_mib: int | None = None,
    instance_vram_gib: float | None = None,
) -> dict[str, Any]:
    try:
        return model_fit(model, serving, route, gpus, host_ram_mib, instance_vram_gib)
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError(f"llmhost.core.model_fit: {exc}") from exc


class FilterModule:
    """llmhost.core preflight filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "preflight_errors": preflight_errors_filter,
            "model_fit": model_fit_filter,
        }
