"""testinfra checks of the nvidia_driver role without a GPU (nvidia_driver_force_configure).

Scenario default: signed fake CUDA and container-toolkit repositories (prepare.yml);
scenario distro: Debian 12's own non-free driver from the real mirror. Nothing may be
installed, and apt itself must pick the pinned versions although newer ones are offered.
The host is read once per module (one remote script) to keep the verifier fast.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

EVIDENCE = Path(os.environ["LLMHOST_EVIDENCE_DIR"])
PIN = "/etc/apt/preferences.d/llmhost-nvidia-driver.pref"
CTK_PIN = "/etc/apt/preferences.d/llmhost-nvidia-container-toolkit.pref"
CUDA_SOURCES = "/etc/apt/sources.list.d/llmhost-nvidia-cuda.sources"
CTK_SOURCES = "/etc/apt/sources.list.d/llmhost-nvidia-container-toolkit.sources"
DISTRO_SOURCES = "/etc/apt/sources.list.d/llmhost-nvidia-distro.sources"
BLACKLIST = "/etc/modprobe.d/llmhost-blacklist-nouveau.conf"
DROPIN = "/etc/systemd/system/nvidia-persistenced.service.d/llmhost.conf"
FACT = "/root/nvidia_driver_report.fact.json"
FILES = [PIN, CTK_PIN, CUDA_SOURCES, CTK_SOURCES, DISTRO_SOURCES, BLACKLIST, DROPIN, FACT]
PACKAGES = [
    "nvidia-kernel-open-dkms",
    "nvidia-open-kernel-dkms",
    "nvidia-smi",
    "libcuda1",
    "nvidia-persistenced",
    "nvidia-container-toolkit",
]
# Runs on the test host: files with owner and mode, apt's candidates and version tables,
# installed packages, the persistenced user, the keyrings' first bytes.
PROBE = r"""
import glob, json, os, pwd, re, subprocess, sys
files, packages = json.loads(sys.argv[1])
env = dict(os.environ, LC_ALL="C")
def run(*argv):
    return subprocess.run(argv, capture_output=True, text=True, env=env).stdout
out = {"files": {}, "policy": {}, "keyrings": {}}
for path in files:
    if os.path.exists(path):
        st = os.stat(path)
        out["files"][path] = {"text": open(path).read(), "mode": st.st_mode & 0o777,
                              "owner": pwd.getpwuid(st.st_uid).pw_name}
for name in packages:
    policy = run("apt-cache", "policy", name)
    found = re.search(r"Candidate: (\S+)", policy)
    out["policy"][name] = {"candidate": found.group(1) if found else None, "text": policy}
out["installed"] = [line.split()[1] for line in
                    run("dpkg-query", "-W", "-f=${db:Status-Abbrev} ${Package}\n").splitlines()
                    if line.startswith("ii")]
out["sources"] = run("apt-cache", "policy")
for path in glob.glob("/etc/apt/keyrings/*.gpg"):
    head = open(path, "rb").read(1)[0]
    out["keyrings"][path] = {"head": head, "mode": os.stat(path).st_mode & 0o777}
try:
    user = pwd.getpwnam("nvidia-persistenced")
    out["user"] = {"uid": user.pw_uid, "shell": user.pw_shell}
except KeyError:
    out["user"] = None
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def state(host) -> dict[str, Any]:
    variables = host.ansible.get_variables()
    name = variables["inventory_hostname"]
    args = json.dumps([FILES, PACKAGES])
    probe = json.loads(host.check_output("python3 -c %s %s", PROBE, args))
    # One host per scenario: the report sits in the bundle itself (a sub-folder per host
    # only when a play has several).
    folder = EVIDENCE / name if (EVIDENCE / name).is_dir() else EVIDENCE
    report = json.loads((folder / "nvidia_driver_report.json").read_text())
    return {"source": variables["nvidia_driver_source"], "report": report, **probe}


def _managed(state: dict[str, Any], path: str) -> str:
    f = state["files"].get(path)
    assert f, f"{path} is missing"
    assert (f["owner"], f["mode"]) == ("root", 0o644), path
    assert f["text"].startswith("# Managed by llmhost (role nvidia_driver)"), path
    return f["text"]


def test_nothing_nvidia_is_installed(state: dict[str, Any]) -> None:
    found = [p for p in state["installed"] if "nvidia" in p or p.startswith("cuda")]
    assert not found, found


def test_nouveau_blacklisted(state: dict[str, Any]) -> None:
    text = _managed(state, BLACKLIST)
    assert "\nblacklist nouveau\n" in text
    assert "\noptions nouveau modeset=0\n" in text


def test_persistenced_runs_with_persistence_mode_as_its_user(state: dict[str, Any]) -> None:
    text = _managed(state, DROPIN)
    assert text.endswith(
        "[Service]\nExecStart=\nExecStart=/usr/bin/nvidia-persistenced "
        "--user nvidia-persistenced --persistence-mode --verbose\n"
    )
    assert state["user"] == {"uid": state["user"]["uid"], "shell": "/usr/sbin/nologin"}
    assert state["user"]["uid"] < 1000


def test_cuda_repository_with_pinned_key(state: dict[str, Any]) -> None:
    if state["source"] != "cuda_repo":
        assert CUDA_SOURCES not in state["files"]
        assert not state["keyrings"]
        return
    repo = state["report"]["plan"]["repositories"]["cuda"]
    assert repo["keyring"].startswith("/etc/apt/keyrings/llmhost-cuda-")
    text = _managed(state, CUDA_SOURCES)
    assert "\nTypes: deb\nURIs: file:///srv/llmhost-fake-cuda/debian12/x86_64/\nSuites: /\n" in text
    assert f"\nSigned-By: {repo['keyring']}\n" in text
    keyring = state["keyrings"][repo["keyring"]]
    assert keyring["mode"] == 0o644
    assert keyring["head"] in (0x98, 0x99, 0xC6), "apt gets the binary keyring, not armor"
    # apt verified the InRelease signature with that key, else the index would be missing.
    assert "file:/srv/llmhost-fake-cuda/debian12/x86_64" in state["sources"]


def test_debian_components(state: dict[str, Any]) -> None:
    text = _managed(state, DISTRO_SOURCES)
    cuda = state["source"] == "cuda_repo"
    components = "contrib" if cuda else "contrib non-free non-free-firmware"
    assert f"\nSuites: bookworm bookworm-updates\nComponents: {components}\n" in text
    assert f"\nSuites: bookworm-security\nComponents: {components}\n" in text
    assert "\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n" in text


def test_pin_holds_the_exact_driver(state: dict[str, Any]) -> None:
    text = _managed(state, PIN)
    cuda = state["source"] == "cuda_repo"
    upstream = "580.159.04" if cuda else "535.261.03"
    assert f"\nPin: version {upstream}-*\nPin-Priority: 1000\n" in text
    assert "\nPackage: *nvidia* libcuda* libnv* firmware-nvidia* cuda-drivers* " in text
    anchor = "nvidia-kernel-open-dkms" if cuda else "nvidia-open-kernel-dkms"
    assert state["policy"][anchor]["candidate"] == f"{upstream}-1"


@pytest.mark.parametrize("package", ["nvidia-smi", "libcuda1", "nvidia-persistenced"])
def test_apt_never_moves_the_driver(state: dict[str, Any], package: str) -> None:
    """Newer versions are offered (580.170.01 and 590.44.01; Debian's 535.309.01 security
    update) and NVIDIA's metapackages depend with >=: apt still picks the pinned one."""
    policy = state["policy"][package]
    if state["source"] == "cuda_repo":
        assert "590.44.01-1" in policy["text"] and "580.170.01-1" in policy["text"]
        assert policy["candidate"] == "580.159.04-1"
    elif package != "nvidia-persistenced":  # its own Debian source, not built with the driver
        assert "535.309.01-0+deb12u1" in policy["text"]
        assert policy["candidate"] == "535.261.03-1"


def test_container_toolkit_held(state: dict[str, Any]) -> None:
    if state["source"] != "cuda_repo":
        assert CTK_PIN not in state["files"] and CTK_SOURCES not in state["files"]
        return
    assert "\nPin: version 1.19.0-*\nPin-Priority: 1000\n" in _managed(state, CTK_PIN)
    assert "\nURIs: file:///srv/llmhost-fake-ctk/amd64/\n" in _managed(state, CTK_SOURCES)
    policy = state["policy"]["nvidia-container-toolkit"]
    assert "1.20.0-1" in policy["text"]
    assert policy["candidate"] == "1.19.0-1"


def test_report_in_bundle_and_fact(state: dict[str, Any]) -> None:
    report = state["report"]
    fact = json.loads(state["files"][FACT]["text"])
    assert {**report, "generated_at": ""} == fact
    assert report["schema"] == "llmhost.nvidia_driver_report/v1"
    assert report["run_id"] == "molecule"
    assert report["status"] == "configured_only"
    assert report["reason"].startswith("no NVIDIA GPU: ")
    assert report["detected"]["pci_gpus"] == []
    assert report["verification"]["checked"] is False
    assert report["changes"] == {"driver_packages": False, "rebooted": False}


def test_simulation_resolves_the_pinned_set(state: dict[str, Any]) -> None:
    report = state["report"]
    sim = dict(line.split(" ", 1) for line in report["simulation"])
    if state["source"] == "cuda_repo":
        assert report["plan"]["driver_packages"] == [
            "nvidia-kernel-open-dkms",
            "nvidia-driver-cuda",
            "nvidia-persistenced",
        ]
        assert report["pin"]["upstream"] == "580.159.04"
        assert report["pin"]["reason"] == "nvidia_driver_version 580.159.04"
        assert report["pin"]["available"] == ["580.170.01", "580.159.04"]
        pinned = ["nvidia-kernel-open-dkms", "nvidia-driver-cuda", "nvidia-smi", "libcuda1"]
        pinned += ["firmware-nvidia-gsp", "nvidia-fabricmanager-580"]
        for package in pinned:
            assert sim[package] == "580.159.04-1", package
        assert sim["cuda-toolkit-13-0"] == "13.0.2-1"
        assert sim["nvidia-container-toolkit"] == "1.19.0-1"
        assert "dkms" in sim
    else:
        assert report["plan"]["driver_packages"] == [
            "nvidia-open-kernel-dkms",
            "nvidia-smi",
            "nvidia-persistenced",
            "libcuda1",
        ]
        assert report["pin"]["reason"] == "the newest of branch 535"
        for package in ["nvidia-open-kernel-dkms", "nvidia-smi", "libcuda1", "firmware-nvidia-gsp"]:
            assert sim[package] == "535.261.03-1", package
    # nvidia-modprobe is its own Debian source (535.309.01 is its version, not the driver's).
    moved = {p: v for p, v in sim.items() if v.startswith(("580.170", "590.", "535.309"))}
    assert set(moved) <= {"nvidia-modprobe"}, moved
