"""The backup role, run for real on localhost up to its preflight: bad input is refused
with the variable's name and the fix, before anything is installed or written; no message
shows the password or a backend credential."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from role_runner import CaseResult, run_cases

PASSWORD = "PASSW0RD-SECRET-VALUE"  # noqa: S105 (a planted value that must never be shown)
CREDENTIAL = "CRED-SECRET-VALUE"
TESTED = ["/etc/nginx/llmhost/tls", "/var/lib/llmhost/evidence"]  # the restore test's defaults


def _vars(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    return {
        "backup_password": PASSWORD,
        "backup_repository": str(tmp_path / "repo"),
        **overrides,
    }


# (overrides, the check that must fail, words of its message)
CASES = [
    ({"backup_password": ""}, "backup_password", "got an empty one"),
    ({"backup_password": "short"}, "backup_password", "at least 8 characters"),
    ({"backup_password": "two\nlines-of-it"}, "backup_password", "on one line"),
    ({"backup_repository": "backups/restic"}, "backup_repository", "A relative path"),
    (
        {"backup_repository": "ftp://user:pw@host/x"},
        "backup_repository",
        "got 'ftp://***@host/x'",
    ),
    (
        {"backup_repository": "/srv"},
        "backup_repository",
        "backup_repository '/srv' is a system directory",
    ),
    (
        {"backup_repository": "/var/lib/llmhost/evidence/restic"},
        "backup_repository / backup_paths",
        "backs itself up",
    ),
    (
        {"backup_environment": {"RESTIC_PASSWORD": CREDENTIAL}},
        "backup_environment",
        "RESTIC_PASSWORD: set by the role",
    ),
    (
        {"backup_environment": {"aws key": CREDENTIAL}},
        "backup_environment",
        "aws key: not a variable name",
    ),
    (
        {"backup_environment": {"AWS_SECRET_ACCESS_KEY": CREDENTIAL + "'"}},
        "backup_environment",
        "AWS_SECRET_ACCESS_KEY: the value must be a string without quotes",
    ),
    (
        {"backup_paths": [], "backup_restore_test": False},
        "backup_paths",
        "must be a non-empty list",
    ),
    ({"backup_paths": [*TESTED, "etc/nginx"]}, "backup_paths", "absolute, normalised paths"),
    ({"backup_paths": [*TESTED, "/etc/../root"]}, "backup_paths", "absolute, normalised paths"),
    (
        {"backup_restore_test_paths": ["/srv/elsewhere"]},
        "backup_restore_test_paths",
        "not covered: ['/srv/elsewhere']",
    ),
    (
        {"backup_restore_parent": "/var/lib/llmhost/evidence/tmp"},
        "backup_restore_parent",
        "outside the backed-up paths",
    ),
    (
        {"backup_keep_daily": 0},
        "backup_keep_last / backup_keep_daily / backup_keep_weekly / backup_keep_monthly",
        "must each be at least 1",
    ),
    ({"backup_memory_max": "lots"}, "backup_memory_max", "a systemd size"),
    (
        {"backup_timeout": "6 hours"},
        "backup_timeout / backup_randomized_delay",
        "systemd time spans",
    ),
    (
        {"backup_check_read_data_subset": "half"},
        "backup_check_read_data_subset",
        "a percentage such as 10%",
    ),
]


@pytest.fixture(scope="module")
def refusals(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, CaseResult]]:
    """Every bad input at once: one ansible-playbook, a host per case."""
    base = tmp_path_factory.mktemp("backup-refusals")
    cases = {f"case{i}": _vars(base / f"case{i}", **c[0]) for i, c in enumerate(CASES)}
    # A good input rides along: the input checks pass it.
    cases["good"] = _vars(base / "good", backup_environment={"AWS_ACCESS_KEY_ID": CREDENTIAL})
    return base, run_cases(base, "backup", cases, tags="backup_preflight")


@pytest.mark.slow
@pytest.mark.parametrize(
    "index", range(len(CASES)), ids=[f"{c[1]}={next(iter(c[0].values()))!r}" for c in CASES]
)
def test_bad_input_refused_before_any_change(
    refusals: tuple[Path, dict[str, CaseResult]], index: int
) -> None:
    base, results = refusals
    _, check, words = CASES[index]
    results[f"case{index}"].assert_refused_by(check, words, hidden=(PASSWORD, CREDENTIAL))
    assert not (base / f"case{index}" / "repo").exists(), "the repository folder was created"


@pytest.mark.slow
def test_good_input_gets_past_the_input_checks(
    refusals: tuple[Path, dict[str, CaseResult]],
) -> None:
    base, results = refusals
    result = results["good"]
    assert result.refused == (), result.output  # the input check passed
    assert PASSWORD not in result.log and CREDENTIAL not in result.log
    assert not (base / "good" / "repo").exists()
    if not Path("/run/systemd/system").is_dir():  # this control machine is no systemd host
        assert result.failed
        assert "backup needs systemd and apt" in result.output, result.output
