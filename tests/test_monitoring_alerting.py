"""Alert delivery in the monitoring role: Alertmanager's config rendered by Ansible from the
role's template (routes, receivers, the pipeline check only to watchdog receivers), checked
with `amtool check-config` when amtool is at hand; the alert sink's unit; and the sink
itself (roles/monitoring/files/llmhost_alert_sink.py) against real HTTP requests."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from test_monitoring_render import DEFAULTS, ROLE, ROOT, render

ALERTMANAGER_VERSION: str = DEFAULTS["monitoring_package_versions"]["bookworm"][
    "prometheus-alertmanager"
]
AMTOOL_CACHE = (
    ROOT / ".cache" / "tools" / f"prometheus-alertmanager-{ALERTMANAGER_VERSION}" / "usr/bin/amtool"
)
AMTOOL_HELP = (
    "amtool not found: set LLMHOST_AMTOOL, put amtool on PATH, or unpack Debian's package "
    f"into .cache/tools (`apt-get download prometheus-alertmanager={ALERTMANAGER_VERSION}` and "
    f"`dpkg-deb -x` into .cache/tools/prometheus-alertmanager-{ALERTMANAGER_VERSION}; "
    "`make tools` does this)"
)
SECRET_URL = "https://hooks.example.test/services/T0KEN-SECRET"  # noqa: S105 (a planted test value)
RECEIVERS = [
    {"name": "oncall", "webhook_url": SECRET_URL},
    {"name": "deadmans-switch", "webhook_url": "https://dms.example.test/ping", "watchdog": True},
    {"name": "quiet", "webhook_url": "http://127.0.0.1:9999/x", "send_resolved": False},
]


def amtool_path() -> str | None:
    for candidate in (os.environ.get("LLMHOST_AMTOOL"), str(AMTOOL_CACHE)):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("amtool")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("alerting")
    render(
        out,
        {
            "alertmanager.yml.j2": "alertmanager.yml",
            "llmhost-alert-sink.service.j2": "sink.service",
        },
        {"monitoring_alertmanager_receivers": RECEIVERS, "monitoring_alert_sink_enabled": True},
    )
    render(out / "none", {"alertmanager.yml.j2": "alertmanager.yml"})
    return out


@pytest.mark.slow
def test_routes_send_the_pipeline_check_to_watchdogs_only(rendered: Path) -> None:
    config = yaml.safe_load((rendered / "alertmanager.yml").read_text("utf-8"))
    route = config["route"]
    assert route["receiver"] == "llmhost-null"
    assert route["group_by"] == ["alertname", "host"]
    assert (route["group_wait"], route["group_interval"], route["repeat_interval"]) == (
        "30s",
        "5m",
        "4h",
    )
    pipeline, *rest = route["routes"]
    assert pipeline["matchers"] == ['alertname="LLMHostAlertPipeline"']
    assert pipeline["receiver"] == "llmhost-null"
    assert not pipeline.get("continue", False)  # it stops there: no pager gets it
    assert pipeline["repeat_interval"] == "5m"
    assert [r["receiver"] for r in pipeline["routes"]] == ["deadmans-switch", "llmhost-alert-sink"]
    assert [(r["receiver"], r["continue"]) for r in rest] == [
        ("oncall", True),
        ("deadmans-switch", True),
        ("quiet", True),
        ("llmhost-alert-sink", True),
    ]
    receivers = {r["name"]: r for r in config["receivers"]}
    assert receivers["llmhost-null"] == {"name": "llmhost-null"}
    assert receivers["oncall"]["webhook_configs"] == [{"url": SECRET_URL, "send_resolved": True}]
    assert receivers["quiet"]["webhook_configs"][0]["send_resolved"] is False
    assert receivers["llmhost-alert-sink"]["webhook_configs"][0]["url"] == (
        "http://127.0.0.1:9097/alerts"
    )


@pytest.mark.slow
def test_no_receivers_keeps_alerts_in_alertmanager(rendered: Path) -> None:
    config = yaml.safe_load((rendered / "none" / "alertmanager.yml").read_text("utf-8"))
    assert config["receivers"] == [{"name": "llmhost-null"}]
    assert [r["receiver"] for r in config["route"]["routes"]] == ["llmhost-null"]
    assert "routes" not in config["route"]["routes"][0]


@pytest.mark.slow
@pytest.mark.parametrize("config", ["alertmanager.yml", "none/alertmanager.yml"])
def test_config_passes_amtool(rendered: Path, config: str) -> None:
    amtool = amtool_path()
    if amtool is None:
        pytest.skip(AMTOOL_HELP)
    result = subprocess.run(
        [amtool, "check-config", str(rendered / config)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    assert "T0KEN" not in result.stdout + result.stderr


@pytest.mark.slow
def test_sink_unit_is_hardened_on_loopback(rendered: Path) -> None:
    unit = (rendered / "sink.service").read_text("utf-8")
    lines = unit.splitlines()
    for line in (
        "User=llmhost-alert-sink",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "ReadWritePaths=/var/lib/llmhost/alert-sink",
        "CapabilityBoundingSet=",
        "MemoryMax=64M",
    ):
        assert line in lines, line
    exec_start = " ".join(unit.replace("\\\n", " ").split("ExecStart=")[1].split("\n")[0].split())
    assert exec_start == (
        "/usr/bin/python3 /opt/llmhost/monitoring/bin/llmhost_alert_sink.py serve "
        "--address 127.0.0.1 --port 9097 --file /var/lib/llmhost/alert-sink/notifications.jsonl"
    )


# --- the sink script -------------------------------------------------------------------


def _load_sink() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "llmhost_alert_sink", ROLE / "files" / "llmhost_alert_sink.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sink = _load_sink()

NOTIFICATION: dict[str, Any] = {
    "version": "4",
    "status": "firing",
    "receiver": "llmhost-alert-sink",
    "groupLabels": {"alertname": "LLMHostAlertPipeline"},
    "alerts": [
        {"status": "firing", "labels": {"alertname": "LLMHostAlertPipeline", "severity": "none"}},
        {"status": "resolved", "labels": {"alertname": "LLMHostVLLMDown"}},
    ],
}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    out = tmp_path / "notifications.jsonl"
    srv = sink.SinkServer(("127.0.0.1", 0), out, max_file=4096)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", out
    finally:
        srv.shutdown()
        srv.server_close()


def _post(url: str, body: bytes) -> int:
    request = urllib.request.Request(  # noqa: S310 (http:// to the test's own server)
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 (as above)
            return int(response.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def test_sink_records_each_notification_as_a_json_line(server: tuple[str, Path]) -> None:
    url, out = server
    assert _post(url + "/alerts", json.dumps(NOTIFICATION).encode()) == 200
    assert _post(url + "/alerts", json.dumps(NOTIFICATION).encode()) == 200
    lines = out.read_text("utf-8").splitlines()
    assert len(lines) == 2
    entry = json.loads(lines[0])
    assert entry["payload"] == NOTIFICATION
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", entry["received_at"])
    rows = sink.summary(out)
    assert [(r["alertname"], r["receiver"], r["status"]) for r in rows[:2]] == [
        ("LLMHostAlertPipeline", "llmhost-alert-sink", "firing"),
        ("LLMHostVLLMDown", "llmhost-alert-sink", "resolved"),
    ]
    assert len(rows) == 4 and rows[0]["received_at"] == entry["received_at"]
    with urllib.request.urlopen(url + "/healthz", timeout=5) as response:  # noqa: S310 (http://)
        assert response.read() == b"ok\n"


def test_sink_refuses_what_is_not_a_notification(server: tuple[str, Path]) -> None:
    url, out = server
    assert _post(url + "/alerts", b"not json") == 400
    assert _post(url + "/alerts", b"[1, 2]") == 400
    assert _post(url + "/alerts", b"") == 400
    assert not out.exists()


def test_sink_stops_appending_at_its_cap(server: tuple[str, Path]) -> None:
    url, out = server
    big = dict(NOTIFICATION, padding="x" * 1500)
    statuses = [_post(url + "/alerts", json.dumps(big).encode()) for _ in range(4)]
    assert statuses == [200, 200, 507, 507]
    assert out.stat().st_size <= 4096
    assert len(sink.summary(out)) == 4


def test_summary_skips_broken_lines_and_a_missing_file(tmp_path: Path) -> None:
    assert sink.summary(tmp_path / "missing.jsonl") == []
    out = tmp_path / "n.jsonl"
    good = json.dumps({"received_at": "t", "payload": NOTIFICATION})
    out.write_text(f"garbage\n[]\n{good}\n" + '{"payload": {"alerts": [7]}}\n', "utf-8")
    names = [r["alertname"] for r in sink.summary(out)]
    assert names == ["LLMHostAlertPipeline", "LLMHostVLLMDown"]


def test_summary_command_prints_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "n.jsonl"
    out.write_text(json.dumps({"received_at": "t", "payload": NOTIFICATION}) + "\n", "utf-8")
    assert sink.main(["summary", "--file", str(out)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["notifications"][0] == {
        "alertname": "LLMHostAlertPipeline",
        "receiver": "llmhost-alert-sink",
        "status": "firing",
        "received_at": "t",
    }
