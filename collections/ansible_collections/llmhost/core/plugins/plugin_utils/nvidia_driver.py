"""The nvidia_driver role's decisions, as plain functions (controller side).

- ``driver_packages`` / ``probe_packages``: the package set of a platform, source, branch
  and kernel-module flavour (the distro matrix lives in the role's vars/platforms/*.yml).
- ``plan``: what to do on this host (skip, keep, install, replace, configure only), the
  repositories, the package sets and every refusal that needs the host's facts.
- ``pick_driver_version``: the exact version to pin, from ``apt-cache madison``.
- ``compare_versions``: dpkg's version order, so picking never depends on output order.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

from ansible_collections.llmhost.core.plugins.module_utils.nvidia_smi import compare_driver
from ansible_collections.llmhost.core.plugins.plugin_utils.values import as_int

NAMINGS = ("ubuntu", "debian_cuda", "debian")
# Every package built from one driver release carries its version: held by one pin.
# Globs, not a /regex/: apt matches a regex against every package name on every call
# (about 3 s per apt command on a 2-core host with Debian's index); globs cost ~0.1 s.
PIN_PACKAGES = "*nvidia* libcuda* libnv* firmware-nvidia* cuda-drivers* xserver-xorg-video-nvidia*"
# Driver packages the CUDA repository must not supply when the driver comes from the
# distribution (the repository is there for the toolkit). Not version-gated, so narrower:
# the toolkit's own libnv* libraries (libnvjitlink, libnvjpeg, ...) stay allowed.
DRIVER_ONLY_PACKAGES = (
    "*nvidia* libcuda* libnvcuvid* libnvoptix* firmware-nvidia* cuda-drivers* "
    "xserver-xorg-video-nvidia*"
)
CONTAINER_TOOLKIT_PACKAGES = (
    "nvidia-container-toolkit",
    "nvidia-container-toolkit-base",
    "libnvidia-container-tools",
    "libnvidia-container1",
)
DEB_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}
SKIP_NO_GPU = "skipped: no NVIDIA GPU / route local_cpu"
KEYRING_DIR = "/etc/apt/keyrings"

_BRANCH = re.compile(r"^\d{3}$")


# --- Debian versions ------------------------------------------------------------------


def _order(char: str) -> int:
    if char == "~":
        return -1
    if char.isalpha():
        return ord(char)
    return ord(char) + 256


def _compare_part(a: str, b: str) -> int:
    """dpkg's comparison of an upstream version or a revision (verrevcmp)."""
    i = j = 0
    while i < len(a) or j < len(b):
        first_diff = 0
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _order(a[i]) if i < len(a) and not a[i].isdigit() else 0
            bc = _order(b[j]) if j < len(b) and not b[j].isdigit() else 0
            if ac != bc:
                return -1 if ac < bc else 1
            i += 1
            j += 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        while i < len(a) and a[i].isdigit() and j < len(b) and b[j].isdigit():
            if not first_diff:
                first_diff = ord(a[i]) - ord(b[j])
            i += 1
            j += 1
        if i < len(a) and a[i].isdigit():
            return 1
        if j < len(b) and b[j].isdigit():
            return -1
        if first_diff:
            return -1 if first_diff < 0 else 1
    return 0


def _split(version: str) -> tuple[int, str, str]:
    text = version.strip()
    epoch = 0
    if ":" in text:
        head, text = text.split(":", 1)
        epoch = int(head) if head.isdigit() else 0
    upstream_part, _, revision = text.rpartition("-") if "-" in text else (text, "", "")
    return epoch, upstream_part, revision


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1 as dpkg --compare-versions orders two Debian versions."""
    ea, ua, ra = _split(a)
    eb, ub, rb = _split(b)
    if ea != eb:
        return -1 if ea < eb else 1
    return _compare_part(ua, ub) or _compare_part(ra, rb)


def upstream(version: str | None) -> str | None:
    """The upstream part of a Debian version: 1:580.159.04-0ubuntu1 -> 580.159.04."""
    if not version:
        return None
    return _split(version)[1]


# --- package sets ---------------------------------------------------------------------


def driver_packages(
    spec: Mapping[str, Any], branch: str, flavor: str
) -> tuple[list[str], str, list[str]]:
    """(driver packages, anchor, fabric manager packages) for one repository's naming.

    The anchor is the package whose version decides the pin: the kernel-module package
    (Debian) or the headless metapackage (Ubuntu), which pulls the rest at its version.
    """
    naming = spec.get("naming")
    suffix = spec.get("suffix", "")
    fm = [f"nvidia-fabricmanager-{branch}"]
    if naming == "ubuntu":
        open_suffix = "-open" if flavor == "open" else ""
        headless = f"nvidia-headless-{branch}{suffix}{open_suffix}"
        return [headless, f"nvidia-utils-{branch}{suffix}"], headless, fm
    if naming == "debian_cuda":
        kernel = "nvidia-kernel-open-dkms" if flavor == "open" else "nvidia-kernel-dkms"
        return [kernel, "nvidia-driver-cuda", "nvidia-persistenced"], kernel, fm
    if naming == "debian":
        kernel = "nvidia-open-kernel-dkms" if flavor == "open" else "nvidia-kernel-dkms"
        return [kernel, "nvidia-smi", "nvidia-persistenced", "libcuda1"], kernel, []
    raise ValueError(f"unknown package naming {naming!r} (known: {', '.join(NAMINGS)})")


def probe_packages(platform: Mapping[str, Any] | None, source: str, branch: str) -> list[str]:
    """Every anchor and fabric manager package of both flavours: dpkg tells which are ours."""
    spec = (platform or {}).get(source)
    if not spec or not _BRANCH.match(str(branch)):
        return []
    names: list[str] = []
    for flavor in ("open", "proprietary"):
        _packages, anchor, fm = driver_packages(spec, str(branch), flavor)
        names += [anchor, *fm]
    return sorted(set(names))


# --- the plan -------------------------------------------------------------------------


def _kernel_modules(setting: str, pci: Mapping[str, Any]) -> tuple[str, str]:
    gpus = pci.get("gpus") or []
    if setting in ("open", "proprietary"):
        return setting, f"nvidia_driver_kernel_modules is {setting}"
    if not gpus:
        return "open", "no GPU on the PCI bus to ask; open is NVIDIA's default from 560"
    old = [g["device_id"] for g in gpus if not g.get("open_modules_supported")]
    if old:
        return "proprietary", f"GPU(s) older than Turing ({', '.join(old)}) need them"
    return "open", "every GPU is Turing or newer"


def _fabric_manager(setting: str, pci: Mapping[str, Any]) -> tuple[bool, str]:
    count = int(pci.get("nvswitch_count") or 0)
    if setting == "install":
        return True, "nvidia_driver_fabric_manager is install"
    if setting == "skip":
        return False, "nvidia_driver_fabric_manager is skip"
    if count:
        return True, f"{count} NVSwitch(es) on the PCI bus"
    return False, "no NVSwitch on the PCI bus"


def _repositories(
    s: Mapping[str, Any], platform: Mapping[str, Any], architecture: str, need: Mapping[str, bool]
) -> dict[str, Any]:
    cuda = platform.get("cuda_repo") or {}
    fingerprint = re.sub(r"\s+", "", str(s.get("cuda_repo_key_fingerprint") or "")).upper()
    short = fingerprint[-8:].lower()
    arch_dir = (cuda.get("arches") or {}).get(architecture, architecture)
    cuda_url = f"{str(s['cuda_repo_url']).rstrip('/')}/{cuda.get('dist', '')}/{arch_dir}/"
    ctk_fp = re.sub(r"\s+", "", str(s.get("container_toolkit_key_fingerprint") or "")).upper()
    deb_arch = DEB_ARCH.get(architecture, architecture)
    spec = platform.get(str(s.get("source"))) or {}
    archive = platform.get("archive") or {}
    parsed = urlparse(cuda_url)
    return {
        "cuda": {
            "needed": need["cuda"],
            "url": cuda_url,
            "key_url": f"{cuda_url}{short}.pub",
            "key_fingerprint": fingerprint,
            # What apt-cache madison shows of this repository, to pick versions from it only.
            "origin": parsed.netloc or parsed.path.rstrip("/"),
            "keyring": f"{KEYRING_DIR}/llmhost-cuda-{short}.gpg",
            "sources": "/etc/apt/sources.list.d/llmhost-nvidia-cuda.sources",
        },
        "container_toolkit": {
            "needed": need["container_toolkit"],
            "url": f"{str(s['container_toolkit_repo_url']).rstrip('/')}/{deb_arch}/",
            "key_url": str(s["container_toolkit_key_url"]),
            "key_fingerprint": ctk_fp,
            "keyring": f"{KEYRING_DIR}/llmhost-nvidia-container-toolkit-{ctk_fp[-8:].lower()}.gpg",
            "sources": "/etc/apt/sources.list.d/llmhost-nvidia-container-toolkit.sources",
        },
        "distro_components": {
            "needed": need["distro_components"],
            "components": list(spec.get("components") or []),
            "suites": list(archive.get("suites") or []),
            "security_suite": archive.get("security_suite", ""),
            "mirror": str(s["debian_mirror"]).rstrip("/"),
            "security_mirror": str(s["debian_security_mirror"]).rstrip("/"),
            "keyring": archive.get("keyring", ""),
            "sources": "/etc/apt/sources.list.d/llmhost-nvidia-distro.sources",
        },
    }


def _action(
    s: Mapping[str, Any],
    gpu_present: bool,
    gpus: str,
    comparison: Mapping[str, Any],
    managed: bool,
) -> tuple[str, str]:
    if s.get("route") == "local_cpu":
        if not gpu_present:
            return "skip", SKIP_NO_GPU
        return "skip", f"skipped: route local_cpu ({gpus} present, but this route does not use it)"
    if not gpu_present and not s.get("force_configure"):
        return "refuse", (
            "nvidia_driver_route is rented_gpu but this host has no NVIDIA GPU (none on the "
            "PCI bus, nvidia-smi lists none). Fix: run on the GPU host, or use route "
            "local_cpu (the driver is then skipped with this reason recorded)."
        )
    if s.get("force_configure"):
        what = "no NVIDIA GPU" if not gpu_present else gpus
        return "configure_only", (
            f"{what}: repositories, pins and host configuration written and the package set "
            "simulated; nothing installed (nvidia_driver_force_configure)"
        )
    status = comparison["status"]
    if status == "match" and not managed:
        return "keep", f"preinstalled: {comparison['message']} Left alone."
    if status == "match":
        return "install", f"managed: {comparison['message']} Held at the pin."
    if status == "absent":
        return "install", comparison["message"]
    if s.get("replace_mismatched"):
        return "replace", (
            f"{comparison['message']} Replacing it (nvidia_driver_replace_mismatched)."
        )
    return "mismatch_kept", (
        f"{comparison['message']} Left alone: set nvidia_driver_replace_mismatched: true to "
        "replace it."
    )


def plan(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """What the role does on this host.

    inputs: settings (the role's variables without the prefix), platform (the matrix entry
    or None), architecture, kernel, service_mgr, host (llmhost.core.nvidia_host_facts),
    gpu (llmhost.core.compute_facts' gpu).
    """
    s = inputs["settings"]
    platform = inputs.get("platform") or {}
    host = inputs.get("host") or {}
    pci = host.get("pci") or {}
    smi = inputs.get("gpu") or {}
    architecture = str(inputs.get("architecture") or "")
    branch = str(s.get("branch"))
    wanted = str(s.get("version") or "") or branch
    gpu_count = int(pci.get("gpu_count") or 0)
    gpu_present = gpu_count > 0 or bool(smi.get("present"))
    gpus = f"{max(gpu_count, int(smi.get('count') or 0))} NVIDIA GPU(s)"
    installed = smi.get("driver_version") or (host.get("loaded_driver") or {}).get("version")
    comparison = compare_driver(installed, wanted)

    flavor, flavor_reason = _kernel_modules(str(s.get("kernel_modules")), pci)
    fm_needed, fm_reason = _fabric_manager(str(s.get("fabric_manager")), pci)
    source = str(s.get("source"))
    spec = platform.get(source) or {}
    packages, anchor, fm_packages = driver_packages(spec, branch, flavor) if spec else ([], "", [])
    installed_packages = host.get("packages") or {}
    anchor_version = upstream(installed_packages.get(anchor))
    managed = bool(anchor_version) and compare_driver(anchor_version, wanted)["status"] == "match"

    action, reason = _action(s, gpu_present, gpus, comparison, managed)
    manage = action in ("install", "replace")
    simulate = action == "configure_only"
    errors: list[str] = [reason] if action == "refuse" else []
    if manage or simulate:
        errors += _host_errors(s, host, flavor, fm_needed, spec, platform, manage)
    if manage and str(inputs.get("service_mgr") or "systemd") != "systemd":
        errors.append(
            f"nvidia_driver: installing a driver needs a systemd host that can reboot "
            f"(nvidia-persistenced, Fabric Manager, DKMS); this host's service manager is "
            f"{inputs.get('service_mgr')} (a container or an image without an init system). "
            "Fix: use a VM or bare-metal host, or an image with the driver preinstalled "
            "(it is then left alone)."
        )
    toolkits = action not in ("skip", "refuse")
    need = {
        "cuda": (source == "cuda_repo" and (manage or simulate))
        or (toolkits and bool(s.get("install_cuda_toolkit"))),
        "container_toolkit": toolkits and bool(s.get("install_container_toolkit")),
        "distro_components": (manage or simulate) and bool(spec.get("components")),
    }
    cuda_version = str(s.get("cuda_toolkit_version") or "")
    ctk_version = str(s.get("container_toolkit_version") or "")
    kernel = str(inputs.get("kernel") or "")
    expected = as_int(s.get("expected_gpu_count")) or 0
    return {
        "action": action,
        "reason": reason,
        "errors": errors,
        "platform": platform.get("label", ""),
        "source": source,
        "branch": branch,
        "wanted": wanted,
        "installed": installed,
        "comparison": comparison,
        "managed": managed,
        "manage_driver": manage,
        "simulate": simulate,
        "configure_host": manage
        or simulate
        or (action in ("keep", "mismatch_kept") and bool(s.get("configure_preinstalled"))),
        "install_toolkits": toolkits and action != "refuse",
        "verify": action in ("keep", "mismatch_kept", "install", "replace"),
        "kernel_modules": flavor,
        "kernel_modules_reason": flavor_reason,
        "fabric_manager": fm_needed and (manage or simulate),
        "fabric_manager_expected": fm_needed,
        "fabric_manager_reason": fm_reason,
        "driver_packages": packages,
        "anchor": anchor,
        "fabric_manager_packages": fm_packages if fm_needed else [],
        "headers_package": f"linux-headers-{kernel}" if kernel else "",
        "cuda_toolkit_packages": (
            [f"cuda-toolkit-{cuda_version.replace('.', '-')}"]
            if s.get("install_cuda_toolkit") and toolkits
            else []
        ),
        "container_toolkit_packages": (
            list(CONTAINER_TOOLKIT_PACKAGES)
            if s.get("install_container_toolkit") and toolkits
            else []
        ),
        "container_toolkit_version": ctk_version,
        "pin_packages": PIN_PACKAGES,
        "driver_only_packages": DRIVER_ONLY_PACKAGES,
        "expected_gpu_count": expected if expected > 0 else gpu_count,
        "repositories": _repositories(s, platform, architecture, need) if platform else {},
    }


def _host_errors(
    s: Mapping[str, Any],
    host: Mapping[str, Any],
    flavor: str,
    fm_needed: bool,
    spec: Mapping[str, Any],
    platform: Mapping[str, Any],
    manage: bool,
) -> list[str]:
    """Refusals that need the host's facts, raised before anything changes."""
    errors: list[str] = []
    pci = host.get("pci") or {}
    label = platform.get("label", "this platform")
    if flavor == "open" and s.get("kernel_modules") == "open":
        old = [g["device_id"] for g in pci.get("gpus") or [] if not g["open_modules_supported"]]
        if old:
            errors.append(
                f"nvidia_driver_kernel_modules: open, but GPU(s) {', '.join(old)} are older "
                "than Turing and need the proprietary modules. Fix: auto or proprietary."
            )
    if fm_needed and not spec.get("fabric_manager", True):
        errors.append(
            f"nvidia_driver_source: this host has NVSwitches and needs Fabric Manager, which "
            f"{label}'s {s.get('source')} packages do not have. Fix: "
            "nvidia_driver_source: cuda_repo."
        )
    if not manage:
        return errors
    if host.get("secure_boot") and not s.get("allow_secure_boot"):
        errors.append(
            "nvidia_driver_allow_secure_boot: Secure Boot is on, and the DKMS-built modules "
            "load only when signed with an enrolled MOK key. Fix: enroll a MOK key (mokutil) "
            "and set nvidia_driver_allow_secure_boot: true, or turn Secure Boot off."
        )
    if host.get("runfile_installer"):
        errors.append(
            "nvidia_driver: a driver from NVIDIA's .run installer is on this host "
            "(/usr/bin/nvidia-uninstall); packages would fight it. Fix: run nvidia-uninstall, "
            "reboot, and run the play again."
        )
    return errors


# --- picking the exact version --------------------------------------------------------


def parse_madison(text: str) -> list[dict[str, str]]:
    """``apt-cache madison`` lines: [{package, version, source}]."""
    rows: list[dict[str, str]] = []
    for line in text.splitlines():
        parts = [part.strip() for part in line.split("|")]
        if len(parts) >= 3 and parts[0] and parts[1]:
            rows.append({"package": parts[0], "version": parts[1], "source": parts[2]})
    return rows


def pick_driver_version(
    madison: str,
    anchor: str,
    branch: str,
    version: str = "",
    installed: str = "",
    origin: str = "",
) -> dict[str, Any]:
    """The exact driver version to pin.

    The wanted exact version when given; else the installed version of the anchor when it
    is in the branch (a re-run never moves the driver); else the newest of the branch.
    Only versions of ``anchor`` offered by a source containing ``origin`` count. Returns
    {version (full Debian version), upstream, available (upstream versions of the branch,
    newest first), reason, error (empty when a version was found)}.
    """
    rows = [
        row
        for row in parse_madison(madison)
        if row["package"] == anchor and (not origin or origin in row["source"])
    ]
    in_branch = [row["version"] for row in rows if _in_branch(row["version"], branch)]
    in_branch.sort(key=_SortKey, reverse=True)
    available: list[str] = []
    for full in in_branch:
        up = upstream(full) or ""
        if up not in available:
            available.append(up)
    where = f" from {origin}" if origin else ""
    result: dict[str, Any] = {"version": "", "upstream": "", "available": available}
    if version:
        chosen = next((full for full in in_branch if upstream(full) == version), "")
        why = f"nvidia_driver_version {version}"
        missing = (
            f"{anchor} {version} is not offered{where}; the repositories offer "
            f"{', '.join(available) or 'nothing'} in branch {branch}. Fix: pick one of them "
            "in nvidia_driver_version, or leave it empty for the newest."
        )
    elif installed and _in_branch(installed, branch):
        chosen, why, missing = installed, "the installed version (never moved by a re-run)", ""
    else:
        chosen = in_branch[0] if in_branch else ""
        why = f"the newest of branch {branch}{where}"
        missing = (
            f"no {anchor} of branch {branch} is offered{where}. Fix: check the repository "
            "(apt-cache madison), the branch, or nvidia_driver_source."
        )
    if not chosen:
        return {**result, "reason": "", "error": missing}
    return {
        **result,
        "version": chosen,
        "upstream": upstream(chosen),
        "reason": why,
        "error": "",
    }


def _in_branch(version: str, branch: str) -> bool:
    return (upstream(version) or "").startswith(f"{branch}.")


class _SortKey:
    """Sort adaptor for compare_versions."""

    def __init__(self, version: str) -> None:
        self.version = version

    def __lt__(self, other: _SortKey) -> bool:
        return compare_versions(self.version, other.version) < 0


# --- verification ---------------------------------------------------------------------


def verify(
    gpu: Mapping[str, Any],
    host: Mapping[str, Any],
    expected: Mapping[str, Any],
) -> dict[str, Any]:
    """The verification record: GPU count, driver version, persistence, XIDs, Fabric Manager.

    gpu: llmhost.core.compute_facts' gpu; host: llmhost.core.nvidia_host_facts;
    expected: {gpu_count (0: at least one), driver_version, fabric_manager (bool),
    fabric_manager_active (bool or None when unknown), fail_on_xid (bool)}.
    """
    present = bool(gpu.get("present"))
    found_count = int(gpu.get("count") or 0)
    want_count = int(expected.get("gpu_count") or 0)
    found_version = gpu.get("driver_version")
    want_version = expected.get("driver_version")
    off = [g.get("index") for g in gpu.get("gpus") or [] if g.get("persistence_mode") is not True]
    log = host.get("kernel_log") or {}
    events = list(log.get("xid_events") or [])
    fm_expected = bool(expected.get("fabric_manager"))
    fm = host.get("fabric_manager") or {}
    fm_active = expected.get("fabric_manager_active")
    checks: dict[str, dict[str, Any]] = {
        "nvidia_smi": {
            "ok": present,
            "detail": "answers" if present else str(gpu.get("reason") or "no GPU listed"),
        },
        "gpu_count": {
            "expected": want_count or "at least 1",
            "found": found_count,
            "ok": present and (found_count == want_count if want_count else found_count >= 1),
        },
        "driver_version": {
            "expected": want_version,
            "found": found_version,
            "ok": present and bool(want_version) and found_version == want_version,
        },
        "persistence_mode": {
            "gpus_off": off,
            "ok": present and not off,
        },
        "xid_errors": {
            "checked": bool(log.get("checked")),
            "source": log.get("source"),
            "reason": log.get("reason", ""),
            "count": len(events),
            "events": events[-20:],
            "ok": not events or not expected.get("fail_on_xid", True),
        },
        "fabric_manager": {
            "expected": fm_expected,
            "version": fm.get("version"),
            "active": fm_active,
            "ok": not fm_expected
            or (fm.get("version") == found_version and fm_active is not False),
        },
    }
    failures = [_failure(name, check) for name, check in checks.items() if not check["ok"]]
    return {"checked": True, "passed": not failures, "failures": failures, "checks": checks}


def _failure(name: str, check: Mapping[str, Any]) -> str:
    if name == "nvidia_smi":
        return f"nvidia-smi does not list a GPU: {check['detail']}"
    if name == "gpu_count":
        return (
            f"nvidia-smi lists {check['found']} GPU(s), expected {check['expected']} "
            "(nvidia_driver_expected_gpu_count; 0 means as many as the PCI bus shows)"
        )
    if name == "driver_version":
        return f"driver {check['found']} is running, expected {check['expected']}"
    if name == "persistence_mode":
        return (
            f"persistence mode is off on GPU(s) {check['gpus_off']}: enable nvidia-persistenced "
            "(nvidia_driver_configure_preinstalled: true on a preinstalled driver)"
        )
    if name == "xid_errors":
        last = check["events"][-1]["line"] if check["events"] else ""
        return f"{check['count']} XID error(s) in the kernel log since boot, last: {last}"
    return (
        f"Fabric Manager {check['version'] or 'is missing'} (active: {check['active']}) must "
        "run at the driver's version on an NVSwitch system"
    )


# --- loading the new driver -----------------------------------------------------------


def reboot_decision(
    host: Mapping[str, Any],
    pinned: str,
    local: bool,
    allow_reboot: bool,
    tried_modprobe: bool = False,
) -> dict[str, str]:
    """How the pinned driver gets into the running kernel.

    host: llmhost.core.nvidia_host_facts after the install. Returns {action, message}:
    none (already loaded), modprobe (nothing holds the GPU: load it without a reboot),
    reboot (allowed), or stop (a reboot is needed but the host runs the play itself, or
    nvidia_driver_allow_reboot is false).
    """
    loaded = (host.get("loaded_driver") or {}).get("version")
    nouveau = bool((host.get("modules") or {}).get("nouveau"))
    if loaded == pinned:
        return {"action": "none", "message": f"NVIDIA driver {pinned} is loaded."}
    if loaded is None and not nouveau and not tried_modprobe:
        return {
            "action": "modprobe",
            "message": f"Nothing holds the GPU: loading {pinned} without a reboot.",
        }
    running = (loaded or "no NVIDIA driver") + (" and nouveau loaded" if nouveau else "")
    needed = (
        f"NVIDIA driver {pinned} is installed, but the running kernel has {running}: "
        "a reboot is needed."
    )
    again = (
        " Reboot the host (sudo reboot), then run the same command again: the driver is "
        "installed and pinned, so the role goes on to verification. Evidence: "
        "nvidia_driver_report.json (status reboot_required)."
    )
    if local:
        return {
            "action": "stop",
            "message": needed
            + " This play runs on the host itself (local connection) and never reboots it."
            + again,
        }
    if not allow_reboot:
        return {
            "action": "stop",
            "message": needed + " nvidia_driver_allow_reboot is false." + again,
        }
    return {"action": "reboot", "message": needed + " Rebooting (nvidia_driver_allow_reboot)."}
