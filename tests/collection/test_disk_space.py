"""llmhost.core.disk_space: measures the filesystem of a path that may not exist yet."""

from __future__ import annotations

import os
from pathlib import Path

from ansible_collections.llmhost.core.plugins.modules import disk_space


def test_nearest_existing_walks_up(tmp_path: Path) -> None:
    missing = tmp_path / "a" / "b" / "c"
    assert disk_space.nearest_existing(str(missing)) == str(tmp_path)
    assert disk_space.nearest_existing(str(tmp_path)) == str(tmp_path)


def test_measure_matches_statvfs(tmp_path: Path) -> None:
    result = disk_space.measure(str(tmp_path / "models" / "x"))
    st = os.statvfs(tmp_path)
    assert result["existing"] == str(tmp_path)
    assert result["total_bytes"] == st.f_blocks * st.f_frsize
    assert 0 < result["free_bytes"] <= result["total_bytes"]
    assert result["free_gib"] == round(result["free_bytes"] / 1024**3, 2)
    assert result["free_gib"] > 0
