"""Pure, typed readers of what a host says about its NVIDIA hardware and driver.

Standard library only: the nvidia_host_facts module ships this file to hosts running
Python 3.10 and newer (Ubuntu 22.04). Every reader takes a path or captured text, so the
tests run them on fixtures: a fake sysfs tree, kernel log excerpts, real captures.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

NVIDIA_VENDOR_ID = 0x10DE
# PCI base class 0x03 is a display controller (0x0300 VGA, 0x0302 3D controller: every
# data-centre GPU); 0x0680 ("other bridge") is how NVSwitch chips show up on HGX boards.
DISPLAY_CLASS = 0x03
NVSWITCH_CLASS = 0x0680
# NVIDIA's open kernel modules need Turing or newer. NVIDIA hands out PCI device ids by
# generation and every Turing and later GPU has an id of 0x1E00 or above (TU102 0x1E02,
# T4 0x1EB8, A100 0x20B0, H100 0x2330, L4 0x27B8, B200 0x2901); Volta (0x1DB1-0x1DF6),
# Pascal and older are below it.
FIRST_TURING_DEVICE_ID = 0x1E00
KERNEL_MODULES = ("nvidia", "nvidia_uvm", "nvidia_modeset", "nvidia_drm", "nouveau")
SECURE_BOOT_VAR = "SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"

_XID = re.compile(r"NVRM: Xid \(([^)]*)\):\s*(\d+)\s*,?\s*(.*)$")
_VERSION = re.compile(r"(\d+\.\d+(?:\.\d+)?)")


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def _hex(text: str | None) -> int | None:
    if not text:
        return None
    try:
        return int(text, 16)
    except ValueError:
        return None


def open_modules_supported(device_id: int) -> bool:
    """True for a Turing-or-newer device id (see FIRST_TURING_DEVICE_ID)."""
    return device_id >= FIRST_TURING_DEVICE_ID


def classify(pci_class: int) -> str:
    """gpu, nvswitch or other for a 24-bit PCI class code (e.g. 0x030200)."""
    if pci_class >> 16 == DISPLAY_CLASS:
        return "gpu"
    if pci_class >> 8 == NVSWITCH_CLASS:
        return "nvswitch"
    return "other"


def pci_devices(devices_dir: Path) -> list[dict[str, Any]]:
    """NVIDIA functions under /sys/bus/pci/devices: address, device id, class, kind.

    A missing or unreadable folder (a container without sysfs) gives [].
    """
    found: list[dict[str, Any]] = []
    try:
        entries = sorted(devices_dir.iterdir())
    except OSError:
        return found
    for entry in entries:
        if _hex(_read(entry / "vendor")) != NVIDIA_VENDOR_ID:
            continue
        device = _hex(_read(entry / "device"))
        pci_class = _hex(_read(entry / "class"))
        if device is None or pci_class is None:
            continue
        kind = classify(pci_class)
        found.append(
            {
                "address": entry.name,
                "device_id": f"0x{device:04x}",
                "class": f"0x{pci_class:06x}",
                "kind": kind,
                "open_modules_supported": kind == "gpu" and open_modules_supported(device),
            }
        )
    return found


def loaded_modules(module_dir: Path) -> dict[str, bool]:
    """Which of KERNEL_MODULES are loaded (or built in): /sys/module/<name> exists."""
    return {name: (module_dir / name).is_dir() for name in KERNEL_MODULES}


def driver_flavor(proc_version_text: str | None) -> str | None:
    """open or proprietary from /proc/driver/nvidia/version; None when no driver is loaded."""
    if not proc_version_text or "NVRM version" not in proc_version_text:
        return None
    return "open" if "Open Kernel Module" in proc_version_text else "proprietary"


def secure_boot(efivars_dir: Path) -> bool | None:
    """True/False from the SecureBoot EFI variable; None on BIOS hosts or without efivarfs.

    The variable holds 4 attribute bytes, then the value byte (1 = enabled).
    """
    try:
        data = (efivars_dir / SECURE_BOOT_VAR).read_bytes()
    except OSError:
        return None
    return len(data) >= 5 and data[4] == 1


def xid_events(kernel_log: str) -> list[dict[str, Any]]:
    """Every NVIDIA XID line of a kernel log: [{pci, xid, detail, line}], oldest first.

    The driver writes e.g. "NVRM: Xid (PCI:0000:00:06): 79, pid=..., GPU has fallen off
    the bus." (the form varies a little across branches; the code is the number after ':').
    """
    events: list[dict[str, Any]] = []
    for line in kernel_log.splitlines():
        match = _XID.search(line)
        if match:
            events.append(
                {
                    "pci": match.group(1).removeprefix("PCI:"),
                    "xid": int(match.group(2)),
                    "detail": match.group(3).strip(),
                    "line": line.strip(),
                }
            )
    return events


def first_version(text: str | None) -> str | None:
    """The first dotted version in a tool's output ("Fabric Manager version is : 580.95.05")."""
    if not text:
        return None
    match = _VERSION.search(text)
    return match.group(1) if match else None
