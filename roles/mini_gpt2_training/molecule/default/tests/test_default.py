"""testinfra checks of mini_gpt2_training: a real cpu_smoke run on the container."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

OUT = "/var/lib/llmhost/training/molecule/openllm_gpu_training_run"


def test_dedicated_user_runs_the_job(host) -> None:
    user = host.user("llmhost-train")
    assert user.exists
    assert user.shell == "/usr/sbin/nologin"
    assert host.file(OUT).user == "llmhost-train"
    assert not host.process.filter(user="llmhost-train"), "the job left a process behind"


def test_package_is_read_only_for_the_job(host) -> None:
    f = host.file("/opt/llmhost/training/training/train.py")
    assert f.user == "root"
    assert f.mode == 0o644
    assert not host.file("/opt/llmhost/training/training/__pycache__").exists


def test_venv_has_the_pinned_torch(host) -> None:
    out = host.check_output(
        "/opt/llmhost/training/venv/bin/python -c 'import torch; print(torch.__version__)'"
    )
    assert out.startswith("2.13.0")


def test_run_is_labelled_cpu_smoke(host) -> None:
    assert host.file(f"{OUT}/RUN_KIND").content_string.strip() == "cpu_smoke"


def test_training_log_shows_learning(host) -> None:
    rows = list(csv.DictReader(io.StringIO(host.file(f"{OUT}/training_log.csv").content_string)))
    assert len(rows) >= 3
    assert {"step", "loss", "lr", "tokens_per_s", "mfu", "elapsed_s"} <= set(rows[0])
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])


def test_export_and_sample_exist(host) -> None:
    config = json.loads(host.file(f"{OUT}/hf_export/config.json").content_string)
    assert config["model_type"] == "gpt2"
    assert host.file(f"{OUT}/hf_export/model.safetensors").size > 0
    assert host.file(f"{OUT}/sample.txt").size > 0


def test_progress_metrics_in_the_textfile_folder(host) -> None:
    prom = host.file("/var/lib/llmhost/textfile/llmhost_training.prom").content_string
    assert "llmhost_training_step" in prom


def test_evidence_fetched(host) -> None:
    bundle = Path(os.environ["LLMHOST_EVIDENCE_DIR"])
    run = bundle / "openllm_gpu_training_run"
    for name in (
        "RUN_KIND",
        "training_log.csv",
        "environment_report.json",
        "sample.txt",
        "mini_gpt2_checkpoint.pt",
        "hf_export/config.json",
    ):
        assert (run / name).is_file(), f"{name} missing from the bundle"
    trace = (bundle / "gpu_train_log.txt").read_text(encoding="utf-8")
    assert "cpu" in trace.lower()
