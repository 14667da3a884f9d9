"""Fixtures for the mini GPT-2 training tests (CPU only, small step counts).

Every test module here is reported as skipped (not imported) when torch or the other
packages of training/requirements.txt are not installed.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

_NEEDED = ("torch", "transformers", "tokenizers", "safetensors", "prometheus_client")
_MISSING = [name for name in _NEEDED if importlib.util.find_spec(name) is None]
SKIP_REASON = f"training tests need {', '.join(_MISSING)}: pip install -r training/requirements.txt"

if _MISSING:

    class _SkippedModule(pytest.Module):
        """Reports the test module as skipped without importing it."""

        def collect(self) -> list[pytest.Item | pytest.Collector]:
            pytest.skip(SKIP_REASON)

    def pytest_pycollect_makemodule(module_path: Path, parent: pytest.Collector) -> pytest.Module:
        return _SkippedModule.from_parent(parent, path=module_path)

else:
    # ansible-core (imported by other tests in this pytest process) replaces sys.intern
    # with a callable object; torch._dynamo, imported lazily by torch.optim, then fails
    # ("substitute_in_graph expects a function"). Import it now, with the builtin back in
    # place if it is patched already. The training job never shares a process with ansible.
    _intern = sys.intern
    _original = getattr(type(_intern), "unpatched_implementation", None)
    if not isinstance(_intern, types.BuiltinFunctionType) and _original is not None:
        sys.intern = _original
    try:
        import torch._dynamo  # noqa: F401
    finally:
        sys.intern = _intern


# A small model that trains in well under a second per 10 steps on 2 cores.
SMALL = [
    "--set", "n_layer=2",
    "--set", "n_head=2",
    "--set", "n_embd=64",
    "--set", "block_size=64",
    "--set", "tokenizer_vocab_size=512",
    "--set", "eval_iters=2",
    "--set", "sample_tokens=8",
    "--set", "log_interval=2",
    "--batch-size", "8",
    "--device", "cpu",
]  # fmt: skip


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first ~150 KB of the shipped corpus (fast tokenizer training)."""
    from training.data import DEFAULT_CORPUS_PATH

    text = DEFAULT_CORPUS_PATH.read_text(encoding="utf-8")[:150_000]
    path = tmp_path_factory.mktemp("corpus") / "small.txt"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def run_train(small_corpus: Path) -> Callable[..., tuple[int, Path]]:
    """Call ``training.train.main`` in-process; returns (exit code, run dir)."""
    from training import RUN_DIR_NAME
    from training.train import main

    def _run(out: Path, *extra: str, corpus: Path | None = small_corpus) -> tuple[int, Path]:
        argv = ["--config", "tiny", "--out", str(out), *SMALL, *extra]
        if corpus is not None:
            argv += ["--corpus", str(corpus)]
        return main(argv), out / RUN_DIR_NAME

    return _run
