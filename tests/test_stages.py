"""scripts/stages.sh: make stages in order, a timing table at the end, the failing stage's
status, later stages not run."""

from __future__ import annotations

import os
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
slow:
\t@sleep 1; echo slow-done
prio:
\t@echo "niceness $$(nice)"
"""


def _stages(tmp_path: Path, *stages: str, nice: str = "") -> subprocess.CompletedProcess[str]:
    (tmp_path / "Makefile").write_text(MAKEFILE, encoding="utf-8")
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "stages.sh"), *stages],
        cwd=tmp_path,
        env={**os.environ, "STAGES_NICE": nice},
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


def test_a_group_runs_side_by_side_with_prefixed_lines_and_its_wall_time(tmp_path: Path) -> None:
    done = _stages(tmp_path, "first", "slow+last")
    assert done.returncode == 0, done.stderr
    assert "[slow] slow-done" in done.stdout and "[last] last-ran" in done.stdout
    # last, started beside slow, is done before slow's one-second sleep ends
    assert done.stdout.index("[last] last-ran") < done.stdout.index("[slow] slow-done")
    table = done.stdout.split("[llmhost] stage timings", 1)[1].splitlines()
    rows = [line.split() for line in table if line.strip()]
    assert [r[0] for r in rows] == ["stage", "first", "slow", "last", "slow+last", "total"]
    assert int(rows[2][1]) >= 1 and rows[2][2] == "ok" and rows[3][2] == "ok"
    assert int(rows[4][1]) >= 1  # the group's wall time: its longest stage


def test_a_failure_in_a_group_lets_the_other_finish_and_stops_the_rest(tmp_path: Path) -> None:
    done = _stages(tmp_path, "broken+slow", "last")
    assert done.returncode == 2
    assert "[slow] slow-done" in done.stdout
    assert "last-ran" not in done.stdout
    table = done.stdout.split("[llmhost] stage timings", 1)[1]
    assert "FAILED (2)" in table and "not run" in table


def test_a_lane_runs_its_stages_in_turn_beside_the_other_side(tmp_path: Path) -> None:
    done = _stages(tmp_path, "slow+first,last")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    # first, then last, both before slow's one-second sleep ends
    assert out.index("[first] one") < out.index("[last] last-ran") < out.index("[slow] slow-done")
    table = out.split("[llmhost] stage timings", 1)[1].splitlines()
    rows = [line.split() for line in table if line.strip()]
    assert [r[0] for r in rows] == ["stage", "slow", "first", "last", "slow+first,last", "total"]
    assert all(r[2] == "ok" for r in rows[1:4])


def test_a_failure_in_a_lane_skips_its_later_stages_only(tmp_path: Path) -> None:
    done = _stages(tmp_path, "slow+broken,last", "first")
    assert done.returncode == 2
    assert "[slow] slow-done" in done.stdout  # the other side finished
    assert "last-ran" not in done.stdout and "[first]" not in done.stdout
    table = done.stdout.split("[llmhost] stage timings", 1)[1].splitlines()
    rows = {line.split()[0]: line for line in table if line.strip()}
    assert "FAILED (2)" in rows["broken"]
    assert "not run" in rows["last"] and "not run" in rows["first"]
    assert rows["slow"].split()[2] == "ok"


def test_stages_named_in_stages_nice_run_at_a_lower_priority(tmp_path: Path) -> None:
    """make test lets the lab tests' lane have the cores first: the other lanes run niced."""
    base = os.nice(0)
    done = _stages(tmp_path, "prio+first,slow", nice="slow prio")
    assert done.returncode == 0, done.stderr
    assert f"[prio] niceness {min(base + 10, 19)}" in done.stdout
    plain = _stages(tmp_path, "prio", nice="slowprio first")  # whole names only
    assert f"niceness {base}" in plain.stdout


def test_a_failed_stages_last_lines_come_again_after_the_table(tmp_path: Path) -> None:
    """Beside other stages a failure scrolls away; CI pages show the end of the log."""
    (tmp_path / "Makefile").write_text(
        MAKEFILE + "noisy:\n\t@seq 1 40; echo 'the reason it failed'; exit 5\n", encoding="utf-8"
    )
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "stages.sh"), "slow+noisy", "last"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    after = done.stdout.split("[llmhost] stage timings", 1)[1]
    table, excerpt = after.split("[llmhost] noisy failed; the last lines it printed:", 1)
    assert "FAILED (2)" in table and "the reason it failed" not in table
    lines = excerpt.strip().splitlines()
    assert "[noisy] the reason it failed" in lines and "[noisy] 40" in lines
    assert "[noisy] 1" not in lines  # the last lines only
    assert "[slow]" not in excerpt  # nor the stage that passed
    single = _stages(tmp_path, "broken")
    assert "[llmhost] broken failed; the last lines it printed:" in single.stdout


def test_the_failed_tests_are_named_at_the_very_end(tmp_path: Path) -> None:
    """Two failed stages print 32 lines of excerpts: the names of what failed come last,
    where a CI page that shows only the end of the log still has them."""
    (tmp_path / "Makefile").write_text(
        MAKEFILE
        + "pyfail:\n\t@echo 'FAILED tests/test_x.py::test_drain - assert 7.0 == 8'; "
        + "echo 'FAILED tests/test_x.py::test_drain - assert 7.0 == 8'; seq 1 30; exit 1\n"
        + "molfail:\n\t@echo '[llmhost] molecule teardown on debian12 FAILED (1) after 9 s'; "
        + "echo '[llmhost] where teardown-debian12 failed (its whole output is above)'; "
        + "echo '    [verify] E       assert 7.0 == 8'; echo 'ERROR: not a test name'; "
        + "seq 1 30; exit 1\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "stages.sh"), "pyfail+molfail+slow"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    block = done.stdout.rsplit("[llmhost] what failed, by name:", 1)[1].strip().splitlines()
    assert block == [
        "[pyfail] FAILED tests/test_x.py::test_drain - assert 7.0 == 8",  # once, not twice
        "[molfail] [llmhost] molecule teardown on debian12 FAILED (1) after 9 s",
        "[molfail] [llmhost] where teardown-debian12 failed (its whole output is above)",
        "[molfail]     [verify] E       assert 7.0 == 8",
    ]
    passed = _stages(tmp_path, "first", "last")
    assert "what failed" not in passed.stdout
    unnamed = _stages(tmp_path, "broken")  # nothing to name: no block, the excerpt says it
    assert "what failed" not in unnamed.stdout
