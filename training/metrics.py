"""MFU, the per-step CSV log and the Prometheus textfile."""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

CSV_FIELDS = ("step", "loss", "lr", "tokens_per_s", "mfu", "elapsed_s")
PROM_FILE = "llmhost_training.prom"

# Dense bf16 tensor-core peak FLOP/s by GPU name; the first matching substring wins,
# so the more specific names come first ("A100" before "A10", "L40S" before "L4").
PEAK_FLOPS_BF16: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("GH200", 989e12),
    ("H200", 989e12),
    ("H100", 989e12),  # SXM ("NVIDIA H100 80GB HBM3")
    ("H800", 989e12),
    ("B200", 2250e12),
    ("A100", 312e12),
    ("A800", 312e12),
    ("L40S", 362e12),
    ("L40", 181e12),
    ("L4", 121e12),
    ("A10", 125e12),
    ("RTX 4090", 165e12),
    ("RTX 3090", 71e12),
)


def peak_flops(device_type: str, device_name: str | None, override: float = 0.0) -> float | None:
    """Peak FLOP/s for MFU; ``None`` on CPU/MPS or an unknown GPU (MFU left blank)."""
    if override > 0:
        return override
    if device_type != "cuda" or not device_name:
        return None
    for needle, flops in PEAK_FLOPS_BF16:
        if needle.lower() in device_name.lower():
            return flops
    return None


def mfu(flops_per_token: float, tokens_per_s: float, peak: float | None) -> float | None:
    """Model FLOPs utilisation: (6N + 12*L*H*Q*T) * tokens/s / peak."""
    if peak is None or peak <= 0:
        return None
    return flops_per_token * tokens_per_s / peak


class CsvLog:
    """``training_log.csv``: one row per optimizer step, flushed as written."""

    def __init__(self, path: Path, keep_upto_step: int | None = None) -> None:
        self.path = path
        kept: list[dict[str, str]] = []
        if keep_upto_step is not None and path.exists():
            with path.open(newline="", encoding="utf-8") as fh:
                for row in csv.DictReader(fh):
                    try:
                        if int(row["step"]) <= keep_upto_step:
                            kept.append(row)
                    except (KeyError, ValueError):
                        continue
        self._fh = path.open("w", newline="", encoding="utf-8")
        self._writer = csv.DictWriter(self._fh, fieldnames=list(CSV_FIELDS))
        self._writer.writeheader()
        for row in kept:
            self._writer.writerow({k: row.get(k, "") for k in CSV_FIELDS})
        self._fh.flush()

    def write(
        self,
        step: int,
        loss: float,
        lr: float,
        tokens_per_s: float,
        mfu_value: float | None,
        elapsed_s: float,
    ) -> None:
        self._writer.writerow(
            {
                "step": step,
                "loss": f"{loss:.6f}",
                "lr": f"{lr:.6e}",
                "tokens_per_s": f"{tokens_per_s:.1f}",
                "mfu": "" if mfu_value is None else f"{mfu_value:.6f}",
                "elapsed_s": f"{elapsed_s:.3f}",
            }
        )
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


class PromWriter:
    """Writes ``llmhost_training.prom`` for node_exporter's textfile collector.

    ``write_to_textfile`` writes a temp file and renames it, so the collector never
    reads a half-written file.
    """

    def __init__(self, directory: Path, config_name: str, device: str) -> None:
        self.directory = directory
        self.path = directory / PROM_FILE
        self.config_name = config_name
        self.device = device
        self._last: dict[str, Any] = {}

    def mark(self, status: str) -> None:
        """Rewrite the last values with a new status (e.g. ``failed``)."""
        values: dict[str, Any] = {
            "step": 0,
            "total_steps": 0,
            "loss": None,
            "tokens_per_s": None,
            "mfu_value": None,
            "eta_s": None,
        }
        values.update(self._last)
        values["status"] = status
        self.write(**values)

    def write(
        self,
        *,
        step: int,
        total_steps: int,
        loss: float | None,
        tokens_per_s: float | None,
        mfu_value: float | None,
        eta_s: float | None,
        status: str,
    ) -> None:
        from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

        self._last = {
            "step": step,
            "total_steps": total_steps,
            "loss": loss,
            "tokens_per_s": tokens_per_s,
            "mfu_value": mfu_value,
            "eta_s": eta_s if status == "running" else None,
        }
        reg = CollectorRegistry()

        def gauge(name: str, doc: str, value: float | None) -> None:
            if value is not None:
                Gauge(name, doc, registry=reg).set(value)

        gauge("llmhost_training_step", "Optimizer steps completed.", step)
        gauge("llmhost_training_total_steps", "Optimizer steps planned.", total_steps)
        gauge("llmhost_training_loss", "Training loss at the last step.", loss)
        gauge("llmhost_training_tokens_per_second", "Training throughput.", tokens_per_s)
        gauge("llmhost_training_mfu_ratio", "Model FLOPs utilisation (0-1).", mfu_value)
        gauge(
            "llmhost_training_progress_ratio",
            "step / total_steps (0-1).",
            step / total_steps if total_steps else None,
        )
        gauge("llmhost_training_eta_seconds", "Estimated seconds to finish.", eta_s)
        gauge(
            "llmhost_training_last_update_timestamp_seconds",
            "Unix time of this write.",
            time.time(),
        )
        info = Gauge(
            "llmhost_training_info",
            "Constant 1; labels describe the run (status: running|completed|incomplete).",
            ["config", "device", "status"],
            registry=reg,
        )
        info.labels(config=self.config_name, device=self.device, status=status).set(1)
        self.directory.mkdir(parents=True, exist_ok=True)
        write_to_textfile(str(self.path), reg)
