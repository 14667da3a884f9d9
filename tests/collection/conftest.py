"""Make the repository's local collection importable as ansible_collections.llmhost.core.

Derived from this file's location, so the tests run from any working directory.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS_DIR = REPO_ROOT / "collections"
DATA_DIR = REPO_ROOT / "tests" / "data" / "nvidia-smi" / "h100"

if str(COLLECTIONS_DIR) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS_DIR))


@pytest.fixture(scope="session")
def h100_capture() -> dict[str, str]:
    """The real captures of the acceptance host's H100, by file name."""
    return {path.name: path.read_text(encoding="utf-8") for path in DATA_DIR.iterdir()}
