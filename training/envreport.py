"""``environment_report.json``: what the run ran on."""

from __future__ import annotations

import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import torch


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def cuda_summary() -> dict[str, Any]:
    """CUDA facts that do not need a working GPU (safe on CPU-only builds)."""
    available = torch.cuda.is_available()
    info: dict[str, Any] = {
        "cuda_available": available,
        "cuda_version": torch.version.cuda,  # None on a CPU-only wheel
        "cudnn_version": torch.backends.cudnn.version() if available else None,
        "gpu_count": torch.cuda.device_count() if available else 0,
        "gpu_name": None,
        "gpu_memory_gib": None,
        "gpu_capability": None,
        "bf16_supported": None,
    }
    if available:
        props = torch.cuda.get_device_properties(0)
        info["gpu_name"] = props.name
        info["gpu_memory_gib"] = round(props.total_memory / 2**30, 2)
        info["gpu_capability"] = f"{props.major}.{props.minor}"
        info["bf16_supported"] = bool(torch.cuda.is_bf16_supported())
    return info


def collect(device: str | None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    report: dict[str, Any] = {
        "device": device,
        "torch_version": torch.__version__,
        **cuda_summary(),
        "mps_available": bool(
            getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
        ),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_num_threads": torch.get_num_threads(),
        "packages": {
            name: _version(name)
            for name in ("transformers", "tokenizers", "safetensors", "prometheus_client", "numpy")
        },
    }
    if extra:
        report.update(extra)
    return report


def write(path: Path, report: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)
