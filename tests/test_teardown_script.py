"""Unit tests of llmhost-teardown (roles/teardown/files/llmhost_teardown.py): its parsers,
the drain loop, the cost arithmetic, the checks and the proof's assembly, with the host's
systemd, sockets and GPU replaced by fakes."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "nvidia-smi" / "h100"


def _load() -> ModuleType:
    path = ROOT / "roles" / "teardown" / "files" / "llmhost_teardown.py"
    spec = importlib.util.spec_from_file_location("llmhost_teardown", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["llmhost_teardown"] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


td = _load()

ALL_V4 = "0.0.0.0"  # noqa: S104 - an address ss prints; nothing binds here
SS = """\
LISTEN 0      511          0.0.0.0:443        0.0.0.0:*
LISTEN 0      4096   127.0.0.53%lo:53         0.0.0.0:*
LISTEN 0      128             [::]:22            [::]:*
LISTEN 0      4096  [::ffff:127.0.0.1]:9090       *:*
LISTEN 0      4096               *:9100             *:*
"""
PROC_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:4651 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 29 1
   1: 00000000:01BB 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 30 1
   2: 0100007F:1F40 0100007F:D2A4 01 00000000:00000000 00:00000000 00000000     0        0 31 1
"""
PROC_TCP6 = """\
  sl  local_address                         remote_address                        st tx_queue
   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 0
   1: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 0
"""
STUB = """\
Active connections: 11
server accepts handled requests
 120 120 340
Reading: 0 Writing: 9 Waiting: 2
"""
METRICS = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="mini-gpt2-lab"} 3.0
vllm:num_requests_waiting{engine="0",model_name="mini-gpt2-lab"} 1.0
vllm:request_success_total{engine="0",finished_reason="length",model_name="mini-gpt2-lab"} 41.0
vllm:request_success_total{engine="0",finished_reason="stop",model_name="mini-gpt2-lab"} 1.0
vllm:e2e_request_latency_seconds_bucket{engine="0",le="0.3",model_name="mini-gpt2-lab"} 2.0
vllm:e2e_request_latency_seconds_count{engine="0",model_name="mini-gpt2-lab"} 42.0
vllm:cache_config_info{block_size="16",prefix="a \\"quoted\\" word"} 1.0
http_requests_total{handler="/v1/completions",method="POST",status="2xx"} 42.0
process_start_time_seconds 1.7e+09
"""


# --- parsers ---------------------------------------------------------------------------


def test_parse_show_and_states() -> None:
    props = td.parse_show("LoadState=loaded\nActiveState=deactivating\nTimeoutStopUSec=1min 5s\n")
    assert props == {
        "LoadState": "loaded",
        "ActiveState": "deactivating",
        "TimeoutStopUSec": "1min 5s",
    }
    assert td.is_present(props) and td.is_running(props)
    assert not td.is_present({"LoadState": "not-found", "ActiveState": "inactive"})
    assert not td.is_running({"ActiveState": "failed"})


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1min 30s", 90.0),
        ("35s", 35.0),
        ("500ms", 0.5),
        ("2h", 7200.0),
        ("infinity", None),
        ("", None),
    ],
)
def test_parse_timespan(text: str, seconds: float | None) -> None:
    assert td.parse_timespan(text) == seconds


def test_stub_status_in_flight_excludes_its_own_request_and_idle_connections() -> None:
    status = td.parse_stub_status(STUB)
    assert status == {
        "active": 11,
        "accepts": 120,
        "handled": 120,
        "requests": 340,
        "reading": 0,
        "writing": 9,
        "waiting": 2,
    }
    assert td.gateway_in_flight(status) == 8
    idle = td.parse_stub_status(STUB.replace("Writing: 9", "Writing: 1"))
    assert td.gateway_in_flight(idle) == 0


def test_stub_status_refuses_other_pages() -> None:
    with pytest.raises(ValueError, match="not an nginx stub_status page"):
        td.parse_stub_status("<html>404</html>")


def test_parse_metrics_agrees_with_prometheus_client() -> None:
    """The script's stdlib reader (no prometheus_client on the host's python3, see the role
    README) yields prometheus_client's samples: names, labels (unescaped) and values."""
    from prometheus_client.parser import text_string_to_metric_families

    want = [
        (s.name, s.labels, s.value)
        for family in text_string_to_metric_families(METRICS)
        for s in family.samples
    ]
    assert [(s.name, s.labels, s.value) for s in td.parse_metrics(METRICS)] == want


def test_parse_metrics_sums_and_key_series() -> None:
    samples = td.parse_metrics(METRICS)
    assert td.metric_sum(samples, "vllm:num_requests_running") == 3.0
    assert td.metric_sum(samples, "vllm:request_success_total") == 42.0
    assert td.metric_sum(samples, "vllm:absent") is None
    info = next(s for s in samples if s.name == "vllm:cache_config_info")
    assert info.labels["prefix"] == 'a "quoted" word'
    series = td.key_series(samples)
    assert set(series) == {
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:request_success_total",
        "vllm:e2e_request_latency_seconds_count",
    }
    assert series["vllm:request_success_total"][1] == {
        "labels": {"engine": "0", "finished_reason": "stop", "model_name": "mini-gpt2-lab"},
        "value": 1.0,
    }


def test_parse_ss_and_ours() -> None:
    listeners = td.parse_ss(SS)
    assert listeners == [
        {"address": ALL_V4, "port": 443},
        {"address": "127.0.0.53%lo", "port": 53},
        {"address": "::", "port": 22},
        {"address": "::ffff:127.0.0.1", "port": 9090},
        {"address": "*", "port": 9100},
    ]
    assert td.ours(listeners, [443, 8000, 9090]) == [
        {"address": ALL_V4, "port": 443},
        {"address": "::ffff:127.0.0.1", "port": 9090},
    ]
    assert td.ours(td.parse_ss(""), [443]) == []


def test_parse_proc_net_tcp_keeps_listeners_only() -> None:
    assert td.parse_proc_net_tcp(PROC_TCP) == [
        {"address": "127.0.0.1", "port": 18001},
        {"address": ALL_V4, "port": 443},
    ]
    assert td.parse_proc_net_tcp(PROC_TCP6) == [
        {"address": "::", "port": 22},
        {"address": "::1", "port": 8080},
    ]


def test_compute_apps_of_an_idle_h100_are_empty() -> None:
    idle = (DATA / "query-compute-apps-idle.csv").read_text(encoding="utf-8")
    assert td.parse_compute_apps(idle) == []
    busy = "12345, /opt/llmhost/vllm/venvs/x/bin/python, 70312 MiB\n"
    assert td.parse_compute_apps(busy) == [
        {
            "pid": "12345",
            "process_name": "/opt/llmhost/vllm/venvs/x/bin/python",
            "used_memory": "70312 MiB",
        }
    ]
    assert td.parse_compute_apps("No running processes found\n") == []


# --- run time and cost ---------------------------------------------------------------------


NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)


def test_cost_from_boot_on_a_vm_and_from_the_run_id() -> None:
    cost = td.run_time_and_cost(
        NOW, 3 * 3600, 3 * 3600 - 2, False, "20261123T103000Z-abc123def456", 2.49
    )
    assert cost["host_boot_time"] == "2026-11-23T09:00:00.000Z"
    assert cost["billing_proxy"].startswith("host boot time from /proc/uptime")
    assert cost["billed_hours_estimate"] == 3.0
    assert cost["estimated_cost"] == 7.47
    assert cost["run_id_time"] == "2026-11-23T10:30:00.000Z"
    assert cost["hours_since_run_id_time"] == 1.5
    assert cost["estimated_cost_since_run_id_time"] == 3.74  # 1.5 h x 2.49, to the cent
    assert cost["run_id_time_note"] is None


def test_cost_in_a_container_uses_the_init_start_and_handles_plain_run_ids() -> None:
    cost = td.run_time_and_cost(NOW, 100 * 3600, 1800, True, "molecule", 0)
    assert cost["billing_proxy"].startswith("container start")
    assert cost["billed_hours_estimate"] == 0.5
    assert cost["hours_since_boot"] == 100.0
    assert cost["estimated_cost"] == 0
    assert cost["run_id_time"] is None and cost["hours_since_run_id_time"] is None
    assert "no UTC timestamp" in cost["run_id_time_note"]


def test_run_id_time() -> None:
    assert td.run_id_time("20261122T230000Z-abc") == datetime(2026, 11, 22, 23, 0, tzinfo=UTC)
    assert td.run_id_time("adhoc") is None
    assert td.run_id_time("") is None


# --- drain loop ----------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


def test_drain_waits_for_two_idle_polls() -> None:
    clock = FakeClock()
    seq = iter(
        [
            td.InFlight(gateway=8, vllm_running=8.0, vllm_waiting=0.0),
            td.InFlight(gateway=3, vllm_running=3.0, vllm_waiting=0.0),
            td.InFlight(gateway=0, vllm_running=0.0, vllm_waiting=0.0),
            td.InFlight(gateway=1, vllm_running=0.0, vllm_waiting=0.0),  # a straggler
            td.InFlight(gateway=0, vllm_running=0.0, vllm_waiting=0.0),
            td.InFlight(gateway=0, vllm_running=0.0, vllm_waiting=0.0),
        ]
    )
    result = td.drain(lambda: next(seq), 60, 0.5, clock=clock, sleep=clock.sleep)
    assert result["completed"] is True and result["timed_out"] is False
    assert result["polls"] == 6
    assert result["duration_s"] == 2.5
    assert result["in_flight_at_start"] == {"gateway": 8, "vllm_running": 8.0, "vllm_waiting": 0.0}
    assert result["peak_in_flight"] == 16
    assert [p["gateway"] for p in result["timeline"]] == [8, 3, 0, 1, 0]


def test_the_timeline_says_when_each_count_was_complete() -> None:
    """Reading nginx and each vLLM takes time: the first count's t_s is when it was done,
    not 0 (a stream may end while the sources are read)."""
    clock = FakeClock()
    counts = iter([8, 0, 0])

    def measure() -> td.InFlight:
        clock.t += 0.2
        n = next(counts)
        return td.InFlight(gateway=n, vllm_running=float(n), vllm_waiting=0.0)

    result = td.drain(measure, 60, 0.5, clock=clock, sleep=clock.sleep)
    assert [p["t_s"] for p in result["timeline"]] == [0.2, 0.9]
    assert result["duration_s"] == 1.6


def test_drain_times_out_and_says_what_was_left() -> None:
    clock = FakeClock()
    busy = td.InFlight(gateway=2, vllm_running=2.0, vllm_waiting=5.0)
    result = td.drain(lambda: busy, 3, 0.5, clock=clock, sleep=clock.sleep)
    assert result["timed_out"] is True and result["completed"] is False
    assert result["duration_s"] == 3.0
    assert result["in_flight_at_end"]["vllm_waiting"] == 5.0


def test_unreachable_sources_count_as_idle_but_are_reported() -> None:
    down = td.InFlight(errors=["http://127.0.0.1:8081/nginx_status: refused"])
    assert down.idle
    assert down.as_dict()["unreachable"] == ["http://127.0.0.1:8081/nginx_status: refused"]


# --- the whole teardown with a fake host ---------------------------------------------------


class FakeHost:
    """systemctl, ss, nvidia-smi and HTTP of a host running the stack."""

    def __init__(
        self, running: set[str], absent: set[str], leftover_port: int | None = None
    ) -> None:
        self.running, self.absent, self.leftover_port = running, absent, leftover_port
        self.calls: list[list[str]] = []
        self.in_flight = [8, 0, 0]

    def run(self, argv: list[str], timeout: float = 30) -> Any:
        self.calls.append(list(argv))
        if argv[:2] == ["systemctl", "stop"]:
            self.running.discard(argv[2])
        return type("R", (), {"returncode": 0, "stdout": "", "stderr": ""})()

    def unit_state(self, unit: str) -> dict[str, str]:
        if unit in self.absent:
            return {"LoadState": "not-found", "ActiveState": "inactive", "UnitFileState": ""}
        active = "active" if unit in self.running else "inactive"
        enabled = (
            "enabled" if ["systemctl", "disable", "--quiet", unit] not in self.calls else "disabled"
        )
        return {
            "LoadState": "loaded",
            "ActiveState": active,
            "UnitFileState": enabled,
            "TimeoutStopUSec": "35s",
        }

    def measure(self, _config: Any) -> Any:
        n = self.in_flight.pop(0) if self.in_flight else 0
        return td.InFlight(gateway=n, vllm_running=float(n), vllm_waiting=0.0)

    def listening(self) -> tuple[list[dict[str, Any]], str]:
        ports = [22] + ([self.leftover_port] if self.leftover_port else [])
        return [{"address": ALL_V4, "port": p} for p in ports], "ss -ltnH"


@pytest.fixture
def config(tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "nginx").mkdir()
    return {
        "stop_first": ["vllm-liveness.timer"],
        "services": ["vllm.service", "nginx.service", "mtail.service", "prometheus.service"],
        "drain_file": str(tmp_path / "nginx" / "draining"),
        "drain_timeout_s": 30,
        "poll_interval_s": 0.0,
        "gateway_status_url": "",
        "vllm_metrics_urls": [],
        "ports": [443, 8000, 9090],
        "hourly_budget": 2.0,
        "evidence_root": str(tmp_path / "evidence"),
    }


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> FakeHost:
    fake = FakeHost(
        {"vllm-liveness.timer", "vllm.service", "nginx.service", "prometheus.service"},
        {"mtail.service"},
    )
    monkeypatch.setattr(td, "_run", fake.run)
    monkeypatch.setattr(td, "unit_state", fake.unit_state)
    monkeypatch.setattr(td, "measure_in_flight", fake.measure)
    monkeypatch.setattr(td, "listening", fake.listening)
    monkeypatch.setattr(td, "systemd_running", lambda: True)
    monkeypatch.setattr(
        td, "gpu_compute_apps", lambda: {"checked": False, "idle": None, "reason": "no GPU"}
    )
    monkeypatch.setattr(td, "uptime_seconds", lambda: 7200.0)
    monkeypatch.setattr(td, "init_age_seconds", lambda _u: 7190.0)
    monkeypatch.setattr(td, "in_container", lambda: False)
    return fake


def test_teardown_drains_then_stops_in_order_and_proves_it(
    host: FakeHost, config: dict[str, Any]
) -> None:
    proof = td.teardown(config, "20261123T100000Z-abc", "playbook")
    stops = [c[2] for c in host.calls if c[:2] == ["systemctl", "stop"]]
    assert stops == ["vllm-liveness.timer", "vllm.service", "nginx.service", "prometheus.service"]
    disabled = [c[3] for c in host.calls if c[:2] == ["systemctl", "disable"]]
    assert disabled == stops
    assert Path(config["drain_file"]).read_text(encoding="utf-8").startswith("draining since")
    assert proof["drain"]["created"] is True
    assert proof["drain"]["in_flight_at_start"]["gateway"] == 8
    assert proof["drain"]["completed"] is True
    units = {s["unit"]: s for s in proof["services"]}
    assert units["mtail.service"]["action"] == "absent: skipped"
    assert units["vllm.service"]["before"]["ActiveState"] == "active"
    assert units["vllm.service"]["after"]["ActiveState"] == "inactive"
    assert proof["checks"] == {
        "services_inactive": True,
        "no_listeners_of_ours": True,
        "gpu_idle": None,
    }
    assert proof["passed"] is True
    assert proof["run_time_and_cost"]["estimated_cost"] == 4.0
    assert proof["summary"].startswith("stopped in order: vllm-liveness.timer, vllm.service")


def test_a_listening_port_of_ours_fails_the_proof(host: FakeHost, config: dict[str, Any]) -> None:
    host.leftover_port = 8000
    proof = td.teardown(config, "adhoc", "playbook")
    assert proof["listening_after"]["ours"] == [{"address": ALL_V4, "port": 8000}]
    assert proof["checks"]["no_listeners_of_ours"] is False
    assert proof["passed"] is False
    assert "FAILED: no_listeners_of_ours" in proof["summary"]


def test_without_systemd_units_are_not_touched(
    host: FakeHost, config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(td, "systemd_running", lambda: False)
    proof = td.teardown(config, "adhoc", "playbook")
    assert proof["services"] == [] and proof["drain"] is None
    assert proof["checks"]["services_inactive"] is None
    assert proof["systemd"].startswith("no systemd")
    assert not [c for c in host.calls if c[0] == "systemctl"]


def test_main_twice_keeps_the_first_proof_and_says_nothing_was_running(
    host: FakeHost, config: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "teardown.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    args = ["--config", str(path), "--run-id", "r1", "--lock-file", str(tmp_path / "lock")]
    assert td.main(args) == 0
    first = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert first["changed"] is True and first["nothing_was_running"] is False
    proof_path = Path(first["proof"])
    assert proof_path == tmp_path / "evidence" / "r1" / "shutdown_proof.json"
    written = proof_path.read_text(encoding="utf-8")
    assert oct(proof_path.stat().st_mode)[-3:] == "640"

    assert td.main(args) == 0
    second = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert second["changed"] is False and second["nothing_was_running"] is True
    assert "nothing was running" in second["summary"] and "kept" in second["summary"]
    assert proof_path.read_text(encoding="utf-8") == written

    assert td.main([*args[:2], "--run-id", "r2", *args[4:]]) == 0
    third = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert third["changed"] is True  # a new run id gets its own proof
    assert json.loads(Path(third["proof"]).read_text(encoding="utf-8"))["nothing_was_running"]


def test_main_hard_stop_writes_a_timestamped_proof_and_powers_off(
    host: FakeHost, config: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "teardown.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    args = ["--config", str(path), "--trigger", "hard-stop", "--poweroff"]
    assert td.main([*args, "--lock-file", str(tmp_path / "lock")]) == 0
    out = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert Path(out["proof"]).parent.name.startswith("hard-stop-")
    assert host.calls[-1] == ["systemctl", "--no-block", "poweroff"]


def test_main_exit_codes(host: FakeHost, config: dict[str, Any], tmp_path: Path) -> None:
    assert td.main(["--config", str(tmp_path / "missing.json")]) == 2
    path = tmp_path / "teardown.json"
    path.write_text(json.dumps({"services": []}), encoding="utf-8")
    assert td.main(["--config", str(path)]) == 2
    host.leftover_port = 443
    path.write_text(json.dumps(config), encoding="utf-8")
    assert td.main(["--config", str(path), "--lock-file", str(tmp_path / "lock")]) == 3


POWEROFF = ["systemctl", "--no-block", "poweroff"]


def _hard_stop(tmp_path: Path, config_path: Path) -> list[str]:
    return [
        "--config",
        str(config_path),
        "--run-id",
        "r1",
        "--trigger",
        "hard-stop",
        "--poweroff",
        "--lock-file",
        str(tmp_path / "lock"),
    ]


def test_hard_stop_powers_off_when_all_went_well(
    host: FakeHost, config: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "teardown.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    assert td.main(_hard_stop(tmp_path, path)) == 0
    assert host.calls[-1] == POWEROFF


def test_hard_stop_powers_off_without_its_configuration(host: FakeHost, tmp_path: Path) -> None:
    assert td.main(_hard_stop(tmp_path, tmp_path / "missing.json")) == 2
    assert host.calls == [POWEROFF]


def test_hard_stop_powers_off_with_a_broken_configuration(host: FakeHost, tmp_path: Path) -> None:
    path = tmp_path / "teardown.json"
    path.write_text("{not json", encoding="utf-8")
    assert td.main(_hard_stop(tmp_path, path)) == 2
    assert host.calls == [POWEROFF]


def test_hard_stop_powers_off_when_the_proof_cannot_be_written(
    host: FakeHost,
    config: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / "teardown.json"
    path.write_text(json.dumps(config), encoding="utf-8")

    def disk_full(_path: Path, _data: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(td, "write_json", disk_full)
    assert td.main(_hard_stop(tmp_path, path)) == 4
    assert host.calls[-1] == POWEROFF
    assert ["systemctl", "stop", "vllm.service"] in host.calls  # the stack was still stopped


def test_hard_stop_powers_off_when_the_teardown_itself_fails(
    host: FakeHost,
    config: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / "teardown.json"
    path.write_text(json.dumps(config), encoding="utf-8")

    def broken(*_args: Any) -> Any:
        raise RuntimeError("drain probe crashed")

    monkeypatch.setattr(td, "teardown", broken)
    assert td.main(_hard_stop(tmp_path, path)) == 4
    assert host.calls == [POWEROFF]


def test_a_failing_poweroff_is_reported_not_raised(
    host: FakeHost,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def no_systemctl(argv: list[str], timeout: float = 30) -> Any:
        raise FileNotFoundError("systemctl")

    monkeypatch.setattr(td, "_run", no_systemctl)
    assert td.main(_hard_stop(tmp_path, tmp_path / "missing.json")) == 2
    assert "systemctl poweroff failed" in capsys.readouterr().err


def test_without_poweroff_nothing_is_powered_off(host: FakeHost, tmp_path: Path) -> None:
    assert td.main(["--config", str(tmp_path / "missing.json")]) == 2
    assert POWEROFF not in host.calls


@pytest.mark.parametrize("poweroff", [True, False])
def test_the_hard_stop_unit_powers_off_however_its_script_ended(poweroff: bool) -> None:
    """ExecStopPost runs after ExecStart succeeded, failed, timed out or could not start."""
    import jinja2

    template = Path(td.__file__).parents[1] / "templates" / "llmhost-hard-stop.service.j2"
    env = jinja2.Environment(autoescape=False)  # noqa: S701 (a systemd unit, not HTML)
    env.filters["dirname"] = os.path.dirname
    unit = env.from_string(template.read_text(encoding="utf-8")).render(
        ansible_managed="test",
        teardown_hard_stop_poweroff=poweroff,
        teardown_drain_timeout_s=60,
        teardown_drain_file="/etc/nginx/llmhost/draining",
        _teardown_guard_unit="llmhost-hard-stop",
        _teardown_script="/usr/local/sbin/llmhost-teardown",
        _teardown_config="/etc/llmhost/teardown.json",
        _teardown_host_evidence_root="/var/lib/llmhost/evidence",
    )
    lines = unit.splitlines()
    assert ("ExecStopPost=/bin/systemctl --no-block poweroff" in lines) is poweroff
    assert (
        any(line.startswith("ExecStart=") and line.endswith(" --poweroff") for line in lines)
        is poweroff
    )
