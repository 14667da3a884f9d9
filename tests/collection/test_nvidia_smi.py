"""nvidia_smi parsers on the real captures of the H100 acceptance host."""

from __future__ import annotations

import pytest
from ansible_collections.llmhost.core.plugins.module_utils import nvidia_smi


def test_query_gpu_csv_on_the_h100_capture(h100_capture: dict[str, str]) -> None:
    gpus = nvidia_smi.parse_query_gpu_csv(h100_capture["query-gpu.csv"])
    assert gpus == [
        {
            "index": 0,
            "uuid": "GPU-19940345-baa2-2834-39c2-c92ce857abb1",
            "name": "NVIDIA H100 80GB HBM3",
            "driver_version": "580.159.04",
            "memory_total_mib": 81559,
            "memory_used_mib": 0,
            "memory_free_mib": 81079,
            "temperature_c": 35,
            "utilization_pct": 0,
            "power_draw_w": 105.5,
            "power_limit_w": 700.0,
            "pstate": "P0",
            "compute_mode": "Default",
            "persistence_mode": True,
            "pci_bus_id": "00000000:00:06.0",
        }
    ]


def test_query_gpu_csv_not_available_values_become_none() -> None:
    line = (
        "1, GPU-x, NVIDIA L4, 580.159.04, 23034, 1, 22500, [N/A], [Not Supported], "
        "[N/A], [Not Supported], P8, Default, Disabled, 00000000:01:00.0\n"
    )
    gpu = nvidia_smi.parse_query_gpu_csv(line)[0]
    assert gpu["temperature_c"] is None
    assert gpu["utilization_pct"] is None
    assert gpu["power_draw_w"] is None
    assert gpu["power_limit_w"] is None
    assert gpu["persistence_mode"] is False
    assert gpu["memory_total_mib"] == 23034


def test_query_gpu_csv_refuses_a_row_with_the_wrong_field_count() -> None:
    with pytest.raises(ValueError, match="expected 15"):
        nvidia_smi.parse_query_gpu_csv("0, GPU-x, NVIDIA H100\n")


def test_query_gpu_csv_empty_text_is_no_gpu() -> None:
    assert nvidia_smi.parse_query_gpu_csv("\n") == []


def test_cuda_version_from_q_and_from_the_table(h100_capture: dict[str, str]) -> None:
    assert nvidia_smi.parse_cuda_version(h100_capture["nvidia-smi-q.txt"]) == "13.0"
    assert nvidia_smi.parse_cuda_version(h100_capture["nvidia-smi.txt"]) == "13.0"
    assert nvidia_smi.parse_cuda_version("no driver here") is None


def test_proc_driver_version(h100_capture: dict[str, str]) -> None:
    text = h100_capture["proc-driver-version.txt"]
    assert nvidia_smi.parse_proc_driver_version(text) == "580.159.04"
    assert nvidia_smi.parse_proc_driver_version("") is None


def test_proc_driver_version_proprietary_module_line() -> None:
    text = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.183.01  Sun May 12 2024\n"
    assert nvidia_smi.parse_proc_driver_version(text) == "535.183.01"


def test_compute_apps_idle_capture_is_empty(h100_capture: dict[str, str]) -> None:
    assert h100_capture["query-compute-apps-idle.csv"] == ""
    assert nvidia_smi.parse_compute_apps_csv(h100_capture["query-compute-apps-idle.csv"]) == []


def test_compute_apps_busy() -> None:
    text = "4242, /opt/venv/bin/python3, 30512\n777, vllm, [N/A]\n"
    assert nvidia_smi.parse_compute_apps_csv(text) == [
        {"pid": 4242, "process_name": "/opt/venv/bin/python3", "used_memory_mib": 30512},
        {"pid": 777, "process_name": "vllm", "used_memory_mib": None},
    ]


@pytest.mark.parametrize(
    ("installed", "wanted", "status"),
    [
        ("580.159.04", "580.159.04", "match"),
        ("580.159.04", "580", "match"),
        ("580.159.04", "580.159", "match"),
        ("580.159.04", "575", "mismatch"),
        ("580.159.04", "580.126.09", "mismatch"),
        ("580.159.04", "58", "mismatch"),
        ("580.159.04", "580.159.04.1", "mismatch"),
        (None, "580", "absent"),
        ("", "580.159.04", "absent"),
        ("580.159.04", "", "match"),
    ],
)
def test_compare_driver(installed: str | None, wanted: str, status: str) -> None:
    result = nvidia_smi.compare_driver(installed, wanted)
    assert result["status"] == status
    assert result["installed"] == (installed or None)
    assert result["wanted"] == (wanted or None)
    if installed and wanted:
        assert installed in result["message"]
        assert wanted in result["message"]


def test_compare_driver_message_names_both_versions_on_mismatch() -> None:
    result = nvidia_smi.compare_driver("580.159.04", "575")
    assert result["message"] == (
        "Installed NVIDIA driver 580.159.04 does not match the wanted branch 575."
    )


def test_compare_driver_refuses_a_wanted_that_is_not_a_version() -> None:
    with pytest.raises(ValueError, match="latest"):
        nvidia_smi.compare_driver("580.159.04", "latest")
