"""llmhost.core.serving_checks and llmhost.core.timeout_hierarchy: the serving settings
checked before any change. The lab's own values first (what serving_checks.json says on
the lab), then each rule's pass, fail and skip."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.llmhost.core.plugins.filter.parallel import FilterModule as Parallel
from ansible_collections.llmhost.core.plugins.filter.serving import FilterModule

ROOT = Path(__file__).resolve().parents[2]
checks = FilterModule().filters()["serving_checks"]
timeouts = FilterModule().filters()["timeout_hierarchy"]
plan = Parallel().filters()["parallel_plan"]


def _defaults(role: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text("utf-8"))


def _role_defaults() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for role in ("evaluation", "gateway", "vllm"):
        out.update(_defaults(role))
    return out


def _lab() -> dict[str, Any]:
    path = ROOT / "inventories" / "lab" / "group_vars" / "all" / "llmhost.yml"
    return yaml.safe_load(path.read_text("utf-8"))


def by_name(out: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in out["checks"]}


# --- the lab --------------------------------------------------------------------------------


def test_the_lab_passes_every_check_it_has_facts_for() -> None:
    lab = _lab()
    defaults = _role_defaults()
    settings = {
        "vllm_kv_cache_dtype": lab["llmhost_releases"]["trained"]["serving"]["kv_cache_dtype"],
        "vllm_dtype": lab.get("vllm_dtype", defaults["vllm_dtype"]),
        "vllm_device": "cpu",  # local_cpu
    }
    parallel = plan(
        {
            "vllm_tensor_parallel_size": lab["vllm_tensor_parallel_size"],
            "vllm_pipeline_parallel_size": lab["vllm_pipeline_parallel_size"],
            "vllm_distributed_executor_backend": lab["vllm_distributed_executor_backend"],
            "vllm_device": "cpu",
        },
        {"num_attention_heads": 4, "num_kv_heads": 4, "num_layers": 4},
    )
    names = [n for n in defaults if n.endswith("timeout_s")]
    hierarchy = timeouts({n: lab.get(n, "") for n in names}, defaults)
    # source host: the model is on the host, so preflight has no config.json (the vllm
    # role resolves auto there).
    out = checks(settings, {}, None, parallel, hierarchy)
    got = by_name(out)
    assert out["refused"] == []
    assert got["kv_cache_dtype"]["status"] == "pass"
    assert got["dtype"]["status"] == "skipped"
    assert got["tensor_parallel"]["status"] == "pass"
    assert got["timeout_hierarchy"]["status"] == "pass", got["timeout_hierarchy"]
    # the converted model's config.json says float32: auto becomes --dtype float32
    resolved = checks(settings, {"torch_dtype": "float32"}, None, parallel, hierarchy)
    assert by_name(resolved)["dtype"]["values"]["resolved"] == "float32"


def test_the_role_defaults_keep_the_hierarchy() -> None:
    out = timeouts({}, _role_defaults())
    assert out["refused"] == []
    assert out["check"]["status"] == "pass"
    assert "llmhost_switch_probe_timeout_s" in out["check"]["detail"]  # no role: skipped


# --- KV-cache dtype -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kv", "device", "cap", "status"),
    [
        ("auto", "cuda", None, "pass"),
        ("auto", "cpu", None, "pass"),
        ("fp8", "cuda", "9.0", "pass"),
        ("fp8_e4m3", "cuda", "8.9", "pass"),
        ("fp8_e5m2", "cuda", "10.0", "pass"),
        ("fp8", "cuda", "8.0", "fail"),
        ("fp8_e4m3", "cuda", "7.5", "fail"),
        ("fp8", "cuda", None, "skipped"),
        ("fp8_e5m2", "cpu", None, "pass"),
        ("int8", "cuda", "9.0", "fail"),
        ("fp8_inc", "cpu", None, "fail"),
    ],
)
def test_kv_cache_dtype(kv: str, device: str, cap: str | None, status: str) -> None:
    settings = {"vllm_kv_cache_dtype": kv, "vllm_dtype": "float16", "vllm_device": device}
    out = checks(settings, {}, cap)
    assert by_name(out)["kv_cache_dtype"]["status"] == status
    assert any("vllm_kv_cache_dtype" in r for r in out["refused"]) == (status == "fail")


def test_fp8_below_ada_names_the_fix() -> None:
    out = checks(
        {"vllm_kv_cache_dtype": "fp8", "vllm_dtype": "auto", "vllm_device": "cuda"}, {}, "8.0"
    )
    assert "8.0" in out["refused"][0] and "Fix: auto" in out["refused"][0]


# --- dtype ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "config", "status", "resolved"),
    [
        ("auto", {"torch_dtype": "bfloat16"}, "pass", "bfloat16"),
        ("auto", {"dtype": "float32"}, "pass", "float32"),  # newer transformers' name
        ("auto", {"text_config": {"torch_dtype": "float16"}}, "pass", "float16"),
        ("auto", {"architectures": ["GPT2LMHeadModel"]}, "fail", None),
        ("auto", {}, "skipped", None),
        ("float32", {}, "pass", "float32"),
        ("half", {"torch_dtype": "float16"}, "pass", "float16"),
        ("int4", {}, "fail", None),
    ],
)
def test_dtype(dtype: str, config: dict[str, Any], status: str, resolved: str | None) -> None:
    out = checks(
        {"vllm_kv_cache_dtype": "auto", "vllm_dtype": dtype, "vllm_device": "cuda"}, config
    )
    got = by_name(out)["dtype"]
    assert got["status"] == status
    assert got["values"]["resolved"] == resolved


def test_not_in_play_skips_all_but_timeouts() -> None:
    out = checks({"vllm_device": ""}, {}, None, {"in_play": False})
    assert [c["status"] for c in out["checks"]] == ["skipped"] * 4
    assert out["refused"] == []


# --- tensor parallel ------------------------------------------------------------------------


def test_tensor_parallel_summarises_the_plan() -> None:
    settings = {
        "vllm_tensor_parallel_size": 3,
        "vllm_pipeline_parallel_size": 1,
        "vllm_distributed_executor_backend": "mp",
        "vllm_device": "cuda",
    }
    bad = plan(settings, {"num_attention_heads": 28, "num_kv_heads": 4, "num_layers": 28}, {}, 3)
    out = checks(
        {"vllm_kv_cache_dtype": "auto", "vllm_dtype": "auto", "vllm_device": "cuda"}, {}, None, bad
    )
    assert by_name(out)["tensor_parallel"]["status"] == "fail"
    assert "28 attention heads" in by_name(out)["tensor_parallel"]["detail"]


# --- timeouts -------------------------------------------------------------------------------

GOOD = {
    "evaluation_request_timeout_s": 660,
    "evaluation_load_request_timeout_s": 660,
    "llmhost_switch_probe_timeout_s": 660,
    "gateway_connect_timeout_s": 5,
    "gateway_read_timeout_s": 600,
    "vllm_shutdown_timeout_s": 30,
}


def test_timeouts_in_order_pass() -> None:
    out = timeouts(GOOD)
    assert out["refused"] == [] and out["check"]["status"] == "pass"
    assert out["check"]["values"]["gateway_read_timeout_s"] == 600


@pytest.mark.parametrize(
    ("name", "value", "fixes"),
    [
        ("evaluation_request_timeout_s", 120, "evaluation_request_timeout_s: 665"),
        ("evaluation_load_request_timeout_s", 605, "evaluation_load_request_timeout_s"),
        ("llmhost_switch_probe_timeout_s", 120, "llmhost_switch_probe_timeout_s"),
        ("vllm_shutdown_timeout_s", 600, "vllm_shutdown_timeout_s: 300"),
        ("gateway_read_timeout_s", 5, "gateway_read_timeout_s: 600"),
    ],
)
def test_timeouts_out_of_order_name_the_variable_and_fix(name: str, value: int, fixes: str) -> None:
    out = timeouts({**GOOD, name: value})
    assert out["check"]["status"] == "fail"
    assert any(fixes in r for r in out["refused"]), out["refused"]


def test_timeouts_take_defaults_and_skip_the_absent() -> None:
    out = timeouts(
        {"gateway_read_timeout_s": ""},
        {"gateway_read_timeout_s": 600, "gateway_connect_timeout_s": 5},
    )
    assert out["check"]["status"] == "skipped" or out["refused"] == []
    assert "evaluation_request_timeout_s unset" in out["check"]["detail"]


def test_timeouts_refuse_a_non_number() -> None:
    out = timeouts({**GOOD, "gateway_read_timeout_s": "ten"})
    assert any("gateway_read_timeout_s: must be a number" in r for r in out["refused"])


def test_bad_arguments_are_filter_errors() -> None:
    with pytest.raises(AnsibleFilterError):
        timeouts(["not", "a", "dict"])
    with pytest.raises(AnsibleFilterError):
        checks("nope")
