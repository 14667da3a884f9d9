"""The run snapshot: llmhost_prom_snapshot.py against a local stand-in for Prometheus'
HTTP API (a real HTTP server on 127.0.0.1), and the chart drawn from its output."""

from __future__ import annotations

import importlib.util
import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import pytest
from test_monitoring_render import ROLE

END = 1_800_000_000.0


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROLE / "files" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


snapshot = _load("llmhost_prom_snapshot")
plot = _load("llmhost_monitoring_plot")


class FakePrometheus(BaseHTTPRequestHandler):
    """Answers the four API calls the snapshot makes; `bad_query(` is a PromQL error."""

    seen: ClassVar[list[dict[str, Any]]] = []

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        url = urllib.parse.urlparse(self.path)
        params = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
        self.seen.append({"path": url.path, **params})
        if url.path == "/api/v1/status/buildinfo":
            self._send(200, {"status": "success", "data": {"version": "2.42.0"}})
        elif url.path == "/api/v1/query_range":
            if params["query"].startswith("bad_query("):
                self._send(
                    400, {"status": "error", "errorType": "bad_data", "error": "parse error"}
                )
                return
            start, step = float(params["start"]), float(params["step"])
            values = [
                [start + i * step, str(v)] for i, v in enumerate(["0.5", "NaN", "1.5", "+Inf"])
            ]
            result = [{"metric": {"status": "200"}, "values": values}]
            self._send(
                200, {"status": "success", "data": {"resultType": "matrix", "result": result}}
            )
        elif url.path == "/api/v1/alerts":
            alert = {
                "labels": {"alertname": "LLMHostVLLMDown", "host": "h1"},
                "state": "firing",
                "activeAt": "2027-01-15T08:00:00Z",
                "annotations": {"summary": "vLLM down"},
            }
            self._send(200, {"status": "success", "data": {"alerts": [alert]}})
        elif url.path == "/api/v1/targets":
            targets = [
                {
                    "labels": {"job": "vllm", "instance": "127.0.0.1:8000"},
                    "health": "down",
                    "lastError": "connection refused",
                },
                {
                    "labels": {"job": "node", "instance": "127.0.0.1:9100"},
                    "health": "up",
                    "lastError": "",
                },
            ]
            self._send(200, {"status": "success", "data": {"activeTargets": targets}})
        else:
            self._send(404, {"status": "error", "error": "not found"})


@pytest.fixture
def prometheus() -> Iterator[str]:
    FakePrometheus.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakePrometheus)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_durations() -> None:
    assert snapshot.seconds("15s") == 15
    assert snapshot.seconds("1m") == 60
    assert snapshot.seconds("500ms") == 0.5
    with pytest.raises(ValueError, match="not a Prometheus duration"):
        snapshot.seconds("15 seconds")


def test_step_keeps_series_small_but_not_below_the_scrape_interval() -> None:
    assert snapshot.step_for(7200, 15) == 24
    assert snapshot.step_for(600, 15) == 15
    assert snapshot.step_for(10, 0) == 1


def test_snapshot_document(
    prometheus: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "monitoring_snapshot.json"
    queries = {"gateway_requests_per_s": "sum by (status) (rate(x[1m]))", "broken": "bad_query("}
    rc = snapshot.main(
        [
            "--url",
            prometheus,
            "--queries",
            json.dumps(queries),
            "--out",
            str(out),
            "--range-s",
            "3600",
            "--min-step",
            "5s",
            "--end",
            str(END),
            "--run-id",
            "r1",
            "--host",
            "h1",
        ]
    )
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["failed_queries"] == ["broken"]
    text = out.read_text("utf-8")
    assert "NaN" not in text and "Infinity" not in text  # strict JSON
    doc = json.loads(text)
    assert doc["run_id"] == "r1" and doc["host"] == "h1"
    assert doc["range"] == {"start": END - 3600, "end": END, "step_s": 12}
    values = doc["series"]["gateway_requests_per_s"]["result"][0]["values"]
    assert [v for _, v in values] == [0.5, None, 1.5, None]
    assert doc["series"]["broken"]["status"] == "error"
    assert "parse error" in doc["series"]["broken"]["error"]
    assert doc["alerts"][0]["name"] == "LLMHostVLLMDown"
    assert [t["job"] for t in doc["targets"]] == ["node", "vllm"]
    ranged = [s for s in FakePrometheus.seen if s["path"] == "/api/v1/query_range"]
    assert {s["step"] for s in ranged} == {"12"}
    assert {s["query"] for s in ranged} == set(queries.values())


def test_unreachable_prometheus_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = snapshot.main(
        ["--url", "http://127.0.0.1:9", "--queries", "{}", "--out", str(tmp_path / "s.json")]
    )
    assert rc == 2
    assert "did not answer" in capsys.readouterr().err
    assert not (tmp_path / "s.json").exists()


def test_bad_queries_argument_exits_2(tmp_path: Path) -> None:
    assert (
        snapshot.main(
            ["--url", "http://127.0.0.1:9", "--queries", "[1]", "--out", str(tmp_path / "s")]
        )
        == 2
    )


def _doc(series: dict[str, list[tuple[float, float | None]]]) -> dict[str, Any]:
    return {
        "run_id": "r1",
        "host": "h1",
        "range": {"start": END - 600, "end": END, "step_s": 15},
        "series": {
            name: {
                "status": "success",
                "result": [{"metric": {}, "values": [list(p) for p in points]}],
            }
            for name, points in series.items()
        },
    }


def test_chart_of_latency_and_throughput(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="matplotlib is pinned in the control venv (make venv)")
    times = [END - 300 + 15 * i for i in range(20)]
    doc = _doc(
        {
            "ttft_p99_s": [(t, 0.2 + i / 100) for i, t in enumerate(times)],
            "ttft_p50_s": [(t, None) for t in times],
            "generation_tokens_per_s": [(t, 500.0) for t in times],
            "gateway_requests_per_s": [(t, 3.0) for t in times],
        }
    )
    out = tmp_path / "chart.png"
    drawn = plot.draw(doc, out)
    assert drawn["ttft_p99_s"] == 20
    assert drawn["ttft_p50_s"] == 0  # only nulls: left out
    assert drawn["generation_tokens_per_s"] == 20
    assert drawn["gateway_requests_per_s"] == 20
    png = out.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert int.from_bytes(png[16:20], "big") == 1000  # 10 in x 100 dpi


def test_chart_without_data_still_renders(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="matplotlib is pinned in the control venv (make venv)")
    drawn = plot.draw(_doc({}), tmp_path / "empty.png")
    assert set(drawn.values()) == {0}
    assert (tmp_path / "empty.png").read_bytes().startswith(b"\x89PNG")
