"""scripts/stages.sh: make stages in order, a timing table at the end, the failing stage's
status, later stages not run."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAKEFILE = """\
first:
\t@echo one
broken:
\t@exit 3
last:
\t@echo last-ran
"""


def _stages(tmp_path: Path, *stages: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "Makefile").write_text(MAKEFILE, encoding="utf-8")
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "stages.sh"), *stages],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )


def test_every_stage_runs_and_the_table_lists_each(tmp_path: Path) -> None:
    done = _stages(tmp_path, "first", "last")
    assert done.returncode == 0, done.stderr
    table = done.stdout.split("[llmhost] stage timings", 1)[1].splitlines()
    rows = [line.split() for line in table if line.strip()]
    assert [r[0] for r in rows] == ["stage", "first", "last", "total"]
    assert rows[1][2] == "ok" and rows[2][2] == "ok"
    assert "last-ran" in done.stdout


def test_a_failing_stage_stops_the_rest_and_sets_the_status(tmp_path: Path) -> None:
    done = _stages(tmp_path, "first", "broken", "last")
    assert done.returncode == 2  # make's status for a failed recipe
    assert "last-ran" not in done.stdout
    table = done.stdout.split("[llmhost] stage timings", 1)[1]
    assert "broken" in table and "FAILED (2)" in table
    assert "last" in table and "not run" in table
