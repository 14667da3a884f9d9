"""testinfra checks of the teardown role: real nginx (the gateway role) in front of two
vLLM doubles, torn down by the role (converge) and by the hard-stop timer (side effect),
with 8 SSE streams in flight each time (scripts/drain_probe.py on the control node,
through the port published on 127.0.0.1).
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

EVIDENCE = Path(os.environ["LLMHOST_EVIDENCE_DIR"])
SCENARIO = EVIDENCE.parent
OURS = ["vllm.service", "vllm-b.service", "nginx.service"]
OURS += ["prometheus-node-exporter.service", "prometheus.service"]
ABSENT = [
    "prometheus-nginx-exporter.service",
    "mtail.service",
    "nvidia-dcgm-exporter.service",
    "nvidia-dcgm.service",
]


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def proof() -> dict[str, Any]:
    return _json(EVIDENCE / "shutdown_proof.json")


@pytest.fixture(scope="module")
def hard_stop() -> dict[str, Any]:
    return _json(SCENARIO / "evidence-hard-stop" / "shutdown_proof.json")


def _units(proof: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["unit"]: s for s in proof["services"]}


def _counted_what_the_client_had_in_flight(test: dict[str, Any]) -> None:
    """The 8 workers start 0.6 s apart, so at most one is between two streams (a few ms)
    when the drain begins: 7 or 8 streams in flight then, each finished with [DONE]. The
    teardown's first count (nginx, then both vLLMs) lies within what the client's records
    allow: at least the streams in flight all through it, at most those in flight at any
    moment of it (a stream ending meanwhile may be in it or not)."""
    flying = test["in_flight_at_drain_start"]
    assert flying in (7, 8), flying
    assert test["in_flight_at_drain_start_completed"] == flying
    server = test["teardown"]["server_in_flight_at_drain_start"]
    bounds = test["first_count_bounds"]
    assert bounds["min"] <= server["vllm_running"] <= bounds["max"], (server, bounds)
    assert server["gateway"] >= bounds["min"], (server, bounds)
    # Streams end 0.6 s apart: the count missed at most the one or two that ended while it
    # was read (it takes milliseconds; 1.2 s would still leave 6).
    assert server["vllm_running"] >= 6, (server, test["teardown"]["first_count_after_s"])


def test_the_proof_passed_and_names_the_run(proof: dict[str, Any]) -> None:
    run_id = (SCENARIO / "run_id").read_text(encoding="utf-8").strip()
    assert proof["schema"] == "llmhost.shutdown_proof/1"
    assert proof["run_id"] == run_id and proof["trigger"] == "playbook"
    assert proof["passed"] is True, proof["checks"]
    assert proof["checks"] == {
        "services_inactive": True,
        "no_listeners_of_ours": True,
        "gpu_idle": None,
    }
    assert proof["nothing_was_running"] is False


def test_units_stopped_in_order_after_the_drain(proof: dict[str, Any]) -> None:
    units = _units(proof)
    drain_start = _t(proof["drain"]["started_at"])
    assert _t(units["vllm-liveness.timer"]["stop_started_at"]) < drain_start
    stops = [_t(units[u]["stop_started_at"]) for u in OURS]
    assert stops == sorted(stops)
    assert stops[0] >= _t(proof["drain"]["ended_at"])
    for name in [*OURS, "vllm-liveness.timer"]:
        unit = units[name]
        assert unit["before"]["ActiveState"] == "active", unit
        assert unit["action"] == "stopped"
        assert unit["after"]["ActiveState"] in ("inactive", "failed"), unit
        assert unit["after"]["UnitFileState"] == "disabled", unit
    for name in ABSENT:
        assert units[name]["action"] == "absent: skipped"
        assert "not installed" in units[name]["note"]


def test_drain_waited_for_the_streams_in_flight(proof: dict[str, Any]) -> None:
    drain = proof["drain"]
    assert drain["created"] is True
    assert drain["completed"] is True and drain["timed_out"] is False
    assert drain["in_flight_at_start"]["vllm_running"] >= 6  # of 8: see the probe's test
    assert drain["timeline"][0]["t_s"] < drain["duration_s"]
    assert drain["in_flight_at_end"] == {"gateway": 0, "vllm_running": 0, "vllm_waiting": 0}
    # 20 tokens 0.25 s apart: every stream ends within ~5 s of the drain's start.
    assert 0 < drain["duration_s"] < 10


def test_no_stream_was_truncated() -> None:
    test = _json(EVIDENCE / "drain_test.json")
    assert test["passed"] is True, {k: v for k, v in test.items() if k != "records"}
    _counted_what_the_client_had_in_flight(test)
    assert test["streams"]["truncated"] == 0
    assert test["streams"]["completed_with_done"] == test["streams"]["accepted"] >= 8
    refused = test["refused_while_draining"]
    assert refused["count"] == 8 and refused["with_retry_after"] == 8
    assert refused["retry_after_values"] == ["30"] and refused["error_codes"] == ["draining"]
    assert test["teardown"]["drain_completed"] is True


def test_last_metrics_snapshot_before_vllm_stopped(proof: dict[str, Any]) -> None:
    snapshot = proof["metrics_snapshot"]
    assert set(snapshot) == {"http://127.0.0.1:8000/metrics", "http://127.0.0.1:8001/metrics"}
    total = 0.0
    for taken in snapshot.values():
        series = taken["series"]
        assert series["vllm:num_requests_running"][0]["value"] == 0
        assert series["vllm:num_requests_running"][0]["labels"]["model_name"] == "test-model"
        total += series["vllm:request_success_total"][0]["value"]
    assert total >= 8


def test_nothing_of_ours_listens(proof: dict[str, Any], host) -> None:
    after = proof["listening_after"]
    assert after["source"] == "ss -ltnH"
    assert after["ours"] == []
    assert not {item["port"] for item in after["all"]} & set(after["our_ports"])
    for port in (443, 8000, 8001, 8081, 9090, 9100):
        assert not host.socket(f"tcp://127.0.0.1:{port}").is_listening


def test_gpu_check_skipped_with_a_reason(proof: dict[str, Any]) -> None:
    assert proof["gpu"] == {
        "checked": False,
        "idle": None,
        "reason": "no nvidia-smi on this host (no GPU)",
    }


def test_run_time_and_cost(proof: dict[str, Any]) -> None:
    cost = proof["run_time_and_cost"]
    assert cost["in_container"] is True
    assert cost["billing_proxy"].startswith("container start")
    assert cost["hourly_budget"] == 2.49
    assert cost["estimated_cost"] == round(cost["billed_hours_estimate"] * 2.49, 2)
    assert cost["run_id_time"] is not None
    assert 0 < cost["hours_since_run_id_time"] < 1  # the scenario's prepare started it
    assert cost["hours_since_boot"] >= cost["hours_since_init_start"]


def test_destroy_hook_ran_after_the_proof_and_kept_no_secret() -> None:
    record = _json(EVIDENCE / "destroy_hook.json")
    assert record["rc"] == 0 and record["timed_out"] is False
    assert record["stdout"] == "destroying instance molecule-1"
    assert record["environment_names"] == ["INSTANCE", "PROVIDER_TOKEN"]
    assert "provider-token" not in (EVIDENCE / "destroy_hook.json").read_text(encoding="utf-8")
    assert (SCENARIO / "destroyed").exists()


def test_a_failing_destroy_hook_is_recorded() -> None:
    record = _json(SCENARIO / "evidence-again" / "destroy_hook.json")
    assert record["rc"] == 7
    assert record["result"] == "FAILED: the host may still be billing"
    assert "503, try again later" in record["stderr"]


def test_a_failed_teardown_still_ran_the_destroy_hook() -> None:
    assert (SCENARIO / "destroyed-after-failure").exists()
    record = _json(SCENARIO / "evidence-failed" / "destroy_hook.json")
    assert record["rc"] == 0


def test_a_second_teardown_says_nothing_was_running() -> None:
    again = _json(SCENARIO / "evidence-again" / "shutdown_proof.json")
    assert again["nothing_was_running"] is True and again["drain"] is None
    assert again["passed"] is True
    assert {s["action"] for s in again["services"]} == {"already inactive", "absent: skipped"}
    assert again["summary"].startswith("nothing was running")


def test_hard_stop_timer_drained_and_stopped_by_itself(hard_stop: dict[str, Any], host) -> None:
    assert hard_stop["trigger"] == "hard-stop" and hard_stop["passed"] is True
    assert hard_stop["drain"]["created"] is True and hard_stop["drain"]["completed"] is True
    assert hard_stop["drain"]["in_flight_at_start"]["vllm_running"] >= 6  # of 8
    units = _units(hard_stop)
    for name in [*OURS, "vllm-liveness.timer"]:
        assert units[name]["action"] == "stopped"
        assert not host.service(name.removesuffix(".service")).is_running
    assert host.file("/etc/nginx/llmhost/draining").exists
    journal = host.check_output("journalctl -u llmhost-hard-stop.service --no-pager -o cat")
    assert "all checks passed" in journal


def test_hard_stop_truncated_no_stream() -> None:
    test = _json(EVIDENCE / "drain_test_hard_stop.json")
    assert test["passed"] is True, {k: v for k, v in test.items() if k != "records"}
    _counted_what_the_client_had_in_flight(test)
    assert test["streams"]["truncated"] == 0


def test_guard_recorded_then_removed(host) -> None:
    guard = _json(EVIDENCE / "hard_stop_guard.json")
    assert guard["poweroff"] is False
    assert (
        guard["on_calendar"].endswith(" UTC") and guard["on_calendar"][:10] in guard["next_elapse"]
    )
    assert guard["units"] == ["llmhost-hard-stop.timer", "llmhost-hard-stop.service"]
    assert guard["stops"][:3] == ["vllm-liveness.timer", "vllm-liveness.service", "vllm.service"]
    assert not host.file("/etc/systemd/system/llmhost-hard-stop.timer").exists
