"""The nvidia_driver role's decisions (plugin_utils/nvidia_driver.py): the distro
matrix in the role's vars/platforms/, the plan on the real H100 captures (driver
580.159.04 preinstalled), version picking from apt-cache madison, and verification. (The
role's inputs are checked by its argument_specs and assert list:
tests/test_nvidia_driver_refusals.py.)"""

from __future__ import annotations

import ast
import re
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible_collections.llmhost.core.plugins.module_utils.nvidia_host import driver_flavor
from ansible_collections.llmhost.core.plugins.modules import compute_facts
from ansible_collections.llmhost.core.plugins.plugin_utils.nvidia_driver import (
    SKIP_NO_GPU,
    compare_versions,
    driver_packages,
    pick_driver_version,
    plan,
    probe_packages,
    reboot_decision,
    upstream,
    verify,
)

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "nvidia-smi" / "h100"
PLATFORMS = ROOT / "roles" / "nvidia_driver" / "vars" / "platforms"
DEFAULTS = ROOT / "roles" / "nvidia_driver" / "defaults" / "main.yml"
H100_PCI = {"address": "0000:00:06.0", "device_id": "0x2330", "class": "0x030200"}


def platform(name: str) -> dict[str, Any]:
    return yaml.safe_load((PLATFORMS / f"{name}.yml").read_text())["_nvidia_driver_platform"]


FALLBACK = re.compile(r"^\{\{ llmhost_\w+ \| default\((?P<value>.*)\) \}\}$")


def _fallback(value: Any) -> Any:
    """A default that falls back to the run-wide llmhost_* value: its fallback, as
    Ansible resolves it when the inventory sets no llmhost_* value."""
    match = FALLBACK.match(value) if isinstance(value, str) else None
    return ast.literal_eval(match["value"]) if match else value


def settings(**overrides: Any) -> dict[str, Any]:
    """The role's defaults without the prefix, as vars/main.yml builds them."""
    defaults = yaml.safe_load(DEFAULTS.read_text())
    out = {k.removeprefix("nvidia_driver_"): _fallback(v) for k, v in defaults.items()}
    out.update(route="rented_gpu")
    out.update(overrides)
    return out


@pytest.fixture(scope="module")
def h100_gpu(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """compute_facts' gpu on the acceptance host: a fake nvidia-smi printing the captures."""
    folder = tmp_path_factory.mktemp("smi")
    fake = folder / "nvidia-smi"
    fake.write_text(
        f"""#!/bin/sh
case "$*" in
  --query-gpu=*) cat '{DATA}/query-gpu.csv' ;;
  --query-compute-apps=*) cat '{DATA}/query-compute-apps-idle.csv' ;;
  '') cat '{DATA}/nvidia-smi.txt' ;;
  *) exit 2 ;;
esac
""",
        encoding="utf-8",
    )
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    return compute_facts.gpu_facts(str(fake), 10, lambda _name: None)


def h100_host(**overrides: Any) -> dict[str, Any]:
    """nvidia_host_facts on the acceptance host (from the captures)."""
    proc = (DATA / "proc-driver-version.txt").read_text()
    gpu = {**H100_PCI, "kind": "gpu", "open_modules_supported": True}
    host = {
        "pci": {
            "gpus": [gpu],
            "nvswitches": [],
            "gpu_count": 1,
            "nvswitch_count": 0,
            "open_modules_supported": True,
        },
        "modules": {"nvidia": True, "nouveau": False},
        "loaded_driver": {"version": "580.159.04", "flavor": driver_flavor(proc)},
        "secure_boot": None,
        "runfile_installer": False,
        "packages": {},
        "fabric_manager": {"installed": False, "version": None},
        "kernel_log": {"checked": True, "source": "dmesg", "reason": "", "xid_events": []},
    }
    host.update(overrides)
    return host


NO_GPU_HOST = {
    "pci": {"gpus": [], "nvswitches": [], "gpu_count": 0, "nvswitch_count": 0},
    "loaded_driver": {"version": None, "flavor": None},
    "packages": {},
}
NO_GPU_SMI = {"present": False, "count": 0, "driver_version": None, "reason": "not found"}


def run_plan(
    gpu: dict[str, Any],
    host: dict[str, Any],
    name: str = "Ubuntu-24.04",
    service_mgr: str = "systemd",
    **overrides: Any,
) -> dict[str, Any]:
    return plan(
        {
            "settings": settings(platform_name=name, **overrides),
            "platform": platform(name),
            "architecture": "x86_64",
            "kernel": "6.8.0-101-generic",
            "service_mgr": service_mgr,
            "host": host,
            "gpu": gpu,
        }
    )


# --- the H100 captures: a preinstalled driver ------------------------------------------


def test_captures_show_the_preinstalled_open_driver(h100_gpu: dict[str, Any]) -> None:
    assert h100_gpu["present"] and h100_gpu["count"] == 1
    assert h100_gpu["driver_version"] == "580.159.04"
    assert h100_gpu["gpus"][0]["persistence_mode"] is True
    assert driver_flavor((DATA / "proc-driver-version.txt").read_text()) == "open"


@pytest.mark.parametrize("wanted", [{}, {"version": "580.159.04"}])
def test_matching_preinstalled_driver_is_left_alone(
    h100_gpu: dict[str, Any], wanted: dict[str, Any]
) -> None:
    # The acceptance host: no init system, a Nix-built driver, local connection.
    p = run_plan(h100_gpu, h100_host(), service_mgr="process_api", **wanted)
    assert p["action"] == "keep"
    assert p["errors"] == []
    assert p["reason"].startswith("preinstalled: Installed NVIDIA driver 580.159.04 matches")
    assert p["reason"].endswith("Left alone.")
    assert not p["manage_driver"] and not p["configure_host"] and not p["simulate"]
    assert p["verify"] is True
    assert not any(repo["needed"] for repo in p["repositories"].values())


def test_preinstalled_driver_with_configure_preinstalled(h100_gpu: dict[str, Any]) -> None:
    p = run_plan(h100_gpu, h100_host(), configure_preinstalled=True)
    assert (p["action"], p["configure_host"], p["manage_driver"]) == ("keep", True, False)


@pytest.mark.parametrize(
    ("wanted", "kind"),
    [({"branch": "575"}, "branch 575"), ({"version": "580.95.05"}, "exact version 580.95.05")],
)
def test_mismatch_is_reported_with_both_versions(
    h100_gpu: dict[str, Any], wanted: dict[str, Any], kind: str
) -> None:
    p = run_plan(h100_gpu, h100_host(), **wanted)
    assert p["action"] == "mismatch_kept"
    assert p["comparison"]["status"] == "mismatch"
    assert f"Installed NVIDIA driver 580.159.04 does not match the wanted {kind}." in p["reason"]
    assert "set nvidia_driver_replace_mismatched: true" in p["reason"]
    assert not p["manage_driver"]


def test_mismatch_is_replaced_only_when_told(h100_gpu: dict[str, Any]) -> None:
    p = run_plan(h100_gpu, h100_host(), branch="575", replace_mismatched=True)
    assert p["action"] == "replace" and p["manage_driver"]
    assert "580.159.04" in p["reason"] and "575" in p["reason"]
    assert p["driver_packages"] == ["nvidia-headless-575-open", "nvidia-utils-575"]


def test_replacing_on_a_host_without_init_is_refused(h100_gpu: dict[str, Any]) -> None:
    p = run_plan(
        h100_gpu, h100_host(), service_mgr="process_api", branch="575", replace_mismatched=True
    )
    assert any("service manager is process_api" in e for e in p["errors"])


def test_the_roles_own_driver_is_held(h100_gpu: dict[str, Any]) -> None:
    host = h100_host(packages={"nvidia-headless-580-open": "580.159.04-0ubuntu1"})
    p = run_plan(h100_gpu, host)
    assert p["action"] == "install" and p["managed"] is True
    assert p["reason"].startswith("managed: ")
    assert p["repositories"]["cuda"]["needed"] is True


# --- hosts without a GPU -----------------------------------------------------------------


def test_local_cpu_skips_with_the_recorded_reason() -> None:
    p = run_plan(NO_GPU_SMI, NO_GPU_HOST, route="local_cpu")
    assert (p["action"], p["reason"]) == ("skip", SKIP_NO_GPU)
    assert p["reason"] == "skipped: no NVIDIA GPU / route local_cpu"
    assert not (p["manage_driver"] or p["configure_host"] or p["verify"] or p["install_toolkits"])


def test_local_cpu_with_a_gpu_still_skips(h100_gpu: dict[str, Any]) -> None:
    p = run_plan(h100_gpu, h100_host(), route="local_cpu")
    assert p["action"] == "skip"
    assert (
        p["reason"]
        == "skipped: route local_cpu (1 NVIDIA GPU(s) present, but this route does not use it)"
    )


def test_rented_gpu_without_a_gpu_is_refused() -> None:
    p = run_plan(NO_GPU_SMI, NO_GPU_HOST)
    assert p["action"] == "refuse"
    assert "has no NVIDIA GPU" in p["errors"][0]


def test_force_configure_without_a_gpu() -> None:
    p = run_plan(NO_GPU_SMI, NO_GPU_HOST, force_configure=True, install_container_toolkit=True)
    assert p["action"] == "configure_only" and p["simulate"] and p["configure_host"]
    assert p["reason"].startswith("no NVIDIA GPU: ")
    assert not p["manage_driver"] and not p["verify"]
    assert p["repositories"]["cuda"]["needed"] and p["repositories"]["container_toolkit"]["needed"]


# --- refusals that need the host -----------------------------------------------------------


def test_secure_boot_is_refused_for_dkms_unless_allowed() -> None:
    host = {**NO_GPU_HOST, "pci": h100_host()["pci"], "secure_boot": True}
    assert any("Secure Boot is on" in e for e in run_plan(NO_GPU_SMI, host)["errors"])
    assert run_plan(NO_GPU_SMI, host, allow_secure_boot=True)["errors"] == []


def test_runfile_driver_is_not_fought() -> None:
    host = {**NO_GPU_HOST, "pci": h100_host()["pci"], "runfile_installer": True}
    assert any("nvidia-uninstall" in e for e in run_plan(NO_GPU_SMI, host)["errors"])


def test_open_modules_only_where_supported() -> None:
    pascal = {"address": "0000:3b:00.0", "device_id": "0x15f8", "class": "0x030200"}
    gpus = [{**pascal, "kind": "gpu", "open_modules_supported": False}]
    host = {**NO_GPU_HOST, "pci": {"gpus": gpus, "gpu_count": 1, "nvswitch_count": 0}}
    p = run_plan(NO_GPU_SMI, host)
    assert p["kernel_modules"] == "proprietary"
    assert "0x15f8" in p["kernel_modules_reason"]
    assert p["driver_packages"][0] == "nvidia-headless-580"
    forced = run_plan(NO_GPU_SMI, host, kernel_modules="open")
    assert any("older than Turing" in e for e in forced["errors"])


def test_nvswitch_systems_get_fabric_manager() -> None:
    host = {**NO_GPU_HOST, "pci": {**h100_host()["pci"], "nvswitch_count": 4}}
    p = run_plan(NO_GPU_SMI, host)
    assert p["fabric_manager"] is True and "4 NVSwitch" in p["fabric_manager_reason"]
    assert p["fabric_manager_packages"] == ["nvidia-fabricmanager-580"]
    debian = run_plan(NO_GPU_SMI, host, name="Debian-12", source="distro", branch="535")
    assert any("needs Fabric Manager" in e for e in debian["errors"])


# --- the distro matrix ----------------------------------------------------------------------


def test_every_platform_file_names_its_release() -> None:
    names = sorted(p.stem for p in PLATFORMS.glob("*.yml"))
    assert names == ["Debian-12", "Ubuntu-22.04", "Ubuntu-24.04"]
    for name in names:
        assert platform(name)["label"] == name.replace("-", " ")


@pytest.mark.parametrize(
    ("name", "source", "flavor", "expected"),
    [
        ("Ubuntu-22.04", "cuda_repo", "open", ["nvidia-headless-580-open", "nvidia-utils-580"]),
        ("Ubuntu-24.04", "cuda_repo", "proprietary", ["nvidia-headless-580", "nvidia-utils-580"]),
        (
            "Ubuntu-24.04",
            "distro",
            "open",
            ["nvidia-headless-580-server-open", "nvidia-utils-580-server"],
        ),
        (
            "Debian-12",
            "cuda_repo",
            "open",
            ["nvidia-kernel-open-dkms", "nvidia-driver-cuda", "nvidia-persistenced"],
        ),
        (
            "Debian-12",
            "distro",
            "proprietary",
            ["nvidia-kernel-dkms", "nvidia-smi", "nvidia-persistenced", "libcuda1"],
        ),
    ],
)
def test_package_sets(name: str, source: str, flavor: str, expected: list[str]) -> None:
    packages, anchor, _fm = driver_packages(platform(name)[source], "580", flavor)
    assert packages == expected
    assert anchor == expected[0]


def test_probe_packages_cover_both_flavours() -> None:
    assert probe_packages(platform("Ubuntu-22.04"), "distro", "580") == [
        "nvidia-fabricmanager-580",
        "nvidia-headless-580-server",
        "nvidia-headless-580-server-open",
    ]
    assert probe_packages(platform("Debian-12"), "distro", "535") == [
        "nvidia-kernel-dkms",
        "nvidia-open-kernel-dkms",
    ]
    assert probe_packages(None, "cuda_repo", "580") == []


@pytest.mark.parametrize(
    ("name", "architecture", "url"),
    [
        ("Ubuntu-22.04", "x86_64", "ubuntu2204/x86_64/"),
        ("Ubuntu-24.04", "x86_64", "ubuntu2404/x86_64/"),
        ("Ubuntu-24.04", "aarch64", "ubuntu2404/sbsa/"),
        ("Debian-12", "x86_64", "debian12/x86_64/"),
    ],
)
def test_cuda_repository_urls(name: str, architecture: str, url: str) -> None:
    p = plan(
        {
            "settings": settings(platform_name=name, force_configure=True),
            "platform": platform(name),
            "architecture": architecture,
            "kernel": "k",
            "host": NO_GPU_HOST,
            "gpu": NO_GPU_SMI,
        }
    )
    cuda = p["repositories"]["cuda"]
    base = "https://developer.download.nvidia.com/compute/cuda/repos/"
    assert cuda["url"] == base + url
    assert cuda["key_url"] == base + url + "3bf863cc.pub"
    assert cuda["keyring"] == "/etc/apt/keyrings/llmhost-cuda-3bf863cc.gpg"
    assert p["headers_package"] == "linux-headers-k"


# --- picking the version ------------------------------------------------------------------

MADISON = """\
nvidia-headless-580-open | 580.170.01-0ubuntu1 | https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2404/x86_64  Packages
nvidia-headless-580-open | 580.159.04-0ubuntu1 | https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2404/x86_64  Packages
nvidia-headless-580-open | 580.178.04-0ubuntu0.24.04.1 | http://archive.ubuntu.com/ubuntu noble-updates/restricted amd64 Packages
nvidia-headless-580-open | 590.44.01-0ubuntu1 | https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2404/x86_64  Packages
nvidia-headless-580-open | 580.95.05-0ubuntu1 | https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2404/x86_64  Packages
linux-headers-6.8.0-101-generic | 6.8.0-101.101 | http://archive.ubuntu.com/ubuntu noble-updates/main amd64 Packages
"""  # noqa: E501 - real madison lines
ANCHOR = "nvidia-headless-580-open"
ORIGIN = "developer.download.nvidia.com"


def test_pick_the_newest_of_the_branch_from_the_right_repository() -> None:
    pick = pick_driver_version(MADISON, ANCHOR, "580", origin=ORIGIN)
    assert pick["version"] == "580.170.01-0ubuntu1"
    assert pick["upstream"] == "580.170.01"
    assert pick["available"] == ["580.170.01", "580.159.04", "580.95.05"]
    assert pick["error"] == ""


def test_pick_the_exact_version() -> None:
    pick = pick_driver_version(MADISON, ANCHOR, "580", "580.159.04", origin=ORIGIN)
    assert (pick["version"], pick["reason"]) == (
        "580.159.04-0ubuntu1",
        "nvidia_driver_version 580.159.04",
    )


def test_a_rerun_never_moves_the_installed_driver() -> None:
    pick = pick_driver_version(MADISON, ANCHOR, "580", installed="580.95.05-0ubuntu1")
    assert pick["upstream"] == "580.95.05"
    assert "never moved" in pick["reason"]


def test_an_installed_driver_of_another_branch_is_not_kept() -> None:
    pick = pick_driver_version(MADISON, ANCHOR, "580", installed="575.64.05-0ubuntu1")
    assert pick["upstream"] == "580.178.04"  # no origin given: the archive counts too


def test_a_version_not_offered_lists_what_is() -> None:
    pick = pick_driver_version(MADISON, ANCHOR, "580", "580.178.04", origin=ORIGIN)
    assert pick["version"] == ""
    assert pick["error"].startswith("nvidia-headless-580-open 580.178.04 is not offered from")
    assert "580.170.01, 580.159.04, 580.95.05 in branch 580" in pick["error"]


def test_nothing_offered() -> None:
    assert (
        "no nvidia-headless-580-open of branch 580"
        in pick_driver_version("", ANCHOR, "580")["error"]
    )


@pytest.mark.parametrize(
    ("a", "b", "order"),
    [
        ("580.159.04-1", "580.95.05-1", 1),
        ("580.159.04-0ubuntu1", "580.159.04-0ubuntu0.24.04.1", 1),
        ("1:1.0-1", "2.0-1", 1),
        ("1.0~rc1-1", "1.0-1", -1),
        ("535.261.03-1", "535.261.03-1", 0),
        ("535.309.01-0+deb12u1", "535.261.03-1", 1),
        ("1.0-1", "1.0-1~bpo1", 1),
    ],
)
def test_dpkg_version_order(a: str, b: str, order: int) -> None:
    assert compare_versions(a, b) == order
    assert compare_versions(b, a) == -order


def test_upstream_version() -> None:
    assert upstream("1:580.159.04-0ubuntu1") == "580.159.04"
    assert upstream("580.159.04") == "580.159.04"
    assert upstream(None) is None


# --- verification on the captures -----------------------------------------------------------

EXPECT = {
    "gpu_count": 1,
    "driver_version": "580.159.04",
    "fabric_manager": False,
    "fabric_manager_active": None,
    "fail_on_xid": True,
}


def test_verification_passes_on_the_h100(h100_gpu: dict[str, Any]) -> None:
    result = verify(h100_gpu, h100_host(), EXPECT)
    assert result["passed"] is True, result["failures"]
    assert result["checks"]["driver_version"] == {
        "expected": "580.159.04",
        "found": "580.159.04",
        "ok": True,
    }


def test_verification_failures_say_what_was_found(h100_gpu: dict[str, Any]) -> None:
    xid = {
        "pci": "0000:00:06",
        "xid": 79,
        "detail": "GPU has fallen off the bus.",
        "line": "NVRM: Xid (PCI:0000:00:06): 79, pid=0, GPU has fallen off the bus.",
    }
    host = h100_host(
        kernel_log={"checked": True, "source": "dmesg", "reason": "", "xid_events": [xid]},
        fabric_manager={"installed": False, "version": None},
    )
    off = {**h100_gpu, "gpus": [{**h100_gpu["gpus"][0], "persistence_mode": False}]}
    expect = {**EXPECT, "gpu_count": 8, "driver_version": "580.95.05", "fabric_manager": True}
    result = verify(off, host, expect)
    assert not result["passed"]
    text = "\n".join(result["failures"])
    assert "nvidia-smi lists 1 GPU(s), expected 8" in text
    assert "driver 580.159.04 is running, expected 580.95.05" in text
    assert "persistence mode is off on GPU(s) [0]" in text
    assert "1 XID error(s)" in text and "fallen off the bus" in text
    assert "Fabric Manager is missing" in text


def test_xids_can_be_recorded_without_failing(h100_gpu: dict[str, Any]) -> None:
    xid = {"pci": "0000:00:06", "xid": 13, "detail": "Graphics Exception", "line": "x"}
    host = h100_host(kernel_log={"checked": True, "xid_events": [xid]})
    result = verify(h100_gpu, host, {**EXPECT, "fail_on_xid": False})
    assert result["passed"] and result["checks"]["xid_errors"]["count"] == 1


def test_verification_without_nvidia_smi() -> None:
    result = verify(NO_GPU_SMI, {}, EXPECT)
    assert not result["passed"]
    assert result["failures"][0] == "nvidia-smi does not list a GPU: not found"


# --- loading the new driver: modprobe, reboot or stop -----------------------------------------


def loaded(version: str | None, nouveau: bool = False) -> dict[str, Any]:
    return {"loaded_driver": {"version": version}, "modules": {"nouveau": nouveau}}


def test_already_loaded_needs_nothing() -> None:
    assert reboot_decision(loaded("580.159.04"), "580.159.04", True, False)["action"] == "none"


def test_nothing_holds_the_gpu_so_no_reboot() -> None:
    assert reboot_decision(loaded(None), "580.159.04", True, False)["action"] == "modprobe"
    # ... but only once: a failed modprobe is not retried.
    again = reboot_decision(loaded(None), "580.159.04", True, False, tried_modprobe=True)
    assert again["action"] == "stop"


def test_never_reboots_over_a_local_connection() -> None:
    # The H100 acceptance host runs the play on itself: replacing its 580.159.04 with 575.
    decision = reboot_decision(loaded("580.159.04"), "575.64.05", True, True)
    assert decision["action"] == "stop"
    assert decision["message"].startswith(
        "NVIDIA driver 575.64.05 is installed, but the running kernel has 580.159.04: "
        "a reboot is needed. This play runs on the host itself (local connection)"
    )
    assert "run the same command again" in decision["message"]


def test_reboots_only_when_allowed() -> None:
    held = reboot_decision(loaded(None, nouveau=True), "580.159.04", False, False)
    assert held["action"] == "stop"
    assert "no NVIDIA driver and nouveau loaded" in held["message"]
    assert "nvidia_driver_allow_reboot is false" in held["message"]
    go = reboot_decision(loaded("575.64.05"), "580.159.04", False, True)
    assert go["action"] == "reboot"
