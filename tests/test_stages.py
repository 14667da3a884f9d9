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
waits-for-other:
\t@for i in $$(seq 100); do [ -f other.started ] && break; sleep 0.1; done; test -f other.started
\t@echo saw-the-other
other:
\t@touch other.started
\t@echo other-ran
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


def test_a_group_runs_side_by_side_with_prefixed_output(tmp_path: Path) -> None:
    # waits-for-other passes only if `other` starts while it runs (10 s at most).
    done = _stages(tmp_path, "first", "waits-for-other+other", "last")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[waits-for-other] saw-the-other" in done.stdout
    assert "[other] other-ran" in done.stdout
    table = done.stdout.split("[llmhost] stage timings", 1)[1].splitlines()
    rows = [line.split() for line in table if line.strip()]
    assert [r[0] for r in rows] == ["stage", "first", "waits-for-other", "other", "last", "total"]
    assert all(r[2] == "ok" for r in rows[1:5])


def test_a_failure_in_a_group_lets_the_other_finish_and_stops_the_rest(tmp_path: Path) -> None:
    done = _stages(tmp_path, "broken+other", "last")
    assert done.returncode == 2
    assert "[other] other-ran" in done.stdout
    assert "last-ran" not in done.stdout
    table = done.stdout.split("[llmhost] stage timings", 1)[1]
    rows = {line.split()[0]: line.split(None, 2)[2] for line in table.splitlines()[2:-1]}
    assert rows == {"broken": "FAILED (2)", "other": "ok", "last": "not run"}
