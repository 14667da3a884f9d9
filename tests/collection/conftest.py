"""Fixtures for the collection's tests (pyproject's pythonpath makes the local collection
importable as ansible_collections.llmhost.core)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS_DIR = REPO_ROOT / "collections"
DATA_DIR = REPO_ROOT / "tests" / "data" / "nvidia-smi" / "h100"


@pytest.fixture(scope="session")
def h100_capture() -> dict[str, str]:
    """The real captures of the acceptance host's H100, by file name."""
    return {path.name: path.read_text(encoding="utf-8") for path in DATA_DIR.iterdir()}
