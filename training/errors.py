"""User-facing errors: each carries a one-line message and a fix.

The CLI's top-level handler prints ``error: <message>`` and ``fix: <fix>`` on
stderr and exits with :data:`EXIT_USER_ERROR` instead of a traceback.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


class TrainingError(Exception):
    """An error the operator can fix; printed without a traceback (exit 2)."""

    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return self.message


class ConfigError(TrainingError):
    """Unknown config name, bad override, inconsistent settings."""


class CudaRequiredError(TrainingError):
    """CUDA was required (``--require-cuda`` / ``--device cuda``) but is absent."""


class GpuOutOfMemoryError(TrainingError):
    """The GPU ran out of memory; the message names the batch size to lower."""


class CorpusError(TrainingError):
    """Corpus missing, unreadable, too small, or its sha256 does not match."""


class CheckpointError(TrainingError):
    """A checkpoint could not be written (e.g. disk full) or read back."""


class DiskFullError(TrainingError):
    """No space left on the device while writing an output."""
