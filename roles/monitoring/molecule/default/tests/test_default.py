"""testinfra checks of the monitoring role in a systemd container (no GPU, no vLLM; a
small nginx stands in for the gateway). Traffic stays on 127.0.0.1 inside the container."""

from __future__ import annotations

import json
import os
import re
import shlex
import time
from pathlib import Path

import yaml

ROOT = Path(os.environ["LLMHOST_ROOT"])
EVIDENCE = Path(os.environ["LLMHOST_EVIDENCE_DIR"])
DEFAULTS = yaml.safe_load((ROOT / "roles/monitoring/defaults/main.yml").read_text("utf-8"))
PROM = "http://127.0.0.1:9090"
STAGING = "/etc/llmhost/monitoring/staging"
CHECK = "/var/lib/llmhost/monitoring/check"
UNITS = (
    "prometheus",
    "prometheus-node-exporter",
    "prometheus-nginx-exporter",
    "mtail",
    "prometheus-alertmanager",
    "llmhost-alert-sink",
)
ALERTMANAGER = "http://127.0.0.1:9093"
SINK_FILE = "/var/lib/llmhost/alert-sink/notifications.jsonl"
PIPELINE = "LLMHostAlertPipeline"


def get(host, url: str) -> str:
    return host.check_output(shlex.join(["curl", "-sS", "--max-time", "10", url]))


def api(host, path: str) -> dict:
    body = json.loads(get(host, PROM + path))
    assert body["status"] == "success", body
    return body["data"]


def query(host, promql: str) -> list[dict]:
    return api(
        host,
        "/api/v1/query?query="
        + re.sub(r"[^A-Za-z0-9_:.]", lambda m: f"%{ord(m.group()):02X}", promql),
    )["result"]


def wait_for(check, timeout: float = 60, every: float = 3):  # noqa: ANN201
    """Poll check() until it returns something truthy; return it (or the last falsy value)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every)


def test_services_run_hardened(host) -> None:
    for unit in UNITS:
        svc = host.service(unit)
        assert svc.is_running, unit
        assert svc.is_enabled, unit
        props = host.check_output(
            f"systemctl show {unit} -p NoNewPrivileges -p ProtectSystem -p ProtectHome"
        )
        assert "NoNewPrivileges=yes" in props, (unit, props)
        assert "ProtectSystem=strict" in props, (unit, props)
        assert re.search(r"ProtectHome=(yes|read-only)", props), (unit, props)
    prom = host.check_output("systemctl show prometheus -p ReadWritePaths -p User")
    assert "ReadWritePaths=/var/lib/prometheus/metrics2" in prom
    assert "User=prometheus" in prom


def test_the_journal_is_capped(host) -> None:
    conf = host.file("/etc/systemd/journald.conf.d/llmhost.conf").content_string
    assert "SystemMaxUse=1G" in conf and "MaxRetentionSec=30day" in conf
    assert host.service("systemd-journald").is_running


def test_packages_are_the_pinned_versions(host) -> None:
    pins = DEFAULTS["monitoring_package_versions"]["bookworm"]
    for package, version in pins.items():
        assert host.package(package).version == version, package


def test_nothing_listens_on_a_public_address(host) -> None:
    lines = host.check_output("ss -Htln").splitlines()
    local = [line.split()[3] for line in lines]
    assert local, "nothing listens at all?"
    public = [
        a for a in local if not re.match(r"^(127\.[0-9.]+|\[::1\]|\[::ffff:127\.[0-9.]+\]):\d+$", a)
    ]
    assert not public, public
    for port in (9090, 9100, 9113, 3903, 9093, 9097):
        assert any(a.endswith(f":{port}") for a in local), port


def test_prometheus_scrapes_the_required_targets(host) -> None:
    targets = api(host, "/api/v1/targets?state=active")["activeTargets"]
    health = {t["labels"]["job"]: t["health"] for t in targets}
    for job in ("prometheus", "node", "nginx", "gateway_log"):
        assert health.get(job) == "up", (job, targets)
    assert health.get("vllm") == "down"  # no vLLM in this container
    for t in targets:
        assert t["labels"]["host"] and t["labels"]["route"] == "local_cpu"
        assert t["labels"]["model"] == "molecule-model"
    node = query(host, 'up{job="node",model="molecule-model"}')
    assert [r["value"][1] for r in node] == ["1"]


def test_rule_unit_tests_pass_with_promtool(host) -> None:
    out = host.run(f"cd {STAGING} && promtool test rules llmhost-alerts.test.yml")
    assert out.rc == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout
    live = host.file("/etc/prometheus/rules.d/llmhost-alerts.rules.yml").content_string
    assert live == host.file(f"{STAGING}/llmhost-alerts.rules.yml").content_string
    groups = [g["name"] for g in api(host, "/api/v1/rules")["groups"]]
    assert {"llmhost-recording", "llmhost-alerts"} <= set(groups)


def test_textfile_collector_picks_up_a_metric(host) -> None:
    folder = DEFAULTS["monitoring_textfile_dir"]
    tmp, final = f"{folder}/.probe.tmp", f"{folder}/probe.prom"  # the collector reads *.prom only
    host.run_test(f"printf 'llmhost_molecule_probe 42\\n' > {tmp} && mv {tmp} {final}")
    try:
        metrics = get(host, "http://127.0.0.1:9100/metrics")
        assert re.search(r"^llmhost_molecule_probe 42$", metrics, re.M)
    finally:
        host.run(f"rm -f {final}")


def test_hard_stop_gauge_fires_its_alert(host) -> None:
    metrics = get(host, "http://127.0.0.1:9100/metrics")
    gauge = (
        r'^llmhost_hard_stop_timestamp_seconds\{hard_stop="2020-01-01T00:00:00Z"\} 1\.5778368e\+09$'
    )
    assert re.search(gauge, metrics, re.M), metrics[-2000:]

    def firing() -> list[dict]:
        alerts = api(host, "/api/v1/alerts")["alerts"]
        return [
            a
            for a in alerts
            if a["labels"]["alertname"] == "LLMHostHardStopSoon" and a["state"] == "firing"
        ]

    alerts = wait_for(firing)
    assert alerts, "LLMHostHardStopSoon did not fire for a hard stop in the past"
    assert alerts[0]["annotations"]["summary"].endswith("must be stopped at 2020-01-01T00:00:00Z")


def test_vllm_down_alert_is_evaluated(host) -> None:
    def active() -> list[dict]:
        alerts = api(host, "/api/v1/alerts")["alerts"]
        return [a for a in alerts if a["labels"]["alertname"] == "LLMHostVLLMDown"]

    alerts = wait_for(active)
    assert alerts and alerts[0]["state"] in ("pending", "firing")


def test_gateway_status_counts_from_the_access_log(host) -> None:
    mtail = get(host, "http://127.0.0.1:3903/metrics")
    counts = dict(
        re.findall(r'^llmhost_gateway_requests_total\{status="(\d{3})"\} (\d+)', mtail, re.M)
    )
    assert int(counts.get("200", 0)) >= 20, counts
    assert int(counts.get("503", 0)) >= 3, counts
    scraped = wait_for(
        lambda: query(host, 'llmhost_gateway_requests_total{job="gateway_log",status="503"}')
    )
    assert scraped and float(scraped[0]["value"][1]) >= 3
    nginx = wait_for(lambda: query(host, 'nginx_up{job="nginx"}'))
    assert [r["value"][1] for r in nginx] == ["1"]


def test_broken_rule_refused_and_running_config_kept(host) -> None:
    result = json.loads(host.file("/root/broken-rule-result.json").content_string)
    assert result["refused"], result
    assert "Install monitoring_extra_rule_groups" in result["refusal"], result
    before, after = result["before"], result["after"]
    assert after["reload_timestamp"] == before["reload_timestamp"], (
        "Prometheus reloaded a broken rule"
    )
    assert after["start_time"] == before["start_time"]
    assert after["reload_successful"] is True
    assert "broken" not in after["rule_groups"]
    assert not after["extra_rules_file"]


def test_threshold_change_reloads_without_restart(host) -> None:
    result = json.loads(host.file("/root/reload-result.json").content_string)
    before, after = result["before"], result["after"]
    assert after["start_time"] == before["start_time"], "Prometheus was restarted, not reloaded"
    assert after["reload_timestamp"] > before["reload_timestamp"]  # RFC 3339, same zone
    assert after["reload_successful"] is True
    rules = host.file("/etc/prometheus/rules.d/llmhost-alerts.rules.yml").content_string
    assert 'vllm:num_requests_waiting{job="vllm"} > 60' in rules


def test_dcgm_skipped_with_reason_and_its_config_checked(host) -> None:
    assert not host.package("datacenter-gpu-manager-exporter").is_installed
    assert not host.socket("tcp://127.0.0.1:9400").is_listening
    counters = host.file(f"{CHECK}/dcgm-counters.csv").content_string
    for field in (
        "DCGM_FI_DEV_XID_ERRORS",
        "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
        "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
    ):
        assert re.search(rf"^{field},", counters, re.M), field
    check = host.run(
        f"/opt/llmhost/monitoring/bin/check_dcgm_counters.py {CHECK}/dcgm-counters.csv"
    )
    assert check.rc == 0, check.stderr
    config = host.run(f"promtool check config {CHECK}/prometheus-with-dcgm.yml")
    assert config.rc == 0, config.stdout + config.stderr
    jobs = yaml.safe_load(host.file(f"{CHECK}/prometheus-with-dcgm.yml").content_string)[
        "scrape_configs"
    ]
    dcgm = [j for j in jobs if j["job_name"] == "dcgm"]
    assert dcgm and dcgm[0]["static_configs"][0]["targets"] == ["127.0.0.1:9400"]
    dropin = host.file(f"{CHECK}/nvidia-dcgm-exporter.service.d-llmhost.conf").content_string
    assert "--address 127.0.0.1:9400" in dropin
    assert "--collectors /etc/dcgm-exporter/llmhost-counters.csv" in dropin
    evidence = json.loads((EVIDENCE / "monitoring_dcgm.json").read_text("utf-8"))
    assert evidence["installed"] is False
    assert evidence["reason"].startswith("no NVIDIA GPU on this host: ")


def test_targets_evidence(host) -> None:
    doc = json.loads((EVIDENCE / "monitoring_targets.json").read_text("utf-8"))
    assert doc["required_healthy"] is True
    assert doc["run_id"] == "molecule"
    health = {t["job"]: t["health"] for t in doc["targets"]}
    assert health == {
        "prometheus": "up",
        "node": "up",
        "nginx": "up",
        "gateway_log": "up",
        "vllm": "down",
    }


def test_snapshot_and_chart(host) -> None:
    doc = json.loads((EVIDENCE / "monitoring_snapshot.json").read_text("utf-8"))
    assert doc["run_id"] == "molecule"
    series = doc["series"]
    assert all(s["status"] == "success" for s in series.values()), {
        k: s.get("error") for k, s in series.items() if s["status"] != "success"
    }
    statuses = {r["metric"].get("status") for r in series["gateway_requests_per_s"]["result"]}
    assert {"200", "503"} <= statuses
    assert series["targets_up"]["result"]
    assert any(a["name"] == "LLMHostHardStopSoon" for a in doc["alerts"])
    png = (EVIDENCE / "monitoring_latency_throughput.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png) > 10_000


def test_alertmanager_on_loopback_only_hardened(host) -> None:
    # By port: ss shows no process for some hardened units in this container.
    local = [line.split()[4] for line in host.check_output("ss -Htuln").splitlines()]
    assert [a for a in local if a.endswith(":9093")] == ["127.0.0.1:9093"], local
    assert not [a for a in local if a.endswith(":9094")], local  # no cluster port, TCP or UDP
    props = host.check_output(
        "systemctl show prometheus-alertmanager -p ReadWritePaths -p MemoryMax -p User"
    )
    assert "ReadWritePaths=/var/lib/prometheus/alertmanager" in props, props
    assert "MemoryMax=268435456" in props, props
    assert "User=prometheus" in props, props
    config = host.file("/etc/prometheus/alertmanager.yml")
    assert (config.user, config.group, config.mode) == ("root", "prometheus", 0o640)
    assert host.run("amtool check-config /etc/prometheus/alertmanager.yml").rc == 0
    status = json.loads(get(host, ALERTMANAGER + "/api/v2/status"))
    assert status["cluster"]["status"] == "disabled", status["cluster"]


def test_prometheus_sends_alerts_to_the_local_alertmanager(host) -> None:
    active = api(host, "/api/v1/alertmanagers")["activeAlertmanagers"]
    assert [a["url"] for a in active] == [ALERTMANAGER + "/api/v2/alerts"], active
    # An alert dropped while Prometheus looked for Alertmanager is sent again this soon.
    assert "--rules.alert.resend-delay=10s" in host.check_output("systemctl cat prometheus")


def test_sink_received_the_pipeline_alert(host) -> None:
    props = host.check_output("systemctl show llmhost-alert-sink -p User -p ReadWritePaths")
    assert "User=llmhost-alert-sink" in props, props
    assert "ReadWritePaths=/var/lib/llmhost/alert-sink" in props, props
    assert host.user("llmhost-alert-sink").shell == "/usr/sbin/nologin"
    entries = [json.loads(line) for line in host.file(SINK_FILE).content_string.splitlines()]
    delivered = [
        (e["payload"]["receiver"], a["labels"])
        for e in entries
        for a in e["payload"]["alerts"]
        if a["labels"]["alertname"] == PIPELINE
    ]
    assert delivered, entries
    receiver, labels = delivered[0]
    assert receiver == "llmhost-alert-sink"
    assert labels["severity"] == "none" and labels["host"], labels


def test_alert_delivery_evidence(host) -> None:
    doc = json.loads((EVIDENCE / "alert_delivery.json").read_text("utf-8"))
    assert doc["delivered"] is True, doc
    assert doc["alertmanager_received"] is True
    assert doc["alertmanager_version"] == "0.25.0", doc
    assert doc["receivers"] == ["llmhost-alert-sink"]
    assert doc["routed_to"] == ["llmhost-alert-sink"]
    rows = [n for n in doc["notifications"] if n["alertname"] == PIPELINE]
    assert rows and rows[0]["receiver"] == "llmhost-alert-sink" and rows[0]["received_at"]
    assert "webhook_url" not in json.dumps(doc)


REMOTE_JOURNALS = "/var/log/journal/remote/*.journal"


def _received(host, marker: str) -> bool:
    out = host.run(
        shlex.join(
            [
                "journalctl",
                "--no-pager",
                "-q",
                "-o",
                "cat",
                f"--file={REMOTE_JOURNALS}",
                "SYSLOG_IDENTIFIER=llmhost-logship",
                f"MESSAGE={marker}",
            ]
        )
    ).stdout
    return marker in out.splitlines()


def test_logs_reach_the_loopback_collector(host) -> None:
    doc = json.loads((EVIDENCE / "log_shipping.json").read_text("utf-8"))
    version = DEFAULTS["monitoring_log_shipper_versions"]["bookworm"]
    assert doc["shipper"] == f"systemd-journal-upload {version}"
    assert host.package("systemd-journal-remote").version == version
    assert doc["collector_url"] == "http://127.0.0.1:19532"
    assert doc["acknowledged"] is True and doc["received"] is True, doc
    assert doc["marker"].startswith("llmhost-logship run=molecule host=")
    retention = doc["retention"]
    assert retention["journal_max_use"] == "1G" and retention["journal_retention"] == "30day"
    # The run's marker is in the receiver's files, not only in the evidence.
    assert _received(host, doc["marker"])
    # Shipping goes on after the role: a new line arrives too.
    marker = f"llmhost-logship testinfra {time.time_ns()}"
    host.check_output(shlex.join(["logger", "-t", "llmhost-logship", "--", marker]))
    assert wait_for(lambda: _received(host, marker), timeout=60, every=2), marker


def test_shipper_and_receiver_units(host) -> None:
    upload = host.service("systemd-journal-upload")
    assert upload.is_running and upload.is_enabled
    props = host.check_output(
        "systemctl show systemd-journal-upload -p Restart -p DynamicUser -p ProtectSystem"
    )
    assert "Restart=always" in props and "DynamicUser=yes" in props, props
    assert "ProtectSystem=strict" in props, props
    conf = host.file("/etc/systemd/journal-upload.conf.d/llmhost.conf").content_string
    assert "URL=http://127.0.0.1:19532" in conf
    socket = host.check_output("systemctl show systemd-journal-remote.socket -p Listen")
    assert socket.strip() == "Listen=127.0.0.1:19532 (Stream)", socket
    assert host.socket("tcp://127.0.0.1:19532").is_listening
