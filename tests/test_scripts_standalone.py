"""The entry points run as plain files from any folder, without the test run's import
path (pyproject's pythonpath only helps pytest): each starts and answers --help."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ("llmhost.py", "verify_evidence.py", "eval_calibrate.py", "published_secrets.py")


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_starts_outside_the_repository(script: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), "--help"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "usage" in out.stdout.lower()
