"""Small units: configs and overrides, RUN_KIND rules, MFU, LR schedule, bench script."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from training.config import CONFIGS, apply_overrides, get_config, parse_overrides
from training.engine import lr_at, select_device
from training.errors import ConfigError, CudaRequiredError
from training.metrics import mfu, peak_flops
from training.model import GPTConfig, flops_per_token
from training.runlog import decide_run_kind

ROOT = Path(__file__).resolve().parents[2]


def test_named_configs() -> None:
    tiny, big = get_config("tiny"), get_config("gpt2-124m")
    assert (tiny.n_layer, tiny.n_embd, tiny.n_head, tiny.block_size) == (4, 128, 4, 128)
    assert tiny.tokenizer_vocab_size == 2048
    assert (big.n_layer, big.n_embd, big.n_head, big.block_size) == (12, 768, 12, 1024)
    assert big.vocab_size == 50304 and big.vocab_size % 64 == 0
    for cfg in CONFIGS.values():
        cfg.validate()
    with pytest.raises(ConfigError, match="unknown config"):
        get_config("gpt5")


def test_overrides_are_typed() -> None:
    cfg = apply_overrides(
        get_config("tiny"),
        parse_overrides(["n_layer=2", "learning_rate=1e-3", "sample_prompt=Hi there",
                         "compile=no", "max_steps=1e3"]),
    )  # fmt: skip
    assert cfg.n_layer == 2 and cfg.learning_rate == pytest.approx(1e-3)
    assert cfg.sample_prompt == "Hi there" and cfg.compile == "false"
    assert cfg.max_steps == 1000
    with pytest.raises(ConfigError, match="not a valid int"):
        apply_overrides(get_config("tiny"), {"n_layer": "two"})
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_overrides(["n_layer"])
    bad = apply_overrides(get_config("tiny"), {"n_head": "3"})
    with pytest.raises(ConfigError, match="divisible"):
        bad.validate()


@pytest.mark.parametrize(
    ("devices", "completed", "requested", "expected", "warns"),
    [
        ({"cpu"}, True, None, "cpu_smoke", False),
        ({"cpu"}, True, "cuda_acceptance", "cpu_smoke", True),  # CPU is never acceptance
        ({"mps"}, True, None, "cpu_smoke", False),
        ({"cuda"}, True, None, "cuda_acceptance", False),
        ({"cuda"}, False, "cuda_acceptance", "incomplete", True),
        ({"cpu"}, False, None, "incomplete", False),
        ({"cpu", "cuda"}, True, None, "cpu_smoke", False),  # resumed across devices
        (set(), True, None, "cpu_smoke", False),
    ],
)
def test_run_kind_rules(
    devices: set[str], completed: bool, requested: str | None, expected: str, warns: bool
) -> None:
    kind, warning = decide_run_kind(devices, completed, requested)
    assert kind == expected
    assert (warning is not None) == warns


def test_mfu_formula_and_peak_table() -> None:
    cfg = GPTConfig(n_layer=12, n_head=12, n_embd=768, block_size=1024, vocab_size=50304)
    n = 124_000_000
    fpt = flops_per_token(cfg, n)
    assert fpt == 6 * n + 12 * 12 * 12 * 64 * 1024
    assert peak_flops("cuda", "NVIDIA H100 80GB HBM3") == 989e12
    assert peak_flops("cuda", "NVIDIA H100 PCIe") == 756e12
    assert peak_flops("cuda", "NVIDIA A100-SXM4-80GB") == 312e12
    assert peak_flops("cuda", "NVIDIA L4") == 121e12
    assert peak_flops("cuda", "NVIDIA L40S") == 362e12
    assert peak_flops("cuda", "NVIDIA A10") == 125e12
    assert peak_flops("cuda", "Some Future GPU") is None
    assert peak_flops("cpu", None) is None
    assert peak_flops("cpu", None, override=1e12) == 1e12
    assert mfu(fpt, 400_000, 989e12) == pytest.approx(fpt * 400_000 / 989e12)
    assert mfu(fpt, 400_000, None) is None


def test_lr_schedule_warmup_then_cosine() -> None:
    cfg = apply_overrides(get_config("tiny"), {"max_steps": "100", "warmup_steps": "10"})
    lrs = [lr_at(i, cfg) for i in range(100)]
    assert lrs[0] == pytest.approx(cfg.learning_rate / 10)
    assert lrs[9] == pytest.approx(cfg.learning_rate)
    assert all(a >= b for a, b in itertools.pairwise(lrs[9:]))
    assert lr_at(100, cfg) == pytest.approx(cfg.learning_rate * cfg.min_lr_ratio)


def test_device_selection_on_this_machine() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert select_device("cpu", False).type == "cpu"
    with pytest.raises(CudaRequiredError):
        select_device("auto", True)
    with pytest.raises(CudaRequiredError):
        select_device("cuda", False)
    with pytest.raises(ConfigError):
        select_device("cpu", True)


def test_bench_script_runs_on_cpu() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_train.py"), "--device", "cpu",
         "--steps", "2", "--batch-size", "2", "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "tokens/s:" in proc.stdout and "MFU: n/a" in proc.stdout
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["config"] == "tiny" and res["tokens_per_s"] > 0 and res["mfu"] is None
