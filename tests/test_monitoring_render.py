"""Renders the monitoring role's templates with Ansible itself (the role's defaults and
vars, plus overrides) and checks the rendered Prometheus config and systemd drop-ins.

The other tests/test_monitoring_*.py import `render` and `promtool_path` from here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from role_runner import run_play

ROOT = Path(__file__).resolve().parents[1]
ROLE = ROOT / "roles" / "monitoring"
DEFAULTS: dict[str, Any] = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text("utf-8"))
PROMETHEUS_VERSION: str = DEFAULTS["monitoring_package_versions"]["bookworm"]["prometheus"]
PROMTOOL_CACHE = ROOT / ".cache" / "tools" / f"prometheus-{PROMETHEUS_VERSION}" / "usr/bin/promtool"
PROMTOOL_HELP = (
    "promtool not found: set LLMHOST_PROMTOOL, put promtool on PATH, or unpack Debian's "
    f"package into .cache/tools (`apt-get download prometheus={PROMETHEUS_VERSION}` and "
    f"`dpkg-deb -x prometheus_*.deb .cache/tools/prometheus-{PROMETHEUS_VERSION}`; "
    "`make tools` does this)"
)
# Facts the role sets in its preflight phase, fixed for rendering on the control node.
FACTS: dict[str, Any] = {
    "_monitoring_models_mountpoint": "/srv",
    "_monitoring_dcgm": {"install": False, "reason": "rendered by pytest"},
}


def promtool_path() -> str | None:
    """promtool from LLMHOST_PROMTOOL, the repository's tool cache, or PATH."""
    for candidate in (os.environ.get("LLMHOST_PROMTOOL"), str(PROMTOOL_CACHE)):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("promtool")


def render(out: Path, templates: dict[str, str], overrides: dict[str, Any] | None = None) -> None:
    """Render roles/monitoring/templates/<src> to out/<dest> for each item, with Ansible."""
    out.mkdir(parents=True, exist_ok=True)
    extra = {**FACTS, **(overrides or {})}
    play = [
        {
            "name": "Render the monitoring templates",
            "hosts": "localhost",
            "gather_facts": False,
            "vars_files": [str(ROLE / "defaults" / "main.yml"), str(ROLE / "vars" / "main.yml")],
            "tasks": [
                {
                    "name": f"Render {dest}",
                    "ansible.builtin.template": {
                        "src": str(ROLE / "templates" / src),
                        "dest": str(out / dest),
                        "mode": "0644",
                    },
                }
                for src, dest in templates.items()
            ],
        }
    ]
    result = run_play(out, play, extra)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("monitoring-render")
    render(
        out,
        {
            "prometheus.yml.j2": "prometheus.yml",
            "prometheus.conf.j2": "prometheus.conf",
            "node-exporter.conf.j2": "node-exporter.conf",
            "mtail.conf.j2": "mtail.conf",
            "nginx-exporter.conf.j2": "nginx-exporter.conf",
            "alertmanager.conf.j2": "alertmanager.conf",
        },
        {"monitoring_model": "m1", "monitoring_route": "rented_gpu"},
    )
    return out


def _exec_start(dropin: str) -> str:
    """The ExecStart= line of a drop-in, continuation lines joined."""
    text = dropin.replace("\\\n", " ")
    lines = [ln for ln in text.splitlines() if ln.startswith("ExecStart=") and ln != "ExecStart="]
    assert len(lines) == 1, text
    return " ".join(lines[0].split())


@pytest.mark.slow
def test_prometheus_config_passes_promtool(rendered: Path) -> None:
    promtool = promtool_path()
    if promtool is None:
        pytest.skip(PROMTOOL_HELP)
    result = subprocess.run(
        [promtool, "check", "config", str(rendered / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_every_job_carries_host_route_and_model(rendered: Path) -> None:
    config = yaml.safe_load((rendered / "prometheus.yml").read_text("utf-8"))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"prometheus", "node", "vllm", "nginx", "gateway_log"}  # no GPU: no dcgm
    for job in jobs.values():
        (static,) = job["static_configs"]
        assert static["labels"] == {"host": "localhost", "route": "rented_gpu", "model": "m1"}
    assert jobs["vllm"]["static_configs"][0]["targets"] == ["127.0.0.1:8000"]
    assert jobs["gateway_log"]["static_configs"][0]["targets"] == ["127.0.0.1:3903"]
    assert config["rule_files"] == ["/etc/prometheus/rules.d/*.yml"]
    # The local Alertmanager, always.
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        "127.0.0.1:9093"
    ]


@pytest.mark.slow
def test_drop_ins_bind_loopback_and_harden(rendered: Path) -> None:
    expected = {
        "prometheus.conf": "--web.listen-address=127.0.0.1:9090",
        "node-exporter.conf": "--web.listen-address=127.0.0.1:9100",
        "nginx-exporter.conf": "--web.listen-address=127.0.0.1:9113",
        "mtail.conf": "--address 127.0.0.1 --port 3903",
        "alertmanager.conf": "--web.listen-address=127.0.0.1:9093",
    }
    for name, listen in expected.items():
        dropin = (rendered / name).read_text("utf-8")
        assert listen in _exec_start(dropin), name
        for line in ("NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes"):
            assert line in dropin.splitlines(), (name, line)
        assert re.search(r"^ProtectHome=(yes|read-only)$", dropin, re.M), name
        assert "EnvironmentFile=\n" in dropin, f"{name}: /etc/default is still read"
    prometheus = (rendered / "prometheus.conf").read_text("utf-8")
    assert re.findall(r"^ReadWritePaths=(.*)$", prometheus, re.M) == [
        "/var/lib/prometheus/metrics2"
    ]
    assert "--storage.tsdb.retention.time=15d --storage.tsdb.retention.size=2GB" in _exec_start(
        prometheus
    )
    assert "--rules.alert.resend-delay=10s" in _exec_start(prometheus).split()
    alertmanager = (rendered / "alertmanager.conf").read_text("utf-8")
    assert re.findall(r"^ReadWritePaths=(.*)$", alertmanager, re.M) == [
        "/var/lib/prometheus/alertmanager"
    ]
    assert "MemoryMax=256M" in alertmanager.splitlines()
    # Clustering off: an empty cluster listen address, the last flag.
    assert _exec_start(alertmanager).endswith("--cluster.listen-address=")
    node = _exec_start((rendered / "node-exporter.conf").read_text("utf-8"))
    assert "--collector.textfile.directory=/var/lib/prometheus/node-exporter" in node
    # systemd would expand a lone $: the regex ends in $$, and overlay is not excluded.
    assert re.search(r"--collector\.filesystem\.fs-types-exclude=\^\((\w+\|)+\w+\)\$\$", node), node
    assert "overlay" not in node
    assert "--nginx.scrape-uri=http://127.0.0.1:8081/nginx_status" in _exec_start(
        (rendered / "nginx-exporter.conf").read_text("utf-8")
    )


@pytest.mark.slow
def test_ipv6_loopback_and_no_size_limit(tmp_path: Path) -> None:
    render(
        tmp_path,
        {
            "prometheus.yml.j2": "prometheus.yml",
            "prometheus.conf.j2": "prometheus.conf",
            "mtail.conf.j2": "mtail.conf",
        },
        {
            "monitoring_listen_address": "::1",
            "monitoring_retention_size": "",
            "monitoring_alertmanager_targets": ["alerts.internal:9093"],
        },
    )
    config = yaml.safe_load((tmp_path / "prometheus.yml").read_text("utf-8"))
    targets = [j["static_configs"][0]["targets"][0] for j in config["scrape_configs"]]
    assert "[::1]:9090" in targets
    assert "[::1]:9100" in targets
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        "[::1]:9093",
        "alerts.internal:9093",
    ]
    prometheus = _exec_start((tmp_path / "prometheus.conf").read_text("utf-8"))
    assert "--web.listen-address=[::1]:9090" in prometheus
    assert "retention.size" not in prometheus
    assert "--address ::1 --port 3903" in _exec_start((tmp_path / "mtail.conf").read_text("utf-8"))
