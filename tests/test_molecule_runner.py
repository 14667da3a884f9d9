"""scripts/molecule.sh: runs side by side (JOBS), each with its own ports, container name
suffix and Molecule folder; a failed run's whole output and a non-zero status; the table."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAKE_MOLECULE = """#!/usr/bin/env bash
# Records what a run got, sleeps a little so runs overlap, fails for the role 'broken'.
env | grep -E '^(LLMHOST_(ROLE|DISTRO|MOL_[A-Z_]+)|MOLECULE_EPHEMERAL_DIRECTORY)=' | sort \\
  > "$FAKE_OUT/$LLMHOST_ROLE-$LLMHOST_DISTRO.env"
echo "start $(date +%s%N)" >> "$FAKE_OUT/$LLMHOST_ROLE-$LLMHOST_DISTRO.env"
sleep 1
echo "args: $*"
[ "$LLMHOST_ROLE" != broken ] || { echo "the verifier failed here"; exit 4; }
[ "$LLMHOST_ROLE" != failing ] || { cat "$FAKE_OUT/transcript"; exit 2; }
"""
# What a failed Molecule run prints, shortened: Molecule's frame and colours, a failure
# that was ignored, retries, the failure that ended the play, Molecule's errors.
FRAME = "  \x1b[2m\u2502\x1b[0m "
TRANSCRIPT = "\n".join(
    [
        "INFO     default \u279c converge: Executing",
        f"{FRAME}TASK [vllm : Look for a running engine] ****",
        f"{FRAME}\x1b[0;31mfatal: [host]: FAILED! => \x1b[0m",
        f"{FRAME}    msg: not running yet",
        f"{FRAME}...ignoring",
        f"{FRAME}TASK [vllm : Wait until vLLM answers] ****",
        f"{FRAME}FAILED - RETRYING: [host]: Wait until vLLM answers (59 retries left).",
        f"{FRAME}\x1b[0;31mfatal: [host]: FAILED! => \x1b[0m",
        f"{FRAME}    attempts: 60",
        f"{FRAME}    msg: 'Status code was -1: Connection refused'",
        f"{FRAME}",
        f"{FRAME}NO MORE HOSTS LEFT ****",
        f"{FRAME}PLAY RECAP ****",
        f"{FRAME}host : ok=40 changed=3 unreachable=0 failed=1 skipped=2 rescued=0 ignored=1",
        "\x1b[31mCRITICAL\x1b[0m Ansible return code was 2, command was: ansible-playbook x",
        "\x1b[31mERROR   \x1b[0m default \u279c converge: Executed: Failed",
        *(f"INFO     filler line {i}" for i in range(30)),
    ]
)
# scripts/base-image.sh's stand-in: records which image a run asked for, and when; fails
# for debian13 when FAKE_IMAGE_FAILS=debian13.
FAKE_BASE_IMAGE = """#!/usr/bin/env bash
echo "$1 $(date +%s%N)" >> "$FAKE_OUT/images"
[ "$1" != "${FAKE_IMAGE_FAILS:-}" ] || { echo "debootstrap failed for $1"; exit 3; }
"""


def _checkout(tmp_path: Path, roles: list[str]) -> Path:
    root = tmp_path / "repo"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "molecule.sh", root / "scripts" / "molecule.sh")
    (root / "scripts" / "base-image.sh").write_text(FAKE_BASE_IMAGE, encoding="utf-8")
    (root / "molecule").mkdir()
    (root / "molecule" / "base.yml").write_text("---\n", encoding="utf-8")
    for role in roles:
        scenario = root / "roles" / role / "molecule" / "default"
        scenario.mkdir(parents=True)
        (scenario / "molecule.yml").write_text("---\n", encoding="utf-8")
    return root


def _run(
    tmp_path: Path, root: Path, *runs: str, jobs: int, image_fails: str = ""
) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "molecule"
    fake.write_text(FAKE_MOLECULE, encoding="utf-8")
    fake.chmod(0o755)
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "JOBS": str(jobs),
        "FAKE_OUT": str(out),
        "HOME": str(tmp_path / "home"),
        "FAKE_IMAGE_FAILS": image_fails,
    }
    return subprocess.run(
        ["bash", str(root / "scripts" / "molecule.sh"), *runs],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _env(tmp_path: Path, name: str) -> dict[str, str]:
    lines = (tmp_path / "out" / f"{name}.env").read_text(encoding="utf-8").splitlines()
    return dict(line.split("=", 1) if "=" in line else line.split(" ", 1) for line in lines)


def test_runs_side_by_side_each_with_its_own_ports_and_folder(tmp_path: Path) -> None:
    root = _checkout(tmp_path, ["alpha", "beta"])
    done = _run(tmp_path, root, "alpha", "beta:debian13", jobs=2)
    assert done.returncode == 0, done.stdout + done.stderr
    alpha, beta = _env(tmp_path, "alpha-debian12"), _env(tmp_path, "beta-debian13")
    assert (alpha["LLMHOST_DISTRO"], beta["LLMHOST_DISTRO"]) == ("debian12", "debian13")
    ports = {
        int(e[k])
        for e in (alpha, beta)
        for k in ("LLMHOST_MOL_HTTPS_PORT", "LLMHOST_MOL_HTTP_PORT")
    }
    assert len(ports) == 4 and all(20000 <= p < 28000 for p in ports), ports
    assert alpha["MOLECULE_EPHEMERAL_DIRECTORY"] != beta["MOLECULE_EPHEMERAL_DIRECTORY"]
    assert alpha["LLMHOST_MOL_CHECKOUT"] == beta["LLMHOST_MOL_CHECKOUT"]
    # Both started before either had finished (each sleeps 1 s).
    assert abs(int(alpha["start"]) - int(beta["start"])) < 900_000_000
    table = done.stdout.split("[llmhost] molecule runs (2 at a time)", 1)[1]
    assert "alpha-debian12" in table and "beta-debian13" in table
    assert table.count("passed") == 2
    # Each run asked for its own distribution's base image before Molecule started.
    images = dict(
        line.split()
        for line in (tmp_path / "out" / "images").read_text(encoding="utf-8").splitlines()
    )
    assert sorted(images) == ["debian12", "debian13"]
    assert int(images["debian12"]) < int(alpha["start"])
    assert int(images["debian13"]) < int(beta["start"])


def test_a_run_whose_image_cannot_be_built_fails_without_molecule(tmp_path: Path) -> None:
    root = _checkout(tmp_path, ["alpha", "beta"])
    done = _run(tmp_path, root, "alpha", "beta:debian13", jobs=2, image_fails="debian13")
    assert done.returncode == 1
    assert "[beta-debian13] debootstrap failed for debian13" in done.stdout
    assert "molecule beta on debian13 FAILED (3)" in done.stdout
    assert not (tmp_path / "out" / "beta-debian13.env").exists()  # Molecule never ran
    assert "molecule alpha on debian12 passed" in done.stdout


def test_a_failed_run_prints_its_output_and_fails_the_whole(tmp_path: Path) -> None:
    root = _checkout(tmp_path, ["alpha", "broken"])
    done = _run(tmp_path, root, "broken", "alpha", jobs=2)
    assert done.returncode == 1
    assert "[broken-debian12] the verifier failed here" in done.stdout
    assert "molecule broken on debian12 FAILED (4)" in done.stdout
    assert "molecule alpha on debian12 passed" in done.stdout  # the others still ran


def _where_it_failed(tmp_path: Path, transcript: str, *others: str) -> list[str]:
    """Run a 'failing' role whose Molecule prints TRANSCRIPT, beside OTHERS: the lines
    molecule.sh prints under "where failing-debian12 failed"."""
    root = _checkout(tmp_path, ["failing", *others])
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "transcript").write_text(transcript + "\n", encoding="utf-8")
    done = _run(tmp_path, root, "failing", *others, jobs=2)
    assert done.returncode == 1
    assert all(f"where {other}-debian12 failed" not in done.stdout for other in others)
    return done.stdout.split("[llmhost] where failing-debian12 failed", 1)[1].splitlines()[1:]


def test_the_table_is_followed_by_where_each_failed_run_failed(tmp_path: Path) -> None:
    assert _where_it_failed(tmp_path, TRANSCRIPT, "alpha") == [
        "    [converge] TASK [vllm : Wait until vLLM answers] ****",
        "      fatal: [host]: FAILED! => ",
        "          attempts: 60",
        "          msg: 'Status code was -1: Connection refused'",
        "    [converge] ERROR    default \u279c converge: Executed: Failed",
    ]


def test_an_idempotence_failure_names_the_tasks_that_changed(tmp_path: Path) -> None:
    lines = [
        "INFO     default \u279c idempotence: Executing",
        f"{FRAME}PLAY RECAP ****",
        f"{FRAME}host : ok=40 changed=2 unreachable=0 failed=0",
        "\x1b[31mCRITICAL\x1b[0m Idempotence test failed because of the following tasks:",
        "* [host] => vllm : Write the unit",
        "* [host] => vllm : Restart vLLM now if its release or units changed",
        "\x1b[31mERROR   \x1b[0m default \u279c idempotence: Executed: Failed",
    ]
    assert _where_it_failed(tmp_path, "\n".join(lines)) == [
        "    [idempotence] CRITICAL Idempotence test failed because of the following tasks:",
        "      * [host] => vllm : Write the unit",
        "      * [host] => vllm : Restart vLLM now if its release or units changed",
        "    [idempotence] ERROR    default \u279c idempotence: Executed: Failed",
    ]


def test_one_at_a_time_streams_the_output(tmp_path: Path) -> None:
    root = _checkout(tmp_path, ["alpha"])
    done = _run(tmp_path, root, "alpha", jobs=1)
    assert done.returncode == 0
    assert "args: -c " in done.stdout and "test" in done.stdout


def test_an_unknown_role_is_refused_before_any_run(tmp_path: Path) -> None:
    root = _checkout(tmp_path, ["alpha"])
    done = _run(tmp_path, root, "alpha", "nope", jobs=2)
    assert done.returncode == 2
    assert "no molecule scenario for role 'nope'" in done.stderr
    assert not (tmp_path / "out" / "alpha-debian12.env").exists()
