"""scripts/drain_probe.py against a small local gateway double: streams kept in flight,
the drain seen, every accepted stream checked for [DONE]; truncation is caught."""

from __future__ import annotations

import importlib.util
import itertools
import json
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
KEY = "probe-key-0123456789abcdef"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "drain_probe", ROOT / "scripts" / "drain_probe.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["drain_probe"] = module
    spec.loader.exec_module(module)
    return module


probe = _load()


class Gateway:
    """What the probe sees of the gateway: /healthz, and SSE that 503s while draining."""

    def __init__(self, truncate: bool = False) -> None:
        self.draining = False
        self.truncate = truncate
        self.model = "m"
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt: str, *args: object) -> None:
                pass

            def _json(self, status: int, body: dict, headers: dict[str, str]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                for name, value in {**headers, "Content-Length": str(len(data))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path == "/v1/models":
                    if gateway.draining:
                        self._json(503, {"error": {"code": "draining"}}, {"Retry-After": "30"})
                    else:
                        self._json(200, {"data": [{"id": gateway.model}]}, {})
                    return
                if gateway.draining:
                    self._json(503, {"status": "draining"}, {})
                else:
                    self._json(200, {"status": "ok"}, {})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                assert self.headers["Authorization"] == f"Bearer {KEY}"
                if gateway.draining:
                    error = {"error": {"code": "draining", "message": "draining"}}
                    self._json(503, error, {"Retry-After": "30"})
                    return
                if body["model"] != gateway.model:
                    self._json(404, {"error": {"code": "model_not_found"}}, {})
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                for i in range(body["max_tokens"]):
                    time.sleep(0.05)
                    chunk = {"choices": [{"delta": {"content": f"t{i} "}}]}
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                if not gateway.truncate:
                    self.wfile.write(b"data: [DONE]\n\n")
                self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Gateway:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _run_probe(
    gw: Gateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *extra: str
) -> dict[str, Any]:
    monkeypatch.setenv(probe.KEY_ENV, KEY)
    out, ready = tmp_path / "drain_test.json", tmp_path / "ready"
    args = ["run", "--url", gw.url, "--model", "m", "--streams", "4", "--max-tokens", "10"]
    args += ["--max-seconds", "30", "--healthz-interval", "0.05", *extra]
    args += ["--ready-file", str(ready), "--out", str(out)]
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(probe.main(args)))
    thread.start()
    deadline = time.monotonic() + 20
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ready.exists(), "the probe never had its 4 streams producing"
    time.sleep(0.2)
    gw.draining = True
    thread.join(30)
    result = json.loads(out.read_text(encoding="utf-8"))
    result["exit_code"] = codes[0]
    return result


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    with Gateway() as gw:
        yield gw


def test_streams_in_flight_all_end_with_done(
    gateway: Gateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _run_probe(gateway, tmp_path, monkeypatch)
    assert result["passed"] is True and result["exit_code"] == 0
    assert result["drain_observed"] is True
    assert result["in_flight_when_drain_seen"] == 4
    assert result["in_flight_when_drain_seen_completed"] == 4
    assert result["streams"]["truncated"] == 0
    assert result["streams"]["accepted"] == result["streams"]["completed_with_done"] >= 4
    refused = result["refused_while_draining"]
    assert refused == {
        "count": 4,
        "with_retry_after": 4,
        "retry_after_values": ["30"],
        "error_codes": ["draining"],
    }
    assert 0 < result["last_stream_ended_after_drain_s"] < 1
    assert KEY not in json.dumps(result)


def test_staggered_workers_start_apart_and_still_all_end_with_done(
    gateway: Gateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--stagger-s: equal streams that would end together end apart, so a drain never
    finds every worker between two streams. Streams of 2 s here (40 tokens 0.05 s apart):
    the drain, 0.2 s after the fourth worker's first token, comes before the first ends."""
    result = _run_probe(gateway, tmp_path, monkeypatch, "--stagger-s", "0.3", "--max-tokens", "40")
    assert result["passed"] is True
    # At most one worker between two streams when the drain is seen; none, unless this
    # machine delayed the drain by most of a second.
    assert result["in_flight_when_drain_seen"] in (3, 4), result["in_flight_when_drain_seen"]
    assert result["in_flight_when_drain_seen_completed"] == result["in_flight_when_drain_seen"]
    firsts: dict[int, float] = {}
    for record in result["records"]:
        firsts.setdefault(record["worker"], probe.epoch(record["started"]))
    starts = [firsts[w] for w in range(4)]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert all(0.15 <= gap < 1.5 for gap in gaps), gaps


def test_a_truncated_stream_fails_the_test(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Gateway(truncate=True) as gw:
        result = _run_probe(gw, tmp_path, monkeypatch)
    assert result["passed"] is False and result["exit_code"] == 1
    assert result["streams"]["truncated"] == result["streams"]["accepted"] >= 4


@pytest.mark.parametrize("bad", [["--stagger-s", "-0.5"], ["--streams", "0"]])
def test_a_negative_stagger_or_no_stream_is_refused(
    bad: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(probe.KEY_ENV, KEY)
    args = ["run", "--url", "http://127.0.0.1:9", "--model", "m", "--out", str(tmp_path / "x")]
    assert probe.main([*args, *bad]) == 2
    assert not (tmp_path / "x").exists()


def test_no_key_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(probe.KEY_ENV, raising=False)
    args = ["run", "--url", "http://127.0.0.1:9", "--model", "m", "--out", str(tmp_path / "x")]
    assert probe.main(args) == 2


# --- analysis and merge (pure) ---------------------------------------------------------------


def _record(worker: int, start: float, end: float, status: int = 200, done: bool = True) -> dict:
    record: dict[str, Any] = {"worker": worker, "started": start, "ended": end, "status": status}
    if status == 200:
        record["done"] = done
    else:
        record["retry_after"] = "30"
        record["error_code"] = "draining"
    return record


def test_analyse_without_a_drain_fails() -> None:
    result = probe.analyse([_record(0, 1.0, 2.0)], 1, None, 1.5)
    assert result["drain_observed"] is False and result["passed"] is False


def test_analyse_counts_errors_before_the_drain_but_not_the_gateway_going_away() -> None:
    records = [
        _record(0, 1.0, 5.0),
        {"worker": 1, "started": 1.0, "ended": 1.1, "status": 429},
        _record(0, 5.1, 5.2, status=503),
        {"worker": 1, "started": 6.0, "ended": 6.0, "status": None, "error": "refused"},
    ]
    result = probe.analyse(records, 2, 4.0, 3.9)
    assert result["gateway_gone_after_drain"] == 1
    assert len(result["errors"]) == 1 and result["errors"][0]["status"] == 429
    assert result["passed"] is False


def _merge(
    records: list[dict], running: int, first_count_t_s: float | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The probe's result of RECORDS, with the drain seen at 102.1, merged with a proof whose
    drain began at 102.0 and counted RUNNING in flight (its timeline's first count complete
    FIRST_COUNT_T_S later; None: an older proof without a timeline). (merged, result)"""
    result = probe.analyse(records, len({r["worker"] for r in records}), 102.1, 101.9)
    result["records"] = [probe._compact(r) for r in records]
    start = {"gateway": running, "vllm_running": float(running), "vllm_waiting": 0.0}
    drain: dict[str, Any] = {
        "started_at": probe.iso(102.0),
        "duration_s": 2.6,
        "completed": True,
        "in_flight_at_start": start,
    }
    if first_count_t_s is not None:
        drain["timeline"] = [{"t_s": first_count_t_s, **start}, {"t_s": 2.6, "gateway": 0}]
    return probe.merge(result, {"passed": True, "drain": drain}), result


def test_merge_counts_the_streams_in_flight_when_the_drain_file_appeared() -> None:
    records = [
        _record(0, 100.0, 104.0),
        _record(1, 100.5, 104.5),
        _record(2, 99.0, 101.5),  # ended before the drain began
        _record(0, 104.1, 104.1, status=503),
    ]
    merged, result = _merge(records, 2)
    assert merged["in_flight_at_drain_start"] == 2
    assert merged["in_flight_at_drain_start_completed"] == 2
    assert merged["teardown"]["server_in_flight_at_drain_start"]["gateway"] == 2
    assert merged["passed"] is True
    assert merged["teardown"]["first_count_after_s"] == 0.0  # a proof without a timeline
    assert merged["first_count_bounds"] == {"min": 2, "max": 2}
    nothing = probe.merge(result, {"drain": None, "passed": True})
    assert nothing["passed"] is False and nothing["teardown"]["drain"] is None


def test_merge_counts_the_streams_the_first_count_cannot_have_missed() -> None:
    """The drain begins at 102.0 and its first count is complete at 102.3: a stream that
    started or ended within 0.25 s of that window may or may not be in it."""
    records = [
        _record(0, 100.0, 104.0),  # through the whole window: counted for certain
        _record(1, 101.9, 104.5),  # started 0.1 s before the drain: maybe not there yet
        _record(2, 99.0, 102.4),  # ended while the servers were being read
        _record(3, 99.0, 102.7),  # ended 0.4 s after the count: in it
        _record(2, 102.5, 102.5, status=503),
    ]
    merged, _ = _merge(records, 3, first_count_t_s=0.3)
    assert merged["in_flight_at_drain_start"] == 4
    assert merged["first_count_bounds"] == {"min": 2, "max": 4}
    assert merged["teardown"]["first_count_after_s"] == 0.3


def test_a_stream_refused_for_draining_marks_the_drain_seen() -> None:
    """All streams refused between two /healthz polls: the refusals still show the drain."""
    run = probe.Probe(lambda: None, "k", {}, streams=2, seconds=5)
    run.saw_drain(20.0)
    run.saw_drain(10.0)
    run.saw_drain(30.0)
    assert run.drain_seen == 10.0


def _run_switch(
    gw: Gateway,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    reopen: bool = True,
    served_before_stop_s: float = 0.8,
) -> dict[str, Any]:
    """Streams on model m; the gateway drains, the model becomes m2, the gateway reopens
    (unless not `reopen`) and the stop file appears `served_before_stop_s` later."""
    monkeypatch.setenv(probe.KEY_ENV, KEY)
    out, ready, stop = tmp_path / "switch.json", tmp_path / "ready", tmp_path / "stop"
    args = ["switch", "--url", gw.url, "--streams", "3", "--max-tokens", "6"]
    args += ["--retry-interval", "0.05", "--max-seconds", "30", "--stop-grace", "3"]
    args += ["--ready-file", str(ready), "--stop-file", str(stop), "--out", str(out)]
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(probe.main(args)))
    thread.start()
    deadline = time.monotonic() + 20
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ready.exists(), "the probe never had its 3 streams producing"
    gw.draining = True
    time.sleep(0.6)  # the streams in flight finish; new ones are refused
    gw.model = "m2"
    gw.draining = not reopen
    time.sleep(served_before_stop_s)
    stop.write_text("")
    thread.join(30)
    assert not thread.is_alive(), "the probe did not end after its stop file"
    result = json.loads(out.read_text(encoding="utf-8"))
    result["exit_code"] = codes[0]
    return result


def test_streams_live_through_a_release_switch(
    gateway: Gateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _run_switch(gateway, tmp_path, monkeypatch)
    assert result["passed"] is True and result["exit_code"] == 0, result
    assert result["models_in_order"] == ["m", "m2"]
    assert result["failed"] == 0 and result["streams"]["truncated"] == 0
    assert result["refused"]["count"] >= 3
    assert result["refused"]["with_retry_after"] == result["refused"]["count"]
    [window] = result["refusal_windows"]
    assert 0.05 < window["observed_s"] < 2.0
    assert KEY not in json.dumps(result)


def test_the_stop_file_right_after_the_reopen_still_sees_service_again(
    gateway: Gateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The playbook reopens the gateway and stops the probe a moment later: a worker still
    refused at the stop streams once more, so the window closes (it stayed open before)."""
    result = _run_switch(gateway, tmp_path, monkeypatch, served_before_stop_s=0.0)
    assert result["passed"] is True and result["exit_code"] == 0, result
    assert result["models_in_order"] == ["m", "m2"]
    assert all(w["served_again_at"] for w in result["refusal_windows"])


def test_a_gateway_that_never_reopens_fails_the_switch_after_the_grace(
    gateway: Gateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = time.monotonic()
    result = _run_switch(gateway, tmp_path, monkeypatch, reopen=False, served_before_stop_s=0.2)
    assert time.monotonic() - started < 15  # the 3 s grace, not --max-seconds
    assert result["passed"] is False and result["exit_code"] == 1
    [window] = result["refusal_windows"]
    assert window["served_again_at"] is None and window["refused_requests"] >= 3


def test_a_stream_cut_during_a_switch_fails_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Gateway(truncate=True) as gw:
        result = _run_switch(gw, tmp_path, monkeypatch)
    assert result["passed"] is False and result["exit_code"] == 1
    assert result["streams"]["truncated"] == result["streams"]["accepted"] > 0


def test_refusal_windows_close_at_the_next_accepted_request() -> None:
    records = [
        {"status": 200, "started": 1.0},
        {"status": 503, "started": 2.0},
        {"status": 503, "started": 2.5},
        {"status": 200, "started": 4.0},
        {"status": 503, "started": 9.0},
    ]
    windows = probe.refusal_windows(records)
    assert [w["observed_s"] for w in windows] == [2.0, None]
    assert [w["refused_requests"] for w in windows] == [2, 1]
    assert probe.analyse_switch(records, 1)["passed"] is False  # the last window never closed
