"""End-to-end CPU runs of ``python -m training.train`` (in-process, small step counts)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from training.checkpoint import CHECKPOINT_NAME, load_checkpoint
from training.metrics import CSV_FIELDS, read_csv
from training.train import main

RunFn = Callable[..., tuple[int, Path]]


def test_tiny_loss_decreases_over_50_steps(tmp_path: Path) -> None:
    """The real ``tiny`` model on the shipped (sha-verified) corpus."""
    code = main(
        ["--config", "tiny", "--out", str(tmp_path), "--steps", "50", "--device", "cpu",
         "--no-export", "--set", "eval_iters=2"]
    )  # fmt: skip
    assert code == 0
    rows = read_csv(tmp_path / "openllm_gpu_training_run" / "training_log.csv")
    losses = [float(r["loss"]) for r in rows]
    assert len(losses) == 50
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert first > 7.0  # ~ln(2048) at init
    assert last < first - 0.8, (first, last)


def test_cpu_run_writes_every_output(
    tmp_path: Path, run_train: RunFn, capsys: pytest.CaptureFixture[str]
) -> None:
    prom_dir = tmp_path / "textfile"
    code, run_dir = run_train(
        tmp_path / "out", "--steps", "6", "--textfile-dir", str(prom_dir),
        "--run-kind", "cuda_acceptance",  # asked for, but a CPU run can never be that
    )  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out

    assert (run_dir / "RUN_KIND").read_text() == "cpu_smoke\n"

    env = json.loads((run_dir / "environment_report.json").read_text())
    for key in ("device", "torch_version", "cuda_version", "gpu_name", "gpu_memory_gib",
                "python", "platform", "cpu_count"):  # fmt: skip
        assert key in env, key
    assert env["device"] == "cpu" and env["cuda_available"] is False

    rows = read_csv(run_dir / "training_log.csv")
    header = (run_dir / "training_log.csv").read_text().splitlines()[0]
    assert header == ",".join(CSV_FIELDS) == "step,loss,lr,tokens_per_s,mfu,elapsed_s"
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    for r in rows:
        assert math.isfinite(float(r["loss"])) and float(r["lr"]) > 0
        assert float(r["tokens_per_s"]) > 0 and float(r["elapsed_s"]) > 0
        assert r["mfu"] == ""  # no peak FLOP/s on CPU

    log = (run_dir / "gpu_train_log.txt").read_text()
    assert "device: cpu" in log
    loss_rows = [ln for ln in log.splitlines() if ln.startswith("step ") and "| loss " in ln]
    assert len(loss_rows) >= 3
    assert all("tok/s" in ln and "eta" in ln for ln in loss_rows)
    assert f"checkpoint: {run_dir / CHECKPOINT_NAME}" in log
    assert "sample (sample.txt):" in log
    assert "RUN_KIND: cpu_smoke" in log
    assert "warning: RUN_KIND 'cuda_acceptance' was requested" in log
    assert loss_rows[0] in out  # the terminal shows the same trace

    sample = (run_dir / "sample.txt").read_text()
    assert sample.startswith("prompt: A hacker is\n")
    assert "\n---\nA hacker is" in sample

    for name in ("config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja",
                 "generation_config.json"):  # fmt: skip
        assert (run_dir / "hf_export" / name).is_file()

    state = load_checkpoint(run_dir / CHECKPOINT_NAME)
    assert state["step"] == 6
    assert {"model", "optimizer", "config", "rng", "tokenizer_json"} <= set(state)
    assert state["device_types"] == ["cpu"]

    prom = (prom_dir / "llmhost_training.prom").read_text()
    for metric in ("llmhost_training_step 6.0", "llmhost_training_loss ",
                   "llmhost_training_tokens_per_second ", "llmhost_training_progress_ratio 1.0",
                   "llmhost_training_eta_seconds 0.0", 'status="completed"'):  # fmt: skip
        assert metric in prom, metric
    assert "llmhost_training_mfu_ratio" not in prom  # unknown on CPU: left out, not 0


def test_resume_gives_the_same_losses_as_an_uninterrupted_run(
    tmp_path: Path, run_train: RunFn
) -> None:
    common = ("--steps", "8", "--no-export", "--set", "ckpt_interval=0")
    code, full_dir = run_train(tmp_path / "full", *common)
    assert code == 0
    full = [float(r["loss"]) for r in read_csv(full_dir / "training_log.csv")]

    code, part_dir = run_train(tmp_path / "part", *common, "--stop-after", "4")
    assert code == 0
    assert (part_dir / "RUN_KIND").read_text() == "incomplete\n"
    assert load_checkpoint(part_dir / CHECKPOINT_NAME)["step"] == 4

    code, _ = run_train(tmp_path / "part", *common, "--resume")
    assert code == 0
    rows = read_csv(part_dir / "training_log.csv")
    assert [int(r["step"]) for r in rows] == list(range(1, 9))  # no duplicated rows
    resumed = [float(r["loss"]) for r in rows]
    assert resumed[4] == pytest.approx(full[4], abs=1e-6)  # the next loss after resuming
    assert resumed == pytest.approx(full, abs=1e-5)
    assert (part_dir / "RUN_KIND").read_text() == "cpu_smoke\n"
    log = (part_dir / "gpu_train_log.txt").read_text()
    assert "resumed" in log and "stopped after step 4" in log


def test_export_of_a_trained_run_matches_our_logits(tmp_path: Path, run_train: RunFn) -> None:
    from transformers import AutoModelForCausalLM

    from training.model import GPT, GPTConfig

    code, run_dir = run_train(tmp_path, "--steps", "4", "--set", "sample_tokens=4")
    assert code == 0
    state = load_checkpoint(run_dir / CHECKPOINT_NAME)
    cfg = json.loads((run_dir / "hf_export" / "config.json").read_text())
    model = GPT(GPTConfig(n_layer=2, n_head=2, n_embd=64, block_size=64,
                          vocab_size=cfg["vocab_size"]))  # fmt: skip
    model.load_state_dict(state["model"])
    model.eval()
    hf = AutoModelForCausalLM.from_pretrained(str(run_dir / "hf_export"), dtype=torch.float32)
    ids = torch.randint(0, cfg["vocab_size"], (2, 64), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, _ = model(ids)
        theirs = hf.eval()(input_ids=ids).logits
    assert torch.allclose(ours, theirs, atol=1e-4)


def test_sigterm_checkpoints_and_exits_130(
    tmp_path: Path, run_train: RunFn, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import signal

    from training import train as train_mod

    real_step = train_mod.train_step
    calls: list[int] = []

    def step_then_sigterm(*args: Any, **kwargs: Any) -> tuple[float, float]:
        res = real_step(*args, **kwargs)
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # e.g. an Ansible async timeout
        return res

    monkeypatch.setattr(train_mod, "train_step", step_then_sigterm)
    code, run_dir = run_train(tmp_path, "--steps", "10", "--no-export")
    assert code == 130
    assert load_checkpoint(run_dir / CHECKPOINT_NAME)["step"] == 2
    assert (run_dir / "RUN_KIND").read_text() == "incomplete\n"
    assert "rerun with --resume" in (run_dir / "gpu_train_log.txt").read_text()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handler restored
