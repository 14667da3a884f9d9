"""tests/role_runner.py's batch runner does not turn a run that did nothing into passes."""

from __future__ import annotations

from pathlib import Path

import pytest
from role_runner import run_cases


@pytest.mark.slow
def test_a_case_that_ran_no_task_is_an_error(tmp_path: Path) -> None:
    """Tags that select no task (the include_role of one task file has none of them): the
    host is "not failed" because it ran nothing; run_cases says so instead."""
    with pytest.raises(AssertionError, match=r"1 case\(s\) ran no task, e\.g\. \['good'\]"):
        run_cases(
            tmp_path,
            "preflight",
            {"good": {}},
            gather_facts=False,
            tags="no_such_tag",
            tasks_from="validate.yml",
        )
