"""DCGM on the CPU route: the counters file, the exporter's drop-in and the dcgm scrape job
still render and are checked here (the same check_dcgm_counters.py the role runs as
`validate:` on GPU hosts, and `promtool check config`)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from test_monitoring_render import PROMTOOL_HELP, ROLE, promtool_path, render

CHECKER = ROLE / "files" / "check_dcgm_counters.py"


def _checker() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_dcgm_counters", CHECKER)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def dcgm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dcgm")
    render(
        out,
        {
            "dcgm-counters.csv.j2": "dcgm-counters.csv",
            "dcgm-exporter.conf.j2": "dcgm-exporter.conf",
            "prometheus.yml.j2": "prometheus-with-dcgm.yml",
        },
        {
            "_monitoring_with_dcgm_job": True,
            "monitoring_dcgm_extra_counters": [
                {
                    "field": "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
                    "type": "gauge",
                    "help": "Tensor pipe.",
                }
            ],
        },
    )
    return out


def _check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CHECKER), str(path)], capture_output=True, text=True, check=False
    )


@pytest.mark.slow
def test_rendered_counters_pass_the_check_and_include_ecc_and_xid(dcgm: Path) -> None:
    result = _check(dcgm / "dcgm-counters.csv")
    assert result.returncode == 0, result.stderr
    rows = [
        [part.strip() for part in line.split(",", 2)]
        for line in (dcgm / "dcgm-counters.csv").read_text("utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    fields = {row[0]: row[1] for row in rows}
    assert fields["DCGM_FI_DEV_XID_ERRORS"] == "gauge"
    for ecc in ("SBE_VOL", "DBE_VOL", "SBE_AGG", "DBE_AGG"):
        assert fields[f"DCGM_FI_DEV_ECC_{ecc}_TOTAL"] == "counter"
    assert fields["DCGM_FI_PROF_PIPE_TENSOR_ACTIVE"] == "gauge"  # monitoring_dcgm_extra_counters


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("DCGM_FI_DEV_GPU_TEMP, gauge\n", "want 'FIELD, type, help'"),
        ("DCGM_FI_DEV_GPU_TEMP, histogram, x\n", "is not one of"),
        ("GPU_TEMP, gauge, x\n", "is not a DCGM field name"),
        ("DCGM_FI_DEV_GPU_TEMP, gauge, a\nDCGM_FI_DEV_GPU_TEMP, gauge, b\n", "listed twice"),
        ("# only a comment\n", "required fields missing"),
    ],
)
def test_bad_counters_are_refused(tmp_path: Path, text: str, problem: str) -> None:
    assert any(problem in p for p in _checker().problems(text)), _checker().problems(text)
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    result = _check(path)
    assert result.returncode == 1
    assert problem in result.stderr


@pytest.mark.slow
def test_counters_without_xid_are_refused(dcgm: Path, tmp_path: Path) -> None:
    text = (dcgm / "dcgm-counters.csv").read_text("utf-8")
    without = "\n".join(ln for ln in text.splitlines() if "XID" not in ln)
    problems = _checker().problems(without)
    assert problems == [
        "required fields missing (alerts and dashboard use them): ['DCGM_FI_DEV_XID_ERRORS']"
    ]


@pytest.mark.slow
def test_exporter_drop_in_uses_loopback_our_counters_and_the_host_engine(dcgm: Path) -> None:
    dropin = (dcgm / "dcgm-exporter.conf").read_text("utf-8")
    command = " ".join(
        dropin.replace("\\\n", " ").split("ExecStart=/usr/bin/dcgm-exporter", 1)[1].split()
    )
    assert command.startswith(
        "--collectors /etc/dcgm-exporter/llmhost-counters.csv --address 127.0.0.1:9400 "
        "--remote-hostengine-info 127.0.0.1:5555"
    )
    for line in ("NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "ExecStart="):
        assert line in dropin.splitlines()


@pytest.mark.slow
def test_config_with_the_dcgm_job_passes_promtool(dcgm: Path) -> None:
    config = yaml.safe_load((dcgm / "prometheus-with-dcgm.yml").read_text("utf-8"))
    jobs = {j["job_name"]: j["static_configs"][0]["targets"] for j in config["scrape_configs"]}
    assert jobs["dcgm"] == ["127.0.0.1:9400"]
    promtool = promtool_path()
    if promtool is None:
        pytest.skip(PROMTOOL_HELP)
    result = subprocess.run(
        [promtool, "check", "config", str(dcgm / "prometheus-with-dcgm.yml")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
