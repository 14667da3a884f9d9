"""Error paths: a clear ``error:`` + ``fix:`` on stderr, exit code 2, no traceback."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from training import checkpoint as ckpt_mod
from training import data as data_mod
from training import train as train_mod
from training.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from training.errors import EXIT_USER_ERROR, CheckpointError

RunFn = Callable[..., tuple[int, Path]]
ROOT = Path(__file__).resolve().parents[2]


def _stderr(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_require_cuda_without_cuda_is_a_clear_error(tmp_path: Path) -> None:
    """Through the real CLI entry point: one error line, a fix, exit 2."""
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    proc = subprocess.run(
        [sys.executable, "-m", "training.train", "--config", "tiny", "--out", str(tmp_path),
         "--require-cuda"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert proc.returncode == EXIT_USER_ERROR, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith("error: CUDA is required but not available")
    assert lines[1].startswith("fix: ")
    run_dir = tmp_path / "openllm_gpu_training_run"
    assert (run_dir / "RUN_KIND").read_text() == "incomplete\n"
    assert (run_dir / "environment_report.json").is_file()
    assert "error: CUDA is required" in (run_dir / "gpu_train_log.txt").read_text()


def test_missing_corpus(
    tmp_path: Path, run_train: RunFn, capsys: pytest.CaptureFixture[str]
) -> None:
    code, run_dir = run_train(tmp_path, corpus=tmp_path / "nope.txt")
    assert code == EXIT_USER_ERROR
    err = _stderr(capsys)
    assert f"error: corpus not found: {tmp_path / 'nope.txt'}" in err
    assert "fix: " in err
    assert (run_dir / "RUN_KIND").read_text() == "incomplete\n"


def test_corpus_too_small_for_the_context(
    tmp_path: Path, run_train: RunFn, capsys: pytest.CaptureFixture[str]
) -> None:
    small = tmp_path / "small.txt"
    small.write_text("The Jargon File is a lexicon of hacker slang. " * 20, encoding="utf-8")
    code, _ = run_train(tmp_path / "out", corpus=small)
    assert code == EXIT_USER_ERROR
    err = _stderr(capsys)
    assert "too small for context length block_size=64" in err
    assert "--set block_size=" in err


def test_shipped_corpus_sha256_mismatch(
    tmp_path: Path,
    run_train: RunFn,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tampered = tmp_path / "jargon.txt"
    tampered.write_bytes(data_mod.DEFAULT_CORPUS_PATH.read_bytes() + b"extra line\n")
    monkeypatch.setattr(data_mod, "DEFAULT_CORPUS_PATH", tampered)
    code, _ = run_train(tmp_path / "out", corpus=None)
    assert code == EXIT_USER_ERROR
    err = _stderr(capsys)
    assert "sha256" in err and data_mod.DEFAULT_CORPUS_SHA256 in err
    assert "git checkout -- training/data/jargon.txt" in err


def test_shipped_corpus_is_verified() -> None:
    corpus = data_mod.load_corpus(None)
    assert corpus.pinned and corpus.sha256 == data_mod.DEFAULT_CORPUS_SHA256
    assert corpus.n_bytes <= 2 * 1024 * 1024


def _fail_with_enospc(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        f.write(b"partial")  # a half-written temp file, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt_mod.torch, "save", broken_save)


def test_disk_full_while_checkpointing_keeps_the_previous_checkpoint(
    tmp_path: Path,
    run_train: RunFn,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, run_dir = run_train(tmp_path, "--steps", "3", "--no-export")
    assert code == 0
    path = run_dir / CHECKPOINT_NAME
    before = path.read_bytes()
    capsys.readouterr()

    _fail_with_enospc(monkeypatch)
    code, _ = run_train(tmp_path, "--steps", "6", "--no-export", "--resume")
    assert code == EXIT_USER_ERROR
    err = _stderr(capsys)
    assert "error: disk full while writing checkpoint" in err
    assert "previous checkpoint" in err and "is kept" in err
    assert path.read_bytes() == before
    assert load_checkpoint(path)["step"] == 3
    assert not list(run_dir.glob("*.tmp"))
    assert (run_dir / "RUN_KIND").read_text() == "incomplete\n"


def test_save_checkpoint_enospc_unit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / CHECKPOINT_NAME
    save_checkpoint({"step": 1}, path)
    _fail_with_enospc(monkeypatch)
    with pytest.raises(CheckpointError, match="disk full"):
        save_checkpoint({"step": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert not (tmp_path / (CHECKPOINT_NAME + ".tmp")).exists()


def test_out_of_memory_names_the_batch_size(
    tmp_path: Path,
    run_train: RunFn,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def oom(*args: Any, **kwargs: Any) -> tuple[float, float]:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(train_mod, "train_step", oom)
    prom_dir = tmp_path / "textfile"
    code, run_dir = run_train(
        tmp_path, "--steps", "3", "--no-export", "--textfile-dir", str(prom_dir)
    )
    assert code == EXIT_USER_ERROR
    err = _stderr(capsys)
    assert "out of" in err and "memory at micro-batch size batch_size=8" in err
    assert "--batch-size 4 --grad-accum 2" in err
    assert (run_dir / "RUN_KIND").read_text() == "incomplete\n"
    prom = (prom_dir / "llmhost_training.prom").read_text()
    assert 'status="failed"' in prom and "llmhost_training_total_steps 3.0" in prom


def test_bad_override_is_a_clear_error(
    tmp_path: Path, run_train: RunFn, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run_train(tmp_path, "--set", "n_layers=3")
    assert code == EXIT_USER_ERROR
    err = _stderr(capsys)
    assert "error: unknown config key 'n_layers'" in err and "n_layer" in err


def test_resume_cannot_change_the_model_shape(
    tmp_path: Path, run_train: RunFn, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run_train(tmp_path, "--steps", "2", "--no-export")
    assert code == 0
    code, _ = run_train(tmp_path, "--steps", "4", "--no-export", "--resume", "--set", "n_layer=3")
    assert code == EXIT_USER_ERROR
    assert "cannot change n_layer when resuming" in _stderr(capsys)
