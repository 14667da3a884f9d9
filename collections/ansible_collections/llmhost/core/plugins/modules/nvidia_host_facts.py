#!/usr/bin/python
"""llmhost.core.nvidia_host_facts: what a host has of NVIDIA hardware and driver, read-only."""
# Ansible layout: the documentation blocks come before the imports.
# ruff: noqa: E402

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nvidia_host_facts
short_description: Report NVIDIA PCI devices, loaded kernel modules, Secure Boot, XIDs and packages
version_added: 0.1.0
description:
  - Complements M(llmhost.core.compute_facts) (what nvidia-smi says) with what the host
    says without a working driver, so a role can decide before it changes anything.
  - NVIDIA PCI functions from sysfs (GPUs, NVSwitches), whether each GPU supports the open
    kernel modules (Turing or newer by PCI device id), loaded modules (nvidia, nouveau, ...),
    the loaded driver's version and flavour (open or proprietary), Secure Boot, a driver
    installed by NVIDIA's .run installer, installed versions of given packages, the Fabric
    Manager version, and XID errors in the kernel log since boot.
  - Read-only (C(changed) is always false); supports check mode; never fails because
    something is missing (a container without sysfs, no journal, no dpkg).
author:
  - llmhost project
options:
  packages:
    description: Package names whose installed versions are reported (dpkg).
    type: list
    elements: str
    default: []
  kernel_log:
    description:
      - Read the kernel log since boot for XID errors (C(journalctl -k -b 0), else C(dmesg)).
    type: bool
    default: true
  sysfs_root:
    description: Where sysfs is mounted (another root for tests and chroots).
    type: path
    default: /sys
  proc_root:
    description: Where procfs is mounted.
    type: path
    default: /proc
  timeout:
    description: Seconds each command may take.
    type: int
    default: 60
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
notes:
  - The open-module decision by device id is a rule of thumb that holds for every NVIDIA
    GPU so far (Turing and later ids start at 0x1E00); set the role's choice explicitly for
    anything unusual.
"""

EXAMPLES = r"""
- name: Read the NVIDIA hardware and driver state
  llmhost.core.nvidia_host_facts:
    packages: [nvidia-headless-580-open, nvidia-utils-580]
  register: nvidia_host

- name: Say how many GPUs the PCI bus has
  ansible.builtin.debug:
    msg: "{{ nvidia_host.pci.gpu_count }} GPU(s), {{ nvidia_host.pci.nvswitch_count }} NVSwitch(es)"
"""

RETURN = r"""
pci:
  description: NVIDIA PCI functions.
  returned: always
  type: dict
  contains:
    gpus:
      description: GPUs (address, device_id, class, kind, open_modules_supported).
      type: list
      elements: dict
      sample:
        - address: "0000:00:06.0"
          device_id: "0x2330"
          class: "0x030200"
          kind: gpu
          open_modules_supported: true
    nvswitches:
      description: NVSwitch functions (PCI class 0x0680).
      type: list
      elements: dict
    gpu_count:
      description: Number of GPUs.
      type: int
      sample: 1
    nvswitch_count:
      description: Number of NVSwitches.
      type: int
      sample: 0
    open_modules_supported:
      description: True when there are GPUs and all of them support the open kernel modules.
      type: bool
modules:
  description: Loaded (or built-in) kernel modules among nvidia, nvidia_uvm, nvidia_modeset,
    nvidia_drm and nouveau.
  returned: always
  type: dict
  sample: {nvidia: true, nvidia_uvm: true, nvidia_modeset: false, nvidia_drm: false, nouveau: false}
loaded_driver:
  description: The driver in the running kernel, from /proc/driver/nvidia/version.
  returned: always
  type: dict
  contains:
    version:
      description: Its version, null when none is loaded.
      type: str
      sample: "580.159.04"
    flavor:
      description: open or proprietary, null when none is loaded.
      type: str
      sample: open
secure_boot:
  description: True or false from EFI; null on BIOS hosts or without efivarfs.
  returned: always
  type: bool
runfile_installer:
  description: True when NVIDIA's .run installer put a driver here
    (/usr/bin/nvidia-uninstall exists).
  returned: always
  type: bool
update_initramfs:
  description: True when /usr/sbin/update-initramfs exists (nouveau can be in the initramfs).
  returned: always
  type: bool
packages:
  description: "{name: installed version} for O(packages); null when not installed."
  returned: always
  type: dict
  sample: {nvidia-utils-580: "580.159.04-0ubuntu1", nvidia-headless-580-open: null}
fabric_manager:
  description: nv-fabricmanager on PATH and its version.
  returned: always
  type: dict
  contains:
    installed:
      description: True when nv-fabricmanager was found.
      type: bool
    version:
      description: Its version.
      type: str
      sample: "580.159.04"
kernel_log:
  description: XID errors since boot.
  returned: always
  type: dict
  contains:
    checked:
      description: True when a kernel log could be read.
      type: bool
    source:
      description: journalctl or dmesg.
      type: str
    reason:
      description: Why it could not be read; empty when checked.
      type: str
    xid_events:
      description: One dict per XID line (pci, xid, detail, line), oldest first.
      type: list
      elements: dict
"""

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ansible_collections.llmhost.core.plugins.module_utils.module import (
    Request,
    run_module,
)
from ansible_collections.llmhost.core.plugins.module_utils.nvidia_host import (
    driver_flavor,
    first_version,
    loaded_modules,
    pci_devices,
    secure_boot,
    xid_events,
)
from ansible_collections.llmhost.core.plugins.module_utils.nvidia_smi import (
    parse_proc_driver_version,
)

RUNFILE_UNINSTALLER = "/usr/bin/nvidia-uninstall"
UPDATE_INITRAMFS = "/usr/sbin/update-initramfs"
MAX_REASON_CHARS = 300
# AnsibleModule.get_bin_path: (name, opt_dirs=...) -> path or None
Which = Callable[..., str | None]


def run(argv: list[str], timeout: int) -> tuple[int, str, str]:
    """(rc, stdout, stderr) in the C locale; rc 124 on timeout, 127 when not runnable."""
    env = dict(os.environ, LC_ALL="C", LANG="C")
    try:
        done = subprocess.run(  # noqa: S603 - fixed argv lists, no shell
            argv, capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
    except subprocess.TimeoutExpired:
        return 124, "", f"timed out after {timeout} s"
    except OSError as exc:
        return 127, "", f"{type(exc).__name__}: {exc}"
    return done.returncode, done.stdout, done.stderr


def _short(text: str) -> str:
    flat = " ".join(text.split())
    return flat[:MAX_REASON_CHARS]


def read_kernel_log(which: Which, timeout: int) -> dict[str, Any]:
    """XIDs from journalctl -k -b 0 (systemd hosts), else from dmesg."""
    notes: list[str] = []
    journalctl = which("journalctl")
    if journalctl:
        rc, out, err = run([journalctl, "-k", "-b", "0", "--no-pager", "-q"], timeout)
        if rc == 0:
            return {
                "checked": True,
                "source": "journalctl",
                "reason": "",
                "xid_events": xid_events(out),
            }
        notes.append(f"journalctl -k -b 0 failed (rc {rc}): {_short(err or out)}")
    dmesg = which("dmesg")
    if dmesg:
        rc, out, err = run([dmesg], timeout)
        if rc == 0:
            return {"checked": True, "source": "dmesg", "reason": "", "xid_events": xid_events(out)}
        notes.append(f"dmesg failed (rc {rc}): {_short(err or out)}")
    if not journalctl and not dmesg:
        notes.append("neither journalctl nor dmesg is installed")
    return {"checked": False, "source": None, "reason": "; ".join(notes), "xid_events": []}


def installed_versions(which: Which, names: list[str], timeout: int) -> dict[str, Any]:
    versions: dict[str, Any] = dict.fromkeys(names)
    dpkg_query = which("dpkg-query")
    if not names or not dpkg_query:
        return versions
    _rc, out, _err = run(
        [dpkg_query, "-W", "-f=${Package}\\t${db:Status-Abbrev}\\t${Version}\\n", *names], timeout
    )
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[0] in versions and parts[1].strip() in ("ii", "hi"):
            versions[parts[0]] = parts[2].strip()
    return versions


def fabric_manager(which: Which, timeout: int) -> dict[str, Any]:
    path = which("nv-fabricmanager", opt_dirs=["/usr/bin", "/usr/sbin"])
    if not path:
        return {"installed": False, "version": None}
    rc, out, err = run([path, "--version"], timeout)
    return {"installed": True, "version": first_version(out or err) if rc == 0 else None}


def handle(request: Request) -> dict[str, Any]:
    p = request.params
    which: Which = request.module.get_bin_path
    sysfs = Path(p["sysfs_root"])
    timeout = max(1, int(p["timeout"]))
    devices = pci_devices(sysfs / "bus" / "pci" / "devices")
    gpus = [d for d in devices if d["kind"] == "gpu"]
    nvswitches = [d for d in devices if d["kind"] == "nvswitch"]
    try:
        proc_text = (Path(p["proc_root"]) / "driver" / "nvidia" / "version").read_text(
            encoding="utf-8", errors="replace"
        )
    except OSError:
        proc_text = ""
    return {
        "changed": False,
        "pci": {
            "gpus": gpus,
            "nvswitches": nvswitches,
            "gpu_count": len(gpus),
            "nvswitch_count": len(nvswitches),
            "open_modules_supported": bool(gpus) and all(g["open_modules_supported"] for g in gpus),
        },
        "modules": loaded_modules(sysfs / "module"),
        "loaded_driver": {
            "version": parse_proc_driver_version(proc_text),
            "flavor": driver_flavor(proc_text),
        },
        "secure_boot": secure_boot(sysfs / "firmware" / "efi" / "efivars"),
        "runfile_installer": Path(RUNFILE_UNINSTALLER).exists(),
        "update_initramfs": Path(UPDATE_INITRAMFS).exists(),
        "packages": installed_versions(which, p["packages"], timeout),
        "fabric_manager": fabric_manager(which, timeout),
        "kernel_log": read_kernel_log(which, timeout)
        if p["kernel_log"]
        else {"checked": False, "source": None, "reason": "not asked", "xid_events": []},
    }


def main() -> None:
    run_module(
        {
            "packages": {"type": "list", "elements": "str", "default": []},
            "kernel_log": {"type": "bool", "default": True},
            "sysfs_root": {"type": "path", "default": "/sys"},
            "proc_root": {"type": "path", "default": "/proc"},
            "timeout": {"type": "int", "default": 60},
        },
        handle,
    )


if __name__ == "__main__":
    main()
