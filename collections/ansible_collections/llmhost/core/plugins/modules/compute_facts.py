#!/usr/bin/python
"""llmhost.core.compute_facts: read-only GPU and torch facts of a host."""
# Ansible layout: the documentation blocks come before the imports.
# ruff: noqa: E402

from __future__ import annotations

DOCUMENTATION = r"""
---
module: compute_facts
short_description: Report the NVIDIA GPUs, driver, CUDA and torch a host already has
version_added: 0.1.0
description:
  - Runs C(nvidia-smi) (GPU list, memory, driver, CUDA version, compute processes) and
    probes Python interpreters for torch (version, CUDA build, CUDA availability, devices).
  - Read-only; never changes the host (C(changed) is always false) and supports check mode.
  - Never fails on a host without a GPU or without torch; C(gpu.present) and
    C(torch.present) say what was found and C(gpu.reason) / C(torch.reason) say why not.
  - Each command runs with a timeout, so a hung driver cannot hang the play.
author:
  - llmhost project
options:
  nvidia_smi:
    description:
      - Name (looked up on PATH, then in C(/usr/bin) and C(/usr/local/nvidia/bin)) or path
        of the nvidia-smi executable.
    type: str
    default: nvidia-smi
  python_interpreters:
    description:
      - Interpreters (names on PATH or paths) probed for torch, in order; the first one
        that imports torch is reported. Missing interpreters are skipped.
    type: list
    elements: str
    default: [python3]
  timeout:
    description:
      - Seconds each command (one nvidia-smi call, one torch probe) may take.
    type: int
    default: 60
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
notes:
  - Memory values are in MiB as nvidia-smi reports them (1 MiB = 1048576 bytes).
  - Parsers live in C(llmhost.core.plugins.module_utils.nvidia_smi).
"""

EXAMPLES = r"""
- name: Read the GPU and torch facts
  llmhost.core.compute_facts:
  register: compute

- name: Refuse a GPU route on a host without a GPU
  ansible.builtin.assert:
    that: compute.gpu.present
    fail_msg: "No usable GPU: {{ compute.gpu.reason }}"

- name: Probe the image's own venv first
  llmhost.core.compute_facts:
    python_interpreters:
      - /opt/conda/bin/python
      - python3
    timeout: 120
  register: compute
"""

RETURN = r"""
gpu:
  description: What nvidia-smi reports.
  returned: always
  type: dict
  contains:
    present:
      description: True when nvidia-smi ran and listed at least one GPU.
      type: bool
      sample: true
    reason:
      description: Why no GPU is reported (nvidia-smi not found, failed with its output,
        timed out, unparseable); empty when present.
      type: str
      sample: "nvidia-smi not found (looked for 'nvidia-smi' on PATH, /usr/bin, ...)"
    nvidia_smi_path:
      description: The nvidia-smi executable used, null when none was found.
      type: str
      sample: /usr/bin/nvidia-smi
    count:
      description: Number of GPUs.
      type: int
      sample: 1
    driver_version:
      description: Driver version from nvidia-smi, else from /proc/driver/nvidia/version.
      type: str
      sample: "580.159.04"
    cuda_version:
      description: Highest CUDA version the driver supports (nvidia-smi header).
      type: str
      sample: "13.0"
    gpus:
      description: One dict per GPU (see parse_query_gpu_csv); MiB, degrees C, %, W.
      type: list
      elements: dict
      sample:
        - index: 0
          uuid: GPU-19940345-baa2-2834-39c2-c92ce857abb1
          name: NVIDIA H100 80GB HBM3
          driver_version: "580.159.04"
          memory_total_mib: 81559
          memory_used_mib: 0
          memory_free_mib: 81079
          temperature_c: 35
          utilization_pct: 0
          power_draw_w: 105.5
          power_limit_w: 700.0
          pstate: P0
          compute_mode: Default
          persistence_mode: true
          pci_bus_id: "00000000:00:06.0"
    compute_apps:
      description: Processes holding GPU memory ([] when idle); null when the query failed
        or no GPU is present.
      type: list
      elements: dict
      sample: [{pid: 4242, process_name: python3, used_memory_mib: 30512}]
    compute_capabilities:
      description: Each GPU's compute capability as "major.minor" (nvidia-smi's
        compute_cap); null when the driver cannot report it or no GPU is present.
      type: list
      elements: str
      sample: ["9.0"]
    compute_capability:
      description: The lowest of compute_capabilities; null when any is unknown (never
        guessed). preflight checks an fp8 KV cache against it.
      type: str
      sample: "9.0"
libc:
  description: The C library of the interpreter running the module (for wheel platform tags).
  returned: always
  type: dict
  contains:
    name:
      description: C(glibc), or empty when unknown (musl, for instance).
      type: str
      sample: glibc
    version:
      description: Its version.
      type: str
      sample: "2.36"
torch:
  description: The first probed interpreter that imports torch.
  returned: always
  type: dict
  contains:
    present:
      description: True when an interpreter imported torch.
      type: bool
    reason:
      description: Why torch is not reported (per interpreter); empty when present.
      type: str
      sample: "python3 (/usr/bin/python3): ModuleNotFoundError: No module named 'torch'"
    interpreter:
      description: Path of the interpreter that imported torch.
      type: str
      sample: /usr/bin/python3
    version:
      description: torch.__version__.
      type: str
      sample: 2.11.0+cu130
    cuda:
      description: torch.version.cuda (null for a CPU build).
      type: str
      sample: "13.0"
    cuda_available:
      description: torch.cuda.is_available().
      type: bool
    device_count:
      description: torch.cuda.device_count() (0 without CUDA).
      type: int
    device_name:
      description: Name of CUDA device 0, null without CUDA.
      type: str
      sample: NVIDIA H100 80GB HBM3
"""

import json
import os
import platform
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ansible_collections.llmhost.core.plugins.module_utils.module import (
    Request,
    run_module,
)
from ansible_collections.llmhost.core.plugins.module_utils.nvidia_smi import (
    CSV_FORMAT_ARG,
    QUERY_COMPUTE_APPS_ARG,
    QUERY_COMPUTE_CAP_ARG,
    QUERY_GPU_ARG,
    lowest_compute_cap,
    parse_compute_apps_csv,
    parse_compute_caps,
    parse_cuda_version,
    parse_proc_driver_version,
    parse_query_gpu_csv,
)

PROC_DRIVER_VERSION = "/proc/driver/nvidia/version"
EXTRA_BIN_DIRS = ["/usr/bin", "/usr/local/nvidia/bin"]
PROBE_MARKER = "LLMHOST_TORCH_PROBE "
MAX_REASON_CHARS = 400
RC_TIMEOUT = 124
RC_UNRUNNABLE = 127
TORCH_PROBE = r"""
import json, warnings
warnings.simplefilter("ignore")
out = {"present": False}
try:
    import torch
except Exception as exc:
    out["error"] = "%s: %s" % (type(exc).__name__, exc)
else:
    available = bool(torch.cuda.is_available())
    count = int(torch.cuda.device_count()) if available else 0
    out.update(
        present=True,
        version=str(torch.__version__),
        cuda=getattr(torch.version, "cuda", None),
        cuda_available=available,
        device_count=count,
        device_name=torch.cuda.get_device_name(0) if count else None,
    )
print("LLMHOST_TORCH_PROBE " + json.dumps(out))
"""

Which = Callable[[str], str | None]
CommandResult = tuple[int, str, str]


def run_command(argv: list[str], timeout: float) -> CommandResult:
    """Run argv with a timeout; (rc, stdout, stderr). rc 124 on timeout, 127 if unrunnable."""
    env = dict(os.environ, LC_ALL="C", LANG="C")
    try:
        done = subprocess.run(  # noqa: S603 - argv list, no shell; the operator picks the binary
            argv, capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
    except subprocess.TimeoutExpired:
        return RC_TIMEOUT, "", f"timed out after {timeout:g} s"
    except OSError as exc:
        return RC_UNRUNNABLE, "", f"{type(exc).__name__}: {exc}"
    return done.returncode, done.stdout, done.stderr


def short(text: str) -> str:
    """First MAX_REASON_CHARS characters of text, whitespace collapsed."""
    flat = " ".join(text.split())
    return flat if len(flat) <= MAX_REASON_CHARS else flat[: MAX_REASON_CHARS - 3] + "..."


def resolve_executable(name: str, which: Which) -> str | None:
    """A path as given when it is executable, else the name looked up with which()."""
    if not name.strip():
        return None
    if os.sep in name:
        return name if Path(name).is_file() and os.access(name, os.X_OK) else None
    return which(name)


def read_proc_driver_version(path: str = PROC_DRIVER_VERSION) -> str | None:
    try:
        return parse_proc_driver_version(Path(path).read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return None


def no_gpu(reason: str, path: str | None, driver_version: str | None) -> dict[str, Any]:
    return {
        "present": False,
        "reason": reason,
        "nvidia_smi_path": path,
        "count": 0,
        "driver_version": driver_version,
        "cuda_version": None,
        "gpus": [],
        "compute_apps": None,
        "compute_capabilities": None,
        "compute_capability": None,
    }


def not_found_reason(name: str, proc_driver: str | None) -> str:
    where = f"'{name}'" if os.sep in name else f"'{name}' on PATH, {', '.join(EXTRA_BIN_DIRS)}"
    reason = f"nvidia-smi not found (looked for {where})"
    if proc_driver:
        reason += f"; the NVIDIA kernel module {proc_driver} is loaded"
    return reason


def failed_reason(path: str, rc: int, stdout: str, stderr: str) -> str:
    if rc == RC_TIMEOUT:
        return f"nvidia-smi ({path}) {stderr}"
    detail = short(stderr) or short(stdout) or "no output"
    return f"nvidia-smi ({path}) failed with rc {rc}: {detail}"


def query_compute_apps(path: str, timeout: int) -> list[dict[str, Any]] | None:
    rc, out, _err = run_command([path, QUERY_COMPUTE_APPS_ARG, CSV_FORMAT_ARG], timeout)
    if rc != 0:
        return None
    try:
        return parse_compute_apps_csv(out)
    except ValueError:
        return None


def query_compute_caps(path: str, timeout: int) -> list[str | None] | None:
    """Each GPU's compute capability; None when the driver cannot say (an old driver)."""
    rc, out, _err = run_command([path, QUERY_COMPUTE_CAP_ARG, CSV_FORMAT_ARG], timeout)
    if rc != 0:
        return None
    try:
        return parse_compute_caps(out)
    except ValueError:
        return None


def query_cuda_version(path: str, timeout: int) -> str | None:
    rc, out, _err = run_command([path], timeout)
    return parse_cuda_version(out) if rc == 0 else None


def gpu_facts(name: str, timeout: int, which: Which) -> dict[str, Any]:
    """The gpu return value: never raises for a missing, failing or hung nvidia-smi."""
    proc_driver = read_proc_driver_version()
    path = resolve_executable(name, which)
    if path is None:
        return no_gpu(not_found_reason(name, proc_driver), None, proc_driver)
    rc, out, err = run_command([path, QUERY_GPU_ARG, CSV_FORMAT_ARG], timeout)
    if rc != 0:
        return no_gpu(failed_reason(path, rc, out, err), path, proc_driver)
    try:
        gpus = parse_query_gpu_csv(out)
    except ValueError as exc:
        return no_gpu(f"could not parse nvidia-smi output: {short(str(exc))}", path, proc_driver)
    if not gpus:
        return no_gpu(f"nvidia-smi ({path}) listed no GPUs", path, proc_driver)
    caps = query_compute_caps(path, timeout)
    return {
        "present": True,
        "reason": "",
        "nvidia_smi_path": path,
        "count": len(gpus),
        "driver_version": gpus[0].get("driver_version") or proc_driver,
        "cuda_version": query_cuda_version(path, timeout),
        "gpus": gpus,
        "compute_apps": query_compute_apps(path, timeout),
        "compute_capabilities": caps,
        "compute_capability": lowest_compute_cap(caps),
    }


def parse_probe_output(stdout: str) -> dict[str, Any] | None:
    """The JSON the torch probe printed after PROBE_MARKER, None if there is none."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(PROBE_MARKER):
            try:
                data = json.loads(line[len(PROBE_MARKER) :])
            except ValueError:
                return None
            return data if isinstance(data, dict) else None
    return None


def probe_interpreter(path: str, timeout: int) -> tuple[dict[str, Any] | None, str]:
    """(torch facts, "") when path imports torch, else (None, why not)."""
    rc, out, err = run_command([path, "-c", TORCH_PROBE], timeout)
    data = parse_probe_output(out)
    if data is None:
        return None, f"probe failed with rc {rc}: {short(err) or short(out) or 'no output'}"
    if not data.get("present"):
        return None, str(data.get("error") or "torch not importable")
    return data, ""


def no_torch(reason: str) -> dict[str, Any]:
    return {
        "present": False,
        "reason": reason,
        "interpreter": None,
        "version": None,
        "cuda": None,
        "cuda_available": False,
        "device_count": 0,
        "device_name": None,
    }


def torch_facts(interpreters: list[str], timeout: int, which: Which) -> dict[str, Any]:
    """The torch return value for the first interpreter that imports torch."""
    notes: list[str] = []
    for name in interpreters:
        path = resolve_executable(name, which)
        if path is None:
            notes.append(f"{name}: not found")
            continue
        data, why = probe_interpreter(path, timeout)
        if data is not None:
            facts = no_torch("")
            facts.update({key: data.get(key) for key in facts if key in data})
            facts.update(present=True, interpreter=path)
            return facts
        notes.append(f"{name} ({path}): {why}")
    return no_torch("; ".join(notes) or "no interpreter given")


def libc_facts() -> dict[str, str]:
    """glibc name and version, as pip's manylinux tags need them."""
    name, version = platform.libc_ver()
    return {"name": name, "version": version}


def handle(request: Request) -> dict[str, Any]:
    params = request.params
    timeout = max(1, int(params["timeout"]))

    def which(name: str) -> str | None:
        return request.module.get_bin_path(name, opt_dirs=EXTRA_BIN_DIRS)

    return {
        "changed": False,
        "gpu": gpu_facts(params["nvidia_smi"], timeout, which),
        "torch": torch_facts(params["python_interpreters"], timeout, which),
        "libc": libc_facts(),
    }


def main() -> None:
    run_module(
        {
            "nvidia_smi": {"type": "str", "default": "nvidia-smi"},
            "python_interpreters": {"type": "list", "elements": "str", "default": ["python3"]},
            "timeout": {"type": "int", "default": 60},
        },
        handle,
    )


if __name__ == "__main__":
    main()
