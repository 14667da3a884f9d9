"""Atomic checkpoints: write ``<name>.tmp``, fsync, then ``os.replace``.

If writing fails (e.g. ENOSPC) the temp file is removed and the previous checkpoint
is left untouched.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pickle
import random
from pathlib import Path
from typing import Any

import torch

from training.errors import CheckpointError

CHECKPOINT_NAME = "mini_gpt2_checkpoint.pt"


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "python": random.getstate(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    if "python" in state:
        random.setstate(_as_tuple(state["python"]))
    if "torch" in state:
        torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)


def _as_tuple(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_as_tuple(v) for v in value)
    if isinstance(value, tuple):
        return tuple(_as_tuple(v) for v in value)
    return value


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Write *state* to *path* atomically; raise :class:`CheckpointError` on failure."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with tmp.open("wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        kept = (
            f"the previous checkpoint {path} is kept"
            if path.exists()
            else "no earlier checkpoint exists"
        )
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise CheckpointError(
                f"disk full while writing checkpoint {path}; {kept}",
                f"free space on that disk (df -h {path.parent}) or use --out on a larger "
                "disk, then rerun with --resume",
            ) from None
        raise CheckpointError(
            f"cannot write checkpoint {path}: {exc.strerror or exc}; {kept}",
            f"check that {path.parent} is writable, then rerun with --resume",
        ) from None


def load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        raise CheckpointError(
            f"cannot read checkpoint {path}: {exc}",
            f"delete {path} and start a fresh run (drop --resume)",
        ) from None
    for key in ("model", "optimizer", "config", "step"):
        if key not in state:
            raise CheckpointError(
                f"checkpoint {path} has no {key!r} entry",
                f"delete {path} and start a fresh run (drop --resume)",
            )
    return state
