"""Terminal trace (mirrored to ``gpu_train_log.txt``) and the ``RUN_KIND`` label."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

LOG_NAME = "gpu_train_log.txt"
RUN_KIND_NAME = "RUN_KIND"

CPU_SMOKE = "cpu_smoke"
CUDA_ACCEPTANCE = "cuda_acceptance"
INCOMPLETE = "incomplete"
RUN_KINDS = (CPU_SMOKE, CUDA_ACCEPTANCE, INCOMPLETE)


class RunLog:
    """Prints each line to stdout (flushed) and appends it to the log file."""

    def __init__(self, path: Path, append: bool, stream: TextIO | None = None) -> None:
        self.path = path
        self._stream = stream
        self._fh = path.open("a" if append else "w", encoding="utf-8")

    def line(self, text: str = "") -> None:
        stream = self._stream or sys.stdout
        print(text, file=stream, flush=True)
        self._fh.write(text + "\n")
        self._fh.flush()

    def file_only(self, text: str) -> None:
        self._fh.write(text + "\n")
        self._fh.flush()

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()


def decide_run_kind(
    device_types: set[str], completed: bool, requested: str | None = None
) -> tuple[str, str | None]:
    """Return ``(run_kind, warning)``.

    * ``incomplete``: the run did not finish all its steps (whatever was asked).
    * ``cuda_acceptance``: every step ran on CUDA and all steps completed.
    * ``cpu_smoke``: a completed run on CPU / MPS (or mixed devices).

    A requested label is only a cross-check: it can never upgrade a CPU run to
    acceptance; a mismatch yields a warning and the derived label.
    """
    if not completed:
        kind = INCOMPLETE
    elif device_types and device_types <= {"cuda"}:
        kind = CUDA_ACCEPTANCE
    else:
        kind = CPU_SMOKE
    warning = None
    if requested and requested not in ("auto", kind):
        warning = (
            f"RUN_KIND {requested!r} was requested but this run is {kind!r} "
            f"(devices: {', '.join(sorted(device_types)) or 'none'}, "
            f"completed: {completed}); writing {kind!r}"
        )
    return kind, warning


def write_run_kind(run_dir: Path, kind: str) -> None:
    if kind not in RUN_KINDS:
        raise ValueError(f"bad RUN_KIND {kind!r}")
    path = run_dir / RUN_KIND_NAME
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(kind + "\n", encoding="utf-8")
    tmp.replace(path)
