"""The nvidia_driver role's repository, pin, blacklist and persistenced files and package
sets for every supported distribution, rendered by the role itself.

Ubuntu images cannot run here, so the whole role runs once in check mode (--check --diff:
nothing is written) against localhost, one inventory host per (distribution, source),
each selecting its distro matrix entry with nvidia_driver_platform. The files come from
the template diffs, the package sets and URLs from the plan, all read from the JSON
callback. No GPU here: nvidia_driver_force_configure takes the configure path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
pytestmark = pytest.mark.slow

KEY = ROOT / "tests" / "data" / "apt-keys" / "test-rsa.asc"
KEY_FPR = "128715D7A36D45A45C0F327BD2EADA5AB026DCBD"
KEYRING = f"/etc/apt/keyrings/llmhost-cuda-{KEY_FPR[-8:].lower()}.gpg"
CTK_KEYRING = f"/etc/apt/keyrings/llmhost-nvidia-container-toolkit-{KEY_FPR[-8:].lower()}.gpg"
NVIDIA = "https://developer.download.nvidia.com/compute/cuda/repos"
PIN = "/etc/apt/preferences.d/llmhost-nvidia-driver.pref"
CTK_PIN = "/etc/apt/preferences.d/llmhost-nvidia-container-toolkit.pref"
CUDA_SOURCES = "/etc/apt/sources.list.d/llmhost-nvidia-cuda.sources"
CTK_SOURCES = "/etc/apt/sources.list.d/llmhost-nvidia-container-toolkit.sources"
DISTRO_SOURCES = "/etc/apt/sources.list.d/llmhost-nvidia-distro.sources"
BLACKLIST = "/etc/modprobe.d/llmhost-blacklist-nouveau.conf"
DROPIN = "/etc/systemd/system/nvidia-persistenced.service.d/llmhost.conf"

CASES: dict[str, dict[str, Any]] = {
    "ubuntu2204-cuda": {
        "nvidia_driver_platform": "Ubuntu-22.04",
        "nvidia_driver_source": "cuda_repo",
        "nvidia_driver_version": "580.159.04",
        "nvidia_driver_fabric_manager": "install",
        "nvidia_driver_install_cuda_toolkit": True,
        "nvidia_driver_install_container_toolkit": True,
    },
    "ubuntu2404-cuda": {
        "nvidia_driver_platform": "Ubuntu-24.04",
        "nvidia_driver_source": "cuda_repo",
        "nvidia_driver_version": "580.159.04",
        "nvidia_driver_kernel_modules": "proprietary",
    },
    "ubuntu2204-distro": {
        "nvidia_driver_platform": "Ubuntu-22.04",
        "nvidia_driver_source": "distro",
        "nvidia_driver_version": "580.159.03",
        "nvidia_driver_fabric_manager": "install",
    },
    "ubuntu2404-distro": {
        "nvidia_driver_platform": "Ubuntu-24.04",
        "nvidia_driver_source": "distro",
        "nvidia_driver_version": "580.159.03",
        "nvidia_driver_install_cuda_toolkit": True,
    },
    "debian12-cuda": {
        "nvidia_driver_platform": "Debian-12",
        "nvidia_driver_source": "cuda_repo",
        "nvidia_driver_version": "580.159.04",
    },
    "debian12-distro": {
        "nvidia_driver_platform": "Debian-12",
        "nvidia_driver_source": "distro",
        "nvidia_driver_branch": "535",
        "nvidia_driver_version": "535.261.03",
    },
}


def _diffs(result: dict[str, Any]) -> list[dict[str, Any]]:
    diff = result.get("diff") or []
    return diff if isinstance(diff, list) else [diff]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """{case: {files: {path: content}, plan: {...}, changed_keys: [...]}} from one run."""
    tmp = tmp_path_factory.mktemp("nvidia-render")
    common = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "nvidia_driver_route": "rented_gpu",
        "nvidia_driver_force_configure": True,
        "nvidia_driver_cuda_repo_key_file": str(KEY),
        "nvidia_driver_cuda_repo_key_fingerprint": KEY_FPR,
        "nvidia_driver_container_toolkit_key_file": str(KEY),
        "nvidia_driver_container_toolkit_key_fingerprint": KEY_FPR,
    }
    inventory = {"all": {"hosts": {name: {**common, **case} for name, case in CASES.items()}}}
    (tmp / "hosts.yml").write_text(yaml.safe_dump(inventory), encoding="utf-8")
    play = [{"name": "render", "hosts": "all", "gather_facts": True, "roles": ["nvidia_driver"]}]
    (tmp / "play.yml").write_text(yaml.safe_dump(play), encoding="utf-8")
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
        ANSIBLE_CALLBACKS_ENABLED="ansible.posix.json",
        ANSIBLE_FACT_CACHING="memory",
        ANSIBLE_NOCOLOR="1",
    )
    cmd = [str(PLAYBOOK), "-i", str(tmp / "hosts.yml"), str(tmp / "play.yml"), "--check", "--diff"]
    done = subprocess.run(
        cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600, check=False
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    out: dict[str, dict[str, Any]] = {name: {"files": {}, "plan": None} for name in CASES}
    for task in json.loads(done.stdout)["plays"][0]["tasks"]:
        for host, result in task["hosts"].items():
            if result.get("skipped"):
                continue
            dest = ((result.get("invocation") or {}).get("module_args") or {}).get("dest")
            for diff in _diffs(result):
                if isinstance(dest, str) and isinstance(diff.get("after"), str):
                    out[host]["files"][dest] = diff["after"]
            plan = (result.get("ansible_facts") or {}).get("_nvidia_driver_plan")
            if plan:
                out[host]["plan"] = plan
    return out


def test_nothing_was_written(rendered: dict[str, dict[str, Any]]) -> None:
    assert not Path(PIN).exists() or "llmhost" not in Path(PIN).read_text()
    assert all(r["plan"]["action"] == "configure_only" for r in rendered.values())


@pytest.mark.parametrize(
    ("case", "dist"),
    [
        ("ubuntu2204-cuda", "ubuntu2204"),
        ("ubuntu2404-cuda", "ubuntu2404"),
        ("debian12-cuda", "debian12"),
    ],
)
def test_cuda_repository_sources(rendered: dict[str, dict[str, Any]], case: str, dist: str) -> None:
    text = rendered[case]["files"][CUDA_SOURCES]
    assert text.startswith("# Managed by llmhost (role nvidia_driver)")
    assert f"\nTypes: deb\nURIs: {NVIDIA}/{dist}/x86_64/\nSuites: /\nSigned-By: {KEYRING}\n" in text
    repo = rendered[case]["plan"]["repositories"]["cuda"]
    assert repo["key_url"] == f"{NVIDIA}/{dist}/x86_64/{KEY_FPR[-8:].lower()}.pub"
    assert repo["origin"] == "developer.download.nvidia.com"


FM = ["nvidia-fabricmanager-580"]
PACKAGE_SETS = {
    "ubuntu2204-cuda": (["nvidia-headless-580-open", "nvidia-utils-580"], FM),
    "ubuntu2404-cuda": (["nvidia-headless-580", "nvidia-utils-580"], []),
    "ubuntu2204-distro": (["nvidia-headless-580-server-open", "nvidia-utils-580-server"], FM),
    "ubuntu2404-distro": (["nvidia-headless-580-server-open", "nvidia-utils-580-server"], []),
    "debian12-cuda": (["nvidia-kernel-open-dkms", "nvidia-driver-cuda", "nvidia-persistenced"], []),
    "debian12-distro": (
        ["nvidia-open-kernel-dkms", "nvidia-smi", "nvidia-persistenced", "libcuda1"],
        [],
    ),
}


@pytest.mark.parametrize("case", list(PACKAGE_SETS))
def test_package_sets(rendered: dict[str, dict[str, Any]], case: str) -> None:
    packages, fabric_manager = PACKAGE_SETS[case]
    plan = rendered[case]["plan"]
    assert plan["driver_packages"] == packages
    assert plan["anchor"] == packages[0]
    assert plan["fabric_manager_packages"] == fabric_manager
    assert plan["headers_package"].startswith("linux-headers-")


@pytest.mark.parametrize("case", list(CASES))
def test_pin_holds_the_version(rendered: dict[str, dict[str, Any]], case: str) -> None:
    upstream = CASES[case]["nvidia_driver_version"]
    text = rendered[case]["files"][PIN]
    assert f"\nPin: version {upstream}-*\nPin-Priority: 1000\n" in text
    assert "\nPackage: *nvidia* libcuda* libnv* firmware-nvidia* cuda-drivers* " in text
    distro_with_cuda = case == "ubuntu2404-distro"  # the CUDA repository only for the toolkit
    origin = '\nPin: origin "developer.download.nvidia.com"\nPin-Priority: -1\n'
    assert (origin in text) is distro_with_cuda
    # The toolkit's libnvjitlink, libnvjpeg, ... must stay installable from that repository.
    assert ("\nPackage: *nvidia* libcuda* libnvcuvid* libnvoptix* " in text) is distro_with_cuda
    if distro_with_cuda:
        assert text.index(origin) < text.index("Pin-Priority: 1000"), "the first match wins"


def test_toolkits(rendered: dict[str, dict[str, Any]]) -> None:
    files = rendered["ubuntu2204-cuda"]["files"]
    ctk = files[CTK_SOURCES]
    assert "\nURIs: https://nvidia.github.io/libnvidia-container/stable/deb/amd64/\n" in ctk
    assert f"\nSigned-By: {CTK_KEYRING}\n" in ctk
    assert "\nPin: version 1.19.0-*\nPin-Priority: 1000\n" in files[CTK_PIN]
    plan = rendered["ubuntu2204-cuda"]["plan"]
    assert plan["cuda_toolkit_packages"] == ["cuda-toolkit-13-0"]
    assert plan["container_toolkit_packages"] == [
        "nvidia-container-toolkit",
        "nvidia-container-toolkit-base",
        "libnvidia-container-tools",
        "libnvidia-container1",
    ]
    distro = rendered["ubuntu2404-distro"]
    assert CUDA_SOURCES in distro["files"], "the toolkit needs the CUDA repository"
    assert distro["plan"]["cuda_toolkit_packages"] == ["cuda-toolkit-13-0"]


def test_ubuntu_distro_needs_no_extra_components(rendered: dict[str, dict[str, Any]]) -> None:
    for case in ("ubuntu2204-distro", "ubuntu2404-distro", "ubuntu2204-cuda"):
        assert DISTRO_SOURCES not in rendered[case]["files"], case
    assert CUDA_SOURCES not in rendered["ubuntu2204-distro"]["files"]


@pytest.mark.parametrize(
    ("case", "components"),
    [("debian12-cuda", "contrib"), ("debian12-distro", "contrib non-free non-free-firmware")],
)
def test_debian_components(rendered: dict[str, dict[str, Any]], case: str, components: str) -> None:
    text = rendered[case]["files"][DISTRO_SOURCES]
    assert (
        "\nTypes: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\n"
        f"Components: {components}\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    ) in text
    assert (
        "\nURIs: http://security.debian.org/debian-security\nSuites: bookworm-security\n"
        f"Components: {components}\n"
    ) in text


@pytest.mark.parametrize("case", list(CASES))
def test_host_configuration(rendered: dict[str, dict[str, Any]], case: str) -> None:
    files = rendered[case]["files"]
    assert "\nblacklist nouveau\noptions nouveau modeset=0\n" in files[BLACKLIST]
    assert files[DROPIN].endswith(
        "[Service]\nExecStart=\nExecStart=/usr/bin/nvidia-persistenced "
        "--user nvidia-persistenced --persistence-mode --verbose\n"
    )


def test_open_or_proprietary(rendered: dict[str, dict[str, Any]]) -> None:
    assert rendered["ubuntu2204-cuda"]["plan"]["kernel_modules"] == "open"
    assert rendered["ubuntu2404-cuda"]["plan"]["kernel_modules"] == "proprietary"
